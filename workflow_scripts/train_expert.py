"""Train one env's expert with Stable-Baselines3 / sb3-contrib, resumably.

Reads the resolved hyperparameters (``results/hyperparams/{env}.yml``) and writes the
expert's files into ``results/experts/{env}/`` (named in
:class:`workflow_scripts.experts.layout.ExpertFiles`, rl-zoo3's names): the final model,
its normalization statistics when the hyperparameters ask for ``normalize``, the
hyperparameters, the episode log (:mod:`workflow_scripts.experts.monitor`), tensorboard
logs, the training curve, and ``expert.json``: provenance, a deterministic check of the
final model and the quality gate's verdict (``quality``: its return against Gymnasium's
reward_threshold and rl-zoo3's benchmark figure).

Every ``checkpoint_every`` timesteps, at the start of the next rollout (after the update
that follows it), the model, replay buffer, normalization statistics, episode log and the
run's random state go to ``checkpoints/``; a rerun after a kill resumes from there. The
random state is that of Python, NumPy, torch, the action space, the action noise and
gSDE's sampled noise, plus the vectorized env itself (each env's state mid-episode and its
generator), so a resumed run trains exactly the model an uninterrupted one would. Where an
env's state cannot be saved (Box2D's) the resume is inexact: training goes on from the
checkpoint with fresh episodes and reseeded generators. ``expert.json`` lists every resume
(``resumes``) and whether it was exact.

The quality gate (:mod:`workflow_scripts.expert_quality`) runs last. Below a reference it
warns loudly, or, with ``quality="error"``, checkpoints the final model and stops: the
trained model is kept, and a rerun (with ``warn``) publishes it without training again.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils import EzPickle
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from workflow_scripts.config import algorithm_class
from workflow_scripts.envs import make_env, wrapper_chain
from workflow_scripts.expert_quality import ExpertBelowReference, expert_quality
from workflow_scripts.experts.curves import plot_training_curve
from workflow_scripts.experts.layout import ExpertFiles
from workflow_scripts.experts.load import deterministic_check
from workflow_scripts.experts.monitor import (
    SMOOTHING_WINDOW,
    monitor_header,
    monitor_row,
    read_monitor,
    recent_mean_return,
)
from workflow_scripts.hyperparams import constructor_kwargs, normalize_kwargs, read_hyperparams
from workflow_scripts.provenance import (
    atomic_path,
    package_versions,
    sha256_file,
    sha256_json,
    write_json,
)


def make_training_env(env_id: str, n_envs: int, seed: int, max_episode_steps: int | None) -> VecEnv:
    """``n_envs`` copies of the env, each wrapped in SB3's Monitor (episode stats in infos)."""

    def factory(rank: int):
        def build():
            env = Monitor(make_env(env_id, max_episode_steps))
            env.reset(seed=seed + rank)
            env.action_space.seed(seed + rank)
            return env

        return build

    venv = DummyVecEnv([factory(rank) for rank in range(n_envs)])
    venv.seed(seed)
    return venv


