import shlex

from workflow_scripts.experts.layout import ExpertFiles
from workflow_scripts.provenance import code_sha256

# What the table averages, by evaluation.protocol: the final model's per-seed records, or
# the last snapshots' curve records (inside their folders, the jobs' outputs).
TABLE_EVALUATIONS = table_records()
# Column names of the models: config[model]["display_name"], else the model key.
DISPLAY_NAMES = {model: display_name(config, model) for model in MODELS}
DISPLAY_NAME_FLAGS = " ".join(
    f"--display-name {shlex.quote(f'{model}={name}')}"
    for model, name in DISPLAY_NAMES.items()
)


rule aggregate:
    """Mean normalized score per env and model, Welch's t-test, bolding; CSV and Markdown."""
    input:
        evaluations=TABLE_EVALUATIONS["inputs"],
        experts=expand(ExpertFiles.of("{env}").summary, env=ENVS),
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
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.aggregate"),
        records=TABLE_EVALUATIONS["records"],
        protocol=evaluation_flags(),
        models=MODELS,
        envs=ENVS,
        display_names=DISPLAY_NAME_FLAGS,
    shell:
        "python -m workflow_scripts.aggregate --records {params.records:q}"
        " --models {params.models} --envs {params.envs:q} {params.protocol}"
        " {params.display_names} --expert-summaries {input.experts:q}"
        " --table-csv {output.csv:q} --table-md {output.md:q}"
        " > {log:q} 2>&1"


rule plots:
    """Per-env normalized scores against the paper; all envs' expert training curves."""
    input:
        evaluations=TABLE_EVALUATIONS["inputs"],
        monitors=expand(ExpertFiles.of("{env}").monitor, env=ENVS),
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
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.plots"),
        records=TABLE_EVALUATIONS["records"],
        protocol=evaluation_flags(),
        models=MODELS,
        envs=ENVS,
        display_names=DISPLAY_NAME_FLAGS,
    shell:
        "python -m workflow_scripts.plots --records {params.records:q}"
        " --monitors {input.monitors:q} --baselines {input.baselines:q}"
        " --datasets {input.datasets:q} --models {params.models}"
        " --envs {params.envs:q} {params.protocol} {params.display_names}"
        " --scores-png {output.scores:q} --curves-png {output.curves:q} > {log:q} 2>&1"


rule reference_scores:
    """Per env, the random and expert scores every normalized score is measured against,
    with the file each came from (results/scores.json)."""
    input:
        baselines=expand("results/baselines/{env}.json", env=ENVS),
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
        experts=expand(ExpertFiles.of("{env}").summary, env=ENVS),
    output:
        "results/scores.json",
    log:
        "logs/reference_scores.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.reference_scores"),
        envs=ENVS,
    shell:
        "python -m workflow_scripts.reference_scores --envs {params.envs:q}"
        " --baselines {input.baselines:q} --datasets {input.datasets:q}"
        " --experts {input.experts:q} --output {output:q} > {log:q} 2>&1"


rule compare:
    """Per env: the expert against its published references, and each model's score with its
    95% confidence interval beside the paper's (results/comparison.md)."""
    input:
        table="results/table.csv",
        experts=expand(ExpertFiles.of("{env}").summary, env=ENVS),
        baselines=expand("results/baselines/{env}.json", env=ENVS),
        datasets=expand("results/datasets/{env}.h5", env=ENVS),
    output:
        csv="results/comparison.csv",
        md="results/comparison.md",
    log:
        "logs/compare.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.compare"),
        models=MODELS,
        display_names=DISPLAY_NAME_FLAGS,
    shell:
        "python -m workflow_scripts.compare --table {input.table:q} --models {params.models}"
        " --experts {input.experts:q} --baselines {input.baselines:q}"
        " --datasets {input.datasets:q} {params.display_names}"
        " --output-csv {output.csv:q} --output-md {output.md:q} > {log:q} 2>&1"
