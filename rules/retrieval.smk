"""The 1-NN retrieval reference (a `retrieval:` row): one nearest-neighbour index per env."""

from workflow_scripts.models import RETRIEVAL_INDEX
from workflow_scripts.provenance import code_sha256


rule build_index:
    """An env's retrieval index, built once from its expert dataset: standardized
    observations and the expert's actions, for the 1-NN policy and retrieval contexts.
    """
    input:
        "results/datasets/{env}.h5",
    output:
        RETRIEVAL_INDEX,
    log:
        "logs/build_index/{env}.log",
    benchmark:
        "results/benchmarks/build_index/{env}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.build_index"),
    shell:
        "python -m workflow_scripts.build_index --dataset {input:q} --env {wildcards.env:q}"
        " --output {output:q} > {log:q} 2>&1"
