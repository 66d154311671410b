"""Resolve an expert's hyperparameters: SB3 defaults or rl-zoo3's tuned entry, plus overrides.

The paper trained most experts with SB3's defaults ("{}" in its appendix), took
MountainCarContinuous-v0's values from rl-zoo3, and overrode MountainCar-v0's
``exploration_fraction``. The output file records, for every value, where it came from.

rl-zoo3 entries are taken whole (``normalize``, ``n_envs``, ``policy_kwargs``, ...), in
rl-zoo3's own spelling: schedules stay ``lin_<value>`` and ``policy_kwargs`` stays the
``dict(...)`` string, and :func:`constructor_kwargs` turns them into objects when the
expert is built, as rl-zoo3's ExperimentManager does.
"""

from __future__ import annotations

import argparse
import copy
import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import yaml

from workflow_scripts.config import ALGORITHMS, ConfigError, accepted_hyperparameters
from workflow_scripts.provenance import atomic_path, package_versions

# rl-zoo3 keys that describe the run rather than the algorithm's constructor.
RUN_KEYS = ("n_envs", "policy", "normalize", "n_timesteps", "noise_type", "noise_std")
# rl-zoo3 features this project does not reproduce; an entry using them is refused.
UNSUPPORTED_KEYS = ("frame_stack", "env_wrapper", "callback", "vec_env_wrapper", "normalize_kwargs")


def rl_zoo3_entry(env_id: str, algo: str) -> tuple[dict[str, Any] | None, str]:
    """The installed rl-zoo3's hyperparameter entry for (env, algo), and the file it is in."""
    file_name = f"{algo}.yml"
    path = resources.files("rl_zoo3") / "hyperparams" / file_name
    if not path.is_file():
        return None, file_name
    entries = yaml.safe_load(path.read_text())
    entry = entries.get(env_id)
    return (copy.deepcopy(entry) if entry is not None else None), file_name


def resolve_hyperparams(
    env_id: str,
    algo: str,
    n_timesteps: int,
    source: str = "sb3-defaults",
    overrides: dict[str, Any] | None = None,
    rl_zoo3_missing: str = "sb3-defaults",
    max_episode_steps: int | None = None,
) -> dict[str, Any]:
    """The resolved hyperparameter document for one env (what ``results/hyperparams/{env}.yml`` holds).

    ``source`` is ``sb3-defaults`` or ``rl-zoo3``; ``overrides`` are applied last;
    ``rl_zoo3_missing`` (``sb3-defaults`` or ``error``) says what to do when rl-zoo3 has
    no entry for the pair.
    """
    if algo not in ALGORITHMS:
        raise ConfigError(
            f"experts.{env_id}.algo: unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})"
        )
    document = _sb3_defaults_document(env_id, algo, n_timesteps, source, max_episode_steps)
    if source == "rl-zoo3":
        _apply_rl_zoo3(document, rl_zoo3_missing)
    else:
        document["source"] = "sb3-defaults"
    for key, value in (overrides or {}).items():
        document["hyperparams"][key] = value
        document["provenance"][key] = "config override"

    accepted = accepted_hyperparameters(algo)
    unknown = sorted(set(document["hyperparams"]) - accepted)
    if unknown:
        raise ConfigError(f"experts.{env_id}: {', '.join(unknown)} not accepted by {algo.upper()}")
    document["versions"] = package_versions()
    return document


def _sb3_defaults_document(
    env_id: str, algo: str, n_timesteps: int, source: str, max_episode_steps: int | None
) -> dict[str, Any]:
    """The document before any entry or override: SB3's defaults, each one's provenance."""
    document: dict[str, Any] = {
        "env_id": env_id,
        "algo": algo,
        "n_timesteps": int(n_timesteps),
        "max_episode_steps": max_episode_steps,
        "requested_source": source,
        "policy": "MlpPolicy",
        "n_envs": 1,
        "normalize": False,
        "action_noise": None,
        "hyperparams": {},
        "provenance": {},
        "notes": [],
    }
    for key in ("policy", "n_envs", "normalize", "action_noise"):
        document["provenance"][key] = "sb3-defaults"
    return document