class TrainingLog(BaseCallback):
    """Appends finished episodes to monitor.csv, prints progress, saves resumable checkpoints."""

    def __init__(
        self,
        monitor_path: Path,
        checkpoint_dir: Path,
        checkpoint_every: int,
        total_timesteps: int,
        run_key: str,
        resumes: list[dict[str, Any]],
        random_state: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.resumes = resumes
        # A checkpoint's random state, put back at the first rollout start: after SB3's
        # load and learn set-up have reseeded and drawn (gSDE noise, action-noise reset).
        self.random_state = random_state
        self.monitor_path = monitor_path
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.total_timesteps = total_timesteps
        self.run_key = run_key
        self.start_time = time.time()
        self.start_timesteps = 0
        self.next_checkpoint = checkpoint_every
        self.next_report = 0
        self.recent_returns: list[float] = []

    def _on_training_start(self) -> None:
        self.start_timesteps = self.num_timesteps
        self.next_checkpoint = (
            self.num_timesteps // self.checkpoint_every + 1
        ) * self.checkpoint_every
        self.next_report = self.num_timesteps

    def _on_step(self) -> bool:
        finished = [info["episode"] for info in self.locals["infos"] if "episode" in info]
        if finished:
            with open(self.monitor_path, "a") as handle:
                for episode in finished:
                    handle.write(monitor_row(episode, self.num_timesteps))
                    self.recent_returns = (self.recent_returns + [episode["r"]])[-SMOOTHING_WINDOW:]
        if self.num_timesteps >= self.next_report:
            self._report()
            self.next_report += max(1, self.total_timesteps // 50)
        return True

    def _on_rollout_start(self) -> None:
        # Between the update of the last rollout and the collection of the next: the one
        # point where a resumed run can continue exactly as an uninterrupted one.
        if self.random_state is not None:
            _restore_random_state(self.model, self.random_state)
            self.random_state = None
        if self.num_timesteps >= self.next_checkpoint:
            save_checkpoint(
                self.model, self.checkpoint_dir, self.monitor_path, self.run_key, self.resumes
            )
            self.next_checkpoint = (
                self.num_timesteps // self.checkpoint_every + 1
            ) * self.checkpoint_every

    def _report(self) -> None:
        elapsed = time.time() - self.start_time
        fps = (self.num_timesteps - self.start_timesteps) / max(elapsed, 1e-9)
        recent = f"{np.mean(self.recent_returns):.2f}" if self.recent_returns else "n/a"
        percent = 100 * self.num_timesteps / self.total_timesteps
        print(
            f"[train_expert] {self.num_timesteps}/{self.total_timesteps} timesteps ({percent:.0f}%) "
            f"{fps:.0f} steps/s, mean return of last {len(self.recent_returns)} episodes: {recent}",
            flush=True,
        )


def save_checkpoint(
    model: BaseAlgorithm,
    checkpoint_dir: Path,
    monitor_path: Path,
    run_key: str,
    resumes: list[dict[str, Any]],
) -> None:
    """Everything a rerun needs to continue: model, replay buffer, normalization, episode log,
    and the random state that makes the continuation exact (:func:`_resume_state`)."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    resume_state = _resume_state(model)  # saving the files below draws no random numbers
    with atomic_path(checkpoint_dir / RESUME_STATE, suffix=".pkl") as tmp:
        Path(tmp).write_bytes(resume_state)
    with atomic_path(checkpoint_dir / "model.zip", suffix=".zip") as tmp:
        model.save(tmp)
    if isinstance(model, OffPolicyAlgorithm):
        with atomic_path(checkpoint_dir / "replay_buffer.pkl", suffix=".pkl") as tmp:
            model.save_replay_buffer(tmp)
    venv = model.get_env()
    if isinstance(venv, VecNormalize):
        with atomic_path(checkpoint_dir / "vecnormalize.pkl", suffix=".pkl") as tmp:
            venv.save(tmp)
    with atomic_path(checkpoint_dir / "monitor.csv", suffix=".csv") as tmp:
        shutil.copyfile(monitor_path, tmp)
    # state.json last: a checkpoint counts only once every file above is in place.
    write_json(
        checkpoint_dir / "state.json",
        {"num_timesteps": model.num_timesteps, "run_key": run_key, "resumes": resumes},
    )
    print(
        f"[train_expert] checkpoint at {model.num_timesteps} timesteps -> {checkpoint_dir}",
        flush=True,
    )


RESUME_STATE = "resume_state.pkl"


def _inexact_resume_reason(venv: VecEnv) -> str | None:
    """Why a checkpoint cannot continue the run on ``venv`` (the vectorized env below any
    VecNormalize) exactly, or None when it can."""
    if not isinstance(venv, DummyVecEnv):
        return f"{type(venv).__name__} cannot be saved with its envs' state"
    for env in venv.envs:
        if isinstance(env.unwrapped, EzPickle) and not isinstance(env.unwrapped, MujocoEnv):
            return (
                f"{type(env.unwrapped).__name__} pickles as its constructor arguments and "
                "holds Box2D objects, so its state mid-episode cannot be saved"
            )
    return None


def _envs_state(venv: DummyVecEnv) -> dict[str, Any]:
    """What the vectorized env and each env's wrappers and core hold mid-episode.

    A MuJoCo env pickles as its constructor arguments (EzPickle), so its core is saved as
    its generator and its whole ``MjData`` (state and derived quantities: rewards read
    positions computed by the last step); other cores are saved whole.
    """
    envs = []
    for outermost in venv.envs:
        *wrappers, env = wrapper_chain(outermost)
        layers = [
            (type(layer).__name__, {k: v for k, v in vars(layer).items() if k != "env"})
            for layer in wrappers
        ]
        if isinstance(env, MujocoEnv):
            core = {"_np_random": env._np_random, "data": env.data}
        else:
            core = dict(vars(env))
        envs.append({"layers": layers, "core": (type(env).__name__, core)})
    return {"vec": {k: v for k, v in vars(venv).items() if k != "envs"}, "envs": envs}


def _put_envs_state(venv: DummyVecEnv, state: dict[str, Any]) -> str | None:
    """Give a freshly built vectorized env the saved state, or leave it untouched and say
    why not (the envs are built differently from the checkpoint's)."""
    if len(venv.envs) != len(state["envs"]):
        return f"the checkpoint has {len(state['envs'])} envs, the run {len(venv.envs)}"
    chains = []
    for env, saved in zip(venv.envs, state["envs"], strict=True):
        chain = wrapper_chain(env)
        names = [type(layer).__name__ for layer in chain]
        saved_names = [name for name, _ in saved["layers"]] + [saved["core"][0]]
        if names != saved_names:
            return f"the env is built as {names}, the checkpoint's was {saved_names}"
        chains.append(chain)
    for chain, saved in zip(chains, state["envs"], strict=True):
        attributes = [attributes for _, attributes in saved["layers"]] + [saved["core"][1]]
        for layer, saved_attributes in zip(chain, attributes, strict=True):
            vars(layer).update(saved_attributes)
        renderer = getattr(chain[-1], "mujoco_renderer", None)
        if renderer is not None:
            renderer.data = chain[-1].data
    vars(venv).update(state["vec"])
    return None


SDE_NOISE = ("weights_dist", "exploration_mat", "exploration_matrices")


def _sde_distribution(model: BaseAlgorithm):
    """The action distribution holding gSDE's sampled noise (SAC's actor, PPO's policy)."""
    owner = getattr(model, "actor", None) or model.policy
    return getattr(owner, "action_dist", None)


def _resume_state(model: BaseAlgorithm) -> bytes:
    """The pickled random state of the run: Python's, NumPy's and torch's generators, the
    action space (with its generator), the action noise and gSDE's current noise, and the
    vectorized env below any VecNormalize (:func:`_envs_state`) plus VecNormalize's running
    returns, which its own pickle leaves out. Without the envs (``envs`` None) when they
    cannot be saved."""
    venv = model.get_env()
    returns = venv.returns.copy() if isinstance(venv, VecNormalize) else None
    inner = venv.venv if isinstance(venv, VecNormalize) else venv
    state = {
        "num_timesteps": model.num_timesteps,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": model.action_space,
        "action_noise": getattr(model, "action_noise", None),
        "sde_noise": {},
        "vecnormalize_returns": returns,
        "envs": None,
        "inexact_because": _inexact_resume_reason(inner),
    }
    if getattr(model, "use_sde", False):
        dist = _sde_distribution(model)
        state["sde_noise"] = {
            name: getattr(dist, name) for name in SDE_NOISE if hasattr(dist, name)
        }
    if state["inexact_because"] is None:
        try:
            return pickle.dumps({**state, "envs": _envs_state(inner)})
        except Exception as error:  # an env holding something unpicklable
            state["inexact_because"] = f"the env could not be pickled ({error})"
    return pickle.dumps(state)


def _restore_random_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Put back the generators and noise :func:`_resume_state` saved (the envs and
    VecNormalize's returns are put back by :func:`load_checkpoint`)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    model.action_space = state["action_space"]
    if state["action_noise"] is not None:
        # In place: the rollout under way holds this object (learn set-up reset it).
        model.action_noise.__dict__.update(state["action_noise"].__dict__)
    dist = _sde_distribution(model)
    for name, value in state["sde_noise"].items():
        setattr(dist, name, value)


def _read_resume_state(
    checkpoint_dir: Path, num_timesteps: int
) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint's random state and None, or None and why the resume is inexact."""
    path = checkpoint_dir / RESUME_STATE
    if not path.exists():
        return None, "the checkpoint has no random state (made before it was saved)"
    try:
        random_state = pickle.loads(path.read_bytes())
    except Exception as error:  # truncated or corrupt: resume, inexactly, rather than fail
        return None, f"{path} is unreadable ({type(error).__name__}: {error})"
    if random_state.get("num_timesteps") != num_timesteps:
        return None, (
            f"{path} is from timestep {random_state.get('num_timesteps')}, the checkpoint from "
            f"{num_timesteps} (a kill while the checkpoint was written)"
        )
    if random_state["inexact_because"] is not None:
        return None, random_state["inexact_because"]
    return random_state, None


def load_checkpoint(
    checkpoint_dir: Path, algo_class, venv: VecEnv, run_key: str, device: str
) -> tuple[BaseAlgorithm, dict[str, Any], list[dict[str, Any]], dict[str, Any] | None] | None:
    """The checkpointed model, how it resumes (``from_timesteps``, ``exact``, ``reason``),
    the resumes before it, and the random state to put back when training starts (None for
    an inexact resume); None when there is no usable checkpoint.

    ``venv``, built afresh, takes the saved envs' state when the checkpoint has it (an exact
    resume); otherwise it starts fresh episodes.
    """
    state_path = checkpoint_dir / "state.json"
    if not state_path.exists():
        return None
    state = json.loads(state_path.read_text())
    if state.get("run_key") != run_key:
        print(
            f"[train_expert] ignoring checkpoint in {checkpoint_dir}: it was made with other "
            "hyperparameters, seed or budget; starting over",
            flush=True,
        )
        return None
    random_state, reason = _read_resume_state(checkpoint_dir, state["num_timesteps"])
    inner = venv.venv if isinstance(venv, VecNormalize) else venv
    if random_state is not None:
        reason = _put_envs_state(inner, random_state["envs"])
        if reason is not None:
            random_state = None
    exact = reason is None
    if (checkpoint_dir / "vecnormalize.pkl").exists():
        venv = VecNormalize.load(str(checkpoint_dir / "vecnormalize.pkl"), inner)
    else:
        venv = inner
    # force_reset=False keeps the saved last observation: the saved envs continue from it.
    model = algo_class.load(
        checkpoint_dir / "model.zip", env=venv, device=device, force_reset=not exact
    )
    if isinstance(model, OffPolicyAlgorithm) and (checkpoint_dir / "replay_buffer.pkl").exists():
        model.load_replay_buffer(checkpoint_dir / "replay_buffer.pkl")
    if exact and random_state["vecnormalize_returns"] is not None:
        venv.returns = random_state["vecnormalize_returns"]
    resume = {"from_timesteps": int(model.num_timesteps), "exact": exact, "reason": reason}
    how = "exactly" if exact else f"inexactly: {reason}"
    print(
        f"[train_expert] resuming from checkpoint at {model.num_timesteps} timesteps ({how})",
        flush=True,
    )
    return model, resume, list(state.get("resumes", [])), random_state


def train_expert(
    hyperparams_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    seed: int,
    checkpoint_every: int,
    eval_episodes: int,
    device: str = "auto",
    baseline_path: str | os.PathLike | None = None,
    quality: str = "warn",
    quality_tolerance: float = 0.1,
    reference_return: float | None = None,
) -> dict[str, Any]:
    """Train (or resume) the expert described by ``hyperparams_path`` into ``output_dir``.

    ``baseline_path`` (the env's random-policy score) enables the quality gate; ``quality``
    says what a failed gate does: ``warn`` or ``error``; ``reference_return`` is the
    config's own reference for envs without a published one.
    """
    document = read_hyperparams(hyperparams_path)
    env_id, algo = document["env_id"], document["algo"]
    files = ExpertFiles(Path(output_dir), env_id)
    files.folder.mkdir(parents=True, exist_ok=True)
    if device == "auto":
        # SB3's MLP policies run faster on the CPU than on a GPU; keep experts on the CPU.
        device = "cpu"
    torch.set_num_threads(1)
    run_key = _run_key(document, seed)
    model, resumes, random_state = _start_or_resume(document, files, seed, device, run_key)
    train_seconds = _train(model, files, document, checkpoint_every, run_key, resumes, random_state)

    vecnormalize = _save_final_model(model, files, hyperparams_path)
    plot_training_curve(files.monitor, files.curve, env_id, algo)
    check = deterministic_check(
        model, env_id, eval_episodes, seed + 10_000, document.get("max_episode_steps"), vecnormalize
    )
    verdict = None
    if baseline_path is not None:
        verdict = _quality_verdict(
            env_id, algo, check, baseline_path, quality, quality_tolerance, reference_return
        )
    summary = {
        "env_id": env_id,
        "algo": algo,
        "n_timesteps": int(model.num_timesteps),
        "seed": seed,
        "model": files.model.name,
        "model_sha256": sha256_file(files.model),
        "vecnormalize": files.vecnormalize.name if vecnormalize is not None else None,
        "hyperparams_sha256": sha256_file(hyperparams_path),
        "max_episode_steps": document.get("max_episode_steps"),
        **_training_episodes(files.monitor),
        "deterministic_check": check,
        "quality": verdict,
        "resumes": resumes,
        "train_seconds_this_run": round(train_seconds, 1),
        "device": device,
        "cpu": cpu_description(),
        "versions": package_versions(),
    }
    print(
        f"[train_expert] {env_id}: deterministic check over {eval_episodes} episodes: "
        f"{check['mean_return']:.2f} ± {check['std_return']:.2f}",
        flush=True,
    )
    write_json(files.summary, summary)
    if verdict is not None and verdict["status"] == "below":
        _report_below_reference(verdict, model, files.checkpoints, files.monitor, run_key, resumes)
    return summary


def cpu_description() -> dict[str, str | None]:
    """What decides an expert's floating-point results besides the seed and the versions:
    the CPU, the instruction set of torch's own kernels, and MKL's instruction-set and
    reproducibility settings when the environment sets them. MKL picks its code path by CPU,
    and one recipe and seed trained MountainCar-v0 experts of -131.1 (AVX-512) and -103.2
    (MKL_ENABLE_INSTRUCTIONS=AVX2) on one machine (docs/reproduction.md)."""
    model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "model": model,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "MKL_ENABLE_INSTRUCTIONS": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
        "MKL_CBWR": os.environ.get("MKL_CBWR"),
    }


def _run_key(document: dict[str, Any], seed: int) -> str:
    """What a checkpoint must have been made with to be resumed: a hash of the run."""
    return sha256_json(
        {
            "hyperparams": document["hyperparams"],
            "n_timesteps": int(document["n_timesteps"]),
            "seed": seed,
            "normalize": document["normalize"],
            "n_envs": document["n_envs"],
            "policy": document["policy"],
            "action_noise": document["action_noise"],
        }
    )


def _train(
    model: BaseAlgorithm,
    files: ExpertFiles,
    document: dict[str, Any],
    checkpoint_every: int,
    run_key: str,
    resumes: list[dict[str, Any]],
    random_state: dict[str, Any] | None,
) -> float:
    """Train up to the document's ``n_timesteps``, publish the episode log; the seconds it took."""
    total_timesteps = int(document["n_timesteps"])
    # Episodes are logged live under a scratch name and published as monitor.csv when
    # training ends: a killed run never leaves a monitor.csv that looks like a whole log
    # (Snakemake would then hold the declared output as present but incomplete).
    remaining = total_timesteps - model.num_timesteps
    callback = TrainingLog(
        files.live_monitor,
        files.checkpoints,
        checkpoint_every,
        total_timesteps,
        run_key,
        resumes,
        random_state,
    )
    started = time.time()
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=callback,
            reset_num_timesteps=model.num_timesteps == 0,
            tb_log_name=document["algo"],
        )
    train_seconds = time.time() - started
    os.replace(files.live_monitor, files.monitor)
    return train_seconds


def _quality_verdict(
    env_id: str,
    algo: str,
    check: dict[str, Any],
    baseline_path: str | os.PathLike,
    quality: str,
    tolerance: float,
    reference_return: float | None,
) -> dict[str, Any]:
    """The quality gate's verdict on the deterministic check, and what a failure does."""
    random_return = float(json.loads(Path(baseline_path).read_text())["mean_return"])
    verdict = expert_quality(
        env_id, algo, check["mean_return"], random_return, tolerance, reference_return
    )
    verdict["mode"] = quality
    return verdict


def _training_episodes(monitor_path: Path) -> dict[str, Any]:
    """How many episodes training ran and the mean return of the last ones."""
    episodes = read_monitor(monitor_path)
    return {
        "training_episodes": len(episodes),
        "last_50_episodes_mean_return": recent_mean_return(episodes["r"]),
    }


def _start_or_resume(
    document: dict[str, Any], files: ExpertFiles, seed: int, device: str, run_key: str
) -> tuple[BaseAlgorithm, list[dict[str, Any]], dict[str, Any] | None]:
    """The model from the checkpoint of this run, or a new one, with the run's resumes so
    far (this one last) and the random state training puts back; its live episode log
    ready."""
    env_id, algo = document["env_id"], document["algo"]
    algo_class = algorithm_class(algo)
    venv = make_training_env(
        env_id, int(document["n_envs"]), seed, document.get("max_episode_steps")
    )
    norm_kwargs = normalize_kwargs(document)
    if norm_kwargs is not None:
        venv = VecNormalize(venv, **norm_kwargs)

    checkpoint = load_checkpoint(files.checkpoints, algo_class, venv, run_key, device)
    if checkpoint is not None:
        model, resume, earlier, random_state = checkpoint
        # Episodes logged after the checkpoint by the killed run would be counted twice.
        shutil.copyfile(files.checkpoints / "monitor.csv", files.live_monitor)
        return model, earlier + [resume], random_state
    shutil.rmtree(files.checkpoints, ignore_errors=True)
    files.live_monitor.write_text(monitor_header(env_id, algo, seed))
    kwargs = constructor_kwargs(document, venv.action_space)
    model = algo_class(
        document["policy"],
        venv,
        seed=seed,
        device=device,
        tensorboard_log=str(files.tensorboard),
        verbose=0,
        **kwargs,
    )
    return model, [], None


def _save_final_model(
    model: BaseAlgorithm, files: ExpertFiles, hyperparams_path: str | os.PathLike
) -> VecNormalize | None:
    """Model, normalization statistics (returned, frozen) and hyperparameters, atomically."""
    with atomic_path(files.model, suffix=".zip") as tmp:
        model.save(tmp)
    vecnormalize = model.get_env() if isinstance(model.get_env(), VecNormalize) else None
    if vecnormalize is not None:
        with atomic_path(files.vecnormalize, suffix=".pkl") as tmp:
            vecnormalize.save(tmp)
        vecnormalize.training = False
    with atomic_path(files.config, suffix=".yml") as tmp:
        shutil.copyfile(hyperparams_path, tmp)
    return vecnormalize


def _report_below_reference(
    verdict: dict[str, Any],
    model: BaseAlgorithm,
    checkpoint_dir: Path,
    monitor_path: Path,
    run_key: str,
    resumes: list[dict[str, Any]],
) -> None:
    """Say loudly that the expert is below a reference; stop when the gate is ``error``."""
    banner = "!" * 78
    lines = [banner, "[train_expert] EXPERT BELOW REFERENCE: normalized scores on this env"]
    lines += ["  measure little until the expert is retrained (more timesteps, tuned values)."]
    lines += [f"  - {message}" for message in verdict["messages"]]
    print("\n".join(lines + [banner]), flush=True)
    if verdict["mode"] != "error":
        return
    # Keep the trained model: a rerun resumes at the final step and only re-checks it.
    save_checkpoint(model, checkpoint_dir, monitor_path, run_key, resumes)
    raise ExpertBelowReference(
        "; ".join(verdict["messages"])
        + " (expert_training.quality is 'error'; the model is kept in "
        + f"{checkpoint_dir}: set quality to 'warn' to publish it, or train longer)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train one env's expert (resumes from checkpoints)."
    )
    parser.add_argument("--hyperparams", required=True, help="results/hyperparams/{env}.yml")
    parser.add_argument("--output-dir", required=True, help="results/experts/{env}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint-every", type=int, default=100_000, help="timesteps between checkpoints"
    )
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--baseline", default=None, help="results/baselines/{env}.json: enables the quality gate"
    )
    parser.add_argument(
        "--quality",
        choices=["warn", "error"],
        default="warn",
        help="what an expert below its references does: warn, or stop with an error",
    )
    parser.add_argument(
        "--quality-tolerance",
        type=float,
        default=0.1,
        help="the expert passes rl-zoo3's figure at (1 - tolerance) of it, random = 0",
    )
    parser.add_argument(
        "--reference-return",
        type=float,
        default=None,
        help="a deterministic return the expert must reach (config experts.<env>.reference_return)",
    )
    args = parser.parse_args(argv)
    try:
        train_expert(
            args.hyperparams,
            args.output_dir,
            args.seed,
            args.checkpoint_every,
            args.eval_episodes,
            args.device,
            args.baseline,
            args.quality,
            args.quality_tolerance,
            args.reference_return,
        )
    except ExpertBelowReference as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
