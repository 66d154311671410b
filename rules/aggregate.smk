import shlex


def evaluation_records(wildcards=None):
    """Every per-seed evaluation of the configured models, envs and seeds."""
    return expand(
        "results/eval/{model}/{env}/seed{seed}.json", model=MODELS, env=ENVS, seed=SEEDS
    )


def display_name_flags():
    """``--display-name model=Name`` per model: the config's name, else the model key."""
    flags = []
    for model in MODELS:
        name = config.get(model, {}).get("display_name", model)
        flags.append("--display-name " + shlex.quote(f"{model}={name}"))
    return " ".join(flags)


rule aggregate:
    """Mean normalized score per env and model, Welch's t-test, bolding; CSV and Markdown."""
    input:
        evaluation_records,
    output:
        csv=report(
            "results/table.csv",
            caption="../report/table_csv.rst",
            category="Results",
        ),
        md=report(
            "results/table.md",
            caption="../report/table_md.rst",
            category="Results",
        ),
    log:
        "logs/aggregate.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        eval_dir="results/eval",
        models=MODELS,
        envs=ENVS,
        seeds=SEEDS,
        display_names=display_name_flags(),
    shell:
        "python -m workflow_scripts.aggregate --eval-dir {params.eval_dir:q}"
        " --models {params.models} --envs {params.envs:q} --seeds {params.seeds}"
        " {params.display_names} --table-csv {output.csv:q} --table-md {output.md:q}"
        " > {log:q} 2>&1"


rule plots:
    """Per-env normalized scores against the paper; all envs' expert training curves."""
    input:
        records=evaluation_records,
        monitors=expand("results/experts/{env}/monitor.csv", env=ENVS),
        baselines=expand("results/baselines/{env}.json", env=ENVS),
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        scores=report(
            "results/plots/normalized_scores.png",
            caption="../report/normalized_scores.rst",
            category="Results",
        ),
        curves=report(
            "results/plots/expert_curves.png",
            caption="../report/expert_curves.rst",
            category="Expert training curves",
        ),
    log:
        "logs/plots.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        eval_dir="results/eval",
        experts_dir="results/experts",
        baselines_dir="results/baselines",
        datasets_dir="results/datasets",
        models=MODELS,
        envs=ENVS,
        seeds=SEEDS,
        display_names=display_name_flags(),
    shell:
        "python -m workflow_scripts.plots --eval-dir {params.eval_dir:q}"
        " --experts-dir {params.experts_dir:q} --baselines-dir {params.baselines_dir:q}"
        " --datasets-dir {params.datasets_dir:q} --models {params.models}"
        " --envs {params.envs:q} --seeds {params.seeds} {params.display_names}"
        " --scores-png {output.scores:q} --curves-png {output.curves:q} > {log:q} 2>&1"
