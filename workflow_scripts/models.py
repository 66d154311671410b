"""The models a run evaluates: a small registry of kinds, each with its config section.

Light on purpose (no torch): the rule files plan every model's jobs with it at parse time.
A key in ``models:`` is one of:

* ``dm`` and ``qwen``: the two models this workflow trains (sections ``dm:``, ``qwen:``),
  with snapshots and learning curves;
* a key of ``retrieval:``: the 1-NN behaviour-cloning reference, which acts as the
  nearest expert transition of the env's dataset did (an index per env, built once:
  ``results/retrieval/{env}.h5``); or, with ``chat_model: qwen`` or ``chat_model: <a key
  of endpoints>`` and ``neighbours: k``, that chat model with a retrieval context (the
  paper's future work): its context holds the k dataset transitions nearest the current
  observation, with their expert actions, instead of the episode's history. Such a row
  is of its chat model's kind (``qwen`` or ``endpoint``: same policy, same job size) and
  also reads the env's index;
* a key of ``endpoints:``: a chat model behind an OpenAI-compatible API, evaluated in the
  paper's chat format (its settings file ``results/endpoints/{key}/endpoint.json`` is
  its "model folder").

Every kind is evaluated by the same harness (``workflow_scripts.evaluate``) through its
``load_policy``; the table, the t-test between the paper's pair, the plots and the curves
(where a kind has snapshots) take any number of rows.
"""

from __future__ import annotations

from typing import Any

TRAINED = ("dm", "qwen")
# Sections of the config that declare further rows, by kind.
KIND_SECTIONS = {"retrieval": "retrieval", "endpoints": "endpoint"}
POLICY_MODULES = {
    "dm": "workflow_scripts.dm.policy",
    "qwen": "workflow_scripts.qwen.policy",
    "retrieval": "workflow_scripts.retrieval.policy",
    "endpoint": "workflow_scripts.endpoint.policy",
}
RETRIEVAL_INDEX = "results/retrieval/{env}.h5"
ENDPOINT_FOLDER = "results/endpoints/{model}"


CHAT_KINDS = ("qwen", "endpoint")


def model_kind(config: dict[str, Any], model: str) -> str:
    """``dm``, ``qwen``, ``retrieval`` or ``endpoint``; ValueError for an undeclared key.

    A retrieval-context row is of its chat model's kind (``qwen`` or ``endpoint``)."""
    if model in TRAINED:
        return model
    for section, kind in KIND_SECTIONS.items():
        if model in (config.get(section) or {}):
            chat = chat_model(config, model)
            return kind if chat is None else model_kind(config, chat)
    raise ValueError(f"model {model!r} is neither dm, qwen, nor a key of retrieval: or endpoints:")


def chat_model(config: dict[str, Any], model: str) -> str | None:
    """The chat model (``qwen`` or a key of ``endpoints``) a retrieval-context row runs, or
    None for any other row; ValueError when it names anything else."""
    entry = (config.get("retrieval") or {}).get(model) or {}
    chat = entry.get("chat_model")
    if chat is None:
        return None
    if chat != "qwen" and chat not in (config.get("endpoints") or {}):
        raise ValueError(
            f"retrieval.{model}.chat_model: {chat!r} is neither qwen nor a key of endpoints:"
        )
    return chat


def retrieval_neighbours(config: dict[str, Any], model: str) -> int | None:
    """The transitions a retrieval-context row's context holds, or None for any other row."""
    if chat_model(config, model) is None:
        return None
    return int(config["retrieval"][model]["neighbours"])


def model_section(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The config section that describes ``model`` (``dm:``, ``retrieval.<key>``, ...)."""
    if model in TRAINED:
        return config[model]
    for section in KIND_SECTIONS:
        if model in (config.get(section) or {}):
            return config[section][model]
    raise ValueError(f"model {model!r} is neither dm, qwen, nor a key of retrieval: or endpoints:")


def display_name(config: dict[str, Any], model: str) -> str:
    """The name a model is shown by in tables and figures (its key by default)."""
    return model_section(config, model).get("display_name", model)


def has_snapshots(config: dict[str, Any], model: str) -> bool:
    """Whether the model publishes snapshots (a trained kind with ``snapshot_every``)."""
    return model in TRAINED and bool(config[model].get("snapshot_every"))


def evaluated_model_path(config: dict[str, Any], model: str, env_id: str) -> str:
    """What ``evaluate --model-dir`` gets for ``model`` on ``env_id`` (a rule input): the
    final model folder, the env's retrieval index, or the endpoint's settings folder (a
    retrieval-context row's are its chat model's)."""
    kind = model_kind(config, model)
    runs = chat_model(config, model) or model
    if kind in TRAINED:
        return f"results/models/{runs}/final"
    if kind == "retrieval":
        return RETRIEVAL_INDEX.format(env=env_id)
    return ENDPOINT_FOLDER.format(model=runs)


def registry_problems(config: dict[str, Any]) -> list[str]:
    """Keys of ``models`` no kind declares, or declared by two kinds; one line each."""
    problems = []
    for index, model in enumerate(config["models"]):
        declared = [section for section in KIND_SECTIONS if model in (config.get(section) or {})]
        if model in TRAINED and declared:
            problems.append(f"models[{index}]: {model!r} is reserved for the trained model")
        elif model not in TRAINED and not declared:
            problems.append(
                f"models[{index}]: {model!r} is neither dm, qwen, nor a key of retrieval: "
                "or endpoints: (declare it there)"
            )
        elif len(declared) > 1:
            problems.append(f"models[{index}]: {model!r} is declared in both {declared}")
    # The schema requires chat_model and neighbours together; here, what chat_model names.
    for model in config.get("retrieval") or {}:
        try:
            chat_model(config, model)
        except ValueError as error:
            problems.append(str(error))
    return problems


def endpoint_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """An ``endpoints.<key>`` entry as the settings its ``endpoint.json`` holds."""
    return {name: value for name, value in entry.items() if name != "display_name"}


def endpoint_problems(entry: dict[str, Any]) -> list[str]:
    """What :class:`~workflow_scripts.endpoint.settings.EndpointSettings` refuses in an
    ``endpoints.<key>`` entry, checked at parse instead of in the first evaluation job."""
    from workflow_scripts.endpoint.settings import settings_from_dict

    try:
        settings_from_dict(endpoint_settings(entry))
    except ValueError as error:
        return [str(error)]
    return []
