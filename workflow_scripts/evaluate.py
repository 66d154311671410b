"""Evaluate one model on one env with one seed: a single independent episode.

The paper's protocol: each evaluation is one rollout with its own env seed, the model
taking its most probable action (argmax / greedy), under the same episode cap as the
random baseline.

The failure rule (the paper scores 0% only when the model "returned a non-valid JSON"):
an output that is not an action at all ends the rollout, which is recorded with the
reason and raw output and scored 0% normalized, as the paper scored Qwen on Humanoid.
Not an action: the policy raises :class:`PolicyFailure` (Qwen's parser: text that is not
JSON, a wrong key, a wrong number of values, a non-number), or returns a wrong shape, a
non-integer or out-of-range Discrete value, or a NaN/infinite Box value. A finite Box
value beyond the bounds is a number the env can take once clipped: under
``out_of_bounds="clip"`` (the default) it is clipped to the bounds (what gymnasium's
``ClipAction`` wrapper does) and the step is counted in ``n_clipped_actions``; under ``"fail"`` (the
strict rule) it ends the rollout like an invalid output. :func:`check_action` is the one
place that decides, for every model. Any other exception is a bug and propagates.

A policy may add its own fields to the per-seed record (e.g. an endpoint's token counts
and latency): if it has a ``record_fields()`` method, the dict it returns after the
episode (complete or failed) is merged into the record; a key the harness already writes
is refused, so a policy can never overwrite a score.

CLI (one seed per process, so a cluster runs seeds and envs as separate jobs)::

    python -m workflow_scripts.evaluate --model dm --model-dir results/models/dm/final \\
        --env CartPole-v1 --seed 3 --baseline results/baselines/CartPole-v1.json \\
        --dataset results/datasets/CartPole-v1.h5 --output results/eval/dm/CartPole-v1/seed3.json \\
        --out-of-bounds clip
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from workflow_scripts.dataset import read_info
from workflow_scripts.envs import episode_cap, make_env
from workflow_scripts.policy import Policy, PolicyFailure
from workflow_scripts.provenance import (
    package_versions,
    sha256_file,
    sha256_json,
    sha256_tree,
    write_json,
)
from workflow_scripts.scores import normalized_score

# Box actions this close to a bound (relative to the bound's size, at least absolute) are
# float rounding of a bound value (e.g. a bin centre rescaled to [low, high]): clipped
# under either rule and not counted as clipped. Anything further out is out of bounds.
BOUND_TOLERANCE = 1e-6
# What happens to a finite Box value beyond the bounds: clipped (the default, the paper's
# rule) or a failed rollout (the strict rule).
OUT_OF_BOUNDS_RULES = ("clip", "fail")


def _require_rule(out_of_bounds: str) -> None:
    if out_of_bounds not in OUT_OF_BOUNDS_RULES:
        raise ValueError(
            f"out_of_bounds must be one of {', '.join(OUT_OF_BOUNDS_RULES)}, got {out_of_bounds!r}"
        )


@dataclass
class EpisodeResult:
    """One rollout: what the env returned, and why it stopped early if it did."""

    episode_return: float
    length: int
    terminated: bool
    truncated: bool
    # None for a complete episode; otherwise reason, raw_output, step, source.
    failure: dict[str, Any] | None
    # Steps whose Box action lay beyond the bounds and was clipped (0 for Discrete).
    n_clipped_actions: int = 0


def add_out_of_bounds_flag(parser: argparse.ArgumentParser) -> None:
    """``--out-of-bounds {clip,fail}``, the rule for a finite Box action beyond the bounds
    (config ``evaluation.out_of_bounds_actions``), defined once for every CLI that plays a
    model's episodes (evaluate, evaluate_snapshot, enjoy) so they agree."""
    parser.add_argument(
        "--out-of-bounds",
        choices=OUT_OF_BOUNDS_RULES,
        default="clip",
        help="a finite Box action beyond the bounds: clip it and count it (the paper's rule, "
        "default) or fail the rollout as an invalid output (strict); config "
        "evaluation.out_of_bounds_actions",
    )


