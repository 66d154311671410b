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

Both ways run in alternating rounds, so a change in the machine's load falls on both.

Usage (about 3 minutes on 2 cores):

    python benchmarks/evaluation_jobs.py --seeds 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The tests' input builders (baseline and dataset files with chosen scores).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def per_seed_jobs(folder: Path, inputs: tuple, seeds: list[str]) -> tuple[float, list[dict]]:
    """One ``evaluate`` process per env and seed: total wall time and the records."""
    model_dir, baselines, datasets = inputs
    wall, records = 0.0, []
    for env_id, baseline, dataset in zip(ENVS, baselines, datasets, strict=True):
        for seed in seeds:
            output = folder / "eval" / env_id / f"seed{seed}.json"
            wall += run(
                [sys.executable, "-m", "workflow_scripts.evaluate", "--model", "dm",
                 "--model-dir", str(model_dir), "--device", "cpu", "--env", env_id,
                 "--seed", seed, "--baseline", str(baseline), "--dataset", str(dataset),
                 "--output", str(output)]
            )  # fmt: skip
            records.append(json.loads(output.read_text()))
    return wall, records


def snapshot_job(folder: Path, inputs: tuple, seeds: list[str]) -> tuple[float, list[dict]]:
    """One ``evaluate_snapshot`` process for every env and seed: wall time and records."""
    model_dir, baselines, datasets = inputs
    output_dir = folder / "curves" / "step600"
    wall = run(
        [sys.executable, "-m", "workflow_scripts.evaluate_snapshot", "--model", "dm",
         "--model-dir", str(model_dir), "--device", "cpu", "--envs", *ENVS,
         "--seeds", *seeds, "--baselines", *map(str, baselines),
         "--datasets", *map(str, datasets), "--output-dir", str(output_dir)]
    )  # fmt: skip
    return wall, [json.loads(path.read_text()) for path in output_dir.rglob("*.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="episodes per env")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both")
    args = parser.parse_args()
    seeds = [str(seed) for seed in range(1000, 1000 + args.seeds)]
    totals = {
        "per seed (evaluate)": [0.0, 0.0, 0],
        "per snapshot (evaluate_snapshot)": [0.0, 0.0, 0],
    }
    jobs = {"per seed (evaluate)": len(ENVS) * len(seeds), "per snapshot (evaluate_snapshot)": 1}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder)
        # Alternating rounds, so a change in the machine's load falls on both ways alike.
        for round_index in range(args.rounds):
            for name, way in (
                ("per seed (evaluate)", per_seed_jobs),
                ("per snapshot (evaluate_snapshot)", snapshot_job),
            ):
                wall, records = way(folder, inputs, seeds)
                episode_time = sum(record["episode_time_s"] for record in records)
                totals[name][0] += wall
                totals[name][1] += episode_time
                totals[name][2] += len(records)
                print(f"round {round_index + 1}, {name}: {wall:.1f} s wall, "
                      f"{episode_time:.1f} s of episodes")  # fmt: skip

    episodes = len(ENVS) * len(seeds)
    print(f"\n{episodes} episodes a round ({len(ENVS)} envs x {len(seeds)} seeds), "
          f"{args.rounds} rounds, demo-shaped DM, CPU, 1 thread")  # fmt: skip
    print(f"{'':34s} {'jobs':>5s} {'wall s':>8s} {'episodes s':>11s} {'fixed s':>8s} "
          f"{'fixed/episodes':>15s} {'fixed s/episode':>16s}")  # fmt: skip
    fixed_per_episode = {}
    for name, (wall, episode_time, n_records) in totals.items():
        fixed = wall - episode_time
        fixed_per_episode[name] = fixed / n_records
        print(f"{name:34s} {jobs[name]:5d} {wall:8.1f} {episode_time:11.1f} {fixed:8.1f} "
              f"{fixed / episode_time:15.2f} {fixed / n_records:16.2f}")  # fmt: skip
    per_seed, per_snapshot = fixed_per_episode.values()
    print(f"fixed cost per episode, one snapshot job / one job per seed: "
          f"{per_snapshot / per_seed:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
