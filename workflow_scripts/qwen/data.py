"""Training samples: random windows of transitions, chat-formatted and tokenized.

Sample ``i`` is a function of ``(seed, i)`` only: an env drawn uniformly (the paper's
datasets are equal in size, so this is also uniform over its 200M rows), then a window of
that env's ``n_transitions_max`` consecutive rows at a uniform start (windows may span
episodes). Training asks for sample indices in a fixed order, so a resumed run sees
exactly the samples the killed one would have, with no sampler state to save.

Labels hold the token ids of each assistant message's JSON and its ``<|im_end|>``; every
other position (system prompt, user messages, the ``<|im_start|>assistant\\n`` header and
the newline after ``<|im_end|>``) is ``IGNORE_INDEX``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from gymnasium import spaces

from workflow_scripts.dataset import read_info
from workflow_scripts.qwen.chat_format import user_message, window_messages
from workflow_scripts.qwen.tokenizer import ChatMLEncoder

IGNORE_INDEX = -100


class WindowError(ValueError):
    """A window that cannot be made to fit the sequence length."""


@dataclass
class TokenizedWindow:
    input_ids: list[int]
    labels: list[int]
    # Transitions kept (fewer than asked when the window was trimmed to fit).
    n_transitions: int


def tokenize_window(
    encoder: ChatMLEncoder,
    env_id: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    max_seq_length: int,
) -> TokenizedWindow:
    """Token ids and labels of one window of consecutive rows.

    The messages of :func:`workflow_scripts.qwen.chat_format.window_messages`, tokenized
    one by one: the same ids as the chat template applied to them (tested). A window longer
    than ``max_seq_length`` loses its oldest transitions, as evaluation's FIFO does, and
    its new first observation is shown without the previous outcome.
    """
    n_rows = len(actions)
    system, *messages = window_messages(
        env_id,
        observation_space,
        action_space,
        observations,
        actions,
        rewards,
        terminated,
        truncated,
    )
    contents = encoder.encode_batch([message["content"] for message in messages])
    user_ids = [encoder.message_ids("user", ids) for ids in contents[0::2]]
    assistant_contents = contents[1::2]
    assistant_lengths = [len(ids) + encoder.overhead("assistant") for ids in assistant_contents]
    system_ids = encoder.message_ids("system", encoder.encode(system["content"]))

    # Drop the oldest transitions while the window does not fit (rare: the budget is set
    # from a high quantile of transition lengths).
    first = 0
    tail_lengths = np.cumsum(
        [len(u) + a for u, a in zip(user_ids[::-1], assistant_lengths[::-1], strict=True)]
    )[::-1]
    while len(system_ids) + tail_lengths[first] > max_seq_length:
        first += 1
        if first == n_rows:
            raise WindowError(
                f"{env_id}: one transition and the system prompt exceed {max_seq_length} tokens"
            )
        # The new first observation is shown without the previous outcome.
        user_ids[first] = encoder.message_ids(
            "user", encoder.encode(user_message(observations[first], observation_space))
        )
        tail_lengths[first] = (
            len(user_ids[first])
            + assistant_lengths[first]
            + (tail_lengths[first + 1] if first + 1 < n_rows else 0)
        )

    input_ids = list(system_ids)
    labels = [IGNORE_INDEX] * len(system_ids)
    header = encoder.header_ids["assistant"]
    for i in range(first, n_rows):
        input_ids += user_ids[i]
        labels += [IGNORE_INDEX] * len(user_ids[i])
        supervised = [*assistant_contents[i], encoder.im_end_id]
        input_ids += [*header, *supervised, *encoder.newline_ids]
        labels += (
            [IGNORE_INDEX] * len(header) + supervised + [IGNORE_INDEX] * len(encoder.newline_ids)
        )
    return TokenizedWindow(input_ids, labels, n_rows - first)


@dataclass
class EnvSource:
    """One env's dataset file and what windows are cut from it."""

    env_id: str
    path: Path
    observation_space: spaces.Space
    action_space: spaces.Space
    n_rows: int
    n_transitions_max: int


