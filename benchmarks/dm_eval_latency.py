"""Evaluation step latency of the Decision Model policy: KV cache vs full recompute.

Benchmark (c) of docs/benchmarks.md ("Decision Model"). A paper-sized model (hidden 512,
4 layers, 1024 positions = 512 transitions) acting on a HalfCheetah-v4-shaped stream
(17 observations, 6 actions), in one run:

* per-step latency once the context is full (449-512 transitions, 897-1023 positions),
  cached (two new tokens through the KV cache) vs uncached (the whole context recomputed);
* the cached policy's mean latency over a long episode, re-prefills at each slide included
  (the slide is the config's eval_slide_transitions, 64 at paper settings).

Usage (2 threads, about 2 minutes):

    python benchmarks/dm_eval_latency.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gymnasium import spaces

from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.modeling_dm import DecisionModel
from workflow_scripts.dm.policy import DecisionModelPolicy


def stream(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=17).astype(np.float32) for _ in range(n)]


def step_times(policy: DecisionModelPolicy, observations: list[np.ndarray]) -> list[float]:
    times = []
    reward = done = None
    for observation in observations:
        start = time.perf_counter()
        policy.act(observation, reward, done)
        times.append(time.perf_counter() - start)
        reward, done = 1.0, False
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slide", type=int, default=64)
    parser.add_argument("--uncached-steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = DecisionModelConfig(
        envs=[
            env_entry("HalfCheetah-v4", spaces.Box(-np.inf, np.inf, (17,)), spaces.Box(-1, 1, (6,)))
        ],
        eval_slide_transitions=args.slide,
    )
    model = DecisionModel(config).eval()
    limit = config.context_transitions
    observations = stream(limit + 2 * limit)
    print(
        f"{args.threads} thread(s); context {limit} transitions ({config.sequence_length} positions), slide {args.slide}"
    )

    cached = DecisionModelPolicy(model, "HalfCheetah-v4", use_cache=True)
    times = step_times(cached, observations)
    # Steps whose context holds more than limit - slide transitions: a full context.
    full = [t for i, t in enumerate(times) if i >= limit and (i - limit) % args.slide != 0]
    refills = [t for i, t in enumerate(times) if i >= limit and (i - limit) % args.slide == 0]
    amortised = float(np.mean(times[limit:]))

    uncached = DecisionModelPolicy(model, "HalfCheetah-v4", use_cache=False)
    # Fill the context without timing, then time full recomputes at a full context.
    step_times(uncached, observations[: limit - args.uncached_steps])
    recompute = step_times(uncached, observations[limit - args.uncached_steps : limit])

    step_cached = float(np.median(full))
    step_uncached = float(np.median(recompute))
    print(f"cached step, full context (median of {len(full)}):   {step_cached * 1000:7.2f} ms")
    print(
        f"re-prefill step at a slide (median of {len(refills)}):  {float(np.median(refills)) * 1000:7.2f} ms"
    )
    print(
        f"full recompute step, {limit - 1}-{limit} transitions (median of {len(recompute)}): {step_uncached * 1000:7.2f} ms"
    )
    print(
        f"cached, mean over {len(times) - limit} steps past the context (slides included): {amortised * 1000:7.2f} ms"
    )
    print(f"speed-up per step at a full context = {step_uncached / step_cached:.1f}x")
    print(f"speed-up amortised over slides      = {step_uncached / amortised:.1f}x")


if __name__ == "__main__":
    main()
