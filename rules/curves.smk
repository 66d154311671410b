from workflow_scripts.provenance import code_sha256

# Every snapshot's curve folder, for the models that publish snapshots.
CURVE_FOLDERS = [
    curve_folder(model, step) for model in MODELS for step in SNAPSHOT_STEPS[model]
]
CURVE_OUTPUTS = [
    "results/curves.csv",
    "results/curves.md",
    "results/plots/learning_curves.png",
]


rule evaluate_snapshot:
    """A learning-curve point: one snapshot on every env, evaluation.curves.seeds_per_snapshot
    episodes each (the snapshot's own seeds), the model loaded once per env; one per-seed
    record per episode, in the format of results/eval/."""
    input:
        model=SNAPSHOT_FOLDER,
        baselines=expand("results/baselines/{env}.json", env=ENVS),
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        directory("results/curves/{model}/step{step}"),
    log:
        "logs/curves/{model}/step{step}.log",
    benchmark:
        "results/benchmarks/curves/{model}/step{step}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: curve_resource("threads")
    resources:
        mem_mb=curve_resource("mem_mb"),
        runtime=curve_resource("runtime"),
        gpu=curve_resource("gpu"),
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=lambda wildcards: code_sha256(
            "workflow_scripts.evaluate_snapshot",
            f"workflow_scripts.{wildcards.model}.policy",
        ),
        envs=ENVS,
        seeds=lambda wildcards: curve_seeds(
            config[wildcards.model], CURVES, int(wildcards.step)
        ),
        caps=episode_caps,
        device=job_device(lambda wildcards: CURVES["resources"][wildcards.model]),
        out_of_bounds=config["evaluation"]["out_of_bounds_actions"],
    shell:
        "HF_HUB_OFFLINE=1 python -m workflow_scripts.evaluate_snapshot"
        " --model {wildcards.model} --model-dir {input.model:q} --envs {params.envs:q}"
        " --seeds {params.seeds} --baselines {input.baselines:q}"
        " --datasets {input.datasets:q} {params.caps} --out-of-bounds {params.out_of_bounds}"
        " --device {params.device} --threads {threads} --output-dir {output:q}"
        " > {log:q} 2>&1"


rule curves:
    """Learning curves: per model and snapshot the per-env mean, the all-env average and IQM
    with 95% bootstrap intervals, hours and device-hours; time-to-score and plateau test.
    """
    input:
        CURVE_FOLDERS,
    output:
        csv="results/curves.csv",
        md="results/curves.md",
        png=report(
            "results/plots/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Learning curves",
        ),
    log:
        "logs/curves.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.curves"),
        records=[
            record
            for model in MODELS
            for record in curve_records(model, SNAPSHOT_STEPS[model])
        ],
        models=[model for model in MODELS if SNAPSHOT_STEPS[model]],
        envs=ENVS,
        thresholds=CURVES["thresholds"],
        plateau_points=CURVES["plateau_points"],
        display_names=DISPLAY_NAME_FLAGS,
    shell:
        "python -m workflow_scripts.curves --records {params.records:q}"
        " --models {params.models} --envs {params.envs:q}"
        " --thresholds {params.thresholds} --plateau-points {params.plateau_points}"
        " {params.display_names} --curves-csv {output.csv:q} --curves-md {output.md:q}"
        " --curves-png {output.png:q} > {log:q} 2>&1"