def check_action(
    action: Any, action_space: spaces.Space, out_of_bounds: str = "clip"
) -> tuple[int | np.ndarray, bool]:
    """``(action in the form the env takes, whether it was clipped)``, or raise
    :class:`PolicyFailure` for something that is not an action of ``action_space``.

    Discrete: one integer in the space, else a failure (never clipped). Box: finite values
    of the space's shape, cast to the space's dtype; NaN/inf or a wrong shape fail. A
    value beyond a bound by more than :data:`BOUND_TOLERANCE` is clipped and reported
    (``out_of_bounds="clip"``) or fails (``"fail"``); within the tolerance it is float
    rounding of the bound and clipped silently under both rules.
    """
    _require_rule(out_of_bounds)
    raw = repr(action)
    if isinstance(action_space, spaces.Discrete):
        value = np.asarray(action)
        if value.size != 1 or value.dtype.kind not in "iu":
            raise PolicyFailure(
                f"action {raw} is not one integer for {action_space}", raw_output=raw
            )
        value = int(value.reshape(()))
        if not action_space.start <= value < action_space.start + action_space.n:
            raise PolicyFailure(f"action {value} is outside {action_space}", raw_output=raw)
        return value, False
    if isinstance(action_space, spaces.Box):
        try:
            values = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise PolicyFailure(f"action {raw} is not numeric", raw_output=raw) from None
        if values.shape != action_space.shape:
            raise PolicyFailure(
                f"action has shape {values.shape}, expected {action_space.shape}", raw_output=raw
            )
        if not np.all(np.isfinite(values)):
            raise PolicyFailure(f"action {raw} has a NaN or infinite value", raw_output=raw)
        low = np.asarray(action_space.low, dtype=np.float64)
        high = np.asarray(action_space.high, dtype=np.float64)
        tolerance = BOUND_TOLERANCE * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
        beyond = bool(np.any(values < low - tolerance) or np.any(values > high + tolerance))
        if beyond and out_of_bounds == "fail":
            raise PolicyFailure(
                f"action {raw} is outside the bounds [{action_space.low}, {action_space.high}]",
                raw_output=raw,
            )
        return np.clip(values, low, high).astype(action_space.dtype), beyond
    raise ValueError(f"unsupported action space {action_space!r}")


def run_episode(
    policy: Policy, env: gym.Env, seed: int, out_of_bounds: str = "clip"
) -> EpisodeResult:
    """Roll out ``policy`` for one episode of ``env`` reset with ``seed``.

    The policy sees the previous step's reward and termination (None on the first step).
    Each action goes through :func:`check_action` with ``out_of_bounds`` ("clip" or
    "fail"); clipped steps are counted. An invalid action ends the episode with
    ``failure`` set; the return so far is kept for the record, but the episode counts as
    0% normalized.
    """
    _require_rule(out_of_bounds)  # before the episode, not at its first clip
    policy.reset()
    observation, _ = env.reset(seed=seed)
    prev_reward: float | None = None
    prev_term: bool | None = None
    episode_return, length, n_clipped = 0.0, 0, 0
    while True:
        try:
            raw_action = policy.act(observation, prev_reward, prev_term)
        except PolicyFailure as failure:
            return _failed_episode(episode_return, length, n_clipped, failure, source="policy")
        try:
            action, clipped = check_action(raw_action, env.action_space, out_of_bounds)
        except PolicyFailure as failure:
            return _failed_episode(episode_return, length, n_clipped, failure, source="harness")
        n_clipped += clipped
        observation, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return EpisodeResult(
                episode_return, length, bool(terminated), bool(truncated), None, n_clipped
            )
        prev_reward, prev_term = float(reward), bool(terminated)


def _failed_episode(
    episode_return: float, length: int, n_clipped: int, failure: PolicyFailure, source: str
) -> EpisodeResult:
    # source: "policy" (the model's own parser refused its output) or "harness" (the
    # returned action is not in the env's action space).
    return EpisodeResult(
        episode_return,
        length,
        terminated=False,
        truncated=False,
        failure={
            "reason": failure.reason,
            "raw_output": failure.raw_output,
            "step": length,
            "source": source,
        },
        n_clipped_actions=n_clipped,
    )


