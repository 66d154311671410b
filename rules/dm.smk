"""Decision Model (DM-0.012B): one multi-task model trained on every env's dataset."""

from pathlib import Path
from workflow_scripts.dm.settings import flags_from_config as dm_train_flags
from workflow_scripts.provenance import code_sha256

# The dm section's cross-key rules (heads divide hidden, a window fits a dataset, ...) run
# in validate_config (rules/common.smk), with the rest of the config checks.


rule train_dm:
    """Train the DM on all envs (one process per GPU); resumes from its checkpoints."""
    input:
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        final=directory("results/models/dm/final"),
        # Published when the run completes (staged beside the checkpoints until then).
        snapshots=snapshot_outputs("dm"),
    log:
        "logs/dm/train.log",
    benchmark:
        "results/benchmarks/dm/train.tsv"
    conda:
        "../envs/workflow.yaml"
    # Job size from config dm.resources: on a GPU node the launcher starts one process
    # per allocated GPU, each with batch_size_per_gpu windows.
    threads: training_resource("dm", "threads")
    resources:
        mem_mb=training_resource("dm", "mem_mb"),
        runtime=training_resource("dm", "runtime"),
        gpu=training_resource("dm", "gpu"),
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.launch", "workflow_scripts.train_dm"),
        # Architecture, optimisation and evaluation context from config dm, as --flags.
        flags=lambda wildcards: dm_train_flags(config["dm"]),
        # Not outputs: they outlive a failed or killed job, so a rerun resumes.
        # Without GPUs: this many training processes (torchrun, gloo), threads split.
        cpu_processes=lambda wildcards: config["dm"]["resources"].get(
            "cpu_processes", 1
        ),
        checkpoint_dir="results/models/dm/checkpoints",
        tensorboard_dir="logs/dm/tensorboard",
        # Where the snapshots are published: beside the final model.
        snapshot_dir=lambda wildcards, output: Path(output.final).parent / "snapshots",
    shell:
        "python -m workflow_scripts.launch --cpu-processes {params.cpu_processes}"
        " --threads {threads} workflow_scripts.train_dm"
        " --datasets {input.datasets:q} {params.flags}"
        " --checkpoint-dir {params.checkpoint_dir:q}"
        " --tensorboard-dir {params.tensorboard_dir:q} --snapshot-dir {params.snapshot_dir:q}"
        " --output {output.final:q} > {log:q} 2>&1"
