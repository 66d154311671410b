"""Collect exactly N expert transitions into one HDF5 dataset per env.

The expert samples its actions (stochastic policy; epsilon-greedy with the trained
exploration rate for DQN-family experts; for deterministic-policy experts, TD3 and DDPG,
the policy plus the Gaussian action noise it was trained with, where its recipe has one),
as the paper's datasets do. ``n_envs`` copies
of the env step together and the policy is called once per step on the whole batch.

Each env copy owns one contiguous block of rows, so every row is followed by that same
env's next observation (autoreset: after a done row comes the next episode's first
observation). The last row of each block is marked ``truncated`` because the stream is
cut there; episodes cut this way are not counted as complete. The expert score used for
normalization is the mean return over complete episodes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN, TD3
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    SquashedDiagGaussianDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from tqdm import tqdm

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import episode_cap, make_env
from workflow_scripts.hyperparams import read_hyperparams
from workflow_scripts.provenance import package_versions, sha256_file
from workflow_scripts.train_expert import load_expert

# Steps buffered per env copy before a write to the file: as many as fit the byte budget
# (observations of all copies), at most MAX_BLOCK_STEPS.
BUFFER_BYTES = 64 * 2**20
MAX_BLOCK_STEPS = 4096


class ExpertSampler:
    """Batched stochastic actions from a trained SB3 model.

    Calls the policy network directly on the whole batch: SB3's ``predict`` re-checks and
    re-shapes its input on every call, which costs more than stepping cheap envs such as
    CartPole. The actions follow the distribution ``predict(deterministic=False)`` samples
    from: sampled, unscaled from tanh-squashed policies, clipped to the bounds otherwise.

    For the common heads (categorical and diagonal Gaussian of PPO/A2C/TRPO, SAC/TQC's
    tanh-squashed Gaussian) the network gives the distribution's parameters and the sample
    is drawn with numpy from ``seed``: building a torch ``Distribution`` per call (argument
    validation, normalized logits) costs more than the network itself at these sizes.
    Other policies (gSDE, TD3/DDPG, multi-discrete) go through the policy's own
    ``_predict``, seeded through torch. DQN-family experts act epsilon-greedily.

    A deterministic policy (TD3, DDPG) has nothing to sample from: with ``action_noise_std``
    it acts as it did in training, its action plus N(0, std) noise in the [-1, 1] scaled
    action space, clipped (SB3's ``NormalActionNoise``); without, deterministically. Its
    deterministic actions alone make a poor imitation dataset: on Pendulum-v1 a DM cloned
    from 1M of them scored 3% ± 22 while the same DM cloned from the noisy policy's scored
    ~100% (docs/reproduction.md).
    """

    def __init__(self, model, vecnormalize=None, seed: int = 0, action_noise_std=None):
        self.model = model
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.device = self.policy.device  # a property that walks the parameters: read it once
        self.vecnormalize = vecnormalize
        self.action_space = model.action_space
        self.epsilon = float(model.exploration_rate) if isinstance(model, (DQN, QRDQN)) else None
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.head = self._sampling_head()
        self.deterministic_policy = isinstance(model, TD3)  # DDPG is a TD3
        self.action_noise_std = action_noise_std if self.deterministic_policy else None
        if self.head == "gaussian":
            # A state-independent parameter: its standard deviation is the same on every call.
            with torch.inference_mode():
                self.gaussian_std = self.policy.log_std.exp().cpu().numpy()

    def _sampling_head(self) -> str | None:
        """Which distribution to sample with numpy, or None for the policy's ``_predict``."""
        if self.epsilon is not None:
            return None
        policy = self.policy
        if isinstance(policy, ActorCriticPolicy) and not policy.use_sde:
            if isinstance(policy.action_dist, CategoricalDistribution):
                return "categorical"
            if isinstance(policy.action_dist, DiagGaussianDistribution):
                return "gaussian"
        actor = getattr(policy, "actor", None)
        squashed = isinstance(getattr(actor, "action_dist", None), SquashedDiagGaussianDistribution)
        if squashed and not actor.use_sde:
            return "squashed_gaussian"
        return None

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        policy_input = observations
        if self.vecnormalize is not None:
            policy_input = self.vecnormalize.normalize_obs(policy_input)
        with torch.inference_mode():
            tensor = torch.as_tensor(policy_input, device=self.device)
            if self.head is None:
                actions = self.policy._predict(tensor, deterministic=self.epsilon is not None)
                actions = actions.cpu().numpy()
            else:
                actions = self._sample(tensor)
        if isinstance(self.action_space, spaces.Box):
            actions = actions.reshape(len(observations), *self.action_space.shape)
            if self.action_noise_std is not None:
                noise = self.rng.normal(0.0, self.action_noise_std, actions.shape)
                actions = np.clip(actions + noise.astype(actions.dtype), -1.0, 1.0)
            if self.policy.squash_output:
                actions = self.policy.unscale_action(actions)
            else:
                actions = np.clip(actions, self.action_space.low, self.action_space.high)
        elif self.epsilon is not None:
            # DQN-family experts sample epsilon-greedily, as SB3's predict(deterministic=False).
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(
                explore, self.rng.integers(self.action_space.n, size=len(actions)), actions
            )
        return actions

    def _sample(self, tensor: torch.Tensor) -> np.ndarray:
        """One sample per row from the network's distribution parameters (numpy RNG)."""
        policy = self.policy
        if self.head == "squashed_gaussian":
            mean, log_std, _ = policy.actor.get_action_dist_params(tensor)
            mean, std = mean.cpu().numpy(), np.exp(log_std.cpu().numpy())
            return np.tanh(mean + std * self.rng.standard_normal(mean.shape, dtype=mean.dtype))
        # ActorCriticPolicy.get_distribution, without building the torch Distribution.
        features = BasePolicy.extract_features(policy, tensor, policy.pi_features_extractor)
        outputs = policy.action_net(policy.mlp_extractor.forward_actor(features)).cpu().numpy()
        if self.head == "gaussian":
            noise = self.rng.standard_normal(outputs.shape, dtype=outputs.dtype)
            return outputs + self.gaussian_std * noise
        # Categorical, by the Gumbel-max trick: argmax(logits + Gumbel noise) is distributed
        # as softmax(logits), in three array operations.
        return np.argmax(outputs + self.rng.gumbel(size=outputs.shape), axis=1)


def make_vector_env(
    env_id: str, n_envs: int, max_episode_steps: int | None
) -> gym.vector.VectorEnv:
    """``n_envs`` copies stepped in this process, with gymnasium's autoreset."""
    return gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, max_episode_steps) for _ in range(n_envs)]
    )


