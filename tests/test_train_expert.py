"""Expert training: outputs load with plain SB3, curves are drawn, a killed run resumes to
exactly the expert an uninterrupted run trains."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
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
    assert summary["resumes"] == [] and summary["cpu"]["torch_capability"]


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


class _Interrupted(Exception):
    """Stands for a kill: raised by the patched callback some steps after a checkpoint."""


def _train_interrupted(monkeypatch, hyperparams, folder, checkpoint_every, after):
    """Train until ``after`` timesteps past the first checkpoint, then stop as a kill would
    (nothing published, the live episode log left behind); then rerun to the end."""
    from workflow_scripts import train_expert as module

    original = module.TrainingLog._on_step

    def on_step(self):
        checkpoint = self.checkpoint_dir / "state.json"
        if checkpoint.exists():
            stop_at = json.loads(checkpoint.read_text())["num_timesteps"] + after
            if self.num_timesteps >= stop_at:
                raise _Interrupted
        return original(self)

    with monkeypatch.context() as patch:
        patch.setattr(module.TrainingLog, "_on_step", on_step)
        with pytest.raises(_Interrupted):
            train_expert(
                hyperparams, folder, seed=0, checkpoint_every=checkpoint_every, eval_episodes=2
            )
    assert not (folder / "expert.json").exists()
    return train_expert(
        hyperparams, folder, seed=0, checkpoint_every=checkpoint_every, eval_episodes=2
    )


def _parameters(algo_class, path):
    return algo_class.load(path).policy.state_dict()


# (env, algo, budget, overrides, checkpoint_every, steps run past the checkpoint before the kill)
EXACT_RESUMES = {
    "ppo": ("CartPole-v1", "ppo", 3072, {"n_steps": 256, "batch_size": 64, "n_epochs": 2}, 512, 300),
    "ppo-normalized": ("MountainCarContinuous-v0", "ppo", 1024, {"n_steps": 128, "batch_size": 64}, 256, 100),
    "dqn": ("MountainCar-v0", "dqn", 3000, {"learning_starts": 500, "train_freq": 16, "gradient_steps": 8, "target_update_interval": 200}, 1000, 450),
    "td3": ("Pendulum-v1", "td3", 900, {"learning_starts": 200, "policy_kwargs": "dict(net_arch=[32, 32])"}, 300, 150),
    # MuJoCo: its state is its MjData (Ant's reward reads body positions of the last step).
    "ppo-mujoco": ("Ant-v4", "ppo", 768, {"n_steps": 128, "batch_size": 64, "n_epochs": 1}, 256, 100),
}  # fmt: skip


@pytest.mark.parametrize("case", list(EXACT_RESUMES))
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_expert(tmp_path, monkeypatch, case):
    env_id, algo, budget, overrides, every, after = EXACT_RESUMES[case]
    source = "rl-zoo3" if case == "ppo-normalized" else "sb3-defaults"
    document = resolve_hyperparams(env_id, algo, budget, source=source, overrides=overrides)
    if algo == "td3":  # noise with a state of its own, which learn's set-up resets
        document["action_noise"] = {"type": "ornstein-uhlenbeck", "std": 0.1}
    hyperparams = tmp_path / f"{env_id}.yml"
    write_hyperparams(document, hyperparams)
    whole = ExpertFiles.of(env_id, tmp_path / "whole")
    resumed = ExpertFiles.of(env_id, tmp_path / "resumed")

    expected = train_expert(
        hyperparams, whole.folder, seed=0, checkpoint_every=every, eval_episodes=2
    )
    summary = _train_interrupted(monkeypatch, hyperparams, resumed.folder, every, after)

    [resume] = summary["resumes"]
    assert resume["exact"] and resume["reason"] is None and 0 < resume["from_timesteps"] < budget
    assert expected["resumes"] == []
    algo_class = type(load_expert(whole.model, whole.summary)[0])
    want, got = _parameters(algo_class, whole.model), _parameters(algo_class, resumed.model)
    assert want.keys() == got.keys()
    assert all(torch.equal(want[name], got[name]) for name in want), "parameters differ"
    columns = ["r", "l", "timesteps"]
    pd.testing.assert_frame_equal(
        read_monitor(whole.monitor)[columns], read_monitor(resumed.monitor)[columns]
    )
    assert summary["deterministic_check"] == expected["deterministic_check"]
    if case == "ppo-normalized":
        stats = [load_expert(files.model, files.summary)[1] for files in (whole, resumed)]
        assert np.array_equal(stats[0].obs_rms.mean, stats[1].obs_rms.mean)
        assert np.array_equal(stats[0].ret_rms.var, stats[1].ret_rms.var)


def _drop(path):
    path.unlink()


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _stale(path):
    # The random state of another step: a kill between its write and state.json's.
    state = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({**state, "num_timesteps": state["num_timesteps"] - 256}))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_drop, "no random state"), (_truncate, "is unreadable"), (_stale, "a kill while")],
)
def test_a_checkpoint_without_its_random_state_resumes_and_says_it_is_inexact(
    tmp_path, monkeypatch, tiny_ppo_hyperparams, damage, reason
):
    from workflow_scripts import train_expert as module

    original = module.save_checkpoint

    def save_and_damage(model, checkpoint_dir, *args):
        original(model, checkpoint_dir, *args)
        damage(checkpoint_dir / module.RESUME_STATE)

    monkeypatch.setattr(module, "save_checkpoint", save_and_damage)
    summary = _train_interrupted(monkeypatch, tiny_ppo_hyperparams, tmp_path / "expert", 512, 300)
    [resume] = summary["resumes"]
    assert not resume["exact"] and reason in resume["reason"]
    assert summary["n_timesteps"] == 3072


def test_box2d_envs_are_resumed_inexactly_and_say_why():
    from workflow_scripts.train_expert import _inexact_resume_reason, make_training_env

    venv = make_training_env("LunarLander-v2", 1, 0, None)
    assert "holds Box2D objects" in _inexact_resume_reason(venv)
    for env_id in ("CartPole-v1", "InvertedPendulum-v4"):
        assert _inexact_resume_reason(make_training_env(env_id, 1, 0, None)) is None, env_id
