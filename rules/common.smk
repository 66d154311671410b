"""Config validation, wildcard constraints and input functions shared by every rule file."""

import re

from workflow_scripts.config import expert_recipe, validate_config
from workflow_scripts.models import (
    POLICY_MODULES,
    RETRIEVAL_INDEX,
    TRAINED,
    chat_model,
    display_name,
    endpoint_settings,
    evaluated_model_path,
    model_kind,
    retrieval_neighbours,
)
from workflow_scripts.qwen.settings import BASE_MODEL_FOLDER, hub_model_id
from workflow_scripts.snapshots import (
    CURVE_RECORD,
    SNAPSHOT_FOLDER,
    curve_seeds,
    kept_snapshot_steps,
    snapshot_steps,
    table_snapshot_steps,
)

# Schema, expert overrides against their algorithm, each model section's cross-key rules;
# text given for numbers (nested --config values) is read as numbers, in place.
validate_config(config)

ENVS = list(config["envs"])
MODELS = list(config["models"])
SEEDS = list(config["evaluation"]["seeds"])
PROTOCOL = config["evaluation"]["protocol"]
CURVES = config["evaluation"]["curves"]
# Each row's kind (workflow_scripts/models.py): dm, qwen, retrieval or endpoint.
KINDS = {model: model_kind(config, model) for model in MODELS}
# The chat models the retrieval-context rows run, listed in models or not (their
# endpoint settings folders are files of the workflow too).
CONTEXT_CHAT_MODELS = sorted({chat_model(config, model) for model in MODELS} - {None})
TRAINED_MODELS = [model for model in MODELS if model in TRAINED]
# Snapshot steps per model (none for a row without snapshots).
SNAPSHOT_STEPS = {
    model: snapshot_steps(config[model]) if model in TRAINED else [] for model in MODELS
}
# Under last_evaluations, the rows without snapshots are read as under final.
FINAL_ONLY_MODELS = [
    model for model in MODELS if PROTOCOL == "final" or not SNAPSHOT_STEPS[model]
]
# The per-seed evaluations of the final protocol (every row) or, under last_evaluations,
# of the rows without snapshots.
EVALUATION_RECORDS = expand(
    "results/eval/{model}/{env}/seed{seed}.json",
    model=FINAL_ONLY_MODELS,
    env=ENVS,
    seed=SEEDS,
)


wildcard_constraints:
    env="|".join(re.escape(env) for env in ENVS),
    model=("|".join(dict.fromkeys(MODELS + CONTEXT_CHAT_MODELS)) if MODELS else "(?!)"),
    seed=r"\d+",
    step=r"\d+",


def recipe(env):
    """The env's expert recipe with defaults filled (algo, n_timesteps, overrides, cap)."""
    return expert_recipe(config, env)


def cap_flag(env):
    """``--max-episode-steps N`` when the config caps the env's episodes, else nothing."""
    cap = recipe(env)["max_episode_steps"]
    return f"--max-episode-steps {cap}" if cap else ""


def reference_flag(env):
    """``--reference-return R`` when the config gives the env's expert a reference return."""
    reference = config["experts"][env].get("reference_return")
    return "" if reference is None else f"--reference-return {reference}"


def evaluation_resource(name):
    """Per-kind job size of ``evaluate`` (config evaluation.resources.<kind>.<name>)."""
    return lambda wildcards: config["evaluation"]["resources"][KINDS[wildcards.model]][
        name
    ]


def job_device(job_size):
    """config evaluation.device for the jobs whose size ``job_size(wildcards)`` gives;
    ``auto`` is the CPU for a job that asks for no GPU, so a DM evaluation never lands on
    the GPU of a workstation or another job."""

    def device(wildcards):
        chosen = config["evaluation"]["device"]
        return "cpu" if chosen == "auto" and not job_size(wildcards)["gpu"] else chosen

    return device


# The device of an evaluation (the evaluate and video jobs), by the row's kind.
evaluation_device = job_device(
    lambda wildcards: config["evaluation"]["resources"][KINDS[wildcards.model]]
)


