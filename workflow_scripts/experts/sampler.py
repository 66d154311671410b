"""Batched sampled actions of a trained expert, as the datasets record them.

Stochastic policies sample their distribution; DQN-family experts act epsilon-greedily
with their trained exploration rate; deterministic-policy experts (TD3, DDPG) add the
Gaussian action noise of their training recipe (:func:`training_noise_std`).
"""

from __future__ import annotations

import os

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

from workflow_scripts.hyperparams import read_hyperparams


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

    @property
    def sampling(self) -> str:
        """How the actions are drawn, in words (a dataset attribute)."""
        if self.epsilon is not None:
            return "epsilon-greedy"
        if self.action_noise_std is not None:
            return f"deterministic policy + its training noise N(0, {self.action_noise_std})"
        if self.deterministic_policy:
            return "deterministic policy (no training action noise in its recipe)"
        return "stochastic policy"

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


def training_noise_std(config_path: str | os.PathLike) -> float | None:
    """Std of the Gaussian action noise the expert was trained with (its ``config.yml``),
    or None when it had none; other noise types (Ornstein-Uhlenbeck) are not reproduced."""
    noise = read_hyperparams(config_path).get("action_noise")
    if not noise:
        return None
    if noise["type"] != "normal":
        print(f"note: {noise['type']} action noise is not reproduced; sampling deterministically")
        return None
    return float(noise["std"])
