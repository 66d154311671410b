"""The expert quality gate: published references, verdicts, warn and error on a weak expert."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workflow_scripts.aggregate import expert_notes
from workflow_scripts.expert_quality import (
    ZooFigure,
    assess_expert,
    expert_quality,
    reward_threshold,
    rl_zoo3_benchmark,
)
from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams
from workflow_scripts.provenance import write_json


def test_published_references_are_read():
    figures = rl_zoo3_benchmark()
    assert figures[("Pendulum-v1", "td3")].mean_reward == pytest.approx(-151.855)
    assert figures[("Acrobot-v1", "dqn")].n_timesteps == "100k"
    assert ("Taxi-v3", "dqn") not in figures  # rl-zoo3 publishes none
    assert reward_threshold("Taxi-v3") == 8.0
    assert reward_threshold("Pendulum-v1") is None


def test_taxi_expert_that_never_delivers_is_below_the_threshold():
    # Return -200: the episode times out without a delivery, yet beats random (~-770).
    verdict = assess_expert("Taxi-v3", "dqn", -200.0, -770.0, threshold=8.0)
    assert verdict["status"] == "below"
    assert "reward_threshold 8" in verdict["messages"][0]
    assert assess_expert("Taxi-v3", "dqn", 7.9, -770.0, threshold=8.0)["status"] == "below"
    assert assess_expert("Taxi-v3", "dqn", 8.0, -770.0, threshold=8.0)["status"] == "pass"


def test_rl_zoo3_figure_is_passed_within_the_tolerance_on_the_random_scale():
    zoo = ZooFigure("dqn", "Acrobot-v1", -76.639, 11.752, "100k", 1932)
    # Barely above random (-499): 4.6% of the way to rl-zoo3's figure.
    weak = assess_expert("Acrobot-v1", "dqn", -480.0, -499.0, zoo=zoo)
    assert weak["status"] == "below"
    assert weak["checks"][0]["normalized"] == pytest.approx(4.5, abs=0.1)
    # 90% of the way (-499 + 0.9 * 422.4 = -118.8) passes; just under does not.
    assert assess_expert("Acrobot-v1", "dqn", -118.0, -499.0, zoo=zoo)["status"] == "pass"
    assert assess_expert("Acrobot-v1", "dqn", -125.0, -499.0, zoo=zoo)["status"] == "below"
    # A looser tolerance passes it.
    assert assess_expert("Acrobot-v1", "dqn", -125.0, -499.0, 0.2, zoo=zoo)["status"] == "pass"


def test_env_without_references_still_needs_to_beat_random():
    verdict = expert_quality("CliffWalking-v0", "dqn", -13.0, -9000.0)
    assert verdict["status"] == "pass" and verdict["references"] == ["none published"]
    assert expert_quality("CliffWalking-v0", "dqn", -9500.0, -9000.0)["status"] == "below"


def test_notes_under_the_table_name_every_weak_expert():
    verdicts = {
        "Taxi-v3": assess_expert("Taxi-v3", "dqn", -200.0, -770.0, threshold=8.0),
        "CartPole-v1": assess_expert("CartPole-v1", "ppo", 500.0, 22.0, threshold=475.0),
    }
    lines = expert_notes(verdicts)
    assert "1 of 2 experts" in lines[1]
    assert any("Taxi-v3" in line for line in lines) and not any(
        "CartPole" in line for line in lines
    )
    assert expert_notes({"CartPole-v1": verdicts["CartPole-v1"]}) == []


@pytest.fixture
def undertrained_cartpole(tmp_path):
    """A PPO CartPole-v1 expert trained for 128 steps (far below the 475 threshold)."""
    document = resolve_hyperparams(
        "CartPole-v1", "ppo", 128, overrides={"n_steps": 64, "batch_size": 32, "n_epochs": 1}
    )
    hyperparams = tmp_path / "CartPole-v1.yml"
    write_hyperparams(document, hyperparams)
    baseline = tmp_path / "baseline.json"
    write_json(baseline, {"env_id": "CartPole-v1", "mean_return": 22.0})
    return hyperparams, baseline


def _train(tmp_path, hyperparams, baseline, quality):
    command = [
        sys.executable, "-m", "workflow_scripts.train_expert", "--hyperparams", str(hyperparams),
        "--output-dir", str(tmp_path / "expert"), "--checkpoint-every", "1000",
        "--eval-episodes", "3", "--baseline", str(baseline), "--quality", quality,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True)


def test_weak_expert_warns_loudly_and_records_the_verdict(tmp_path, undertrained_cartpole):
    run = _train(tmp_path, *undertrained_cartpole, "warn")
    assert run.returncode == 0, run.stderr
    assert "EXPERT BELOW REFERENCE" in run.stdout
    assert "below Gymnasium's reward_threshold 475" in run.stdout
    summary = json.loads((tmp_path / "expert" / "expert.json").read_text())
    assert summary["quality"]["status"] == "below" and summary["quality"]["mode"] == "warn"
    assert summary["quality"]["random_return"] == 22.0


def test_weak_expert_stops_when_asked_and_keeps_the_model(tmp_path, undertrained_cartpole):
    run = _train(tmp_path, *undertrained_cartpole, "error")
    assert run.returncode != 0
    assert "error: CartPole-v1: the expert's deterministic return" in run.stderr
    assert "expert_training.quality is 'error'" in run.stderr
    state = json.loads((tmp_path / "expert" / "checkpoints" / "state.json").read_text())
    assert state["num_timesteps"] == 128  # the trained model is kept
    # A rerun with the gate on warn publishes it without training again.
    rerun = _train(tmp_path, *undertrained_cartpole, "warn")
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from checkpoint at 128 timesteps" in rerun.stdout
    assert json.loads((tmp_path / "expert" / "expert.json").read_text())["n_timesteps"] == 128


def test_config_reference_catches_a_cliffwalking_expert_that_never_arrives():
    # Circling without falling returns -200 (the cap), far above random (~-2000).
    verdict = expert_quality("CliffWalking-v0", "dqn", -200.0, -2066.8, reference=-17.0)
    assert verdict["status"] == "below"
    assert "the config's reference_return -17" in verdict["messages"][0]
    assert (
        expert_quality("CliffWalking-v0", "dqn", -13.0, -2066.8, reference=-17.0)["status"]
        == "pass"
    )


def test_benchmark_is_read_once_and_cannot_be_changed_by_a_caller():
    figures = rl_zoo3_benchmark()
    assert rl_zoo3_benchmark() is figures
    with pytest.raises(TypeError):
        figures[("Taxi-v3", "dqn")] = figures[("Pendulum-v1", "td3")]