def evaluated_model(wildcards):
    """What the evaluation of a row on an env reads: the final model folder, the env's
    retrieval index, or the endpoint's settings folder (workflow_scripts/models.py)."""
    return evaluated_model_path(config, wildcards.model, wildcards.env)


def context_index(wildcards):
    """The env's retrieval index a retrieval-context row reads, or nothing."""
    if chat_model(config, wildcards.model) is None:
        return []
    return [RETRIEVAL_INDEX.format(env=wildcards.env)]


def context_flags(wildcards):
    """``--retrieval-index PATH --neighbours K`` for a retrieval-context row, else nothing."""
    index = context_index(wildcards)
    if not index:
        return ""
    neighbours = retrieval_neighbours(config, wildcards.model)
    return f"--retrieval-index {index[0]} --neighbours {neighbours}"


def policy_module(wildcards):
    """The module whose load_policy evaluates a row, by its kind."""
    return POLICY_MODULES[KINDS[wildcards.model]]


def training_resource(model, name):
    """Job size of a model's training (config <model>.resources.<name>)."""
    return lambda wildcards: config[model]["resources"][name]


def snapshot_outputs(model):
    """The snapshot folders a model's training job publishes; those older than the newest
    <model>.keep_snapshots are temp: Snakemake deletes them once their curves exist."""
    kept = set(kept_snapshot_steps(config[model]))
    folders = {
        step: SNAPSHOT_FOLDER.format(model=model, step=step)
        for step in snapshot_steps(config[model])
    }
    return [
        directory(folder) if step in kept else temp(directory(folder))
        for step, folder in folders.items()
    ]


def curve_folder(model, step):
    """One snapshot's curve evaluations: {env}/seed{seed}.json for every env and its seeds."""
    return f"results/curves/{model}/step{step}"


def curve_records(model, steps):
    """The per-seed records inside the curve folders of ``model``'s snapshots ``steps``."""
    return [
        CURVE_RECORD.format(model=model, step=step, env=env, seed=seed)
        for step in steps
        for env in ENVS
        for seed in curve_seeds(config[model], CURVES, step)
    ]


def curve_resource(name):
    """Per-model job size of one snapshot's evaluation (evaluation.curves.resources)."""
    return lambda wildcards: CURVES["resources"][wildcards.model][name]


def episode_caps(wildcards):
    """``--max-episode-steps ENV=N`` for every env the config caps (as the baseline's)."""
    caps = [
        f"{env}={recipe(env)['max_episode_steps']}"
        for env in ENVS
        if recipe(env)["max_episode_steps"]
    ]
    return f"--max-episode-steps {' '.join(caps)}" if caps else ""


def table_records():
    """The per-seed records results/table.csv averages, by evaluation.protocol, and the
    inputs of the rules that read them: the final-protocol records are files of their own,
    the last snapshots' curve records sit inside their folders (the jobs' outputs)."""
    records, inputs = list(EVALUATION_RECORDS), list(EVALUATION_RECORDS)
    for model in MODELS:
        if model in FINAL_ONLY_MODELS:
            continue
        steps = table_snapshot_steps(config[model], config["evaluation"])
        records += curve_records(model, steps)
        inputs += [curve_folder(model, step) for step in steps]
    return {"records": records, "inputs": inputs}


def evaluation_flags():
    """The table's protocol as flags of the stages that read per-seed records."""
    seeds = f"--seeds {' '.join(map(str, SEEDS))}"
    if PROTOCOL == "final":
        return f"--protocol final {seeds}"
    flags = f"--protocol last_evaluations --last-evaluations {config['evaluation']['last_evaluations']}"
    if FINAL_ONLY_MODELS:
        flags += f" {seeds} --final-models {' '.join(FINAL_ONLY_MODELS)}"
    return flags


def qwen_base_model(wildcards):
    """The fetched hub model train_qwen needs, or nothing (random_init, a local folder)."""
    return [BASE_MODEL_FOLDER] if hub_model_id(config["qwen"]) else []
