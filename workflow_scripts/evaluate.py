"""Evaluate one model on one env with one seed: a single independent episode.

The paper's protocol: each evaluation is one rollout with its own env seed, the model
taking its most probable action (argmax / greedy), under the same episode cap as the
random baseline. An output that is not an action of the env (the policy raises
:class:`PolicyFailure`, or returns NaN / out-of-bounds / wrong-shape values) ends the
rollout; the episode is recorded with the reason and raw output and scored 0%
normalized, as the paper scored Qwen on Humanoid. Any other exception is a bug and
propagates.

CLI (one seed per process, so a cluster runs seeds and envs as separate jobs)::

    python -m workflow_scripts.evaluate --model dm --model-dir results/models/dm/final \\
        --env CartPole-v1 --seed 3 --baseline results/baselines/CartPole-v1.json \\
        --dataset results/datasets/CartPole-v1.h5 --output results/eval/dm/CartPole-v1/seed3.json
"""

from __future__ import annotations

import argparse
import importlib
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
# float rounding of a bound value (e.g. a bin centre rescaled to [low, high]), clipped
# rather than failed. Anything further out is an invalid action.
BOUND_TOLERANCE = 1e-6


@dataclass
class EpisodeResult:
    """One rollout: what the env returned, and why it stopped early if it did."""

    episode_return: float
    length: int
    terminated: bool
    truncated: bool
    # None for a complete episode; otherwise reason, raw_output, step, source.
    failure: dict[str, Any] | None


def check_action(action: Any, action_space: spaces.Space) -> int | np.ndarray:
    """Return ``action`` in the form the env takes, or raise :class:`PolicyFailure`.

    Discrete: an integer in the space. Box: finite values of the space's shape within its
    bounds (up to :data:`BOUND_TOLERANCE`, clipped), cast to the space's dtype.
    """
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
        return value
    if isinstance(action_space, spaces.Box):
        try:
            values = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
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
        if np.any(values < low - tolerance) or np.any(values > high + tolerance):
            raise PolicyFailure(
                f"action {raw} is outside the bounds [{action_space.low}, {action_space.high}]",
                raw_output=raw,
            )
        return np.clip(values, low, high).astype(action_space.dtype)
    raise ValueError(f"unsupported action space {action_space!r}")


def run_episode(policy: Policy, env: gym.Env, seed: int) -> EpisodeResult:
    """Roll out ``policy`` for one episode of ``env`` reset with ``seed``.

    The policy sees the previous step's reward and termination (None on the first step).
    An invalid action ends the episode with ``failure`` set; the return so far is kept
    for the record, but the episode counts as 0% normalized.
    """
    policy.reset()
    observation, _ = env.reset(seed=seed)
    prev_reward: float | None = None
    prev_term: bool | None = None
    episode_return, length = 0.0, 0
    while True:
        try:
            raw_action = policy.act(observation, prev_reward, prev_term)
        except PolicyFailure as failure:
            return _failed_episode(episode_return, length, failure, source="policy")
        try:
            action = check_action(raw_action, env.action_space)
        except PolicyFailure as failure:
            return _failed_episode(episode_return, length, failure, source="harness")
        observation, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return EpisodeResult(episode_return, length, bool(terminated), bool(truncated), None)
        prev_reward, prev_term = float(reward), bool(terminated)


def _failed_episode(
    episode_return: float, length: int, failure: PolicyFailure, source: str
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
    )


def evaluate_policy(
    policy: Policy,
    env_id: str,
    seed: int,
    random_score: float,
    expert_score: float,
    max_episode_steps: int | None = None,
) -> dict[str, Any]:
    """One evaluation episode of any :class:`Policy`, scored against random and expert.

    Returns the per-seed record (without provenance): return, length, normalized score
    (0 for a failed rollout), failure, and the scale used. The env is built with the
    benchmark's episode cap; an env that would have no cap is refused (an episode could
    otherwise never end).
    """
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
        result = run_episode(policy, env, seed)
        episode_time = time.perf_counter() - start
    finally:
        env.close()
    if result.failure is None:
        score = normalized_score(result.episode_return, random_score, expert_score)
    else:
        score = 0.0  # the paper's rule for a rollout the model could not complete
    record = asdict(result)
    return {
        "env_id": env_id,
        "seed": int(seed),
        "return": record.pop("episode_return"),
        **record,
        "normalized_score": score,
        "random_score": float(random_score),
        "expert_score": float(expert_score),
        "max_episode_steps": cap,
        "episode_time_s": episode_time,
    }


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
) -> Policy:
    """``load_policy(model_dir, env_id, device)`` from ``workflow_scripts.<model>.policy``.

    ``policy_module`` names another module with the same ``load_policy`` function (a
    policy kept outside this package, or a hand-written one in tests).
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
    return module.load_policy(model_dir, env_id, device)


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
) -> dict[str, Any]:
    """Load ``model``'s policy for ``env_id``, run seed ``seed``, write the per-seed JSON.

    The record carries provenance: the model folder's hash, the baseline file's hash, the
    dataset attributes' hash, package versions, device and wall time. Written atomically.
    """
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
    policy = load_model_policy(model, model_dir, env_id, device, policy_module)
    load_time = time.perf_counter() - start
    record = evaluate_policy(
        policy,
        env_id,
        seed,
        random_score=float(baseline["mean_return"]),
        expert_score=dataset_info.expert_mean_return,
        max_episode_steps=max_episode_steps,
    )
    record = {
        "model": model,
        **record,
        "model_dir": str(model_dir),
        # The model itself (weights, config, card), not its training log of wall-clock times.
        "model_sha256": sha256_tree(model_dir, exclude=("training.json",)),
        "baseline": str(baseline_path),
        "baseline_sha256": sha256_file(baseline_path),
        "dataset": str(dataset_path),
        "dataset_attrs_sha256": sha256_json(dataset_info.attrs),
        "device": device,
        "load_time_s": load_time,
        "wall_time_s": time.perf_counter() - start,
        "versions": package_versions(),
    }
    write_json(output_path, record)
    return record


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
    parser.add_argument(
        "--policy-module",
        default=None,
        help="module with load_policy(model_dir, env_id, device); "
        "default workflow_scripts.<model>.policy",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    # Policies act greedily; seeding anyway makes any randomness inside one repeatable.
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
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
    )
    outcome = "failed: " + record["failure"]["reason"] if record["failure"] else "complete"
    print(
        f"{args.model} {args.env} seed {args.seed}: return {record['return']:.3f} "
        f"over {record['length']} steps ({outcome}), normalized {record['normalized_score']:.2f}%, "
        f"{record['wall_time_s']:.1f} s on {record['device']}"
    )


if __name__ == "__main__":
    main()
