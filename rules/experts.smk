from workflow_scripts.experts.layout import ExpertFiles
from workflow_scripts.provenance import code_sha256


rule train_expert:
    """Train the env's SB3 / sb3-contrib expert; resumes from results/experts/{env}/checkpoints.

    Ends with the quality gate: the expert's return against Gymnasium's reward_threshold and
    rl-zoo3's benchmark figure, on the random baseline's scale (expert_training.quality).
    """
    input:
        hyperparams="results/hyperparams/{env}.yml",
        # Read only by the quality gate: ancient, so a remade baseline (its code edited,
        # more episodes) re-checks nothing and never retrains the expert.
        baseline=ancient("results/baselines/{env}.json"),
    output:
        # The files of workflow_scripts/experts/layout.py, results/experts/{env}/...
        model=ExpertFiles.of("{env}").model,
        summary=ExpertFiles.of("{env}").summary,
        config=ExpertFiles.of("{env}").config,
        monitor=ExpertFiles.of("{env}").monitor,
        curve=report(
            ExpertFiles.of("{env}").curve,
            caption="../report/expert_curve.rst",
            category="Expert training curves",
            labels={"env": "{env}"},
        ),
    log:
        "logs/train_expert/{env}.log",
    benchmark:
        "results/benchmarks/train_expert/{env}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.train_expert"),
        # The folder it trains in: checkpoints and tensorboard logs go there too.
        output_dir=lambda wildcards: ExpertFiles.of(wildcards.env).folder,
        seed=config["expert_training"]["seed"],
        checkpoint_every=config["expert_training"]["checkpoint_every"],
        eval_episodes=config["expert_training"]["eval_episodes"],
        quality=config["expert_training"].get("quality", "warn"),
        tolerance=config["expert_training"].get("quality_tolerance", 0.1),
        reference=lambda wildcards: reference_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.train_expert --hyperparams {input.hyperparams:q}"
        " --output-dir {params.output_dir:q} --seed {params.seed}"
        " --checkpoint-every {params.checkpoint_every} --eval-episodes {params.eval_episodes}"
        " --baseline {input.baseline:q} --quality {params.quality}"
        " --quality-tolerance {params.tolerance} {params.reference} > {log:q} 2>&1"
