"""Nearest-neighbour lookups at Humanoid-v4's shape: build time, single-query lookups per
second and index memory of several libraries side by side, extrapolated to 10M rows.

The "Retrieval" section of docs/benchmarks.md. Humanoid-v4 is the paper's largest env
(376 float observations, 10M rows: 15 GB of float32 keys, several copies per method), too
large to measure on this 24 GB machine, so each size of ``--sizes`` (default 100k, 300k, 1M rows) is measured in one run
and the figures are extrapolated to 10M with the scaling measured across the sizes: a
least-squares line in N for the work that touches every row once (exact scans, building
and loading the project's index), a power law in N for trees and approximate methods.

Data: synthetic rows of the right shape, not real Humanoid observations (no Humanoid expert
here). Real MuJoCo observations lie near a low-dimensional set of trajectories, so rows are
made the same way: 24-dimensional random walks (1000-step episodes) mapped through a fixed
random tanh layer to 376 values plus small noise, then standardized as the index stores
them. Two sets of queries: **near**, dataset rows moved by half the typical step between
consecutive rows (states close to ones the expert visited: a policy that imitates well),
and **new**, points of fresh trajectories (states the dataset does not cover: a policy that
has drifted). Exact scans cost the same for both; trees and approximate methods do not, and
for them "recall" (the exact nearest point found) and "dist" (mean distance of the point
found over the exact nearest distance) say what the speed buys.

Methods (all single-threaded, as an evaluation job runs; one query per call, as a policy
asks):

* faiss ``IndexFlatL2``: exact scan, what the project uses (build = ``add`` of the keys);
* scikit-learn ``NearestNeighbors(algorithm="brute")``: exact scan through BLAS;
* scikit-learn ``KDTree`` and ``BallTree``: exact trees (leaf size 40);
* faiss ``IndexHNSWFlat`` (M=32, efSearch 64) and ``IndexIVFFlat`` (nlist = sqrt(N),
  nprobe 16, k-means on a sample of 40·nlist rows): approximate, with their recall@1
  against the exact answer;
* ``build_index``: the project's whole index build on a dataset file of that shape
  (Humanoid-v4's spaces; statistics, duplicate grouping, standardized keys, write), and
  ``load_index`` (reading the keys into faiss).

Memory is each index's own size (faiss: serialized bytes; scikit-learn: pickled bytes).

Usage (about 15 minutes at the default sizes on this machine; a library that is not
installed is reported and skipped)::

    python benchmarks/retrieval_lookup.py
    python benchmarks/retrieval_lookup.py --sizes 100000 300000 --queries 50
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DIM = 376
ACTION_DIM = 17
LATENT_DIM = 24
EPISODE_STEPS = 1000
TARGET_ROWS = 10_000_000
# Methods whose cost is one pass over every row: extrapolated linearly.
LINEAR_METHODS = ("faiss IndexFlatL2 (exact, chosen)", "sklearn brute (exact)")


def trajectory_rows(n_rows: int, seed: int) -> np.ndarray:
    """``n_rows`` Humanoid-shaped rows from 1000-step latent random walks (see docstring)."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(0).standard_normal((LATENT_DIM, DIM)).astype(np.float32)
    rows = np.empty((n_rows, DIM), dtype=np.float32)
    for start in range(0, n_rows, EPISODE_STEPS):
        steps = min(EPISODE_STEPS, n_rows - start)
        origin = rng.standard_normal(LATENT_DIM).astype(np.float32)
        walk = np.cumsum(0.1 * rng.standard_normal((steps, LATENT_DIM)), axis=0, dtype=np.float32)
        latent = origin + walk
        rows[start : start + steps] = np.tanh(latent @ weights / 5) + 0.01 * rng.standard_normal(
            (steps, DIM)
        ).astype(np.float32)
    return rows


