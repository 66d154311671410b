"""Per-env context budgets: how many transitions fit the model's sequence length.

A transition is one user message (observation, previous reward/term/trunc) and one
assistant message (action), each with its ChatML wrapping. Its token count varies with
the printed numbers, so it is measured with the real tokenizer on rows of the env's data
and a high quantile is used:

    n_transitions_max = floor((max_seq_length - system_prompt_tokens) / quantile_tokens)

so that a window of ``n_transitions_max`` transitions nearly always fits (the few that do
not are trimmed from their oldest end at training time, see :mod:`workflow_scripts.qwen.data`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from gymnasium import spaces

from workflow_scripts.dataset import read_info
from workflow_scripts.envs import make_env
from workflow_scripts.qwen.chat_format import assistant_message, system_prompt, user_message
from workflow_scripts.qwen.tokenizer import ChatMLEncoder
from workflow_scripts.spaces import space_to_dict

# Rows per contiguous block read from a dataset when sampling (fast with HDF5 chunks).
SAMPLE_BLOCK_ROWS = 1000


class BudgetError(ValueError):
    """An env whose transitions cannot fit the sequence length, or a bad budgets file."""


@dataclass
class TransitionRows:
    """Consecutive transitions, in the dataset's array layout."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)


def read_sample_blocks(
    path: str | os.PathLike, n_rows: int, seed: int
) -> tuple[Any, list[TransitionRows]]:
    """Read about ``n_rows`` rows of a dataset as random contiguous blocks (all if fewer)."""
    info = read_info(path)
    rng = np.random.default_rng(seed)
    if n_rows >= info.n_transitions:
        ranges = [(0, info.n_transitions)]
    else:
        block = min(SAMPLE_BLOCK_ROWS, n_rows)
        n_blocks = math.ceil(n_rows / block)
        starts = np.sort(rng.integers(0, info.n_transitions - block + 1, size=n_blocks))
        ranges = [(int(start), int(start) + block) for start in starts]
    blocks = []
    with h5py.File(info.path, "r") as handle:
        for start, stop in ranges:
            blocks.append(
                TransitionRows(
                    *(
                        handle[name][start:stop]
                        for name in (
                            "observations",
                            "actions",
                            "rewards",
                            "terminated",
                            "truncated",
                        )
                    )
                )
            )
    return info, blocks


def random_policy_rows(
    env_id: str, n_rows: int, seed: int, max_episode_steps: int | None = None
) -> tuple[spaces.Space, spaces.Space, TransitionRows]:
    """``n_rows`` transitions of a uniform random policy, autoresetting, stored as datasets do.

    Used where no expert dataset exists yet: observations of a random policy can differ
    in magnitude from an expert's, so budgets from them are an estimate.
    """
    env = make_env(env_id, max_episode_steps=max_episode_steps)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    discrete_obs = isinstance(env.observation_space, spaces.Discrete)
    discrete_act = isinstance(env.action_space, spaces.Discrete)
    observations, actions = [], []
    rewards = np.zeros(n_rows, dtype=np.float32)
    terminated = np.zeros(n_rows, dtype=bool)
    truncated = np.zeros(n_rows, dtype=bool)
    for row in range(n_rows):
        action = env.action_space.sample()
        observations.append(observation)
        actions.append(action)
        observation, reward, terminated[row], truncated[row], _ = env.step(action)
        rewards[row] = reward
        if terminated[row] or truncated[row]:
            observation, _ = env.reset()
    rows = TransitionRows(
        observations=np.asarray(observations, dtype=np.int64 if discrete_obs else np.float32),
        actions=np.asarray(actions, dtype=np.int64 if discrete_act else np.float32),
        rewards=rewards,
        terminated=terminated,
        truncated=truncated,
    )
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    return observation_space, action_space, rows


def transition_token_counts(
    encoder: ChatMLEncoder,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    rows: TransitionRows,
) -> np.ndarray:
    """Tokens of each transition (user message with reward/term/trunc + assistant message).

    Row i is counted with the outcome of row i-1 in its user message, as in training
    windows, so the first row of ``rows`` is not counted.
    """
    texts = []
    for i in range(1, len(rows)):
        texts.append(
            user_message(
                rows.observations[i],
                observation_space,
                float(rows.rewards[i - 1]),
                bool(rows.terminated[i - 1]),
                bool(rows.truncated[i - 1]),
            )
        )
        texts.append(assistant_message(rows.actions[i], action_space))
    lengths = np.array([len(ids) for ids in encoder.encode_batch(texts)], dtype=np.int64)
    overhead = encoder.overhead("user") + encoder.overhead("assistant")
    return lengths[0::2] + lengths[1::2] + overhead


