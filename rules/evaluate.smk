from workflow_scripts.provenance import code_sha256


rule evaluate:
    """One evaluation episode of the final model on one env and seed (argmax / greedy), for
    the final protocol; snapshots are evaluated by evaluate_snapshot (rules/curves.smk).
    """
    input:
        model=evaluated_model,
        baseline="results/baselines/{env}.json",
        dataset="results/datasets/{env}.h5",
        # A retrieval-context row's index (workflow_scripts/models.py); none for the others.
        index=context_index,
    output:
        "results/eval/{model}/{env}/seed{seed}.json",
    log:
        "logs/evaluate/{model}/{env}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{env}/seed{seed}.tsv"
    conda:
        "../envs/workflow.yaml"
    # Job size per model (config evaluation.resources): the DM fits one CPU thread,
    # Qwen-1.7B wants a GPU.
    threads: evaluation_resource("threads")
    resources:
        mem_mb=evaluation_resource("mem_mb"),
        runtime=evaluation_resource("runtime"),
        gpu=evaluation_resource("gpu"),
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=lambda wildcards: code_sha256(
            "workflow_scripts.evaluate", policy_module(wildcards)
        ),
        policy=policy_module,
        # The env's episode cap from config (experts.<env>.max_episode_steps), as for the
        # baseline: normalized scores compare episodes of the same length.
        cap=lambda wildcards: cap_flag(wildcards.env),
        device=evaluation_device,
        out_of_bounds=config["evaluation"]["out_of_bounds_actions"],
        context=context_flags,
    shell:
        "HF_HUB_OFFLINE=1 python -m workflow_scripts.evaluate --model {wildcards.model}"
        " --policy-module {params.policy}"
        " --model-dir {input.model:q} --env {wildcards.env:q} --seed {wildcards.seed}"
        " --baseline {input.baseline:q} --dataset {input.dataset:q} {params.cap}"
        " --out-of-bounds {params.out_of_bounds} --device {params.device}"
        " --threads {threads} {params.context} --output {output:q} > {log:q} 2>&1"
