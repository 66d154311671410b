"""The Decision Model's inputs: the keys of a batch, the flag on an observation token, and
where each env's values go in the padded inputs and the shared tables.

The data loader (:mod:`.data`) and the policy (:mod:`.policy`) build inputs this way and
the model (:mod:`.modeling_dm`) reads them this way. An env's layout is a function of its
spaces and of the envs before it in the config's env list (their discrete rows come
first), so it is derived from the config, never saved. No torch here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from workflow_scripts.spaces import flat_dim, space_from_dict

if TYPE_CHECKING:
    from workflow_scripts.dm.configuration_dm import DecisionModelConfig

# The done flag carried by an observation token, about the step before it.
FLAG_WINDOW_START = 0  # first observation of a window/context: no previous reward or done
FLAG_CONTINUING = 1  # the previous step did not end an episode
FLAG_EPISODE_ENDED = 2  # the previous step terminated or truncated: this is a reset observation
N_FLAGS = 3

# Keys of a batch of windows, as the data loader and the policy build them (see
# DecisionModel.forward).
BATCH_KEYS = (
    "env_index",
    "observations",
    "discrete_observations",
    "prev_rewards",
    "prev_flags",
    "actions",
    "discrete_actions",
)


@dataclass(frozen=True)
class SpaceSlots:
    """Where one env's observations (or actions) go.

    A Box fills the first ``dims`` slots of the padded continuous input; a Discrete value
    ``v`` is row ``offset + v - start`` of the shared discrete table, whose rows
    ``offset .. offset + n - 1`` belong to this env.
    """

    discrete: bool
    dims: int  # continuous dimensions (0 for Discrete)
    offset: int  # first row in the shared discrete table (0 if continuous: valid, masked out)
    n: int  # Discrete values (0 if continuous)
    start: int  # Discrete ``start``, subtracted before the lookup
    low: tuple[float, ...]  # Box bounds, flattened (empty for Discrete)
    high: tuple[float, ...]

    @classmethod
    def of(cls, space: spaces.Space, offset: int) -> SpaceSlots:
        """The slots of ``space``; ``offset`` is the next free row of the discrete table."""
        if isinstance(space, spaces.Discrete):
            return cls(True, 0, offset, int(space.n), int(space.start), (), ())
        low = np.asarray(space.low, dtype=np.float64).ravel()
        high = np.asarray(space.high, dtype=np.float64).ravel()
        return cls(False, flat_dim(space), 0, 0, 0, tuple(low.tolist()), tuple(high.tolist()))


@dataclass(frozen=True)
class EnvSlots:
    """One env's observation and action slots."""

    env_id: str
    observation: SpaceSlots
    action: SpaceSlots


@dataclass(frozen=True)
class EnvLayout:
    """Every env's slots, in the config's env order (an env's index is its row)."""

    envs: tuple[EnvSlots, ...]

    @classmethod
    def from_envs(cls, envs: Sequence[dict[str, Any]]) -> EnvLayout:
        """From ``DecisionModelConfig.envs`` items (env id and space dicts)."""
        slots = []
        obs_rows = act_rows = 0
        for env in envs:
            observation = SpaceSlots.of(space_from_dict(env["observation_space"]), obs_rows)
            action = SpaceSlots.of(space_from_dict(env["action_space"]), act_rows)
            obs_rows += observation.n
            act_rows += action.n
            slots.append(EnvSlots(env["env_id"], observation, action))
        return cls(tuple(slots))

    @classmethod
    def from_config(cls, config: DecisionModelConfig) -> EnvLayout:
        return cls.from_envs(config.envs)

    def __len__(self) -> int:
        return len(self.envs)

    def __getitem__(self, env_index: int) -> EnvSlots:
        return self.envs[env_index]

    def __iter__(self) -> Iterator[EnvSlots]:
        return iter(self.envs)

    @property
    def max_obs_dim(self) -> int:
        """Width of the padded continuous observation input (at least 1)."""
        return max([1, *(env.observation.dims for env in self.envs)])

    @property
    def max_act_dim(self) -> int:
        """Width of the padded continuous action input (at least 1)."""
        return max([1, *(env.action.dims for env in self.envs)])

    @property
    def n_discrete_obs(self) -> int:
        """Rows of the discrete observation table (one even when no env needs it)."""
        return max(1, sum(env.observation.n for env in self.envs))

    @property
    def n_discrete_act(self) -> int:
        """Rows of the discrete action table and outputs of the discrete head (at least 1)."""
        return max(1, sum(env.action.n for env in self.envs))
