from workflow_scripts.provenance import code_sha256


rule baseline:
    """Random-policy score of the env: uniform random actions over many seeded episodes."""
    output:
        "results/baselines/{env}.json",
    log:
        "logs/baseline/{env}.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.baseline"),
        n_episodes=config["baseline"]["n_episodes"],
        seed=config["baseline"]["seed"],
        cap=lambda wildcards: cap_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.baseline --env {wildcards.env:q}"
        " --n-episodes {params.n_episodes} --seed {params.seed} {params.cap}"
        " --output {output:q} > {log:q} 2>&1"
