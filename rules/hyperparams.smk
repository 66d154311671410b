import json

from workflow_scripts.provenance import code_sha256


rule hyperparams:
    """Resolve an env's expert hyperparameters (SB3 defaults or rl-zoo3, plus overrides)."""
    output:
        "results/hyperparams/{env}.yml",
    log:
        "logs/hyperparams/{env}.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.hyperparams"),
        algo=lambda wildcards: recipe(wildcards.env)["algo"],
        n_timesteps=lambda wildcards: recipe(wildcards.env)["n_timesteps"],
        source=lambda wildcards: recipe(wildcards.env)["hyperparams_source"],
        overrides=lambda wildcards: json.dumps(recipe(wildcards.env)["overrides"]),
        rl_zoo3_missing=config["hyperparams"]["rl_zoo3_missing"],
        cap=lambda wildcards: cap_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.hyperparams --env {wildcards.env:q} --algo {params.algo}"
        " --n-timesteps {params.n_timesteps} --source {params.source}"
        " --overrides {params.overrides:q} --rl-zoo3-missing {params.rl_zoo3_missing}"
        " {params.cap} --output {output:q} > {log:q} 2>&1"
