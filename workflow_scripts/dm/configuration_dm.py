"""The Decision Model's configuration: its architecture and the envs it serves.

``config.json`` in a DM folder is this class saved by ``save_pretrained``; its
``model_type`` (:data:`MODEL_TYPE`) is registered with ``AutoConfig`` when this module is
imported, so ``AutoConfig.from_pretrained(folder)`` reads a DM folder. The key names of
the config's ``dm`` section that are fields here are in
:data:`workflow_scripts.dm.settings.ARCHITECTURE_KEYS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from transformers import AutoConfig, LlamaConfig, PretrainedConfig

from workflow_scripts.dm.settings import architecture_problems
from workflow_scripts.spaces import space_from_dict, space_to_dict

# The name in config.json; folders saved since the first DM carry it, so it never changes.
MODEL_TYPE = "decision_model"


class DecisionModelConfig(PretrainedConfig):
    """Architecture and the envs the model serves (their ids, spaces and order).

    ``envs`` is a list of ``{"env_id", "observation_space", "action_space"}`` with the spaces
    as :func:`workflow_scripts.spaces.space_to_dict` dicts; an env's index in the list is the
    row of its env embedding, so the list is part of the architecture.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        envs: list[dict[str, Any]] | None = None,
        hidden_size: int = 512,
        num_layers: int = 4,
        num_heads: int = 8,
        intermediate_size: int = 1088,
        sequence_length: int = 1024,
        value_embedding_dim: int = 4,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        eval_slide_transitions: int | None = None,
        **kwargs,
    ):
        self.envs = [dict(env) for env in (envs or [])]
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.sequence_length = sequence_length
        self.value_embedding_dim = value_embedding_dim
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        # Evaluation: how many of the oldest transitions leave the context at once when it is
        # full (the KV cache is rebuilt then); None = an eighth of the context.
        self.eval_slide_transitions = eval_slide_transitions
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        if self.envs:
            self.check()

    def check(self) -> None:
        """Raise ValueError for an inconsistent configuration (named field)."""
        problems = architecture_problems(vars(self))
        if problems:
            raise ValueError(problems[0])
        if self.sequence_length < 2:
            raise ValueError(
                f"sequence_length {self.sequence_length} cannot hold one transition (2 tokens)"
            )
        ids = [env["env_id"] for env in self.envs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate env ids in {ids}")
        for env in self.envs:
            action_space = space_from_dict(env["action_space"])
            if isinstance(action_space, spaces.Box) and not (
                np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()
            ):
                raise ValueError(f"{env['env_id']}: continuous action space must be bounded")
            for key in ("observation_space", "action_space"):
                space = space_from_dict(env[key])
                if not isinstance(space, (spaces.Box, spaces.Discrete)):
                    raise ValueError(f"{env['env_id']}: unsupported {key} {space}")

    @property
    def env_ids(self) -> list[str]:
        return [env["env_id"] for env in self.envs]

    @property
    def context_transitions(self) -> int:
        """Transitions in one training window (two tokens each)."""
        return self.sequence_length // 2

    def env_index(self, env_id: str) -> int:
        """Row of ``env_id`` in the env list; a clear error for an env the model never saw."""
        if env_id not in self.env_ids:
            raise KeyError(f"this Decision Model was trained on {self.env_ids}, not on {env_id!r}")
        return self.env_ids.index(env_id)

    def backbone_config(self) -> LlamaConfig:
        """The Llama decoder configuration (no token embedding table: inputs_embeds only)."""
        return LlamaConfig(
            vocab_size=1,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            max_position_embeddings=self.sequence_length,
            rope_theta=self.rope_theta,
            rms_norm_eps=self.rms_norm_eps,
            initializer_range=self.initializer_range,
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=False,
            attn_implementation="sdpa",
        )


def env_entry(env_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> dict:
    """One ``DecisionModelConfig.envs`` item."""
    return {
        "env_id": env_id,
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
    }


AutoConfig.register(MODEL_TYPE, DecisionModelConfig, exist_ok=True)
