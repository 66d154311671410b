"""Chat models behind an OpenAI-compatible API (an `endpoints:` row): the settings folder
the evaluation reads in place of model weights."""

import json

from workflow_scripts.models import ENDPOINT_FOLDER
from workflow_scripts.provenance import code_sha256

localrule: endpoint_settings


rule endpoint_settings:
    """results/endpoints/{model}/endpoint.json from config endpoints.<model> (the API key's
    environment variable is named, never the key)."""
    output:
        directory(ENDPOINT_FOLDER),
    log:
        "logs/endpoints/{model}.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("workflow_scripts.endpoint.settings"),
        settings=lambda wildcards: json.dumps(
            endpoint_settings(config["endpoints"][wildcards.model]), sort_keys=True
        ),
    shell:
        "python -m workflow_scripts.endpoint.settings --output {output:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
