"""Rollout throughput: the expert-dataset collector against raw stepping of the same envs.

For each env, three ways of stepping the same ``make_vector_env(env, n_envs)``:

- raw:        pre-drawn uniform random actions, no policy, nothing stored;
- collector:  the real ``collect_dataset`` path with ``ExpertSampler``, writing a real
              HDF5 dataset into a temporary folder (what the ``rollout`` rule runs);
- naive:      SB3's ``model.predict(obs, deterministic=False)`` then ``envs.step``,
              nothing stored (for context: the obvious collector).

Other processes share this machine, so the three are measured back to back in rounds
(order reversed every other round), each ratio is taken between measurements of the same
round, and the printed figure is the median over rounds. Rates count transitions per CPU
second of this process (``time.process_time``), which other processes disturb far less
than wall time; wall-clock ratios are printed beside them. Building and resetting the envs
is left out (a 10M-transition run amortizes it): raw and naive are timed from the first
step, the collector from its first policy call to its return, so its rate includes the
bookkeeping, every HDF5 write and the file's finalization. The collector runs at least one
episode's length (it refuses a dataset without a complete episode), so on HalfCheetah-v4
it runs longer than raw and naive. One measurement is one partial block of rows, so its
per-row HDF5 write cost is higher than in a full run's longer blocks: the ratio errs low.

With ``--before COMMIT``, a fourth way joins the rounds: the collector of that commit
(its ``workflow_scripts`` exported with ``git archive`` and imported under another package
name), called with the same sampler; the table then gives both collectors' ratios to raw
stepping, measured side by side, and the rows they write are checked to be identical.

Before the rounds, the collector's sampler is checked against SB3's ``predict`` on a few
states (same action distribution, within sampling noise).

Experts come from ``results/experts/{env}/`` when the workflow has trained them, otherwise
a tiny one is trained once into ``--expert-cache`` with the config's algorithm and
hyperparameters: a few thousand steps suffice for a throughput figure, as the network
(hence inference cost) has the size of a fully trained expert's; CartPole-v1 gets 100k PPO
steps so that its episodes last as long as a real expert's (resets cost more than steps).
That first training takes minutes and is not part of the benchmark's own run time.

    python benchmarks/rollout_throughput.py
    python benchmarks/rollout_throughput.py --envs CartPole-v1 --n-envs 32 --rounds 3
    python benchmarks/rollout_throughput.py --before 06c40c8
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from workflow_scripts.config import expert_recipe  # noqa: E402
from workflow_scripts.envs import episode_cap  # noqa: E402
from workflow_scripts.experts.layout import ExpertFiles  # noqa: E402
from workflow_scripts.experts.load import load_expert  # noqa: E402
from workflow_scripts.experts.sampler import ExpertSampler  # noqa: E402
from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams  # noqa: E402
from workflow_scripts.rollout import collect_dataset, make_vector_env  # noqa: E402
from workflow_scripts.train_expert import train_expert  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Tiny experts for the benchmark only: the network, hence the inference cost, does not depend
# on training length; CartPole-v1 needs a real expert's long episodes (resets cost more).
TINY_EXPERT_TIMESTEPS = {"CartPole-v1": 100_000}
DEFAULT_TINY_TIMESTEPS = 3_000
N_ACTION_BATCHES = 64  # pre-drawn random action batches cycled through by the raw loop


def find_or_train_expert(env_id: str, config: dict, cache: Path) -> Path:
    """The workflow's expert folder if it exists, else a tiny cached one (trained on first use)."""
    workflow_expert = REPO / "results" / "experts" / env_id
    if (workflow_expert / "expert.json").exists():
        return workflow_expert
    expert_dir = cache / env_id
    if (expert_dir / "expert.json").exists():
        return expert_dir
    recipe = expert_recipe(config, env_id)
    n_timesteps = TINY_EXPERT_TIMESTEPS.get(env_id, DEFAULT_TINY_TIMESTEPS)
    print(
        f"{env_id}: no trained expert; training a tiny {recipe['algo']} ({n_timesteps} steps) into {expert_dir}",
        flush=True,
    )
    document = resolve_hyperparams(
        env_id,
        recipe["algo"],
        n_timesteps,
        source=recipe["hyperparams_source"],
        overrides=recipe["overrides"],
        max_episode_steps=recipe["max_episode_steps"],
    )
    hyperparams_path = cache / f"{env_id}.yml"
    cache.mkdir(parents=True, exist_ok=True)
    write_hyperparams(document, hyperparams_path)
    train_expert(
        hyperparams_path, expert_dir, seed=0, checkpoint_every=10**9, eval_episodes=1, device="cpu"
    )
    return expert_dir


