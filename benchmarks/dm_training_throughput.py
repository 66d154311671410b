"""Training tokens/s of the Decision Model vs a plain-PyTorch decoder of the same shape.

Benchmark (a) of docs/benchmarks.md ("Decision Model"). In one run, alternating the
variants round by round (the machine is shared, so interleaving keeps them comparable),
at 256 and 1024 positions with the same tokens per step:

* ``plain``: a nanoGPT-style Llama decoder written here in plain PyTorch (RMSNorm, one
  fused QKV matmul, rotary, ``F.scaled_dot_product_attention(is_causal=True)``, SwiGLU)
  with the DM's embeddings, heads and loss around it;
* ``dm``: our model as trained (``transformers.LlamaModel`` fed ``inputs_embeds``, no mask,
  no position ids);
* ``dm+position_ids``: the same model called with explicit ``position_ids``, as a first
  draft did (suspected of forcing a materialized mask; with transformers 4.57.6 it
  measures the same as ``dm``, see docs/benchmarks.md).

The variants are timed one after the other, so the ratio needs an otherwise idle machine.

A step is forward, loss, backward and AdamW. Usage (2 threads, about 3 minutes):

    python benchmarks/dm_training_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.layout import FLAG_CONTINUING
from workflow_scripts.dm.modeling_dm import DecisionModel, parameter_count

PAPER = dict(hidden_size=512, num_layers=4, num_heads=8, intermediate_size=1088)


class PlainBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.RMSNorm(hidden, eps=eps)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = nn.RMSNorm(hidden, eps=eps)
        self.gate = nn.Linear(hidden, intermediate, bias=False)
        self.up = nn.Linear(hidden, intermediate, bias=False)
        self.down = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, steps, hidden = x.shape
        q, k, v = (
            self.qkv(self.attention_norm(x))
            .view(batch, steps, 3, self.heads, hidden // self.heads)
            .permute(2, 0, 3, 1, 4)
        )

        def rotate(z: torch.Tensor) -> torch.Tensor:
            first, second = z.chunk(2, dim=-1)
            return z * cos + torch.cat((-second, first), dim=-1) * sin

        attended = F.scaled_dot_product_attention(rotate(q), rotate(k), v, is_causal=True)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, steps, hidden))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class PlainDecoder(nn.Module):
    """Same parameter shapes as the LlamaModel backbone (QKV fused), plain PyTorch."""

    def __init__(self, config: DecisionModelConfig):
        super().__init__()
        hidden, heads = config.hidden_size, config.num_heads
        self.blocks = nn.ModuleList(
            PlainBlock(hidden, heads, config.intermediate_size, config.rms_norm_eps)
            for _ in range(config.num_layers)
        )
        self.norm = nn.RMSNorm(hidden, eps=config.rms_norm_eps)
        head_dim = hidden // heads
        inverse = 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(config.sequence_length).float(), inverse)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, inputs_embeds: torch.Tensor, **_) -> BaseModelOutputWithPast:
        x = inputs_embeds
        steps = x.shape[1]
        for block in self.blocks:
            x = block(x, self.cos[:steps], self.sin[:steps])
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x))


class WithPositionIds(nn.Module):
    """Calls the LlamaModel with explicit position ids (the slow path being measured)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs_embeds: torch.Tensor, **kwargs) -> BaseModelOutputWithPast:
        positions = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)[None]
        return self.backbone(inputs_embeds=inputs_embeds, position_ids=positions, **kwargs)


def benchmark_envs() -> list[dict]:
    """A mix like the paper's: discrete and continuous actions, small and large observations."""
    return [
        env_entry("CartPole-v1", spaces.Box(-5, 5, (4,)), spaces.Discrete(2)),
        env_entry("HalfCheetah-v4", spaces.Box(-10, 10, (17,)), spaces.Box(-1, 1, (6,))),
        env_entry("Hopper-v4", spaces.Box(-10, 10, (11,)), spaces.Box(-1, 1, (3,))),
        env_entry("Taxi-v3", spaces.Discrete(500), spaces.Discrete(6)),
    ]


def random_batch(model: DecisionModel, batch: int, steps: int) -> dict[str, torch.Tensor]:
    layout = model.layout
    generator = torch.Generator().manual_seed(0)
    return {
        "env_index": torch.arange(batch) % len(layout),
        "observations": torch.randn(batch, steps, layout.max_obs_dim, generator=generator),
        "discrete_observations": torch.randint(0, 2, (batch, steps), generator=generator),
        "prev_rewards": torch.randn(batch, steps, generator=generator),
        "prev_flags": torch.full((batch, steps), FLAG_CONTINUING),
        "actions": torch.rand(batch, steps, layout.max_act_dim, generator=generator) * 2 - 1,
        "discrete_actions": torch.randint(0, 2, (batch, steps), generator=generator),
    }


def make_variant(name: str, positions: int) -> DecisionModel:
    torch.manual_seed(0)
    config = DecisionModelConfig(envs=benchmark_envs(), sequence_length=positions, **PAPER)
    model = DecisionModel(config)
    if name == "plain":
        model.backbone = PlainDecoder(config)
    elif name == "dm+position_ids":
        model.backbone = WithPositionIds(model.backbone)
    return model


def time_steps(model: DecisionModel, batch: dict, optimizer, repeats: int) -> float:
    """Seconds per training step (forward, loss, backward, AdamW), best of ``repeats``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens-per-step", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ("plain", "dm", "dm+position_ids")
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.tokens_per_step} tokens/step"
    )
    for positions in (256, 1024):
        batch_size = max(1, args.tokens_per_step // positions)
        models = {name: make_variant(name, positions) for name in names}
        counts = {name: parameter_count(model) for name, model in models.items()}
        optimizers = {
            name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()
        }
        batch = random_batch(models["dm"], batch_size, positions // 2)
        for name in names:  # warm-up: allocator, kernels
            time_steps(models[name], batch, optimizers[name], 1)
        seconds = {name: [] for name in names}
        for _ in range(args.rounds):
            for name in names:
                seconds[name].append(time_steps(models[name], batch, optimizers[name], 2))
        tokens = batch_size * positions
        rates = {name: tokens / statistics.median(values) for name, values in seconds.items()}
        print(f"\n{positions} positions, batch {batch_size}:")
        for name in names:
            print(
                f"  {name:>16}: {rates[name]:8.0f} tokens/s  ({counts[name]:,} parameters, "
                f"{statistics.median(seconds[name]):.3f} s/step)"
            )
        print(f"  ratio dm / plain             = {rates['dm'] / rates['plain']:.2f}")
        print(f"  ratio dm+position_ids / plain = {rates['dm+position_ids'] / rates['plain']:.2f}")


if __name__ == "__main__":
    main()
