# Benchmark workflow: expert datasets from 20 Gymnasium envs, two multi-task imitation
# models (DM-0.012B, Qwen3-1.7B), per-seed evaluation and the normalized-score table.
# Stages, in DAG order, one rule file each; see README.md for the picture.

from workflow_scripts.disk_plan import missing_datasets_message


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/hyperparams.smk"
include: "rules/experts.smk"
include: "rules/baselines.smk"
include: "rules/datasets.smk"
include: "rules/dm.smk"
include: "rules/qwen.smk"
include: "rules/retrieval.smk"
include: "rules/endpoints.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/curves.smk"
include: "rules/publish.smk"
include: "rules/export.smk"


onstart:
    # Before the first job: what the datasets still to collect need on disk, so a full-paper
    # run states it up front (`python -m workflow_scripts.disk_plan` prints it per env).
    print(
        missing_datasets_message(
            ENVS, config["dataset"]["n_transitions"], "results/datasets"
        )
    )


rule all:
    # The target of a bare `snakemake` and of `snakemake --report`; the included rule
    # files come first, so without this their first rule would be the default.
    default_target: True
    input:
        "results/table.csv",
        "results/table.md",
        "results/comparison.md",
        "results/scores.json",
        "results/plots/normalized_scores.png",
        "results/plots/expert_curves.png",
        # Learning curves, when a model publishes snapshots (<model>.snapshot_every).
        CURVE_OUTPUTS if CURVE_FOLDERS else [],