class Stopwatch:
    """CPU time of this process and wall time since :meth:`start`."""

    def start(self) -> Stopwatch:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def rates(self, n_transitions: int) -> dict[str, float]:
        """Transitions per CPU second and per wall second since the start."""
        return {
            "cpu": n_transitions / (time.process_time() - self.cpu),
            "wall": n_transitions / (time.perf_counter() - self.wall),
        }


class TimedFromFirstCall:
    """Wraps the sampler; the stopwatch starts at its first call (envs built and reset)."""

    def __init__(self, act):
        self.act = act
        self.stopwatch: Stopwatch | None = None

    def __call__(self, observations):
        if self.stopwatch is None:
            self.stopwatch = Stopwatch().start()
        return self.act(observations)


def measure_raw(env_id: str, n_envs: int, n_steps: int, cap: int | None, seed: int) -> dict:
    """Stepping the vector env with pre-drawn random actions: no policy, nothing stored."""
    envs = make_vector_env(env_id, n_envs, cap)
    envs.action_space.seed(seed)
    action_batches = [envs.action_space.sample() for _ in range(N_ACTION_BATCHES)]
    envs.reset(seed=seed)
    stopwatch = Stopwatch().start()
    for step in range(n_steps):
        envs.step(action_batches[step % N_ACTION_BATCHES])
    envs.close()
    return stopwatch.rates(n_envs * n_steps)


def measure_naive(
    env_id: str, model, vecnormalize, n_envs: int, n_steps: int, cap: int | None, seed: int
) -> dict:
    """SB3's ``predict(deterministic=False)`` on every batch, then a step; nothing stored."""
    envs = make_vector_env(env_id, n_envs, cap)
    observations, _ = envs.reset(seed=seed)
    stopwatch = Stopwatch().start()
    for _ in range(n_steps):
        if vecnormalize is not None:
            observations = vecnormalize.normalize_obs(observations)
        actions, _ = model.predict(observations, deterministic=False)
        observations, *_ = envs.step(actions)
    envs.close()
    return stopwatch.rates(n_envs * n_steps)


def measure_collector(
    env_id: str,
    sampler,
    n_envs: int,
    n_steps: int,
    cap: int | None,
    seed: int,
    folder: Path,
    collect=collect_dataset,
    name: str = "collector",
) -> dict:
    """``collect`` (by default this tree's ``collect_dataset``) writing n_envs * n_steps rows:
    the policy, the bookkeeping, every HDF5 write and the file's finalization (timed from
    the first policy call). The file is kept as ``{name}-{env}.h5`` for the rows check."""
    output = folder / f"{name}-{env_id}.h5"
    timed = TimedFromFirstCall(sampler)
    collect(env_id, timed, output, n_envs * n_steps, n_envs, seed, cap, progress=False)
    return timed.stopwatch.rates(n_envs * n_steps)