def evaluate_policy(
    policy: Policy,
    env_id: str,
    seed: int,
    random_score: float,
    expert_score: float,
    max_episode_steps: int | None = None,
    out_of_bounds: str = "clip",
) -> dict[str, Any]:
    """One evaluation episode of any :class:`Policy`, scored against random and expert.

    Returns the per-seed record (without provenance): return, length, normalized score
    (0 for a failed rollout), failure, ``n_clipped_actions``, the ``out_of_bounds`` rule
    applied ("clip" or "fail", see :func:`check_action`), the scale used, and the
    policy's own fields if it has ``record_fields()`` (see the module docstring). The env is
    built with the benchmark's episode cap; an env that would have no cap is refused (an
    episode could otherwise never end).
    """
    _require_rule(out_of_bounds)
    # Check the scale is defined before a possibly long episode (and even when the
    # episode fails, so a broken baseline is never hidden by a 0% score).
    normalized_score(random_score, random_score, expert_score)
    env = make_env(env_id, max_episode_steps)
    try:
        cap = episode_cap(env)
        if cap is None:
            raise ValueError(
                f"{env_id} has no episode cap; set experts.{env_id}.max_episode_steps in the config"
            )
        start = time.perf_counter()
        result = run_episode(policy, env, seed, out_of_bounds)
        episode_time = time.perf_counter() - start
    finally:
        env.close()
    if result.failure is None:
        score = normalized_score(result.episode_return, random_score, expert_score)
    else:
        score = 0.0  # the paper's rule for a rollout the model could not complete
    record = asdict(result)
    record = {
        "env_id": env_id,
        "seed": int(seed),
        "return": record.pop("episode_return"),
        **record,
        "normalized_score": score,
        "out_of_bounds": out_of_bounds,
        "random_score": float(random_score),
        "expert_score": float(expert_score),
        "max_episode_steps": cap,
        "episode_time_s": episode_time,
    }
    return record | _policy_record_fields(policy, record)


def _policy_record_fields(policy: Policy, record: dict[str, Any]) -> dict[str, Any]:
    # The optional hook of the module docstring: the policy's own per-episode fields.
    record_fields = getattr(policy, "record_fields", None)
    if record_fields is None:
        return {}
    fields = dict(record_fields())
    clashing = sorted(set(fields) & set(record))
    if clashing:
        raise ValueError(f"policy record fields clash with the harness's: {', '.join(clashing)}")
    return fields


def read_baseline(path: str | os.PathLike, env_id: str) -> dict[str, Any]:
    """The random-policy baseline JSON of ``env_id``; errors name the file and problem."""
    path = Path(path)
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: baseline file does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    missing = [key for key in ("env_id", "mean_return", "max_episode_steps") if key not in baseline]
    if missing:
        raise ValueError(f"{path}: baseline lacks key(s) {', '.join(missing)}")
    if baseline["env_id"] != env_id:
        raise ValueError(f"{path}: baseline of {baseline['env_id']!r}, expected {env_id!r}")
    return baseline


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_policy(
    model: str,
    model_dir: str | os.PathLike,
    env_id: str,
    device: str,
    policy_module: str | None = None,
    retrieval: Any = None,
) -> Policy:
    """``load_policy(model_dir, env_id, device)`` from ``workflow_scripts.<model>.policy``.

    ``policy_module`` names another module with the same ``load_policy`` function (a
    policy kept outside this package, or a hand-written one in tests). ``retrieval`` (a
    :class:`~workflow_scripts.retrieval.context.RetrievalContext`) is passed on as
    ``load_policy(..., retrieval=...)``, which the chat policies take.
    """
    module_name = policy_module or f"workflow_scripts.{model}.policy"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if not module_name.startswith(str(error.name)):
            raise  # the policy module exists but one of its own imports is missing
        raise ValueError(f"model {model!r}: no policy module {module_name}") from None
    if not hasattr(module, "load_policy"):
        raise ValueError(f"model {model!r}: {module_name} has no load_policy function")
    if retrieval is None:
        return module.load_policy(model_dir, env_id, device)
    if "retrieval" not in inspect.signature(module.load_policy).parameters:
        raise ValueError(
            f"model {model!r}: {module_name}.load_policy takes no retrieval context "
            "(only the chat policies do: qwen and endpoints)"
        )
    return module.load_policy(model_dir, env_id, device, retrieval=retrieval)


