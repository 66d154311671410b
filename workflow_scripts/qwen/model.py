"""The causal LM: Qwen3 from a hub id or local folder, or a tiny random Qwen3 for CPU runs.

Also the training loss module, which runs the decoder over the whole window but applies
the language-model head only at the positions that predict an assistant token. Logits
over Qwen3's 151,936-token vocabulary for a 16,384-token window would take 10 GB in fp32;
the assistant tokens are a small fraction of the window (measured in
``benchmarks/qwen_eval_cache.py``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel, Qwen3Config, Qwen3ForCausalLM

from workflow_scripts.qwen.data import IGNORE_INDEX

# Qwen3's embedding table size (the tokenizer's 151,669 ids, padded); the random model
# uses it too so that its checkpoints have the real model's layout.
QWEN3_VOCAB_SIZE = 151936
RANDOM_INIT_KEYS = {
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
}


class ModelSourceError(ValueError):
    """The model source is missing, ambiguous or unusable."""


def build_random_qwen3(
    random_init: dict[str, int], max_position_embeddings: int, seed: int
) -> Qwen3ForCausalLM:
    """A randomly initialised Qwen3 of the given shape (tied embeddings, real vocab size)."""
    unknown = set(random_init) - RANDOM_INIT_KEYS
    missing = RANDOM_INIT_KEYS - set(random_init)
    if unknown or missing:
        raise ModelSourceError(
            f"random_init: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
        )
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        **{key: int(value) for key, value in random_init.items()},
    )
    config._attn_implementation = "sdpa"
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    torch.random.set_rng_state(generator_state)
    return model


def load_causal_lm(
    model_name_or_path: str | os.PathLike | None,
    random_init: dict[str, int] | None,
    n_tokenizer_ids: int,
    max_seq_length: int,
    seed: int,
    torch_dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """The model to fine-tune: pretrained weights, or a random Qwen3 when ``random_init``.

    ``model_name_or_path`` is a hub id (``Qwen/Qwen3-1.7B``, needs the hub or its cache)
    or a local folder with ``config.json`` and weights. Training keeps fp32 master
    weights (``torch_dtype``) and runs the forward pass under bf16 autocast on GPUs.
    """
    if (model_name_or_path is None) == (random_init is None):
        raise ModelSourceError("give exactly one of model_name_or_path and random_init")
    if random_init is not None:
        model = build_random_qwen3(random_init, max_seq_length, seed)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(model_name_or_path), dtype=torch_dtype, attn_implementation="sdpa"
            )
        except (OSError, ValueError) as error:
            raise ModelSourceError(
                f"cannot load a model from {model_name_or_path}: {error}"
            ) from None
    embedding_rows = model.get_input_embeddings().weight.shape[0]
    if embedding_rows < n_tokenizer_ids:
        raise ModelSourceError(
            f"{model_name_or_path or 'random_init'}: {embedding_rows} embeddings for a tokenizer "
            f"with {n_tokenizer_ids} ids"
        )
    if model.config.max_position_embeddings < max_seq_length:
        raise ModelSourceError(
            f"{model_name_or_path or 'random_init'}: max_position_embeddings "
            f"{model.config.max_position_embeddings} < max_seq_length {max_seq_length}"
        )
    # Training never needs the KV cache; the policy asks for it explicitly.
    model.config.use_cache = False
    return model


class AssistantTokenLoss(nn.Module):
    """Summed next-token cross-entropy over supervised positions, and how many there are.

    Returning the sum (not the mean) lets the trainer divide by the number of supervised
    tokens in the whole global batch, so every assistant token weighs the same whatever
    micro-batch or process it lands in. ``full_logits=True`` computes the head over every
    position instead (same loss, more memory), for the benchmark.
    """

    def __init__(self, causal_lm: PreTrainedModel, full_logits: bool = False):
        super().__init__()
        self.causal_lm = causal_lm
        self.full_logits = full_logits

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.causal_lm.model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        # Position t predicts token t+1.
        targets = labels[:, 1:]
        head = self.causal_lm.get_output_embeddings()
        if self.full_logits:
            logits = head(hidden[:, :-1]).float()
            loss_sum = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
        else:
            supervised = targets != IGNORE_INDEX
            logits = head(hidden[:, :-1][supervised]).float()
            loss_sum = F.cross_entropy(logits, targets[supervised], reduction="sum")
        n_tokens = (targets != IGNORE_INDEX).sum()
        return loss_sum, n_tokens


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def model_summary(model: PreTrainedModel) -> dict[str, Any]:
    """A few facts about the model for logs and provenance."""
    config = model.config
    return {
        "model_type": config.model_type,
        "n_parameters": count_parameters(model),
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
    }
