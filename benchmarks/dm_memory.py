"""Peak memory of the Decision Model's loader + one training step at paper settings, on CPU.

Benchmark (d) of docs/benchmarks.md ("Decision Model"). Paper settings: hidden 512, 4
layers, 8 heads, MLP 1088, batch 24 windows of 1024 positions (512 transitions). Each
scenario runs in a fresh process: a DataLoader with one worker feeds one full training
step (forward, loss, backward, AdamW, whose state is allocated on its first step); the
process's peak resident memory (and its worker's) is reported.

* ``mixed``: windows from four envs in the paper's range (Humanoid-v4-, HalfCheetah-v4-,
  CartPole-v1- and Taxi-v3-shaped synthetic data);
* ``humanoid``: every window from the Humanoid-shaped file (376 observations, 17 action
  dimensions: the largest inputs and the most 1024-way action heads), the worst case.

Usage (2 threads, about 3 minutes; datasets from dm_loader_throughput.py's writer):

    python benchmarks/dm_memory.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from dm_loader_throughput import BENCHMARK_ENVS, write_dataset  # noqa: E402

from workflow_scripts.dataset import read_info  # noqa: E402
from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry  # noqa: E402
from workflow_scripts.dm.data import WindowBatches, make_loader  # noqa: E402
from workflow_scripts.dm.modeling_dm import DecisionModel, parameter_count  # noqa: E402


def run_scenario(folder: Path, scenario: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    infos = [read_info(folder / f"{env_id}.h5") for env_id in BENCHMARK_ENVS]
    config = DecisionModelConfig(
        envs=[env_entry(i.env_id, i.observation_space, i.action_space) for i in infos]
    )
    readers = infos if scenario == "mixed" else [infos[0]]
    batches = WindowBatches(readers, config, batch_size=24, seed=0)
    torch.manual_seed(0)
    model = DecisionModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = make_loader(batches, 0, 1, num_workers=1)
    start = time.perf_counter()
    for batch in loader:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    del loader
    return {
        "scenario": scenario,
        "parameters": parameter_count(model),
        "step_seconds": round(seconds, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", default=None, help="datasets folder (default: a temp dir)")
    parser.add_argument("--scenario", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(run_scenario(Path(args.folder), args.scenario, args.threads)))
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.folder or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        for seed, env_id in enumerate(BENCHMARK_ENVS):
            if not (folder / f"{env_id}.h5").exists():
                write_dataset(folder / f"{env_id}.h5", env_id, args.rows, seed)
        print(f"paper settings, batch 24 x 1024 positions, {args.threads} thread(s)")
        for scenario in ("mixed", "humanoid"):
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--scenario",
                    scenario,
                    "--folder",
                    str(folder),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(output.strip().splitlines()[-1])
            print(
                f"  {scenario:>8}: peak RSS {result['peak_rss_mb']:,.0f} MB (training process), "
                f"{result['worker_peak_rss_mb']:,.0f} MB (loader worker); one step {result['step_seconds']} s; "
                f"{result['parameters']:,} parameters"
            )


if __name__ == "__main__":
    main()
