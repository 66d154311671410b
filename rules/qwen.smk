"""Qwen3 supervised fine-tuning: per-env context budgets, then one multi-task model."""

from pathlib import Path
from shlex import quote

from workflow_scripts.provenance import code_sha256
from workflow_scripts.qwen.settings import BASE_MODEL_FOLDER
from workflow_scripts.qwen.settings import flags_from_config as qwen_train_flags

# The qwen section's cross-key rules run in validate_config (rules/common.smk); whether one
# transition of every env fits max_seq_length needs the tokenizer and the envs, so the
# qwen_budgets job checks it (qwen.settings.check_config_with_tokenizer), not the parse.


rule qwen_budgets:
    """Each env's n_transitions_max: the most transitions that fit max_seq_length tokens."""
    input:
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        "results/models/qwen/budgets.json",
    log:
        "logs/qwen/budgets.log",
    benchmark:
        "results/benchmarks/qwen/budgets.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.qwen_budgets"),
        max_seq_length=lambda wildcards: config["qwen"]["max_seq_length"],
        quantile=lambda wildcards: config["qwen"]["budget_quantile"],
        sample_rows=lambda wildcards: config["qwen"]["budget_sample_rows"],
        seed=lambda wildcards: config["qwen"]["seed"],
        # The packaged Qwen3 tokenizer unless the config names one.
        tokenizer=lambda wildcards: (
            f"--tokenizer {quote(config['qwen']['tokenizer'])}"
            if config["qwen"]["tokenizer"]
            else ""
        ),
    shell:
        "python -m workflow_scripts.qwen_budgets --datasets {input.datasets:q}"
        " --max-seq-length {params.max_seq_length} --quantile {params.quantile}"
        " --sample-rows {params.sample_rows} --seed {params.seed} {params.tokenizer}"
        " --output {output:q} > {log:q} 2>&1"


rule fetch_qwen:
    """A hub model's weights, downloaded once where the network is (not on a GPU node)."""
    output:
        directory(BASE_MODEL_FOLDER),
    log:
        "logs/qwen/fetch.log",
    # On the machine Snakemake runs on: compute nodes often have no internet.
    localrule: True
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        code=code_sha256("workflow_scripts.fetch_model"),
        model=lambda wildcards: config["qwen"]["model_name_or_path"],
    shell:
        "python -m workflow_scripts.fetch_model --model {params.model:q} --output {output:q}"
        " > {log:q} 2>&1"


rule train_qwen:
    """Fine-tune Qwen3 on all envs (one process per GPU); resumes from its checkpoints."""
    input:
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
        budgets="results/models/qwen/budgets.json",
        base=qwen_base_model,
    output:
        final=directory("results/models/qwen/final"),
        # Published when the run completes (staged beside the checkpoints until then).
        snapshots=snapshot_outputs("qwen"),
    log:
        "logs/qwen/train.log",
    benchmark:
        "results/benchmarks/qwen/train.tsv"
    conda:
        "../envs/workflow.yaml"
    # Job size from config qwen.resources: on a GPU node the launcher starts one process
    # per allocated GPU.
    threads: training_resource("qwen", "threads")
    resources:
        mem_mb=training_resource("qwen", "mem_mb"),
        runtime=training_resource("qwen", "runtime"),
        gpu=training_resource("qwen", "gpu"),
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.launch", "workflow_scripts.train_qwen"),
        # Model source, optimisation and system settings from config qwen, as --flags.
        flags=lambda wildcards: qwen_train_flags(config["qwen"]),
        # Not outputs: they outlive a failed or killed job, so a rerun resumes.
        # Without GPUs: this many training processes (torchrun, gloo), threads split.
        cpu_processes=lambda wildcards: config["qwen"]["resources"].get(
            "cpu_processes", 1
        ),
        checkpoint_dir="results/models/qwen/checkpoints",
        tensorboard_dir="logs/qwen/tensorboard",
        # Where the snapshots are published: beside the final model.
        snapshot_dir=lambda wildcards, output: Path(output.final).parent / "snapshots",
    shell:
        # Offline: the weights are a local folder; every rank fetching them would not be.
        "HF_HUB_OFFLINE=1 python -m workflow_scripts.launch --cpu-processes {params.cpu_processes}"
        " --threads {threads} workflow_scripts.train_qwen"
        " --datasets {input.datasets:q} --budgets {input.budgets:q} {params.flags}"
        " --checkpoint-dir {params.checkpoint_dir:q}"
        " --tensorboard-dir {params.tensorboard_dir:q} --snapshot-dir {params.snapshot_dir:q}"
        " --output {output.final:q} > {log:q} 2>&1"
