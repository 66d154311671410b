import json
import shlex

from workflow_scripts.experts.layout import EXPERTS_DIR, ExpertFiles
from workflow_scripts.provenance import code_sha256
from workflow_scripts.video import VIDEOS_DIR, expert_video, info_path, model_video

# The out-of-bounds rule of the evaluation, so a video shows the episode it scores.
OUT_OF_BOUNDS = config["evaluation"]["out_of_bounds_actions"]
# Every env's Minari export (issue 15 item 2): the bundle takes them when some rule of the
# workflow writes results/minari/{env}; otherwise its datasets/README.md names the command.
MINARI_DIR = "results/minari"
MINARI_EXPORT = "results/minari/{env}"
# The bundle shows each model's video of the first evaluation seed.
VIDEO_SEED = SEEDS[0]


rule video:
    """A trained model's evaluation episode of one env and seed, rendered off-screen to mp4
    (same env seed, episode cap and greedy policy as results/eval/{model}/{env}/seed{seed}.json).
    """
    input:
        model="results/models/{model}/final",
    output:
        video=str(model_video("{model}", "{env}", "{seed}")),
        info=str(info_path(model_video("{model}", "{env}", "{seed}"))),
    log:
        "logs/video/{model}/{env}/seed{seed}.log",
    benchmark:
        "results/benchmarks/video/{model}/{env}/seed{seed}.tsv"
    conda:
        "../envs/workflow.yaml"
    # The job size of the model's evaluation: the same policy plays the same episode.
    threads: evaluation_resource("threads")
    resources:
        mem_mb=evaluation_resource("mem_mb"),
        runtime=evaluation_resource("runtime"),
        gpu=evaluation_resource("gpu"),
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=lambda wildcards: code_sha256(
            "workflow_scripts.enjoy", f"workflow_scripts.{wildcards.model}.policy"
        ),
        cap=lambda wildcards: cap_flag(wildcards.env),
        device=evaluation_device,
        out_of_bounds=OUT_OF_BOUNDS,
    shell:
        "HF_HUB_OFFLINE=1 python -m workflow_scripts.enjoy --model {wildcards.model}"
        " --model-dir {input.model:q} --env {wildcards.env:q} --seed {wildcards.seed}"
        " --episodes 1 {params.cap} --out-of-bounds {params.out_of_bounds}"
        " --device {params.device} --threads {threads} --record {output.video:q}"
        " > {log:q} 2>&1"


rule expert_video:
    """The expert of one env (deterministic actions), on the env seed of the first
    evaluation seed, so it starts where the models' seed videos of that seed start."""
    input:
        model=ExpertFiles.of("{env}").model,
        summary=ExpertFiles.of("{env}").summary,
        config=ExpertFiles.of("{env}").config,
    output:
        video=str(expert_video("{env}")),
        info=str(info_path(expert_video("{env}"))),
    log:
        "logs/video/experts/{env}.log",
    benchmark:
        "results/benchmarks/video/experts/{env}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.enjoy"),
        experts_dir=EXPERTS_DIR,
        seed=SEEDS[0],
        cap=lambda wildcards: cap_flag(wildcards.env),
    shell:
        "python -m workflow_scripts.enjoy --model expert --experts-dir {params.experts_dir:q}"
        " --env {wildcards.env:q} --seed {params.seed} --episodes 1 {params.cap}"
        " --threads {threads} --record {output.video:q} > {log:q} 2>&1"


rule publish:
    """results/publish/: per model a Hub-ready folder (weights, config, model card with the
    table's normalized scores as model-index, one video per env), the datasets' Minari
    exports or how to build them, scores.json, the tables and plots, and how it was made.
    """
    input:
        models=expand("results/models/{model}/final", model=TRAINED_MODELS),
        table_csv="results/table.csv",
        table_md="results/table.md",
        # The comparison, and the learning curves when a model has snapshots.
        extra_tables=["results/comparison.csv", "results/comparison.md"]
        + (CURVE_OUTPUTS[:2] if CURVE_FOLDERS else []),
        scores="results/scores.json",
        plots=[
            "results/plots/normalized_scores.png",
            "results/plots/expert_curves.png",
            *(CURVE_OUTPUTS[2:] if CURVE_FOLDERS else []),
        ],
        videos=expand(
            str(model_video("{model}", "{env}", VIDEO_SEED)),
            model=TRAINED_MODELS,
            env=ENVS,
        ),
        expert_videos=expand(str(expert_video("{env}")), env=ENVS),
        # Looked up when the DAG is built, after every rule file is read: some rule's
        # output pattern (wildcard constraints and all) matches the first env's export.
        minari=lambda wildcards: (
            expand(MINARI_EXPORT, env=ENVS)
            if any(
                rule.is_producer(MINARI_EXPORT.format(env=ENVS[0]))
                for rule in workflow.rules
            )
            else []
        ),
    output:
        directory("results/publish"),
    log:
        "logs/publish.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        # The stage's code and the package modules it imports: editing them reruns it.
        code=code_sha256("workflow_scripts.publish"),
        model_dirs=" ".join(
            f"--model-dir {shlex.quote(f'{model}=results/models/{model}/final')}"
            for model in TRAINED_MODELS
        ),
        display_names=DISPLAY_NAME_FLAGS,
        envs=ENVS,
        # The run's config (every overlay merged) goes into the bundle as config.yaml.
        config_json=json.dumps(config, sort_keys=True),
        videos_dir=VIDEOS_DIR,
        video_seed=VIDEO_SEED,
        minari=lambda wildcards, input: (
            f"--minari-dir {MINARI_DIR}" if input.minari else ""
        ),
    shell:
        "python -m workflow_scripts.publish {params.model_dirs} {params.display_names}"
        " --envs {params.envs:q} --table-csv {input.table_csv:q}"
        " --table-md {input.table_md:q} --extra-tables {input.extra_tables:q}"
        " --scores {input.scores:q} --plots {input.plots:q}"
        " --config-json {params.config_json:q} --videos-dir {params.videos_dir:q}"
        " --video-seed {params.video_seed} {params.minari} --output {output:q}"
        " > {log:q} 2>&1"
