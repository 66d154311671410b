"""The Decision Model as an evaluation :class:`~workflow_scripts.policy.Policy` for one env.

Each ``act`` appends the new observation to the context, runs the model and returns the
argmax action. The context holds at most ``context_transitions`` (= sequence_length / 2)
transitions; when a new observation would not fit, the oldest ``slide_transitions`` leave
the context at once (FIFO) and the KV cache is rebuilt from the remaining ones. Between
slides each step feeds only its two new tokens (the previous action and the new
observation) through the KV cache.

Why slide in chunks: a cache that evicts single old entries is not the same computation as
re-reading the shorter window (deeper layers' cached keys were computed while attending to
the evicted tokens), and re-reading the whole window at every step costs a full forward
pass. Dropping a chunk and re-prefilling keeps the cached policy exactly equal to a full
recompute of the same context (``use_cache=False`` does that recompute), at the price of a
context that varies between ``context_transitions - slide_transitions + 1`` and
``context_transitions`` transitions once an episode outgrows it. ``slide_transitions=1``
is exact per-step FIFO (then every step past the context length is a full recompute).

The first observation of a context carries no previous reward or done flag, as the first
observation of every training window does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from transformers import DynamicCache

from workflow_scripts.dm.layout import FLAG_CONTINUING, FLAG_EPISODE_ENDED, FLAG_WINDOW_START
from workflow_scripts.dm.modeling_dm import DecisionModel
from workflow_scripts.dm.tokenizer import bins_to_action, check_finite
from workflow_scripts.policy import load_once
from workflow_scripts.spaces import space_from_dict


@dataclass
class _Transition:
    observation: np.ndarray | int  # continuous values, or the Discrete index minus start
    prev_reward: float
    prev_flag: int
    action: np.ndarray | int | None = None  # as the model embeds it (Discrete: minus start)


def default_slide(context_transitions: int) -> int:
    """An eighth of the context: a full re-prefill every that many steps, amortised."""
    return max(1, context_transitions // 8)


class DecisionModelPolicy:
    """Argmax actions of a :class:`DecisionModel` for one of the envs it was trained on."""

    def __init__(
        self,
        model: DecisionModel,
        env_id: str,
        device: torch.device | str = "cpu",
        use_cache: bool = True,
        slide_transitions: int | None = None,
    ):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.env_id = env_id
        config = model.config
        self.env = config.env_index(env_id)
        self.observation_space = space_from_dict(config.envs[self.env]["observation_space"])
        self.action_space = space_from_dict(config.envs[self.env]["action_space"])
        self.max_transitions = config.context_transitions
        self.slide_transitions = (
            slide_transitions
            or config.eval_slide_transitions
            or default_slide(self.max_transitions)
        )
        if not 1 <= self.slide_transitions <= self.max_transitions:
            raise ValueError(
                f"slide_transitions {self.slide_transitions} must be in 1..{self.max_transitions}"
            )
        self.use_cache = use_cache
        layout = model.layout
        self._obs_width = layout.max_obs_dim
        self._act_width = layout.max_act_dim
        self._env_index = torch.tensor([self.env], device=self.device)
        if isinstance(self.action_space, spaces.Box):
            action_slots = layout[self.env].action
            self._low = torch.as_tensor(action_slots.low, dtype=torch.float32, device=self.device)
            self._high = torch.as_tensor(action_slots.high, dtype=torch.float32, device=self.device)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: empty context, no cache."""
        self.window: list[_Transition] = []
        self.cache: DynamicCache | None = None

    # ------------------------------------------------------------------ inputs
    def _observation(self, observation: Any) -> np.ndarray | int:
        space = self.observation_space
        if isinstance(space, spaces.Discrete):
            value = np.asarray(observation)
            if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(
                    f"{self.env_id}: expected a Discrete observation, got {observation!r}"
                )
            index = int(value) - int(space.start)
            if not 0 <= index < space.n:
                raise ValueError(f"{self.env_id}: observation {int(value)} is outside {space}")
            return index
        values = np.asarray(observation, dtype=np.float32).ravel()
        if values.size != int(np.prod(space.shape)):
            raise ValueError(
                f"{self.env_id}: observation has {values.size} values, its space {space} has "
                f"{int(np.prod(space.shape))}"
            )
        check_finite(values, self.env_id, "observation")
        return values

    def _tensors(self, transitions: list[_Transition]) -> dict[str, torch.Tensor]:
        """Model inputs (batch of one) for these transitions; missing actions are zeros."""
        steps = len(transitions)
        observations = np.zeros((1, steps, self._obs_width), dtype=np.float32)
        discrete_observations = np.zeros((1, steps), dtype=np.int64)
        actions = np.zeros((1, steps, self._act_width), dtype=np.float32)
        discrete_actions = np.zeros((1, steps), dtype=np.int64)
        prev_rewards = np.zeros((1, steps), dtype=np.float32)
        prev_flags = np.zeros((1, steps), dtype=np.int64)
        for t, transition in enumerate(transitions):
            if isinstance(transition.observation, np.ndarray):
                observations[0, t, : transition.observation.size] = transition.observation
            else:
                discrete_observations[0, t] = transition.observation
            if isinstance(transition.action, np.ndarray):
                actions[0, t, : transition.action.size] = transition.action
            elif transition.action is not None:
                discrete_actions[0, t] = transition.action
            prev_rewards[0, t] = transition.prev_reward
            prev_flags[0, t] = transition.prev_flag
        arrays = {
            "observations": observations,
            "discrete_observations": discrete_observations,
            "actions": actions,
            "discrete_actions": discrete_actions,
            "prev_rewards": prev_rewards,
            "prev_flags": prev_flags,
        }
        return {name: torch.from_numpy(value).to(self.device) for name, value in arrays.items()}

    # ------------------------------------------------------------------ model
    def _embed_observations(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.embed_observations(
            self._env_index,
            inputs["observations"],
            inputs["discrete_observations"],
            inputs["prev_rewards"],
            inputs["prev_flags"],
        )

    def _embed_actions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.embed_actions(
            self._env_index, inputs["actions"], inputs["discrete_actions"]
        )

    def _prefill(self) -> torch.Tensor:
        """Read the whole context: o1 a1 … o_n (the last action is not known yet)."""
        first = self.window[0]
        # The context's first observation has no predecessor inside it (as in training).
        self.window[0] = _Transition(first.observation, 0.0, FLAG_WINDOW_START, first.action)
        inputs = self._tensors(self.window)
        tokens = self.model.interleave(
            self._embed_observations(inputs), self._embed_actions(inputs)
        )
        tokens = tokens[:, :-1]
        cache = DynamicCache(config=self.model.backbone.config) if self.use_cache else None
        output = self.model.backbone(
            inputs_embeds=tokens, past_key_values=cache, use_cache=self.use_cache
        )
        self.cache = cache
        return output.last_hidden_state[0, -1]

    def _extend(self) -> torch.Tensor:
        """Feed only the previous action and the new observation through the cache."""
        previous = self._tensors([self.window[-2]])
        new = self._tensors([self.window[-1]])
        tokens = torch.cat((self._embed_actions(previous), self._embed_observations(new)), dim=1)
        output = self.model.backbone(
            inputs_embeds=tokens, past_key_values=self.cache, use_cache=True
        )
        return output.last_hidden_state[0, -1]

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def act(self, observation: Any, prev_reward: float | None, prev_term: bool | None) -> Any:
        """The most probable action for ``observation`` given the episode so far."""
        values = self._observation(observation)
        if prev_reward is not None:
            check_finite(prev_reward, self.env_id, "previous reward")
        flag = (
            FLAG_WINDOW_START
            if prev_term is None
            else (FLAG_EPISODE_ENDED if prev_term else FLAG_CONTINUING)
        )
        if len(self.window) == self.max_transitions:
            del self.window[: self.slide_transitions]  # FIFO: the oldest leave first
            self.cache = None
        self.window.append(_Transition(values, float(prev_reward or 0.0), flag))
        hidden = self._extend() if self.use_cache and self.cache is not None else self._prefill()
        logits = self.model.action_logits(hidden[None].float(), self.env)[0]
        return self._decode(logits)

    def _decode(self, logits: torch.Tensor) -> Any:
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            index = int(logits.argmax())
            self.window[-1].action = index
            return index + int(space.start)
        bins = logits.argmax(dim=-1)
        values = bins_to_action(bins, self._low, self._high).cpu().numpy().astype(np.float32)
        self.window[-1].action = values
        low = np.asarray(space.low, dtype=np.float32).ravel()
        high = np.asarray(space.high, dtype=np.float32).ravel()
        return np.clip(values, low, high).reshape(space.shape)


def load_policy(
    model_dir: str | Path,
    env_id: str,
    device: str | torch.device | None = None,
    use_cache: bool = True,
    slide_transitions: int | None = None,
) -> DecisionModelPolicy:
    """Load a trained model folder (self-contained) as the policy for ``env_id``."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a Decision Model folder (no config.json)")
    # Read once per folder in a job that evaluates it on several envs (evaluate_snapshot).
    model = load_once(model_dir, lambda: DecisionModel.from_pretrained(model_dir))
    return DecisionModelPolicy(model, env_id, device, use_cache, slide_transitions)