def near_queries(keys: np.ndarray, n_queries: int, rng: np.random.Generator) -> np.ndarray:
    """Dataset rows moved by half the typical distance between consecutive rows of a
    trajectory: states close to ones the expert visited."""
    step = float(
        np.median(np.linalg.norm(keys[1:EPISODE_STEPS] - keys[: EPISODE_STEPS - 1], axis=1))
    )
    picked = keys[rng.choice(len(keys), n_queries, replace=False)]
    noise = rng.standard_normal(picked.shape).astype(np.float32)
    noise *= 0.5 * step / np.linalg.norm(noise, axis=1, keepdims=True)
    return np.ascontiguousarray(picked + noise, dtype=np.float32)


def standardize(rows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((rows - mean) / std, dtype=np.float32)


def per_query_rate(
    lookup: Callable[[np.ndarray], int], queries: np.ndarray, min_seconds: float
) -> tuple[float, list]:
    """Lookups per second, one call per query (after one untimed call), going through the
    queries again until ``min_seconds`` have passed, so fast methods are timed long enough
    to average out a busy machine; and the first pass's answers."""
    lookup(queries[0])
    answers, calls = [], 0
    start = time.perf_counter()
    while True:
        for query in queries:
            answer = lookup(query)
            if calls < len(queries):
                answers.append(answer)
            calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls / elapsed, answers


def timed(build: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    built = build()
    return built, time.perf_counter() - start


def faiss_methods(keys: np.ndarray, sample_rng: np.random.Generator):
    import faiss

    def flat():
        index = faiss.IndexFlatL2(DIM)
        index.add(keys)
        return index

    def hnsw():
        index = faiss.IndexHNSWFlat(DIM, 32)
        index.hnsw.efSearch = 64
        index.add(keys)
        return index

    def ivf():
        nlist = int(np.sqrt(len(keys)))
        quantizer = faiss.IndexFlatL2(DIM)
        index = faiss.IndexIVFFlat(quantizer, DIM, nlist)
        sample = keys[sample_rng.choice(len(keys), min(len(keys), 40 * nlist), replace=False)]
        index.train(sample)
        index.add(keys)
        index.nprobe = 16
        return index

    def search(index):
        return lambda query: int(index.search(query[None], 1)[1][0, 0])

    def size(index):
        return int(faiss.serialize_index(index).nbytes)

    return [
        ("faiss IndexFlatL2 (exact, chosen)", flat, search, size),
        ("faiss IndexHNSWFlat M=32 (approx.)", hnsw, search, size),
        ("faiss IndexIVFFlat nprobe 16 (approx.)", ivf, search, size),
    ]


def sklearn_methods(keys: np.ndarray):
    from sklearn.neighbors import BallTree, KDTree, NearestNeighbors

    def brute():
        return NearestNeighbors(n_neighbors=1, algorithm="brute").fit(keys)

    def brute_search(model):
        return lambda query: int(model.kneighbors(query[None], return_distance=False)[0, 0])

    def tree_search(tree):
        return lambda query: int(tree.query(query[None], k=1, return_distance=False)[0, 0])

    def size(model):
        return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))

    return [
        ("sklearn brute (exact)", brute, brute_search, size),
        ("sklearn KDTree (exact)", lambda: KDTree(keys), tree_search, size),
        ("sklearn BallTree (exact)", lambda: BallTree(keys), tree_search, size),
    ]


