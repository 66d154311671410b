"""Is a trained expert good enough for its normalized scores to mean something?

A normalized score, 100·(score − random)/(expert − random), measures imitation only when
the expert is far better than random. An under-trained expert makes it meaningless: a
Taxi-v3 DQN expert that never delivers a passenger (return −200) still beats the random
policy's illegal-action penalties, and every model then "scores" about 100%.

The gate compares the expert's deterministic return with two published references:

* Gymnasium's ``spec.reward_threshold`` for the env (the return at which the env counts
  as solved), where the env registers one;
* rl-baselines3-zoo's benchmark figure for the same env and algorithm
  (``data/rl_zoo3_benchmark.csv``), where rl-zoo3 publishes one: the expert passes when
  it reaches ``1 − tolerance`` of that figure on the random → figure scale;
* the config's ``experts.<env>.reference_return``, for envs where neither publishes one
  (a CliffWalking-v0 expert that circles without falling returns −200, far above the
  random policy's ≈ −2000, yet never reaches the goal: −13 at best).

Below either, the verdict is ``below`` with one message per failed reference; the stage
warns (``expert_training.quality: warn``) or stops (``error``). Imports no torch.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

BENCHMARK_FILE = "rl_zoo3_benchmark.csv"
QUALITY_MODES = ("warn", "error")


class ExpertBelowReference(RuntimeError):
    """The expert's return is below a published reference and the config asks to stop."""


@dataclass(frozen=True)
class ZooFigure:
    """One row of rl-zoo3's benchmark table."""

    algo: str
    env_id: str
    mean_reward: float
    std_reward: float
    n_timesteps: str
    eval_episodes: int


@functools.cache
def rl_zoo3_benchmark() -> Mapping[tuple[str, str], ZooFigure]:
    """rl-zoo3's published benchmark figures, keyed by (env id, algorithm).

    Read once per process; read-only (a mapping proxy of frozen figures), as every caller
    shares the one cached object.
    """
    text = (resources.files("workflow_scripts") / "data" / BENCHMARK_FILE).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    figures = {}
    for row in rows:
        figure = ZooFigure(
            algo=row["algo"],
            env_id=row["env_id"],
            mean_reward=float(row["mean_reward"]),
            std_reward=float(row["std_reward"]),
            n_timesteps=row["n_timesteps"],
            eval_episodes=int(row["eval_episodes"]),
        )
        figures[(figure.env_id, figure.algo)] = figure
    return MappingProxyType(figures)


def percent_of_zoo_figure(
    expert_return: float, random_return: float, zoo: ZooFigure
) -> float | None:
    """The expert's return in % of rl-zoo3's figure on the random (0%) → figure (100%)
    scale; None when the figure is not above the random policy's return."""
    span = zoo.mean_reward - random_return
    return 100 * (expert_return - random_return) / span if span > 0 else None


def reward_threshold(env_id: str) -> float | None:
    """Gymnasium's ``spec.reward_threshold`` of the env, or None when it registers none."""
    import gymnasium as gym

    threshold = gym.spec(env_id).reward_threshold
    return None if threshold is None else float(threshold)


def assess_expert(
    env_id: str,
    algo: str,
    expert_return: float,
    random_return: float,
    tolerance: float = 0.1,
    threshold: float | None = None,
    zoo: ZooFigure | None = None,
    reference: float | None = None,
) -> dict[str, Any]:
    """The verdict on one expert: each reference, whether it passed, and why not.

    ``expert_return`` is the deterministic mean return, the quantity rl-zoo3's table and
    ``reward_threshold`` are about; ``random_return`` is the random policy's mean.
    """
    checks = []
    for name, value in (
        ("Gymnasium's reward_threshold", threshold),
        ("the config's reference_return", reference),
    ):
        if value is None:
            continue
        passed = expert_return >= value
        checks.append(
            {
                "reference": name,
                "value": value,
                "passed": passed,
                "message": None
                if passed
                else f"{env_id}: the expert's deterministic return {expert_return:.2f} is below "
                f"{name} {value:g}",
            }
        )
    if zoo is not None:
        percent = percent_of_zoo_figure(expert_return, random_return, zoo)
        passed = percent is not None and percent >= 100 * (1.0 - tolerance)
        checks.append(
            {
                "reference": f"rl-zoo3 benchmark {zoo.algo} {zoo.n_timesteps}",
                "value": zoo.mean_reward,
                "std": zoo.std_reward,
                "normalized": None if percent is None else round(percent, 2),
                "passed": passed,
                "message": None
                if passed
                else f"{env_id}: the expert's deterministic return {expert_return:.2f} is "
                f"{'n/a' if percent is None else f'{percent:.1f}%'} of rl-zoo3's "
                f"{zoo.algo.upper()} figure {zoo.mean_reward:g} (random {random_return:.2f} = 0%), "
                f"below the {100 * (1 - tolerance):g}% the gate asks",
            }
        )
    margin = expert_return - random_return
    if margin <= 0:
        checks.append(
            {
                "reference": "random policy",
                "value": random_return,
                "passed": False,
                "message": f"{env_id}: the expert's deterministic return {expert_return:.2f} is "
                f"not above the random policy's {random_return:.2f}",
            }
        )
    messages = [check["message"] for check in checks if not check["passed"]]
    return {
        "status": "below" if messages else "pass",
        "deterministic_return": expert_return,
        "random_return": random_return,
        "tolerance": tolerance,
        "checks": checks,
        "messages": messages,
        "references": [check["reference"] for check in checks] or ["none published"],
    }


def expert_quality(
    env_id: str,
    algo: str,
    expert_return: float,
    random_return: float,
    tolerance: float = 0.1,
    reference: float | None = None,
) -> dict[str, Any]:
    """:func:`assess_expert` against the references published for (env, algo), and the
    config's own ``reference`` return where given."""
    return assess_expert(
        env_id,
        algo,
        expert_return,
        random_return,
        tolerance,
        threshold=reward_threshold(env_id),
        zoo=rl_zoo3_benchmark().get((env_id, algo)),
        reference=reference,
    )