class WindowDataset(torch.utils.data.Dataset):
    """Map-style dataset: index ``i`` → one tokenized random window, fixed by ``(seed, i)``.

    HDF5 files are opened lazily in each process (DataLoader workers fork).
    """

    def __init__(
        self,
        dataset_paths: list[str | os.PathLike],
        n_transitions_max: dict[str, int],
        encoder: ChatMLEncoder,
        max_seq_length: int,
        seed: int,
    ):
        self.encoder = encoder
        self.max_seq_length = int(max_seq_length)
        self.seed = int(seed)
        self.sources: list[EnvSource] = []
        for path in dataset_paths:
            info = read_info(path)
            if info.env_id not in n_transitions_max:
                raise WindowError(f"{path}: env {info.env_id} has no n_transitions_max budget")
            if any(source.env_id == info.env_id for source in self.sources):
                raise WindowError(f"{path}: a second dataset for {info.env_id}")
            self.sources.append(
                EnvSource(
                    env_id=info.env_id,
                    path=Path(path),
                    observation_space=info.observation_space,
                    action_space=info.action_space,
                    n_rows=info.n_transitions,
                    n_transitions_max=int(n_transitions_max[info.env_id]),
                )
            )
        if not self.sources:
            raise WindowError("no datasets given")
        self._handles: dict[Path, h5py.File] = {}
        self._handles_pid: int | None = None

    def __len__(self) -> int:
        # Samples are drawn with replacement; the sampler decides how many are used.
        return 2**62

    def _file(self, path: Path) -> h5py.File:
        if self._handles_pid != os.getpid():
            self._handles = {}
            self._handles_pid = os.getpid()
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path]

    def window_location(self, index: int) -> tuple[int, int, int]:
        """(source index, first row, number of rows) of sample ``index``."""
        rng = np.random.default_rng([self.seed, int(index)])
        source_index = int(rng.integers(len(self.sources)))
        source = self.sources[source_index]
        n_rows = min(source.n_transitions_max, source.n_rows)
        start = int(rng.integers(0, source.n_rows - n_rows + 1))
        return source_index, start, n_rows

    def window(self, source_index: int, start: int, n_rows: int) -> dict[str, Any]:
        """The tokenized window of ``n_rows`` rows from ``start`` in one env's dataset."""
        source = self.sources[source_index]
        handle = self._file(source.path)
        rows = slice(start, start + n_rows)
        window = tokenize_window(
            self.encoder,
            source.env_id,
            source.observation_space,
            source.action_space,
            handle["observations"][rows],
            handle["actions"][rows],
            handle["rewards"][rows],
            handle["terminated"][rows],
            handle["truncated"][rows],
            self.max_seq_length,
        )
        return {
            "input_ids": torch.tensor(window.input_ids, dtype=torch.long),
            "labels": torch.tensor(window.labels, dtype=torch.long),
            "env_id": source.env_id,
            "n_transitions": window.n_transitions,
            "trimmed": window.n_transitions < n_rows,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.window(*self.window_location(index))


class StepSampler(torch.utils.data.Sampler):
    """Sample indices one process consumes, step after step, from ``start_step``.

    Step ``s`` uses global indices ``s * global_batch_size + [0, global_batch_size)``;
    rank ``r`` takes its contiguous share of them, micro-batch by micro-batch.
    """

    def __init__(
        self, start_step: int, stop_step: int, global_batch_size: int, rank: int, world_size: int
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"global batch {global_batch_size} is not divisible by {world_size} processes"
            )
        self.start_step, self.stop_step = int(start_step), int(stop_step)
        self.global_batch_size = int(global_batch_size)
        self.per_rank = self.global_batch_size // world_size
        self.rank = rank

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.per_rank

    def __iter__(self):
        for step in range(self.start_step, self.stop_step):
            first = step * self.global_batch_size + self.rank * self.per_rank
            yield from range(first, first + self.per_rank)


def collate_windows(samples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a list of windows into a batch (padding is masked and unsupervised)."""
    length = max(len(sample["input_ids"]) for sample in samples)
    batch_size = len(samples)
    input_ids = torch.full((batch_size, length), pad_id, dtype=torch.long)
    labels = torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        input_ids[row, :n] = sample["input_ids"]
        labels[row, :n] = sample["labels"]
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention_mask,
        "env_ids": [sample["env_id"] for sample in samples],
        "n_trimmed": sum(int(sample["trimmed"]) for sample in samples),
        "n_transitions": sum(int(sample["n_transitions"]) for sample in samples),
    }
