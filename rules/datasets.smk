from workflow_scripts.experts.layout import ExpertFiles
from workflow_scripts.provenance import code_sha256


rule rollout:
    """Collect the env's expert dataset: exactly N sampled transitions in one HDF5 file."""
    input:
        model=ExpertFiles.of("{env}").model,
        summary=ExpertFiles.of("{env}").summary,
        config=ExpertFiles.of("{env}").config,
    output:
        "results/datasets/{env}.h5",
    log:
        "logs/rollout/{env}.log",
    benchmark:
        "results/benchmarks/rollout/{env}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=12 * 60,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.rollout"),
        n_transitions=config["dataset"]["n_transitions"],
        n_envs=config["dataset"]["n_envs"],
        seed=config["dataset"]["seed"],
        cap=lambda wildcards: cap_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.rollout --env {wildcards.env:q}"
        " --expert-model {input.model:q} --expert-summary {input.summary:q}"
        " --expert-config {input.config:q} --n-transitions {params.n_transitions}"
        " --n-envs {params.n_envs} --seed {params.seed} {params.cap}"
        " --output {output:q} > {log:q} 2>&1"
