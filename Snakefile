# Benchmark workflow: expert datasets from 20 Gymnasium envs, two multi-task imitation
# models (DM-0.012B, Qwen3-1.7B), per-seed evaluation and the normalized-score table.
# Stages, in DAG order, one rule file each; see README.md for the picture.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/hyperparams.smk"
include: "rules/experts.smk"
include: "rules/baselines.smk"
include: "rules/datasets.smk"
include: "rules/dm.smk"
include: "rules/qwen.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    # The target of a bare `snakemake` and of `snakemake --report`; the included rule
    # files come first, so without this their first rule would be the default.
    default_target: True
    input:
        "results/table.csv",
        "results/table.md",
        "results/comparison.md",
        "results/plots/normalized_scores.png",
        "results/plots/expert_curves.png",
