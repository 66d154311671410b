"""``enjoy``: a trained expert plays a few episodes and prints its returns."""

import json
import re

import pytest

from workflow_scripts.enjoy import enjoy, main


def test_deterministic_returns_are_those_of_the_experts_own_check(tiny_expert, capsys):
    check = json.loads(tiny_expert.summary.read_text())["deterministic_check"]
    experts_dir = str(tiny_expert.folder.parent)
    argv = ["--env", "CartPole-v1", "--experts-dir", experts_dir]
    main(argv + ["--episodes", str(check["n_episodes"]), "--seed", str(check["seed"])])
    printed = capsys.readouterr().out
    returns = [float(value) for value in re.findall(r"return (-?[\d.]+),", printed)]
    assert len(returns) == check["n_episodes"]
    mean = re.search(r"mean return over \d+ episodes: (-?[\d.]+) ± (-?[\d.]+)", printed)
    assert float(mean.group(1)) == pytest.approx(check["mean_return"], abs=0.005)
    assert float(mean.group(2)) == pytest.approx(check["std_return"], abs=0.005)


def test_sampled_episodes_are_seeded(tiny_expert):
    experts_dir = tiny_expert.folder.parent
    first = enjoy("CartPole-v1", experts_dir, n_episodes=2, seed=4, deterministic=False)
    second = enjoy("CartPole-v1", experts_dir, n_episodes=2, seed=4, deterministic=False)
    assert first == second and len(first) == 2


def test_missing_expert_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--env", "CartPole-v1", "--experts-dir", str(tmp_path)])
    assert "no trained expert for CartPole-v1" in capsys.readouterr().err
