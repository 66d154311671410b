"""DM-0.012B: one transformer that imitates the experts of every configured env.

A window of T transitions becomes 2·T tokens, o1 a1 o2 a2 …, each one embedding:

* observation token: every observation dimension, the previous reward and the previous
  done flag aggregated into one vector. Continuous values are Gato-tokenized
  (:mod:`.tokenizer`) and each bin is looked up in a small value table (``value_embedding_dim``
  wide); the per-dimension vectors are concatenated in a fixed slot order (slot 0 = previous
  reward, slot 1+i = observation dimension i) and projected to ``hidden_size``, so the
  projection knows which dimension carried which value. Discrete observations are looked up
  directly in a table with one row per (env, state).
* action token: the same for the action dimensions (bins of the action rescaled from its
  bounds), or one table row per (env, discrete action).
* every token also gets the env's embedding and a token-type embedding (observation or
  action), which, with the per-env tables and output slices, is how the model tells the
  envs apart.

The backbone is a Llama-2-style decoder (``transformers.LlamaModel`` fed ``inputs_embeds``,
rotary positions, RMSNorm, SwiGLU). The action a_t is predicted from the hidden state at
o_t: per continuous action dimension a 1024-way bin distribution (one shared bin head,
modulated per dimension), or for a Discrete space an n-way distribution over the env's own
slice of one shared discrete head. Training passes neither an attention mask nor position
ids, so sdpa runs its causal kernel (``is_causal``) without building a T×T mask.

Where each env's values go is :mod:`.layout`; the configuration is :mod:`.configuration_dm`.
Importing this module registers the model with ``AutoModel``, so
``AutoModel.from_pretrained(folder)`` loads a DM folder (``results/models/dm/final``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, LlamaModel, PreTrainedModel
from transformers.utils import ModelOutput

from workflow_scripts.dm.configuration_dm import DecisionModelConfig
from workflow_scripts.dm.layout import FLAG_WINDOW_START, N_FLAGS, EnvLayout
from workflow_scripts.dm.tokenizer import N_BINS, action_to_bins, continuous_to_bins


@dataclass
class DecisionModelOutput(ModelOutput):
    """``loss``: mean over windows of each window's mean action cross-entropy;
    ``sample_losses``: that per-window value (B,), for per-env logging."""

    loss: torch.Tensor | None = None
    sample_losses: torch.Tensor | None = None


class DecisionModel(PreTrainedModel):
    """Embeddings → LlamaModel → action heads; see the module docstring."""

    config_class = DecisionModelConfig
    base_model_prefix = "decision_model"
    main_input_name = "observations"
    _supports_sdpa = True

    def __init__(self, config: DecisionModelConfig):
        super().__init__(config)
        config.check()
        self.layout = layout = EnvLayout.from_config(config)
        hidden, value_dim = config.hidden_size, config.value_embedding_dim
        n_envs = len(config.envs)

        self.env_embedding = nn.Embedding(n_envs, hidden)
        self.token_type_embedding = nn.Embedding(2, hidden)  # 0 observation, 1 action
        self.flag_embedding = nn.Embedding(N_FLAGS, hidden)
        # Observation side: one value table for μ-law bins (observations and reward), slot
        # order [previous reward, obs dim 0, obs dim 1, ...] kept by the concatenation.
        self.observation_value_embedding = nn.Embedding(N_BINS, value_dim)
        self.observation_projection = nn.Linear(
            (1 + layout.max_obs_dim) * value_dim, hidden, bias=False
        )
        self.discrete_observation_embedding = nn.Embedding(layout.n_discrete_obs, hidden)
        # Action side.
        self.action_value_embedding = nn.Embedding(N_BINS, value_dim)
        self.action_projection = nn.Linear(layout.max_act_dim * value_dim, hidden, bias=False)
        self.discrete_action_embedding = nn.Embedding(layout.n_discrete_act, hidden)

        self.backbone = LlamaModel(config.backbone_config())
        # Inputs are always embeddings: drop the unused one-row token table.
        self.backbone.embed_tokens = None

        # Heads. Continuous: a per-dimension scale/shift of the hidden state, SiLU, then one
        # shared 1024-way bin head. Discrete: one head over every env's actions; each env
        # reads only its own slice.
        self.action_dim_scale = nn.Parameter(torch.zeros(layout.max_act_dim, hidden))
        self.action_dim_shift = nn.Parameter(torch.zeros(layout.max_act_dim, hidden))
        self.bin_head = nn.Linear(hidden, N_BINS)
        self.discrete_action_head = nn.Linear(hidden, layout.n_discrete_act)

        self._register_layout_buffers(layout)
        self.post_init()

    def _register_layout_buffers(self, layout: EnvLayout) -> None:
        """Per-env lookup tensors (derived from the config, so not saved in checkpoints)."""

        def buffer(name: str, values, dtype) -> None:
            self.register_buffer(name, torch.as_tensor(values, dtype=dtype), persistent=False)

        observations = [env.observation for env in layout]
        actions = [env.action for env in layout]
        obs_dims = np.asarray([slots.dims for slots in observations])
        act_dims = np.asarray([slots.dims for slots in actions])
        n_envs = len(layout)
        obs_slot = np.arange(layout.max_obs_dim)[None, :] < obs_dims[:, None]
        act_slot = np.arange(layout.max_act_dim)[None, :] < act_dims[:, None]
        buffer("obs_is_discrete", [slots.discrete for slots in observations], torch.bool)
        buffer("obs_slot_mask", obs_slot.reshape(n_envs, -1), torch.float32)
        buffer("obs_offsets", [slots.offset for slots in observations], torch.long)
        buffer("act_is_discrete", [slots.discrete for slots in actions], torch.bool)
        buffer("act_dims", act_dims, torch.long)
        buffer("act_slot_mask", act_slot.reshape(n_envs, -1), torch.float32)
        buffer("act_offsets", [slots.offset for slots in actions], torch.long)
        # Padded bounds are [-1, 1] so the rescaling never divides by zero.
        low = np.full((n_envs, layout.max_act_dim), -1.0)
        high = np.full((n_envs, layout.max_act_dim), 1.0)
        allowed = np.zeros((n_envs, layout.n_discrete_act), dtype=bool)
        for env, slots in enumerate(actions):
            low[env, : slots.dims] = slots.low
            high[env, : slots.dims] = slots.high
            allowed[env, slots.offset : slots.offset + slots.n] = True
        buffer("act_low", low, torch.float32)
        buffer("act_high", high, torch.float32)
        buffer("discrete_action_allowed", allowed, torch.bool)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
        elif isinstance(module, DecisionModel):
            module.action_dim_scale.data.zero_()
            module.action_dim_shift.data.normal_(mean=0.0, std=std)
        elif hasattr(module, "variance_epsilon"):  # LlamaRMSNorm
            module.weight.data.fill_(1.0)

    # ----------------------------------------------------------------- embeddings
    def embed_observations(
        self,
        env_index: torch.Tensor,
        observations: torch.Tensor,
        discrete_observations: torch.Tensor,
        prev_rewards: torch.Tensor,
        prev_flags: torch.Tensor,
    ) -> torch.Tensor:
        """(B,) env, (B,T,max_obs_dim), (B,T), (B,T), (B,T) → observation tokens (B,T,H)."""
        slot_mask = self.obs_slot_mask[env_index][:, None, :, None]
        obs_values = self.observation_value_embedding(continuous_to_bins(observations)) * slot_mask
        has_prev = (prev_flags != FLAG_WINDOW_START).unsqueeze(-1).to(obs_values.dtype)
        reward_values = (
            self.observation_value_embedding(continuous_to_bins(prev_rewards)) * has_prev
        )
        tokens = self.observation_projection(torch.cat((reward_values, obs_values.flatten(2)), -1))
        discrete_rows = discrete_observations + self.obs_offsets[env_index][:, None]
        is_discrete = self.obs_is_discrete[env_index][:, None, None].to(tokens.dtype)
        tokens = tokens + self.discrete_observation_embedding(discrete_rows) * is_discrete
        per_window = self.env_embedding(env_index) + self.token_type_embedding.weight[0]
        return tokens + self.flag_embedding(prev_flags) + per_window[:, None, :]

    def embed_actions(
        self, env_index: torch.Tensor, actions: torch.Tensor, discrete_actions: torch.Tensor
    ) -> torch.Tensor:
        """(B,) env, (B,T,max_act_dim), (B,T) → action tokens (B,T,H)."""
        low = self.act_low[env_index][:, None, :]
        high = self.act_high[env_index][:, None, :]
        slot_mask = self.act_slot_mask[env_index][:, None, :, None]
        values = self.action_value_embedding(action_to_bins(actions, low, high)) * slot_mask
        tokens = self.action_projection(values.flatten(2))
        discrete_rows = discrete_actions + self.act_offsets[env_index][:, None]
        is_discrete = self.act_is_discrete[env_index][:, None, None].to(tokens.dtype)
        tokens = tokens + self.discrete_action_embedding(discrete_rows) * is_discrete
        per_window = self.env_embedding(env_index) + self.token_type_embedding.weight[1]
        return tokens + per_window[:, None, :]

    @staticmethod
    def interleave(observation_tokens: torch.Tensor, action_tokens: torch.Tensor) -> torch.Tensor:
        """(B,T,H) and (B,T,H) → o1 a1 o2 a2 … (B,2T,H)."""
        batch, steps, hidden = observation_tokens.shape
        return torch.stack((observation_tokens, action_tokens), dim=2).reshape(
            batch, 2 * steps, hidden
        )

    # ----------------------------------------------------------------- heads
    def continuous_logits(self, hidden: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., H) and the action dimension each is for (...) → (..., N_BINS)."""
        modulated = hidden * (1.0 + self.action_dim_scale[dims]) + self.action_dim_shift[dims]
        return self.bin_head(F.silu(modulated))

    def action_logits(self, observation_hidden: torch.Tensor, env_index: int) -> torch.Tensor:
        """Logits of one env's action from observation-position hidden states (N,H).

        Continuous: (N, act_dim, N_BINS); Discrete: (N, n) over the env's own actions.
        """
        slots = self.layout[env_index].action
        if slots.discrete:
            offset = slots.offset
            return self.discrete_action_head(observation_hidden)[:, offset : offset + slots.n]
        dims = torch.arange(slots.dims, device=observation_hidden.device)
        expanded = observation_hidden[:, None, :].expand(-1, len(dims), -1)
        return self.continuous_logits(expanded, dims[None, :].expand(len(expanded), -1))

    def action_losses(
        self,
        observation_hidden: torch.Tensor,
        env_index: torch.Tensor,
        actions: torch.Tensor,
        discrete_actions: torch.Tensor,
    ) -> torch.Tensor:
        """Per-window mean cross-entropy of the expert actions, (B,).

        Continuous windows average over time steps and action dimensions, discrete ones over
        time steps, so every window weighs the same whatever its env's action size.
        """
        batch, steps = observation_hidden.shape[:2]
        losses = observation_hidden.new_zeros(batch, dtype=torch.float32)

        # Continuous actions: only the (window, dimension) pairs the env really has.
        dim_range = torch.arange(self.layout.max_act_dim, device=env_index.device)
        valid = (dim_range[None, :] < self.act_dims[env_index][:, None]) & ~self.act_is_discrete[
            env_index
        ][:, None]
        window_ids, dim_ids = valid.nonzero(as_tuple=True)
        hidden = observation_hidden[window_ids]  # (P,T,H)
        logits = self.continuous_logits(hidden, dim_ids[:, None].expand(-1, hidden.shape[1]))
        env_of_pair = env_index[window_ids]
        targets = action_to_bins(
            actions[window_ids, :, dim_ids],
            self.act_low[env_of_pair, dim_ids][:, None],
            self.act_high[env_of_pair, dim_ids][:, None],
        )
        pair_loss = F.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), reduction="none"
        ).view(len(window_ids), steps)
        dims_per_window = self.act_dims[env_index].clamp(min=1).float()
        losses = losses.index_add(0, window_ids, pair_loss.mean(1)) / dims_per_window

        # Discrete actions: each env's logits restricted to its own slice of the shared head.
        discrete_ids = self.act_is_discrete[env_index].nonzero(as_tuple=True)[0]
        logits = self.discrete_action_head(observation_hidden[discrete_ids]).float()
        allowed = self.discrete_action_allowed[env_index[discrete_ids]][:, None, :]
        logits = logits.masked_fill(~allowed, float("-inf"))
        targets = (
            discrete_actions[discrete_ids] + self.act_offsets[env_index[discrete_ids]][:, None]
        )
        window_loss = F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction="none"
        ).view(len(discrete_ids), steps)
        return losses.index_add(0, discrete_ids, window_loss.mean(1))

    # ----------------------------------------------------------------- forward
    def observation_hidden_states(
        self,
        env_index: torch.Tensor,
        observations: torch.Tensor,
        discrete_observations: torch.Tensor,
        prev_rewards: torch.Tensor,
        prev_flags: torch.Tensor,
        actions: torch.Tensor,
        discrete_actions: torch.Tensor,
    ) -> torch.Tensor:
        """Hidden states at the observation positions, (B,T,H): where a_t is predicted."""
        tokens = self.interleave(
            self.embed_observations(
                env_index, observations, discrete_observations, prev_rewards, prev_flags
            ),
            self.embed_actions(env_index, actions, discrete_actions),
        )
        # No attention mask and no position ids: sdpa takes its is_causal path (no T×T mask).
        hidden = self.backbone(inputs_embeds=tokens, use_cache=False).last_hidden_state
        return hidden[:, 0::2]

    def forward(
        self,
        env_index: torch.Tensor,
        observations: torch.Tensor,
        discrete_observations: torch.Tensor,
        prev_rewards: torch.Tensor,
        prev_flags: torch.Tensor,
        actions: torch.Tensor,
        discrete_actions: torch.Tensor,
    ) -> DecisionModelOutput:
        """Behaviour-cloning loss of a batch of windows (the keys of :data:`BATCH_KEYS`)."""
        hidden = self.observation_hidden_states(
            env_index,
            observations,
            discrete_observations,
            prev_rewards,
            prev_flags,
            actions,
            discrete_actions,
        )
        sample_losses = self.action_losses(hidden, env_index, actions, discrete_actions)
        return DecisionModelOutput(loss=sample_losses.mean(), sample_losses=sample_losses)


def parameter_count(model: nn.Module) -> int:
    """Exact number of parameters."""
    return sum(parameter.numel() for parameter in model.parameters())


def parameter_breakdown(model: DecisionModel) -> dict[str, int]:
    """Parameters per part: backbone, input embeddings, heads."""
    parts = {"backbone (LlamaModel)": parameter_count(model.backbone)}
    heads = ("action_dim_scale", "action_dim_shift", "bin_head", "discrete_action_head")
    parts["action heads"] = sum(
        parameter.numel()
        for name, parameter in model.named_parameters()
        if name.split(".")[0] in heads
    )
    parts["input embeddings"] = parameter_count(model) - sum(parts.values())
    parts["total"] = parameter_count(model)
    return parts


# Here, not in the package's __init__: workflow_scripts.dm.settings is imported when
# Snakemake parses the workflow and must not pull in torch.
AutoModel.register(DecisionModelConfig, DecisionModel, exist_ok=True)