def evaluate_model_seed(
    model: str,
    model_dir: str | os.PathLike,
    env_id: str,
    seed: int,
    baseline_path: str | os.PathLike,
    dataset_path: str | os.PathLike,
    output_path: str | os.PathLike,
    max_episode_steps: int | None = None,
    device: str = "auto",
    policy_module: str | None = None,
    out_of_bounds: str = "clip",
    retrieval_index: str | os.PathLike | None = None,
    neighbours: int | None = None,
) -> dict[str, Any]:
    """Load ``model``'s policy for ``env_id``, run seed ``seed``, write the per-seed JSON.

    One seed of :func:`evaluate_model_seeds`, which documents the arguments and the record.
    """
    (record,) = evaluate_model_seeds(
        model, model_dir, env_id, [seed], baseline_path, dataset_path, [output_path],
        max_episode_steps, device, policy_module, out_of_bounds,
        retrieval_index=retrieval_index, neighbours=neighbours,
    )  # fmt: skip
    return record


def evaluate_model_seeds(
    model: str,
    model_dir: str | os.PathLike,
    env_id: str,
    seeds: list[int],
    baseline_path: str | os.PathLike,
    dataset_path: str | os.PathLike,
    output_paths: list[str | os.PathLike],
    max_episode_steps: int | None = None,
    device: str = "auto",
    policy_module: str | None = None,
    out_of_bounds: str = "clip",
    extra: dict[str, Any] | None = None,
    retrieval_index: str | os.PathLike | None = None,
    neighbours: int | None = None,
) -> list[dict[str, Any]]:
    """Load ``model``'s policy for ``env_id`` once, run one episode per seed, write each
    seed's JSON to the matching ``output_paths`` entry (atomically).

    ``out_of_bounds`` is the rule for finite Box values beyond the bounds ("clip" or
    "fail", see :func:`check_action`); it is checked before the model loads. Before each
    episode numpy and torch are seeded with the episode's seed, so a seed's record is the
    same whether it ran alone or after others. The record carries provenance: the model
    folder's hash, the baseline file's hash, the dataset attributes' hash, package
    versions, device, the load time (once per call) and the wall time of load plus
    episode; ``extra`` (e.g. a snapshot's progress) is added as is.

    ``retrieval_index`` and ``neighbours`` (both or neither) give a chat policy a retrieval
    context instead of the episode's history: the ``neighbours`` transitions of the env's
    index (:mod:`workflow_scripts.retrieval.index`) nearest each observation. The record
    then names the index, its hash and ``neighbours``.
    """
    _require_rule(out_of_bounds)
    if (retrieval_index is None) != (neighbours is None):
        raise ValueError("a retrieval context needs both retrieval_index and neighbours")
    if len(seeds) != len(output_paths):
        raise ValueError(f"{len(seeds)} seeds but {len(output_paths)} output paths")
    start = time.perf_counter()
    baseline = read_baseline(baseline_path, env_id)
    dataset_info = read_info(dataset_path, env_id=env_id)
    env = make_env(env_id, max_episode_steps)
    cap = episode_cap(env)
    env.close()
    if baseline["max_episode_steps"] not in (None, cap):
        raise ValueError(
            f"{baseline_path}: baseline episodes were capped at {baseline['max_episode_steps']} "
            f"steps, this evaluation at {cap}; rerun the baseline with the same config"
        )
    device = resolve_device(device)
    retrieval, context = None, {}
    if retrieval_index is not None:
        from workflow_scripts.retrieval.context import RetrievalContext
        from workflow_scripts.retrieval.index import load_index

        retrieval = RetrievalContext(load_index(retrieval_index, env_id=env_id), int(neighbours))
        context = {
            "retrieval_index": str(retrieval_index),
            "retrieval_index_sha256": sha256_file(retrieval_index),
            "retrieval_neighbours": int(neighbours),
        }
    policy = load_model_policy(model, model_dir, env_id, device, policy_module, retrieval)
    load_time = time.perf_counter() - start
    provenance = {
        "model_dir": str(model_dir),
        # The model itself (weights, config, card), not its training log of wall-clock times.
        "model_sha256": sha256_tree(model_dir, exclude=("training.json",)),
        "baseline": str(baseline_path),
        "baseline_sha256": sha256_file(baseline_path),
        "dataset": str(dataset_path),
        "dataset_attrs_sha256": sha256_json(dataset_info.attrs),
        "device": device,
        **context,
    }
    records = []
    for seed, output_path in zip(seeds, output_paths, strict=True):
        seed_everything(seed)
        record = evaluate_policy(
            policy,
            env_id,
            seed,
            random_score=float(baseline["mean_return"]),
            expert_score=dataset_info.expert_mean_return,
            max_episode_steps=max_episode_steps,
            out_of_bounds=out_of_bounds,
        )
        record = {
            "model": model,
            **record,
            **provenance,
            "load_time_s": load_time,
            "wall_time_s": load_time + record["episode_time_s"],
            "versions": package_versions(),
            **(extra or {}),
        }
        write_json(output_path, record)
        records.append(record)
    return records


