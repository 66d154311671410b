from workflow_scripts.disk_plan import missing_datasets_message


onstart:
    # Before the first job: what the datasets still to collect need on disk, so a full-paper
    # run states it up front (`python -m workflow_scripts.disk_plan` prints it per env).
    print(
        missing_datasets_message(
            ENVS, config["dataset"]["n_transitions"], "results/datasets"
        )
    )


rule rollout:
    """Collect the env's expert dataset: exactly N sampled transitions in one HDF5 file."""
    input:
        model="results/experts/{env}/{env}.zip",
        summary="results/experts/{env}/expert.json",
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
        expert_dir=lambda wildcards, input: os.path.dirname(input.model),
        n_transitions=config["dataset"]["n_transitions"],
        n_envs=config["dataset"]["n_envs"],
        seed=config["dataset"]["seed"],
        cap=lambda wildcards: cap_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.rollout --env {wildcards.env:q}"
        " --expert-dir {params.expert_dir:q} --n-transitions {params.n_transitions}"
        " --n-envs {params.n_envs} --seed {params.seed} {params.cap}"
        " --output {output:q} > {log:q} 2>&1"
