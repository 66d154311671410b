"""Expert training: outputs load with plain SB3, curves are drawn, a killed run resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from stable_baselines3 import PPO

from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams
from workflow_scripts.train_expert import load_expert, read_monitor, train_expert


@pytest.fixture
def tiny_ppo_hyperparams(tmp_path):
    document = resolve_hyperparams(
        "CartPole-v1", "ppo", 3072, overrides={"n_steps": 256, "batch_size": 64, "n_epochs": 2}
    )
    path = tmp_path / "CartPole-v1.yml"
    write_hyperparams(document, path)
    return path


def test_outputs_load_with_plain_sb3(tmp_path, tiny_ppo_hyperparams):
    output_dir = tmp_path / "expert"
    summary = train_expert(
        tiny_ppo_hyperparams, output_dir, seed=0, checkpoint_every=1024, eval_episodes=2
    )
    model = PPO.load(output_dir / "CartPole-v1.zip")
    assert model.num_timesteps == 3072
    for name in ("expert.json", "monitor.csv", "curve.png", "config.yml"):
        assert (output_dir / name).exists(), name
    assert (output_dir / "tensorboard").is_dir()
    episodes = read_monitor(output_dir / "monitor.csv")
    assert len(episodes) == summary["training_episodes"] > 0
    assert episodes["timesteps"].is_monotonic_increasing
    _, vecnormalize, stored = load_expert(output_dir, "CartPole-v1")
    assert vecnormalize is None and stored["model_sha256"] == summary["model_sha256"]


def test_normalized_expert_saves_and_reloads_its_statistics(tmp_path):
    document = resolve_hyperparams("MountainCarContinuous-v0", "ppo", 64, source="rl-zoo3")
    path = tmp_path / "mcc.yml"
    write_hyperparams(document, path)
    train_expert(path, tmp_path / "expert", seed=0, checkpoint_every=32, eval_episodes=1)
    _, vecnormalize, summary = load_expert(tmp_path / "expert", "MountainCarContinuous-v0")
    assert summary["vecnormalize"] == "vecnormalize.pkl"
    assert vecnormalize is not None and not vecnormalize.training
    assert vecnormalize.obs_rms.count > 1


def test_killed_run_resumes_from_its_checkpoint(tmp_path, tiny_ppo_hyperparams):
    output_dir = tmp_path / "expert"
    command = [
        sys.executable, "-m", "workflow_scripts.train_expert", "--hyperparams", str(tiny_ppo_hyperparams),
        "--output-dir", str(output_dir), "--checkpoint-every", "512", "--eval-episodes", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = output_dir / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), "no checkpoint was written before the kill"
    assert not (output_dir / "CartPole-v1.zip").exists()
    checkpointed = json.loads(state.read_text())["num_timesteps"]
    assert 0 < checkpointed < 3072

    rerun = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"resuming from checkpoint at {checkpointed} timesteps" in rerun.stdout
    assert PPO.load(output_dir / "CartPole-v1.zip").num_timesteps == 3072
    episodes = read_monitor(output_dir / "monitor.csv")
    assert episodes["timesteps"].is_monotonic_increasing  # no episodes logged twice
