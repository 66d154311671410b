"""Training windows for the Decision Model, read from every env's HDF5 dataset.

A window is ``context_transitions`` consecutive rows of one env's file (it may span
episodes, as in the paper). Nothing is loaded whole: each window is one h5py slice per
array, which touches one or two HDF5 chunks.

Mixing (which env and row the g-th window of the run reads) is a pure function of the
seed and g, so the stream is deterministic, identical with or without worker processes,
and resumable from a step number alone:

* windows are grouped in blocks of ``sum(weights)`` consecutive global indices (one slot per
  env by default, ``weights[e]`` slots for env ``e`` with ``dm.env_weights``); each block
  is a seeded random permutation of the slots, so every env gets exactly its share of
  windows (every env is seen in every block, whatever the file sizes);
* the start row is uniform over the env's ``n_transitions - context_transitions + 1`` starts.

With DDP, rank r of W reads global indices ``step·W·B + r·B … + B - 1`` for its batch of B
at ``step``: ranks read disjoint windows and the union over ranks is the same stream a
single process with batch W·B would read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workflow_scripts.dataset import DatasetError, DatasetInfo
from workflow_scripts.dm.configuration_dm import DecisionModelConfig
from workflow_scripts.dm.layout import (
    FLAG_CONTINUING,
    FLAG_EPISODE_ENDED,
    FLAG_WINDOW_START,
    EnvLayout,
)


class WindowSampler:
    """Maps a global window index to ``(env position, start row)``; see the module docstring.

    ``weights`` (one positive integer per env, default all 1) is each env's number of slots
    in a block. With all weights 1 the stream is the unweighted one, window for window.
    """

    def __init__(
        self,
        n_transitions: Sequence[int],
        context_transitions: int,
        seed: int,
        weights: Sequence[int] | None = None,
    ):
        n_starts = [int(n) - context_transitions + 1 for n in n_transitions]
        weights = [1] * len(n_starts) if weights is None else [int(w) for w in weights]
        if len(weights) != len(n_starts) or min(weights) < 1:
            raise ValueError(f"one positive integer weight per env expected, got {weights}")
        # The env of each slot of a block, and the number of start rows of its env.
        self.slot_envs = np.repeat(np.arange(len(n_starts)), weights)
        self.slot_starts = np.asarray(n_starts)[self.slot_envs]
        self.block_size = len(self.slot_envs)
        self.seed = int(seed)

    def __call__(self, global_index: int) -> tuple[int, int]:
        block, slot = divmod(int(global_index), self.block_size)
        # Counter-based: a generator seeded by (seed, block) needs no state to resume.
        rng = np.random.default_rng((self.seed, block))
        order = rng.permutation(self.block_size)
        starts = rng.integers(0, self.slot_starts, size=self.block_size)
        chosen = int(order[slot])
        return int(self.slot_envs[chosen]), int(starts[chosen])


class WindowBatches(Dataset):
    """Item ``step`` is this rank's batch of windows for that optimizer step (a dict of tensors).

    Files are opened lazily in each process that reads them (h5py handles must not cross a
    fork), so the dataset works in DataLoader workers.
    """

    def __init__(
        self,
        infos: Sequence[DatasetInfo],
        model_config: DecisionModelConfig,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        env_weights: Mapping[str, int] | None = None,
    ):
        self.paths = [Path(info.path) for info in infos]
        self.env_ids = [info.env_id for info in infos]
        # Windows carry the model's env index (its row in the env table), not the file order.
        self.model_env_index = [model_config.env_index(env_id) for env_id in self.env_ids]
        self.layout = EnvLayout.from_config(model_config)
        self.context_transitions = model_config.context_transitions
        too_short = [
            f"{info.path} ({info.n_transitions})"
            for info in infos
            if info.n_transitions < self.context_transitions
        ]
        if too_short:
            raise DatasetError(
                too_short[0],
                f"has fewer transitions than one training window ({self.context_transitions}); "
                "lower dm.sequence_length or collect more",
            )
        env_weights = dict(env_weights or {})
        unknown = sorted(set(env_weights) - set(self.env_ids))
        if unknown:
            raise ValueError(
                f"env_weights names {', '.join(unknown)}, which no dataset holds "
                f"(datasets: {', '.join(self.env_ids)})"
            )
        self.sampler = WindowSampler(
            [info.n_transitions for info in infos],
            self.context_transitions,
            seed,
            [env_weights.get(env_id, 1) for env_id in self.env_ids],
        )
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self._handles: dict[int, h5py.File] = {}
        self._handles_pid: int | None = None

    def window_indices(self, step: int) -> list[tuple[int, int]]:
        """(file position, start row) of each window in this rank's batch at ``step``."""
        first = (step * self.world_size + self.rank) * self.batch_size
        return [self.sampler(first + offset) for offset in range(self.batch_size)]

    def _file(self, position: int) -> h5py.File:
        if self._handles_pid != os.getpid():
            self._handles = {}  # inherited through fork: reopen in this process
            self._handles_pid = os.getpid()
        if position not in self._handles:
            self._handles[position] = h5py.File(self.paths[position], "r")
        return self._handles[position]

    def __len__(self) -> int:
        # Steps are unbounded; the training loop decides how many it takes.
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        layout, steps = self.layout, self.context_transitions
        batch = self.batch_size
        env_index = np.zeros(batch, dtype=np.int64)
        observations = np.zeros((batch, steps, layout.max_obs_dim), dtype=np.float32)
        discrete_observations = np.zeros((batch, steps), dtype=np.int64)
        actions = np.zeros((batch, steps, layout.max_act_dim), dtype=np.float32)
        discrete_actions = np.zeros((batch, steps), dtype=np.int64)
        prev_rewards = np.zeros((batch, steps), dtype=np.float32)
        prev_flags = np.full((batch, steps), FLAG_WINDOW_START, dtype=np.int64)
        for row, (position, start) in enumerate(self.window_indices(step)):
            handle = self._file(position)
            env = self.model_env_index[position]
            env_index[row] = env
            window = slice(start, start + steps)
            obs = handle["observations"][window]
            act = handle["actions"][window]
            rewards = handle["rewards"][window]
            done = handle["terminated"][window] | handle["truncated"][window]
            for name, values in (("observations", obs), ("actions", act), ("rewards", rewards)):
                if values.dtype.kind == "f" and not np.isfinite(values).all():
                    bad_row = start + int(np.argwhere(~np.isfinite(values))[0][0])
                    raise DatasetError(
                        self.paths[position],
                        f"{name} has a non-finite value (NaN/inf) at row {bad_row} "
                        f"(env {self.env_ids[position]})",
                    )
            obs_slots, act_slots = layout[env].observation, layout[env].action
            if obs_slots.discrete:
                discrete_observations[row] = obs - obs_slots.start
            else:
                observations[row, :, : obs_slots.dims] = obs.reshape(steps, -1)
            if act_slots.discrete:
                discrete_actions[row] = act - act_slots.start
            else:
                actions[row, :, : act_slots.dims] = act.reshape(steps, -1)
            # Observation t carries the reward and done flag of step t-1; the first has none.
            prev_rewards[row, 1:] = rewards[:-1]
            prev_flags[row, 1:] = np.where(done[:-1], FLAG_EPISODE_ENDED, FLAG_CONTINUING)
        arrays = {
            "env_index": env_index,
            "observations": observations,
            "discrete_observations": discrete_observations,
            "prev_rewards": prev_rewards,
            "prev_flags": prev_flags,
            "actions": actions,
            "discrete_actions": discrete_actions,
        }
        return {name: torch.from_numpy(values) for name, values in arrays.items()}


def make_loader(
    batches: WindowBatches,
    start_step: int,
    end_step: int,
    num_workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches for steps ``start_step … end_step - 1``, in order, prefetched by workers."""
    return DataLoader(
        batches,
        batch_size=None,  # every item is already a batch
        sampler=range(start_step, end_step),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )
