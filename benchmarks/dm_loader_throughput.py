"""Window loader throughput vs what Decision Model training consumes.

Benchmark (b) of docs/benchmarks.md ("Decision Model"). Writes synthetic datasets with
the paper's largest and smallest spaces (Humanoid-v4-sized 376 observations / 17 actions,
HalfCheetah-v4 17 / 6, CartPole-v1 4 / Discrete 2, Taxi-v3 Discrete 500 / 6) to a
temporary folder, then in one run measures:

* loader windows/s at paper settings (512 transitions a window, batch 24), with 0 and 1
  worker processes;
* training consumption on this CPU: windows/s of full DM training steps at paper settings
  (forward, backward, AdamW), measured on a smaller batch of 1024-position windows;

and prints their ratio (target ≥ 3) and the projected need at 8 GPUs for a range of
per-GPU step times. Usage (2 threads, about 2 minutes):

    python benchmarks/dm_loader_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from workflow_scripts.dataset import DatasetWriter, read_info
from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.data import WindowBatches, make_loader
from workflow_scripts.dm.modeling_dm import DecisionModel

BENCHMARK_ENVS = {
    "Humanoid-v4": (spaces.Box(-np.inf, np.inf, (376,), np.float64), spaces.Box(-0.4, 0.4, (17,))),
    "HalfCheetah-v4": (spaces.Box(-np.inf, np.inf, (17,), np.float64), spaces.Box(-1, 1, (6,))),
    "CartPole-v1": (spaces.Box(-5, 5, (4,)), spaces.Discrete(2)),
    "Taxi-v3": (spaces.Discrete(500), spaces.Discrete(6)),
}


def write_dataset(path: Path, env_id: str, n_rows: int, seed: int) -> Path:
    observation_space, action_space = BENCHMARK_ENVS[env_id]
    rng = np.random.default_rng(seed)
    attrs = {
        "env_id": env_id,
        "n_episodes": n_rows // 1000,
        "expert_mean_return": 1.0,
        "expert_std_return": 0.0,
        "seed": seed,
    }
    with DatasetWriter(path, n_rows, observation_space, action_space, attrs) as writer:
        for start in range(0, n_rows, 50_000):
            rows = min(50_000, n_rows - start)
            if isinstance(observation_space, spaces.Discrete):
                observations = rng.integers(observation_space.n, size=rows)
            else:
                observations = rng.normal(size=(rows, *observation_space.shape)).astype(np.float32)
            if isinstance(action_space, spaces.Discrete):
                actions = rng.integers(action_space.n, size=rows)
            else:
                actions = rng.uniform(
                    action_space.low, action_space.high, (rows, *action_space.shape)
                )
            done = rng.random(rows) < 0.001
            writer.append(observations, actions, rng.normal(size=rows), done, np.zeros(rows, bool))
    return path


def loader_rate(batches: WindowBatches, workers: int, n_steps: int) -> float:
    """Windows/s delivered by the DataLoader (after its first batch: worker start-up excluded)."""
    loader = iter(make_loader(batches, 0, n_steps + 1, num_workers=workers))
    next(loader)
    start = time.perf_counter()
    for _ in range(n_steps):
        next(loader)
    return n_steps * batches.batch_size / (time.perf_counter() - start)


def training_rate(config: DecisionModelConfig, batches: WindowBatches, n_steps: int) -> float:
    """Windows/s consumed by full training steps on this CPU."""
    torch.manual_seed(0)
    model = DecisionModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for step in range(n_steps + 1):
        batch = batches[step]
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return batches.batch_size / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per synthetic dataset")
    parser.add_argument("--loader-steps", type=int, default=40)
    parser.add_argument(
        "--train-batch", type=int, default=4, help="windows per timed training step"
    )
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument(
        "--folder", default=None, help="keep the datasets here (default: a temp dir)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.folder or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for seed, env_id in enumerate(BENCHMARK_ENVS):
            path = folder / f"{env_id}.h5"
            if not path.exists():
                write_dataset(path, env_id, args.rows, seed)
            paths.append(path)
        infos = [read_info(path) for path in paths]
        config = DecisionModelConfig(
            envs=[env_entry(i.env_id, i.observation_space, i.action_space) for i in infos]
        )  # paper settings: 1024 positions = 512 transitions a window
        size_mb = sum(path.stat().st_size for path in paths) / 1e6
        print(
            f"{len(paths)} datasets x {args.rows:,} rows ({size_mb:,.0f} MB), {args.threads} thread(s)"
        )

        paper_batches = WindowBatches(infos, config, batch_size=24, seed=0)
        rates = {}
        for workers in (0, 1):
            rates[workers] = loader_rate(paper_batches, workers, args.loader_steps)
            print(
                f"loader, {workers} worker(s), batch 24 x 512 transitions: {rates[workers]:,.0f} windows/s"
            )
        small_batches = WindowBatches(infos, config, batch_size=args.train_batch, seed=1)
        consumed = training_rate(config, small_batches, args.train_steps)
        print(f"training consumes (DM paper settings, CPU): {consumed:.2f} windows/s")
        print(f"ratio loader (0 workers, in-process) / training = {rates[0] / consumed:,.0f}")
        print(f"ratio loader (1 worker) / training             = {rates[1] / consumed:,.0f}")
        print("projected need at 8 GPUs x 24 windows a step:")
        for step_seconds in (0.05, 0.1, 0.2):
            need = 8 * 24 / step_seconds
            per_rank = need / 8
            workers = int(np.ceil(per_rank / rates[0]))
            print(
                f"  {step_seconds * 1000:.0f} ms/step: {need:,.0f} windows/s in all, {per_rank:,.0f} per GPU "
                f"process -> {workers} worker(s) per process at this CPU's single-process rate"
            )


if __name__ == "__main__":
    main()
