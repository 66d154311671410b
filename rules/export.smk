from workflow_scripts.provenance import code_sha256


rule minari_export:
    """The env's expert dataset as a Minari 0.5 datasets root: episodes with their final
    observations, the env spec, the random and expert reference scores, code version."""
    input:
        dataset="results/datasets/{env}.h5",
        baseline="results/baselines/{env}.json",
    output:
        directory("results/minari/{env}"),
    log:
        "logs/minari_export/{env}.log",
    benchmark:
        "results/benchmarks/minari_export/{env}.tsv"
    conda:
        "../envs/minari.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.minari_export"),
    shell:
        "python -m workflow_scripts.minari_export --dataset {input.dataset:q}"
        " --baseline {input.baseline:q} --output {output:q} > {log:q} 2>&1"