def project_build(
    rows: np.ndarray, folder: Path, queries: np.ndarray, min_seconds: float
) -> dict[str, float]:
    """build_index on a Humanoid-v4-shaped dataset file, load_index, and the policy's lookup."""
    from workflow_scripts.dataset import DatasetWriter
    from workflow_scripts.envs import make_env
    from workflow_scripts.retrieval.index import build_index, load_index

    env = make_env("Humanoid-v4")
    dataset = folder / "Humanoid-v4.h5"
    n_rows = len(rows)
    rng = np.random.default_rng(1)
    attrs = {"env_id": "Humanoid-v4", "n_episodes": 1, "expert_mean_return": 1.0}
    attrs |= {"expert_std_return": 0.0, "seed": 0}
    with DatasetWriter(dataset, n_rows, env.observation_space, env.action_space, attrs) as writer:
        for start in range(0, n_rows, 1 << 17):
            block = rows[start : start + (1 << 17)]
            count = len(block)
            writer.append(
                block,
                rng.uniform(-0.4, 0.4, (count, ACTION_DIM)).astype(np.float32),
                np.ones(count, np.float32),
                np.zeros(count, bool),
                np.zeros(count, bool),
            )
    env.close()
    output = folder / "retrieval" / "Humanoid-v4.h5"
    _, build_s = timed(lambda: build_index(dataset, output))
    index, load_s = timed(lambda: load_index(output, "Humanoid-v4"))
    # Raw observations: the index standardizes them with its own mean and std.
    rate, _ = per_query_rate(index.nearest, queries, min_seconds)
    index.close()
    size = output.stat().st_size
    dataset.unlink()
    output.unlink()
    return {
        "build_s": build_s,
        "load_s": load_s,
        "rate": rate,
        "lookup_s": 1 / rate,
        "file_bytes": size,
    }