def system_prompt_tokens(encoder: ChatMLEncoder, env_id: str, action_space: spaces.Space) -> int:
    """Tokens of the system message, ChatML wrapping included."""
    return len(encoder.encode(system_prompt(env_id, action_space))) + encoder.overhead("system")


def env_budget(
    encoder: ChatMLEncoder,
    env_id: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    blocks: list[TransitionRows],
    max_seq_length: int,
    quantile: float,
) -> dict[str, Any]:
    """One env's budget and the token statistics behind it."""
    counts = np.concatenate(
        [transition_token_counts(encoder, observation_space, action_space, b) for b in blocks]
    )
    if len(counts) == 0:
        raise BudgetError(f"{env_id}: no transitions to measure (need at least 2 rows)")
    system_tokens = system_prompt_tokens(encoder, env_id, action_space)
    # 'higher' picks a count that was actually observed, an integer.
    quantile_tokens = int(np.quantile(counts, quantile, method="higher"))
    n_transitions_max = (max_seq_length - system_tokens) // quantile_tokens
    if n_transitions_max < 1:
        raise BudgetError(
            f"{env_id}: one transition ({quantile_tokens} tokens at quantile {quantile}) and the "
            f"system prompt ({system_tokens} tokens) do not fit max_seq_length {max_seq_length}"
        )
    return {
        "n_transitions_max": int(n_transitions_max),
        "system_prompt_tokens": int(system_tokens),
        "tokens_per_transition": {
            "mean": round(float(counts.mean()), 2),
            "median": float(np.median(counts)),
            "quantile": quantile_tokens,
            "max": int(counts.max()),
        },
        "n_transitions_measured": int(len(counts)),
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
    }


def budgets_from_datasets(
    encoder: ChatMLEncoder,
    dataset_paths: list[str | os.PathLike],
    max_seq_length: int,
    quantile: float,
    sample_rows: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Budget of every dataset's env, measured on ``sample_rows`` of its rows."""
    budgets: dict[str, dict[str, Any]] = {}
    for index, path in enumerate(dataset_paths):
        info, blocks = read_sample_blocks(path, sample_rows, seed + index)
        if info.env_id in budgets:
            raise BudgetError(f"{path}: a second dataset for {info.env_id}")
        budget = env_budget(
            encoder,
            info.env_id,
            info.observation_space,
            info.action_space,
            blocks,
            max_seq_length,
            quantile,
        )
        budget["source"] = "dataset"
        budget["source_path"] = str(path)
        budgets[info.env_id] = budget
    return budgets


def budgets_from_random_policy(
    encoder: ChatMLEncoder,
    env_ids: list[str],
    max_seq_length: int,
    quantile: float,
    n_rows: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Budget of each env measured on ``n_rows`` random-policy transitions (an estimate)."""
    budgets: dict[str, dict[str, Any]] = {}
    for env_id in env_ids:
        observation_space, action_space, rows = random_policy_rows(env_id, n_rows, seed)
        budget = env_budget(
            encoder, env_id, observation_space, action_space, [rows], max_seq_length, quantile
        )
        budget["source"] = "random_policy"
        budget["source_path"] = None
        budgets[env_id] = budget
    return budgets


def read_budgets(path: str | os.PathLike) -> dict[str, Any]:
    """Load a budgets file written by ``python -m workflow_scripts.qwen_budgets``."""
    path = Path(path)
    if not path.is_file():
        raise BudgetError(f"{path}: budgets file does not exist")
    budgets = json.loads(path.read_text())
    for key in ("max_seq_length", "quantile", "tokenizer_sha256", "envs"):
        if key not in budgets:
            raise BudgetError(f"{path}: missing key {key!r}")
    return budgets


def budgets_markdown(budgets: dict[str, Any]) -> str:
    """The budgets as a Markdown table, one row per env, sorted by env id."""
    lines = [
        "| env | source | obs | action | system prompt tokens | tokens / transition (mean) "
        f"| tokens / transition (q{budgets['quantile']:g}) | n_transitions_max |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for env_id in sorted(budgets["envs"]):
        budget = budgets["envs"][env_id]
        if budget["source"] == "dataset":
            source = f"expert dataset (`{budget['source_path']}`)"
        else:
            source = "random policy (estimate)"
        lines.append(
            f"| {env_id} | {source} | {_space_label(budget['observation_space'])} "
            f"| {_space_label(budget['action_space'])} | {budget['system_prompt_tokens']} "
            f"| {budget['tokens_per_transition']['mean']:.1f} "
            f"| {budget['tokens_per_transition']['quantile']} | {budget['n_transitions_max']} |"
        )
    return "\n".join(lines) + "\n"


def _space_label(description: dict[str, Any]) -> str:
    if description["type"] == "Discrete":
        return f"Discrete({description['n']})"
    return f"Box({', '.join(str(d) for d in description['shape'])})"