def seed_everything(seed: int) -> None:
    """Seed numpy and torch: policies act greedily, but any randomness inside one repeats."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


def describe(record: dict[str, Any]) -> str:
    """One log line for a per-seed record: return, length, outcome, score, time."""
    outcome = "failed: " + record["failure"]["reason"] if record["failure"] else "complete"
    if record["n_clipped_actions"]:
        outcome += f", {record['n_clipped_actions']} actions clipped to the bounds"
    return (
        f"{record['model']} {record['env_id']} seed {record['seed']}: return "
        f"{record['return']:.3f} over {record['length']} steps ({outcome}), normalized "
        f"{record['normalized_score']:.2f}%, {record['wall_time_s']:.1f} s on {record['device']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model key, e.g. dm or qwen")
    parser.add_argument("--model-dir", required=True, help="the trained model's folder")
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument("--seed", type=int, required=True, help="env seed of the episode")
    parser.add_argument("--baseline", required=True, help="random-policy baseline JSON")
    parser.add_argument("--dataset", required=True, help="expert dataset (expert score)")
    parser.add_argument("--output", required=True, help="per-seed JSON to write")
    parser.add_argument(
        "--max-episode-steps", type=int, default=None, help="episode cap (config); default: env's"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_out_of_bounds_flag(parser)
    parser.add_argument(
        "--policy-module",
        default=None,
        help="module with load_policy(model_dir, env_id, device); "
        "default workflow_scripts.<model>.policy",
    )
    parser.add_argument(
        "--retrieval-index",
        default=None,
        help="the env's retrieval index (results/retrieval/{env}.h5): a chat policy's context "
        "holds the nearest dataset transitions instead of the episode's history",
    )
    parser.add_argument(
        "--neighbours", type=int, default=None, help="transitions a retrieval context holds"
    )
    args = parser.parse_args(argv)
    if (args.retrieval_index is None) != (args.neighbours is None):
        parser.error("--retrieval-index and --neighbours go together")

    import torch

    torch.set_num_threads(args.threads)
    record = evaluate_model_seed(
        args.model,
        args.model_dir,
        args.env,
        args.seed,
        args.baseline,
        args.dataset,
        args.output,
        max_episode_steps=args.max_episode_steps,
        device=args.device,
        policy_module=args.policy_module,
        out_of_bounds=args.out_of_bounds,
        retrieval_index=args.retrieval_index,
        neighbours=args.neighbours,
    )
    print(describe(record))


if __name__ == "__main__":
    main()