def collector_of_commit(commit: str, folder: Path):
    """``collect_dataset`` of ``commit``: its ``workflow_scripts`` exported with ``git
    archive`` into ``folder`` as the package ``workflow_scripts_before``, imported."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "workflow_scripts"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "workflow_scripts_before"
    (folder / "workflow_scripts").rename(package)
    for source in package.rglob("*.py"):
        text = source.read_text()
        source.write_text(re.sub(r"\bworkflow_scripts\b", "workflow_scripts_before", text))
    sys.path.insert(0, str(folder))
    return importlib.import_module("workflow_scripts_before.rollout").collect_dataset


def same_rows(first: Path, second: Path) -> bool:
    """Whether two dataset files hold the same flat arrays (the transitions)."""
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b:
        names = ("observations", "actions", "rewards", "terminated", "truncated")
        return all(np.array_equal(a[name][:], b[name][:]) for name in names)


def check_sampling(sampler: ExpertSampler, model, env_id: str, cap: int | None, seed: int) -> str:
    """The collector's sampler against SB3's ``predict``: the same action distribution?

    Each of 8 states is repeated 4096 times; per state and action dimension, the means of
    the actions and of their squares must agree within sampling noise (|z| of a few).
    """
    envs = make_vector_env(env_id, 8, cap)
    observations, _ = envs.reset(seed=seed)
    for _ in range(20):  # states a little way into episodes, not only initial ones
        observations, *_ = envs.step(envs.action_space.sample())
    envs.close()
    repeats = 4096
    batch = np.repeat(observations, repeats, axis=0)
    predict_input = batch
    if sampler.vecnormalize is not None:
        predict_input = sampler.vecnormalize.normalize_obs(batch)
    ours = sampler(batch).reshape(len(observations), repeats, -1).astype(np.float64)
    sb3 = model.predict(predict_input, deterministic=False)[0]
    sb3 = sb3.reshape(len(observations), repeats, -1).astype(np.float64)
    z_scores = []
    for moment in (1, 2):
        ours_m, sb3_m = ours**moment, sb3**moment
        stderr = np.sqrt((ours_m.var(axis=1) + sb3_m.var(axis=1)) / repeats)
        varies = stderr > 0
        z_scores.append(np.abs(ours_m.mean(axis=1) - sb3_m.mean(axis=1))[varies] / stderr[varies])
    z_scores = np.concatenate(z_scores)
    path = sampler.head or "policy._predict"
    if not len(z_scores):
        return f"sampling path {path}: both deterministic on the checked states"
    return (
        f"sampling path {path} vs SB3 predict, 8 states x {repeats}: max |z| of action "
        f"means and second moments {z_scores.max():.1f} over {len(z_scores)} comparisons"
    )


def benchmark_env(env_id: str, args, config: dict) -> dict:
    """Interleaved rounds of raw / collector / naive on one env; per-round ratios."""
    cap = expert_recipe(config, env_id)["max_episode_steps"]
    expert_dir = find_or_train_expert(env_id, config, args.expert_cache)
    files = ExpertFiles(expert_dir, env_id)
    model, vecnormalize, summary = load_expert(files.model, files.summary)
    sampler = ExpertSampler(model, vecnormalize, seed=args.seed)
    probe = make_vector_env(env_id, 1, cap)
    episode_steps = episode_cap(probe.envs[0]) or 0
    probe.close()

    # Size each measurement to about --seconds of raw stepping; the collector refuses a
    # dataset without one complete episode, so it runs at least an episode's length.
    probe_rate = measure_raw(env_id, args.n_envs, 100, cap, args.seed)["wall"]
    n_steps = max(int(args.seconds * probe_rate / args.n_envs), 100)
    collector_steps = max(n_steps, episode_steps + 1)
    print(
        f"\n{env_id}: {summary['algo']} expert from {expert_dir}\n"
        f"  n_envs={args.n_envs}; vector steps per measurement: raw and naive {n_steps}, "
        f"collector {collector_steps} ({collector_steps * args.n_envs} transitions)\n"
        f"  {check_sampling(sampler, model, env_id, cap, args.seed)}",
        flush=True,
    )
    measure = {
        "raw": lambda: measure_raw(env_id, args.n_envs, n_steps, cap, args.seed),
        "collector": lambda: measure_collector(
            env_id, sampler, args.n_envs, collector_steps, cap, args.seed, args.workdir
        ),
        "naive": lambda: measure_naive(
            env_id, model, vecnormalize, args.n_envs, n_steps, cap, args.seed
        ),
    }
    if args.collect_before is not None:
        measure["before"] = lambda: measure_collector(
            env_id, sampler, args.n_envs, collector_steps, cap, args.seed, args.workdir,
            collect=args.collect_before, name="before",
        )  # fmt: skip
    rounds = []
    for round_index in range(args.rounds):
        order = ["raw", "collector", *(["before"] if "before" in measure else []), "naive"]
        if round_index % 2:
            order.reverse()
        rates = {name: measure[name]() for name in order}
        rounds.append(rates)
        print(
            f"  round {round_index + 1} ({' > '.join(order)}), transitions per CPU s: "
            + "  ".join(
                f"{name} {rates[name]['cpu']:,.0f}"
                + (f" ({rates[name]['cpu'] / rates['raw']['cpu']:.2f})" if name != "raw" else "")
                for name in order
            ),
            flush=True,
        )

    def median_ratio(name: str, clock: str) -> float:
        return statistics.median(r[name][clock] / r["raw"][clock] for r in rounds)

    collector_ratios = [r["collector"]["cpu"] / r["raw"]["cpu"] for r in rounds]
    before = {}
    if "before" in measure:
        # The same seed and sampler calls in both: the same transitions, or the comparison
        # (and the refactor) is void. The sampler's generator moves on between calls, so
        # both collectors run once more from a fresh one.
        for name, collect in (("collector", collect_dataset), ("before", args.collect_before)):
            fresh = ExpertSampler(model, vecnormalize, seed=args.seed)
            measure_collector(
                env_id, fresh, args.n_envs, collector_steps, cap, args.seed, args.workdir,
                collect=collect, name=f"{name}-check",
            )  # fmt: skip
        check = [args.workdir / f"{name}-check-{env_id}.h5" for name in ("collector", "before")]
        before = {
            "before_ratio": median_ratio("before", "cpu"),
            "after_over_before": statistics.median(
                r["collector"]["cpu"] / r["before"]["cpu"] for r in rounds
            ),
            "same_rows": same_rows(*check),
        }
    return {
        **before,
        "env_id": env_id,
        "algo": summary["algo"],
        "head": sampler.head or "policy._predict",
        "n_steps": n_steps,
        "collector_steps": collector_steps,
        **{
            f"{name}_rate": statistics.median(r[name]["cpu"] for r in rounds)
            for name in ("raw", "collector", "naive")
        },
        "collector_ratio": median_ratio("collector", "cpu"),
        "collector_ratio_range": (min(collector_ratios), max(collector_ratios)),
        "collector_ratio_wall": median_ratio("collector", "wall"),
        "naive_ratio": median_ratio("naive", "cpu"),
        "naive_ratio_wall": median_ratio("naive", "wall"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v4", "CartPole-v1"])
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument(
        "--n-envs", type=int, default=None, help="default: the config's dataset.n_envs"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved raw/collector/naive rounds per env"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="target length of one raw measurement"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--before",
        default=None,
        metavar="COMMIT",
        help="also time the collector of this commit, in the same rounds",
    )
    parser.add_argument(
        "--expert-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rollout_throughput_experts",
        help="where tiny experts are trained when results/experts/{env} has none",
    )
    args = parser.parse_args(argv)
    # Only the expert recipes and dataset.n_envs are read: no need to validate the models' sections.
    config = yaml.safe_load(args.config.read_text())
    if args.n_envs is None:
        args.n_envs = int(config["dataset"]["n_envs"])
    for env_id in args.envs:
        if env_id not in config["experts"]:
            parser.error(f"{env_id}: not in {args.config} experts")
    torch.set_num_threads(1)

    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="rollout_throughput_") as workdir:
        args.workdir = Path(workdir)
        args.collect_before = None
        if args.before is not None:
            (args.workdir / "before").mkdir()
            args.collect_before = collector_of_commit(args.before, args.workdir / "before")
        for env_id in args.envs:
            results.append(benchmark_env(env_id, args, config))
    n_transitions = int(config["dataset"]["n_transitions"])

    print(
        f"\nMedians over {args.rounds} interleaved rounds; n_envs={args.n_envs}, torch threads=1; "
        f"rates in transitions per CPU second of this process (wall-clock ratios beside); "
        f"load average {os.getloadavg()[0]:.1f}; {time.time() - started:.0f} s in all"
    )
    print(
        "| env | expert | raw | collector | **collector / raw** (min-max) | wall | "
        f"naive predict / raw | wall | {n_transitions / 1e6:g}M transitions |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        low, high = result["collector_ratio_range"]
        minutes = n_transitions / result["collector_rate"] / 60
        print(
            f"| {result['env_id']} | {result['algo']} | {result['raw_rate']:,.0f} "
            f"| {result['collector_rate']:,.0f} | **{result['collector_ratio']:.2f}** "
            f"({low:.2f}-{high:.2f}) | {result['collector_ratio_wall']:.2f} "
            f"| {result['naive_ratio']:.2f} | {result['naive_ratio_wall']:.2f} | {minutes:.0f} min |"
        )
    if args.before is not None:
        print(f"\nThe collector of {args.before} in the same rounds (CPU-time medians):")
        print("| env | before / raw | **after / raw** | after / before | same rows |")
        print("|---|---|---|---|---|")
        for result in results:
            print(
                f"| {result['env_id']} | {result['before_ratio']:.2f} "
                f"| **{result['collector_ratio']:.2f}** | {result['after_over_before']:.3f} "
                f"| {'yes' if result['same_rows'] else 'NO'} |"
            )


if __name__ == "__main__":
    main()