def _apply_rl_zoo3(document: dict[str, Any], rl_zoo3_missing: str) -> None:
    """Take rl-zoo3's entry for the document's (env, algo) whole, or fall back to SB3's
    defaults (or raise, when ``rl_zoo3_missing`` is ``error``) where it has none."""
    env_id, algo = document["env_id"], document["algo"]
    entry, file_name = rl_zoo3_entry(env_id, algo)
    if entry is None:
        message = f"rl-zoo3 has no {algo} entry for {env_id} in hyperparams/{file_name}"
        if rl_zoo3_missing == "error":
            raise ConfigError(
                f"experts.{env_id}: {message} (hyperparams.rl_zoo3_missing is 'error')"
            )
        document["notes"].append(f"{message}; fell back to SB3 defaults")
        document["source"] = "sb3-defaults (rl-zoo3 fallback)"
        return
    document["source"] = "rl-zoo3"
    document["rl_zoo3_entry"] = copy.deepcopy(entry)
    unsupported = [key for key in UNSUPPORTED_KEYS if key in entry]
    if unsupported:
        raise ConfigError(
            f"experts.{env_id}: the rl-zoo3 entry uses {', '.join(unsupported)}, "
            "which this workflow does not support; use hyperparams_source: sb3-defaults"
        )
    zoo_timesteps = entry.pop("n_timesteps", None)
    if zoo_timesteps is not None and int(zoo_timesteps) != document["n_timesteps"]:
        document["notes"].append(
            f"rl-zoo3 trains for {int(zoo_timesteps)} timesteps; the config's "
            f"n_timesteps={document['n_timesteps']} is used"
        )
    origin = f"rl-zoo3 {metadata.version('rl_zoo3')} hyperparams/{file_name}"
    provenance = document["provenance"]
    for key in ("policy", "n_envs", "normalize"):
        if key in entry:
            document[key] = entry.pop(key)
            provenance[key] = origin
    if "noise_type" in entry:
        document["action_noise"] = {
            "type": entry.pop("noise_type"),
            "std": float(entry.pop("noise_std", 0.1)),
        }
        provenance["action_noise"] = origin
    for key, value in entry.items():
        document["hyperparams"][key] = value
        provenance[key] = origin


def write_hyperparams(document: dict[str, Any], path: str | Path) -> None:
    """Write the resolved document as YAML, atomically."""
    header = (
        f"# Resolved hyperparameters for {document['env_id']} ({document['algo']}).\n"
        "# `provenance` says where each value came from; values not listed are the\n"
        "# algorithm's constructor defaults (stable-baselines3 / sb3-contrib).\n"
    )
    with atomic_path(path, suffix=".yml") as tmp:
        tmp.write_text(header + yaml.safe_dump(document, sort_keys=False))


def read_hyperparams(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _schedule(value: Any) -> Any:
    """rl-zoo3's ``lin_<start>`` strings become linear schedules from start to 0."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value.removeprefix("lin_"))
        return lambda progress_remaining: progress_remaining * start
    return value


def _policy_kwargs(value: Any) -> dict[str, Any]:
    """rl-zoo3 writes policy_kwargs as a ``dict(...)`` expression; evaluate it with torch.nn names only."""
    if isinstance(value, dict):
        return value
    import torch.nn as nn

    namespace = {"dict": dict, "nn": nn, "__builtins__": {}}
    return eval(
        value, namespace
    )  # rl-zoo3's own convention; trusted files shipped with the package


def constructor_kwargs(document: dict[str, Any], action_space=None) -> dict[str, Any]:
    """The algorithm's keyword arguments as objects (schedules, policy_kwargs, action noise)."""
    kwargs = {key: _schedule(value) for key, value in document["hyperparams"].items()}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(kwargs["policy_kwargs"])
    for key in ("train_freq",):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    noise = document.get("action_noise")
    if noise:
        import numpy as np
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        n_actions = action_space.shape[0]
        mean, sigma = np.zeros(n_actions), noise["std"] * np.ones(n_actions)
        if noise["type"] == "normal":
            kwargs["action_noise"] = NormalActionNoise(mean, sigma)
        elif noise["type"] == "ornstein-uhlenbeck":
            kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(mean, sigma)
        else:
            raise ValueError(f"unknown action noise type {noise['type']!r}")
    return kwargs


def normalize_kwargs(document: dict[str, Any]) -> dict[str, Any] | None:
    """VecNormalize keyword arguments, or None when the expert trains without normalization."""
    normalize = document.get("normalize", False)
    if normalize is False or normalize is None:
        return None
    if normalize is True:
        return {}
    if isinstance(normalize, str):
        return eval(normalize, {"__builtins__": {}, "True": True, "False": False})
    return dict(normalize)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Resolve one env's expert hyperparameters.")
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    parser.add_argument("--n-timesteps", type=int, required=True)
    parser.add_argument("--source", choices=["sb3-defaults", "rl-zoo3"], default="sb3-defaults")
    parser.add_argument("--overrides", default="{}", help="JSON object of typed overrides")
    parser.add_argument(
        "--rl-zoo3-missing", choices=["sb3-defaults", "error"], default="sb3-defaults"
    )
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--output", required=True, help="where to write the resolved YAML")
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--overrides is not valid JSON: {error}") from None
    try:
        document = resolve_hyperparams(
            args.env,
            args.algo,
            args.n_timesteps,
            source=args.source,
            overrides=overrides,
            rl_zoo3_missing=args.rl_zoo3_missing,
            max_episode_steps=args.max_episode_steps,
        )
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None
    write_hyperparams(document, args.output)
    for note in document["notes"]:
        print(f"note: {note}")
    print(f"{args.env}: {args.algo} from {document['source']} -> {args.output}")


if __name__ == "__main__":
    main()
