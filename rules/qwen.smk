"""Qwen3 supervised fine-tuning: per-env context budgets, then one multi-task model."""

from shlex import quote

from workflow_scripts.train_qwen import check_config as check_qwen_config
from workflow_scripts.train_qwen import flags_from_config as qwen_train_flags

# Checks the schema cannot express: one transition of every env fits max_seq_length.
if "qwen" in MODELS:
    check_qwen_config(config["qwen"], ENVS)


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


rule train_qwen:
    """Fine-tune Qwen3 on all envs (one process per GPU); resumes from its checkpoints."""
    input:
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
        budgets="results/models/qwen/budgets.json",
    output:
        directory("results/models/qwen/final"),
    log:
        "logs/qwen/train.log",
    benchmark:
        "results/benchmarks/qwen/train.tsv"
    conda:
        "../envs/workflow.yaml"
    # Job size from config qwen.resources: on a GPU node the launcher starts one process
    # per allocated GPU.
    threads: lambda wildcards: config["qwen"]["resources"]["threads"]
    resources:
        mem_mb=lambda wildcards: config["qwen"]["resources"]["mem_mb"],
        runtime=lambda wildcards: config["qwen"]["resources"]["runtime"],
        gpu=lambda wildcards: config["qwen"]["resources"]["gpu"],
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.launch", "workflow_scripts.train_qwen"),
        # Model source, optimisation and system settings from config qwen, as --flags.
        flags=lambda wildcards: qwen_train_flags(config["qwen"]),
        # Not outputs: they outlive a failed or killed job, so a rerun resumes.
        checkpoint_dir="results/models/qwen/checkpoints",
        tensorboard_dir="logs/qwen/tensorboard",
    shell:
        "python -m workflow_scripts.launch workflow_scripts.train_qwen"
        " --datasets {input.datasets:q} --budgets {input.budgets:q} {params.flags}"
        " --checkpoint-dir {params.checkpoint_dir:q}"
        " --tensorboard-dir {params.tensorboard_dir:q} --output {output:q} > {log:q} 2>&1"