def collect_dataset(
    env_id: str,
    act,
    output: str | os.PathLike,
    n_transitions: int,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
    attrs: dict | None = None,
    progress: bool = True,
) -> dict:
    """Step ``n_envs`` env copies with ``act(observations) -> actions`` and write N rows.

    Returns the summary also stored as file attributes (episodes, expert mean/std return).
    """
    n_envs = max(1, min(n_envs, n_transitions))
    rows_per_env = math.ceil(n_transitions / n_envs)
    # Block b of env i holds rows [starts[i], stops[i]); the last block may be shorter.
    starts = np.arange(n_envs) * rows_per_env
    stops = np.minimum(starts + rows_per_env, n_transitions)
    n_envs = int((stops > starts).sum())
    starts, stops = starts[:n_envs], stops[:n_envs]

    envs = make_vector_env(env_id, n_envs, max_episode_steps)
    single_env = envs.envs[0]
    observation_space, action_space = single_env.observation_space, single_env.action_space
    observations, _ = envs.reset(seed=[seed + rank for rank in range(n_envs)])

    episode_returns: list[float] = []
    running_returns = np.zeros(n_envs)
    steps_taken = 0
    rows = stops - starts  # each env copy's share; only the last copy may get fewer
    max_rows, min_rows = int(rows.max()), int(rows.min())
    # Longer blocks mean fewer (per-call costly) HDF5 writes; the budget bounds the memory.
    block_steps = max(1, min(MAX_BLOCK_STEPS, BUFFER_BYTES // (n_envs * observations[0].nbytes)))
    started = time.time()
    writer_attrs = {"env_id": env_id, **(attrs or {})}
    with DatasetWriter(
        output, n_transitions, observation_space, action_space, writer_attrs
    ) as writer:
        bar = tqdm(
            total=n_transitions,
            desc=f"rollout {env_id}",
            unit="transition",
            mininterval=10,
            file=sys.stdout,
            disable=not progress,
        )
        while steps_taken < max_rows:
            block = min(block_steps, max_rows - steps_taken)
            observation_rows = np.empty((block, *observations.shape), dtype=observations.dtype)
            action_rows = None  # shaped after the first call, when the action dtype is known
            reward_rows = np.empty((block, n_envs), dtype=np.float32)
            terminated_rows = np.empty((block, n_envs), dtype=bool)
            truncated_rows = np.empty((block, n_envs), dtype=bool)
            for step in range(block):
                actions = act(observations)
                if action_rows is None:
                    action_rows = np.empty((block, *np.shape(actions)), np.asarray(actions).dtype)
                observation_rows[step] = observations
                action_rows[step] = actions
                observations, rewards, terminated, truncated, _ = envs.step(actions)
                reward_rows[step] = rewards
                terminated_rows[step] = terminated
                truncated_rows[step] = truncated
                done = terminated | truncated
                if steps_taken + step >= min_rows:
                    # Only steps inside an env's own rows count toward its episodes.
                    inside = steps_taken + step < rows
                    rewards = np.where(inside, rewards, 0.0)
                    done &= inside
                running_returns += rewards
                if done.any():
                    for rank in np.flatnonzero(done):
                        episode_returns.append(float(running_returns[rank]))
                        running_returns[rank] = 0.0
            written = 0
            for rank in range(n_envs):
                first = starts[rank] + steps_taken
                count = min(block, int(stops[rank] - first))
                if count <= 0:
                    continue
                truncated_column = truncated_rows[:count, rank].copy()
                if first + count == stops[rank]:
                    truncated_column[-1] = True  # the env's stream is cut here
                writer.write_at(
                    int(first),
                    observation_rows[:count, rank],
                    action_rows[:count, rank],
                    reward_rows[:count, rank],
                    terminated_rows[:count, rank],
                    truncated_column,
                )
                written += count
            steps_taken += block
            bar.update(written)
        bar.close()
        if not episode_returns:
            raise RuntimeError(
                f"{env_id}: no episode finished within {rows_per_env} steps per env copy; "
                "raise dataset.n_transitions or lower dataset.n_envs"
            )
        summary = {
            "n_episodes": len(episode_returns),
            "expert_mean_return": float(np.mean(episode_returns)),
            "expert_std_return": float(np.std(episode_returns)),
            "n_envs": n_envs,
            "rows_per_env": rows_per_env,
            "seed": seed,
            "max_episode_steps": max_episode_steps or episode_cap(single_env) or -1,
        }
        # Wall time goes to the log and the return value, not the file: same seed, same bytes.
        writer.attrs.update(summary)
    summary["collection_seconds"] = round(time.time() - started, 2)
    envs.close()
    return summary


def rollout(
    env_id: str,
    expert_dir: str | os.PathLike,
    output: str | os.PathLike,
    n_transitions: int,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
) -> dict:
    """Load the env's expert and collect its dataset (the ``rollout`` rule)."""
    torch.set_num_threads(1)
    expert_dir = Path(expert_dir)
    model, vecnormalize, expert_summary = load_expert(expert_dir, env_id)
    sampler = ExpertSampler(model, vecnormalize, seed, training_noise_std(expert_dir))
    if sampler.epsilon is not None:
        sampling = "epsilon-greedy"
    elif sampler.action_noise_std is not None:
        sampling = f"deterministic policy + its training noise N(0, {sampler.action_noise_std})"
    elif sampler.deterministic_policy:
        sampling = "deterministic policy (no training action noise in its recipe)"
    else:
        sampling = "stochastic policy"
    attrs = {
        "expert_algo": expert_summary["algo"],
        "expert_sha256": sha256_file(expert_dir / f"{env_id}.zip"),
        "expert_path": str(expert_dir / f"{env_id}.zip"),
        "expert_sampling": sampling,
        "expert_epsilon": sampler.epsilon if sampler.epsilon is not None else -1.0,
        "expert_action_noise_std": sampler.action_noise_std or 0.0,
        "observation_storage": "raw env observations (float64 MuJoCo values stored as float32)",
        "action_storage": "the action the env received (sampled, within the space's bounds)",
        "versions": package_versions(),
        "created_by": "workflow_scripts.rollout",
    }
    summary = collect_dataset(
        env_id, sampler, output, n_transitions, n_envs, seed, max_episode_steps, attrs
    )
    print(
        f"{env_id}: {n_transitions} transitions, {summary['n_episodes']} complete episodes, "
        f"expert return {summary['expert_mean_return']:.3f} ± {summary['expert_std_return']:.3f} -> {output}",
        flush=True,
    )
    return summary


def training_noise_std(expert_dir: Path) -> float | None:
    """Std of the Gaussian action noise the expert was trained with (its ``config.yml``),
    or None when it had none; other noise types (Ornstein-Uhlenbeck) are not reproduced."""
    noise = read_hyperparams(expert_dir / "config.yml").get("action_noise")
    if not noise:
        return None
    if noise["type"] != "normal":
        print(f"note: {noise['type']} action noise is not reproduced; sampling deterministically")
        return None
    return float(noise["std"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Collect an env's expert dataset (HDF5).")
    parser.add_argument("--env", required=True)
    parser.add_argument("--expert-dir", required=True, help="results/experts/{env}")
    parser.add_argument("--n-transitions", type=int, required=True)
    parser.add_argument("--n-envs", type=int, default=128)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    rollout(
        args.env,
        args.expert_dir,
        args.output,
        args.n_transitions,
        args.n_envs,
        args.seed,
        args.max_episode_steps,
    )


if __name__ == "__main__":
    main()