def extrapolate(sizes: list[int], values: list[float], linear: bool) -> float:
    """The value at TARGET_ROWS: a least-squares line a + b·N for work that touches every
    row once (exact scans, the project's build and load: the fixed part stays fixed),
    otherwise a power law a·N^b fitted in log-log space (trees, graphs, inverted lists)."""
    if linear:
        slope, intercept = np.polyfit(sizes, values, 1)
        return float(intercept + slope * TARGET_ROWS)
    slope, intercept = np.polyfit(np.log(sizes), np.log(values), 1)
    return float(np.exp(intercept + slope * np.log(TARGET_ROWS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50, help="distinct queries per set")
    parser.add_argument(
        "--min-seconds", type=float, default=3.0, help="time each method's lookups this long"
    )
    parser.add_argument(
        "--tree-max-rows", type=int, default=1_000_000, help="skip the trees above this size"
    )
    parser.add_argument("--skip-project", action="store_true", help="skip build_index/load_index")
    args = parser.parse_args()

    try:
        import faiss

        faiss.omp_set_num_threads(1)
        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = None
    try:
        import sklearn

        sklearn_version = sklearn.__version__
    except ImportError:
        sklearn_version = None
    print(
        f"faiss-cpu {faiss_version or 'not installed'}, scikit-learn "
        f"{sklearn_version or 'not installed'}, numpy {np.__version__}; 1 thread; "
        f"{DIM} values a row; {args.queries} single queries per method"
    )

    results: dict[str, dict[int, dict[str, float]]] = {}
    project: dict[int, dict[str, float]] = {}
    for n_rows in args.sizes:
        rows = trajectory_rows(n_rows, seed=n_rows)
        mean, std = rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64)
        keys = standardize(rows, mean, std)
        query_sets = {
            "near": near_queries(keys, args.queries, np.random.default_rng(7)),
            "new": standardize(trajectory_rows(args.queries, seed=12345), mean, std),
        }
        methods = []
        if faiss_version:
            methods += faiss_methods(keys, np.random.default_rng(0))
        if sklearn_version:
            methods += sklearn_methods(keys)
        exact: dict[str, np.ndarray] = {}
        print(f"\n{n_rows:,} rows x {DIM} ({keys.nbytes / 1e9:.2f} GB of float32 keys)")
        print(f"  {'method':38s} {'build s':>8s} {'MB':>6s} | {'near: lookups/s':>15s} "
              f"{'x flat':>7s} {'recall':>6s} | {'new: lookups/s':>14s} {'x flat':>7s} "
              f"{'recall':>6s} {'dist':>6s}")  # fmt: skip
        for name, build, search, size in methods:
            if "Tree" in name and n_rows > args.tree_max_rows:
                continue
            model, build_s = timed(build)
            entry = {"build_s": build_s, "bytes": size(model)}
            for set_name, queries in query_sets.items():
                rate, answers = per_query_rate(search(model), queries, args.min_seconds)
                answers = np.asarray(answers)
                exact.setdefault(set_name, answers)  # the first method is faiss's exact scan
                found = np.linalg.norm(keys[answers] - queries, axis=1)
                best = np.linalg.norm(keys[exact[set_name]] - queries, axis=1)
                entry[f"{set_name}_rate"] = rate
                entry[f"{set_name}_recall"] = float(np.mean(answers == exact[set_name]))
                entry[f"{set_name}_dist"] = float(np.mean(found / np.maximum(best, 1e-12)))
            results.setdefault(name, {})[n_rows] = entry
            first = next(iter(results.values()))[n_rows]
            print(
                f"  {name:38s} {build_s:8.2f} {entry['bytes'] / 1e6:6.0f} | "
                f"{entry['near_rate']:15.1f} {entry['near_rate'] / first['near_rate']:7.2f} "
                f"{entry['near_recall']:6.2f} | {entry['new_rate']:14.1f} "
                f"{entry['new_rate'] / first['new_rate']:7.2f} {entry['new_recall']:6.2f} "
                f"{entry['new_dist']:6.3f}",
                flush=True,
            )
            del model
        if not args.skip_project and faiss_version:
            raw_queries = query_sets["new"] * std.astype(np.float32) + mean.astype(np.float32)
            with tempfile.TemporaryDirectory() as folder:
                project[n_rows] = project_build(rows, Path(folder), raw_queries, args.min_seconds)
            entry = project[n_rows]
            print(
                f"  {'build_index (whole build), file MB':38s} {entry['build_s']:8.2f} "
                f"{entry['file_bytes'] / 1e6:6.0f} | {'':15s} {'':7s} {'':6s} | "
                f"{entry['rate']:14.1f} (load_index: {entry['load_s']:.2f} s)",
                flush=True,
            )
        del keys, rows

    if len(args.sizes) < 2:
        return
    print(
        f"\nExtrapolated to {TARGET_ROWS:,} rows from {args.sizes}: exact scans and the "
        "project's build/load as a + b*N (seconds per lookup, seconds of build), the others "
        "as a*N^b:"
    )
    print(f"  {'method':38s} {'fit':>5s} {'build s':>8s} {'new: lookups/s':>14s} "
          f"{'1000 steps s':>12s} {'near: lookups/s':>15s} {'GB':>6s}")  # fmt: skip
    for name, by_size in results.items():
        sizes = sorted(by_size)
        if len(sizes) < 2:
            continue
        linear = name in LINEAR_METHODS

        def at_target(key, sizes=sizes, by_size=by_size, linear=linear):
            return extrapolate(sizes, [by_size[n][key] for n in sizes], linear)

        def rate_at_target(key, sizes=sizes, by_size=by_size, linear=linear):
            seconds = extrapolate(sizes, [1 / by_size[n][key] for n in sizes], linear)
            return 1 / seconds

        new_rate = rate_at_target("new_rate")
        print(
            f"  {name:38s} {'a+bN' if linear else 'aN^b':>5s} {at_target('build_s'):8.0f} "
            f"{new_rate:14.2f} {EPISODE_STEPS / new_rate:12.0f} "
            f"{rate_at_target('near_rate'):15.2f} {at_target('bytes') / 1e9:6.1f}"
        )
    if len(project) >= 2:
        sizes = sorted(project)
        build_10m, load_10m, lookup_10m, bytes_10m = (
            extrapolate(sizes, [project[n][key] for n in sizes], linear=True)
            for key in ("build_s", "load_s", "lookup_s", "file_bytes")
        )
        print(
            f"  {'build_index, then the policy':38s} {'a+bN':>5s} {build_10m:8.0f} "
            f"{1 / lookup_10m:14.2f} {EPISODE_STEPS * lookup_10m:12.0f} {'':15s} "
            f"{bytes_10m / 1e9:6.1f}\n"
            f"  {'load_index (keys into faiss)':38s} {'a+bN':>5s} {load_10m:8.0f}"
        )


if __name__ == "__main__":
    main()
