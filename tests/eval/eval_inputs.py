"""Small inputs for the evaluation tests: baselines, expert summaries, per-seed records,
policies that fail (datasets and the CartPole controller are in :mod:`tests.support`).

A module of its own (not conftest.py) so that tests import it by a name no other test
folder uses.
"""

from __future__ import annotations

import json
from pathlib import Path

from workflow_scripts.policy import PolicyFailure


def write_baseline(path: Path, env_id: str, mean_return: float, max_episode_steps: int | None):
    """A baseline JSON with the keys the baseline stage writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "env_id": env_id,
                "mean_return": mean_return,
                "std_return": 1.0,
                "stderr_return": 0.1,
                "n_episodes": 100,
                "seed": 100000,
                "max_episode_steps": max_episode_steps,
                "returns": [mean_return] * 3,
                "versions": {},
            }
        )
    )
    return path


def write_expert_summary(
    path: Path, env_id: str, deterministic_return: float, status: str = "pass"
):
    """An ``expert.json`` with the keys the aggregate, compare and reference_scores stages read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = [] if status == "pass" else [f"{env_id}: the expert's return is below a reference"]
    summary = {
        "env_id": env_id,
        "algo": "ppo",
        "n_timesteps": 1000,
        "deterministic_check": {
            "mean_return": deterministic_return,
            "std_return": 0.0,
            "n_episodes": 20,
            "seed": 10000,
        },
        "quality": {"status": status, "messages": messages},
    }
    path.write_text(json.dumps(summary))


def write_seed_record(
    eval_dir: Path,
    model: str,
    env_id: str,
    seed: int,
    score: float,
    failure: str | None = None,
):
    """A per-seed evaluation record with the keys aggregation reads."""
    path = eval_dir / model / env_id / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": model,
        "env_id": env_id,
        "seed": seed,
        "return": score,
        "normalized_score": score,
        "failure": None if failure is None else {"reason": failure, "raw_output": "x", "step": 3},
    }
    path.write_text(json.dumps(record))
    return path


def write_scores(eval_dir: Path, scores: dict[tuple[str, str], list[float]]):
    """Per-seed records for ``{(model, env): [score per seed 0, 1, ...]}``."""
    for (model, env_id), values in scores.items():
        for seed, score in enumerate(values):
            write_seed_record(eval_dir, model, env_id, seed, score)


class FailingPolicy:
    """Acts validly for ``fail_at`` steps, then raises PolicyFailure (invalid model output)."""

    def __init__(self, fail_at: int, action=0):
        self.fail_at = fail_at
        self.action = action
        self.step = 0

    def reset(self):
        self.step = 0

    def act(self, observation, prev_reward, prev_term):
        if self.step == self.fail_at:
            raise PolicyFailure("answer is not valid JSON", raw_output='{"action": 0')
        self.step += 1
        return self.action


class ConstantPolicy:
    """Returns the same (possibly invalid) action every step."""

    def __init__(self, action):
        self.action = action

    def reset(self):
        pass

    def act(self, observation, prev_reward, prev_term):
        return self.action
