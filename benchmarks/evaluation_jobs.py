"""Fixed cost of an evaluation job against its episodes: one job per seed vs one per snapshot.

Benchmark of docs/benchmarks.md ("Evaluation jobs"), both ways measured side by side in
one run, on the same model folder and inputs:

* **per seed** (``rule evaluate``, the final protocol): one ``python -m
  workflow_scripts.evaluate`` process per env and seed, as Snakemake starts them;
* **per snapshot** (``rule evaluate_snapshot``, the learning curves and the paper's
  protocol): one ``python -m workflow_scripts.evaluate_snapshot`` process for every env
  and seed of a snapshot.

For each, the fixed cost is the processes' wall time minus their episodes' time
(``episode_time_s`` in the records): interpreter start, imports, model loading, record
writing. The ratio fixed cost / episode time is what the curve design had to keep small.
Snakemake's own per-job cost (scheduling; on SLURM the queue wait and a parse of the
workflow per job) comes on top, per job, and is not measured here.

The model is a DM of the demo's shape (2 layers, width 128, 64-transition context) with
random weights, on Pendulum-v1 and MountainCar-v0, whose episodes have a fixed length
whatever the policy (200 steps): the episode time is the model's, not its skill's.

Usage (about 2 minutes on 2 cores):

    python benchmarks/evaluation_jobs.py --seeds 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENVS = ("Pendulum-v1", "MountainCar-v0")
DEMO_SHAPE = {
    "hidden_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "intermediate_size": 256,
    "sequence_length": 128,
    "eval_slide_transitions": 16,
}


def make_inputs(folder: Path) -> tuple[Path, list[Path], list[Path]]:
    """A random demo-shaped DM snapshot, and a baseline and dataset file per env."""
    from tests.eval.eval_inputs import write_baseline
    from tests.support.datasets import write_dataset
    from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
    from workflow_scripts.dm.modeling_dm import DecisionModel
    from workflow_scripts.envs import make_env

    entries = []
    for env_id in ENVS:
        env = make_env(env_id)
        entries.append(env_entry(env_id, env.observation_space, env.action_space))
        env.close()
    model_dir = folder / "snapshots" / "step600"
    DecisionModel(DecisionModelConfig(envs=entries, **DEMO_SHAPE)).save_pretrained(model_dir)
    progress = {"step": 600, "transitions_seen": 0, "tokens_seen": 0}
    progress |= {"train_hours": 0.0, "device_hours": 0.0}
    (model_dir / "training.json").write_text(json.dumps({"progress": progress}))
    baselines = [write_baseline(folder / f"{env}.json", env, -1000.0, 200) for env in ENVS]
    datasets = [write_dataset(folder / f"{env}.h5", env, -100.0) for env in ENVS]
    return model_dir, baselines, datasets


def run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="episodes per env")
    args = parser.parse_args()
    seeds = [str(seed) for seed in range(1000, 1000 + args.seeds)]
    python = [sys.executable, "-m"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_dir, baselines, datasets = make_inputs(folder)
        common = ["--model", "dm", "--model-dir", str(model_dir), "--device", "cpu"]

        per_seed_wall, per_seed_records = 0.0, []
        for env_id, baseline, dataset in zip(ENVS, baselines, datasets, strict=True):
            for seed in seeds:
                output = folder / "eval" / env_id / f"seed{seed}.json"
                per_seed_wall += run(
                    [*python, "workflow_scripts.evaluate", *common, "--env", env_id,
                     "--seed", seed, "--baseline", str(baseline), "--dataset", str(dataset),
                     "--output", str(output)]
                )  # fmt: skip
                per_seed_records.append(json.loads(output.read_text()))

        output_dir = folder / "curves" / "step600"
        snapshot_wall = run(
            [*python, "workflow_scripts.evaluate_snapshot", *common, "--envs", *ENVS,
             "--seeds", *seeds, "--baselines", *map(str, baselines),
             "--datasets", *map(str, datasets), "--output-dir", str(output_dir)]
        )  # fmt: skip
        snapshot_records = [json.loads(path.read_text()) for path in output_dir.rglob("*.json")]

    episodes = len(per_seed_records)
    rows = []
    for name, wall, records, jobs in (
        ("per seed (evaluate)", per_seed_wall, per_seed_records, episodes),
        ("per snapshot (evaluate_snapshot)", snapshot_wall, snapshot_records, 1),
    ):
        episode_time = sum(record["episode_time_s"] for record in records)
        fixed = wall - episode_time
        rows.append((name, jobs, wall, episode_time, fixed, fixed / episode_time))
    print(f"{episodes} episodes ({len(ENVS)} envs x {len(seeds)} seeds), demo-shaped DM, CPU")
    print(f"{'':34s} {'jobs':>5s} {'wall s':>8s} {'episodes s':>11s} {'fixed s':>8s} "
          f"{'fixed/episodes':>15s}")  # fmt: skip
    for name, jobs, wall, episode_time, fixed, ratio in rows:
        print(f"{name:34s} {jobs:5d} {wall:8.1f} {episode_time:11.1f} {fixed:8.1f} {ratio:15.2f}")
    print(f"fixed cost per episode: {rows[0][4] / episodes:.2f} s per seed job, "
          f"{rows[1][4] / episodes:.2f} s in one snapshot job; "
          f"whole evaluation {rows[0][2] / rows[1][2]:.2f}x faster per snapshot")  # fmt: skip


if __name__ == "__main__":
    main()
