"""DM training speed before and after the shared training core, side by side in one run.

The redesign moved the DM trainer's frame (schedule, checkpoints, logging, divergence
check) into ``workflow_scripts/training.py`` and added per-step work: one TensorBoard
scalar set per step, a stop-signal check, and the loss read back every step. This times
both trainers on the same data, shape and flags:

- before: ``python -m workflow_scripts.train_dm`` from commit ``--before`` (default
  8a1be95, the last commit before the redesign), exported with ``git archive``;
- after: the same from the current working tree.

Each run trains the CPU demo's DM shape (width 128, 2 layers, 128 positions, batch 16)
for ``--steps`` steps on three small real-env datasets, with TensorBoard on, and reads
the steps/s of its log lines after the first (import, data checks and the first
interval's warm-up left out). One untimed run each first, then ``--rounds`` rounds
alternating which goes first. Both write bit-identical weights (checked at the end).

    python benchmarks/trainer_core_overhead.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.datasets import write_env_dataset  # noqa: E402

SHAPE = {
    "hidden-size": 128, "num-layers": 2, "num-heads": 4, "intermediate-size": 256,
    "sequence-length": 128, "value-embedding-dim": 4, "batch-size": 16, "warmup-steps": 100,
    "learning-rate": 1e-3, "min-learning-rate": 1e-4, "weight-decay": 0.1, "adam-beta1": 0.9,
    "adam-beta2": 0.95, "grad-clip": 1.0, "seed": 0, "keep-checkpoints": 2,
    "num-workers": 0, "eval-slide-transitions": 16,
}  # fmt: skip
STEPS_PER_SECOND = re.compile(r"([\d.]+) steps/s")


def export_commit(commit: str, destination: Path) -> Path:
    """The package of ``commit`` in ``destination`` (``git archive``, no worktree left)."""
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "workflow_scripts"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination


def command(tree: Path, old: bool, datasets: list[Path], run: Path, args) -> list[str]:
    steps_flag = "--total-steps" if old else "--max-steps"
    flags = [f"--{key}={value}" for key, value in SHAPE.items()]
    if not old:
        flags.append("--stop-before-time-limit=0")
    return [
        sys.executable, "-m", "workflow_scripts.train_dm", "--datasets", *map(str, datasets),
        "--output", str(run / "final"), "--checkpoint-dir", str(run / "checkpoints"),
        "--tensorboard-dir", str(run / "tb"), f"{steps_flag}={args.steps}",
        f"--checkpoint-every={args.steps}", f"--log-every={args.steps // 5}",
        f"--threads={args.threads}", *flags,
    ]  # fmt: skip


def steps_per_second(tree: Path, old: bool, datasets: list[Path], scratch: Path, args) -> float:
    """Median steps/s over the log intervals after the first, of one fresh run."""
    run = scratch / ("old" if old else "new")
    shutil.rmtree(run, ignore_errors=True)
    environ = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(
        command(tree, old, datasets, run, args),
        cwd=tree,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    rates = [float(rate) for rate in STEPS_PER_SECOND.findall(result.stdout)]
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="8a1be95", help="commit of the old trainer")
    parser.add_argument("--steps", type=int, default=500, help="steps per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        before = export_commit(args.before, scratch / "before")
        datasets = [
            write_env_dataset(scratch / f"{env}.h5", env, 3000, seed=index, policy=policy)
            for index, (env, policy) in enumerate(
                [("CartPole-v1", "heuristic"), ("Pendulum-v1", "heuristic"),
                 ("FrozenLake-v1", "random")]
            )
        ]  # fmt: skip
        trees = {"before": (before, True), "after": (REPO, False)}
        for tree, old in trees.values():  # untimed: caches
            steps_per_second(tree, old, datasets, scratch, args)
        rates = {name: [] for name in trees}
        for round_index in range(args.rounds):
            order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
            for name in order:
                rates[name].append(steps_per_second(*trees[name], datasets, scratch, args))
                print(f"round {round_index + 1} {name}: {rates[name][-1]:.2f} steps/s", flush=True)

        from safetensors.torch import load_file

        old = load_file(scratch / "old" / "final" / "model.safetensors")
        new = load_file(scratch / "new" / "final" / "model.safetensors")
        identical = old.keys() == new.keys() and all((old[k] == new[k]).all() for k in old)

    before_rate = statistics.median(rates["before"])
    after_rate = statistics.median(rates["after"])
    print(f"\nDM demo shape, {args.steps} steps, {args.threads} thread(s), TensorBoard on")
    print(f"before ({args.before}): {before_rate:.2f} steps/s (median of {args.rounds})")
    print(f"after (working tree): {after_rate:.2f} steps/s")
    print(f"after / before: {after_rate / before_rate:.3f}")
    print(f"final weights bit-identical: {identical}")


if __name__ == "__main__":
    main()
