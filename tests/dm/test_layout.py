"""The per-env layout: slots, discrete table rows in env order, padded widths."""

from __future__ import annotations

from gymnasium import spaces

from workflow_scripts.dm.configuration_dm import env_entry
from workflow_scripts.dm.layout import EnvLayout, SpaceSlots


def test_each_env_gets_its_slots_and_its_own_discrete_rows():
    layout = EnvLayout.from_envs(
        [
            env_entry("A-v0", spaces.Box(-1, 1, (4,)), spaces.Discrete(2)),
            env_entry("B-v0", spaces.Discrete(16), spaces.Box(-2, 3, (3,))),
            env_entry("C-v0", spaces.Discrete(5, start=2), spaces.Discrete(3, start=-1)),
        ]
    )
    assert [env.env_id for env in layout] == ["A-v0", "B-v0", "C-v0"]
    assert layout[0].observation == SpaceSlots(False, 4, 0, 0, 0, (-1.0,) * 4, (1.0,) * 4)
    assert layout[0].action == SpaceSlots(True, 0, 0, 2, 0, (), ())
    # Discrete rows follow the envs before: B's 16 observation rows, then C's from 16.
    assert layout[1].observation == SpaceSlots(True, 0, 0, 16, 0, (), ())
    assert layout[2].observation == SpaceSlots(True, 0, 16, 5, 2, (), ())
    assert layout[1].action == SpaceSlots(False, 3, 0, 0, 0, (-2.0,) * 3, (3.0,) * 3)
    assert layout[2].action == SpaceSlots(True, 0, 2, 3, -1, (), ())
    assert (layout.max_obs_dim, layout.max_act_dim) == (4, 3)
    assert (layout.n_discrete_obs, layout.n_discrete_act) == (21, 5)


def test_a_layout_without_discrete_spaces_keeps_one_table_row():
    layout = EnvLayout.from_envs(
        [env_entry("A-v0", spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (1,)))]
    )
    assert (layout.n_discrete_obs, layout.n_discrete_act) == (1, 1)
    assert (layout.max_obs_dim, layout.max_act_dim) == (2, 1)
