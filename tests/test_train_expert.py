"""Expert training: outputs load with plain SB3, curves are drawn, a killed run resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from stable_baselines3 import PPO

from workflow_scripts.experts.layout import ExpertFiles
from workflow_scripts.experts.load import load_expert
from workflow_scripts.experts.monitor import read_monitor
from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams
from workflow_scripts.train_expert import train_expert


def test_outputs_load_with_plain_sb3(tmp_path, tiny_ppo_hyperparams):
    files = ExpertFiles.of("CartPole-v1", tmp_path / "experts")
    summary = train_expert(
        tiny_ppo_hyperparams, files.folder, seed=0, checkpoint_every=1024, eval_episodes=2
    )
    model = PPO.load(files.model)
    assert model.num_timesteps == 3072
    for path in (files.summary, files.monitor, files.curve, files.config):
        assert path.exists(), path
    assert files.tensorboard.is_dir() and not files.live_monitor.exists()
    assert files.config.read_bytes() == tiny_ppo_hyperparams.read_bytes()
    episodes = read_monitor(files.monitor)
    assert len(episodes) == summary["training_episodes"] > 0
    assert episodes["timesteps"].is_monotonic_increasing
    assert summary["last_50_episodes_mean_return"] == episodes["r"].tail(50).mean()
    _, vecnormalize, stored = load_expert(files.model, files.summary)
    assert vecnormalize is None and stored["model_sha256"] == summary["model_sha256"]


def test_normalized_expert_saves_and_reloads_its_statistics(tmp_path):
    document = resolve_hyperparams("MountainCarContinuous-v0", "ppo", 64, source="rl-zoo3")
    path = tmp_path / "mcc.yml"
    write_hyperparams(document, path)
    files = ExpertFiles.of("MountainCarContinuous-v0", tmp_path)
    train_expert(path, files.folder, seed=0, checkpoint_every=32, eval_episodes=1)
    assert files.vecnormalize.exists()
    _, vecnormalize, summary = load_expert(files.model, files.summary)
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
