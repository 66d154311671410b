"""Decision Model (DM-0.012B): one multi-task model trained on every env's dataset."""

from workflow_scripts.train_dm import check_config as check_dm_config
from workflow_scripts.train_dm import flags_from_config as dm_train_flags

# Cross-key checks the schema cannot express (heads divide hidden, slide fits the context,
# a training window fits a dataset).
if "dm" in config:
    check_dm_config(config["dm"], config["dataset"]["n_transitions"])


rule train_dm:
    """Train the DM on all envs (one process per GPU); resumes from its checkpoints."""
    input:
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        directory("results/models/dm/final"),
    log:
        "logs/dm/train.log",
    benchmark:
        "results/benchmarks/dm/train.tsv"
    conda:
        "../envs/workflow.yaml"
    # Job size from config dm.resources: on a GPU node the launcher starts one process
    # per allocated GPU, each with batch_size_per_gpu windows.
    threads: lambda wildcards: config["dm"]["resources"]["threads"]
    resources:
        mem_mb=lambda wildcards: config["dm"]["resources"]["mem_mb"],
        runtime=lambda wildcards: config["dm"]["resources"]["runtime"],
        gpu=lambda wildcards: config["dm"]["resources"]["gpu"],
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.launch", "workflow_scripts.train_dm"),
        # Architecture, optimisation and evaluation context from config dm, as --flags.
        flags=lambda wildcards: dm_train_flags(config["dm"]),
        # Not outputs: they outlive a failed or killed job, so a rerun resumes.
        checkpoint_dir="results/models/dm/checkpoints",
        tensorboard_dir="logs/dm/tensorboard",
    shell:
        "python -m workflow_scripts.launch workflow_scripts.train_dm"
        " --datasets {input.datasets:q} {params.flags} --threads {threads}"
        " --checkpoint-dir {params.checkpoint_dir:q}"
        " --tensorboard-dir {params.tensorboard_dir:q} --output {output:q} > {log:q} 2>&1"
