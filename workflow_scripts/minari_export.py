"""Export one env's expert dataset as a Minari dataset (Minari 0.5.0-0.5.3, HDF5 backend).

    python -m workflow_scripts.minari_export --dataset results/datasets/CartPole-v1.h5 \\
        --baseline results/baselines/CartPole-v1.json --output results/minari/CartPole-v1

The output folder is a Minari datasets root holding one dataset, whose id is
``gym-llm-bench/<env id, lowercased>/expert-v0``::

    results/minari/CartPole-v1/                  MINARI_DATASETS_PATH for this env
        gym-llm-bench/namespace_metadata.json
        gym-llm-bench/cartpole-v1/namespace_metadata.json
        gym-llm-bench/cartpole-v1/expert-v0/data/main_data.hdf5, metadata.json

so ``MINARI_DATASETS_PATH=results/minari/CartPole-v1`` makes
``minari.load_dataset("gym-llm-bench/cartpole-v1/expert-v0")`` load it. Minari 0.5.3 is the
newest that installs beside numpy<2 (0.5.4 needs numpy>=2); what it writes, Minari 0.5.4
and later read (docs/datasets.md).

Episodes are the flat file split after each done row (terminated or truncated); each
has its ``T`` rows' actions, rewards and flags and ``T + 1`` observations, the last being
the file's final observation (dataset format 2; a format-1 file is refused with how to
rebuild it). An episode cut by the end of an env copy's rows is kept as a truncated
episode, as the flat file marks it; rows after the last done row (none in a collected
file) are left out and counted. Values are exported as stored (observations float32 or
int64), never recomputed.

Metadata: the env spec as the collector built the env (with its episode cap) and the
packages it needs; ``ref_min_score``, the random policy's mean return
(``results/baselines/{env}.json``) and ``ref_max_score``, the expert's sampled mean return
over the dataset's complete episodes, so ``minari.get_normalized_score`` is the table's
normalization divided by 100; the expert's algorithm and sampling; the code version (git
commit, else the package version); author, description, and the source files with their
hashes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from workflow_scripts.dataset import (
    DatasetError,
    DatasetInfo,
    check_training_dataset,
    require_final_observations,
)
from workflow_scripts.provenance import code_commit, package_versions, sha256_file

NAMESPACE = "gym-llm-bench"
DATASET_NAME = "expert"
DATASET_VERSION = 0
# The Minari releases this export is written for: 0.5's API and layout; 0.5.4 needs numpy>=2.
MINARI_VERSIONS = ">=0.5.0,<0.5.4"
DEFAULT_AUTHOR = "gym-llm-bench contributors"
NAMESPACE_DESCRIPTION = (
    "Expert datasets of gym-llm-bench, the reference implementation of 'Evidence from 20 "
    "Gymnasium environments' (Kulak, 2026): one namespace per Gymnasium env id."
)
PACKAGE = "gym-llm-bench"
# Rows of the flat file per batch of episodes handed to Minari (episodes are never split).
BATCH_ROWS = 1 << 16


def minari_dataset_id(env_id: str) -> str:
    """The Minari id of an env's dataset: ``gym-llm-bench/cartpole-v1/expert-v0``
    (namespace ``gym-llm-bench/<env id, lowercased, with its version>``, as Minari's own
    ``mujoco/halfcheetah/expert-v0``)."""
    return f"{NAMESPACE}/{env_id.lower()}/{DATASET_NAME}-v{DATASET_VERSION}"


def code_version() -> str:
    """``git <commit>`` of this package's checkout (``+uncommitted`` when tracked files of
    the package differ from it), else ``gym-llm-bench <version>`` (an installed package, no
    checkout)."""
    state = code_commit(Path(__file__).resolve().parent)
    if state["commit"] is None:
        return f"{PACKAGE} {importlib.metadata.version(PACKAGE)}"
    return f"git {state['commit']}" + (" +uncommitted" if state["dirty"] else "")


def env_spec(info: DatasetInfo) -> gym.envs.registration.EnvSpec:
    """The registered spec of the dataset's env with the episode cap it was collected with."""
    cap = int(info.attrs.get("max_episode_steps", -1))
    return dataclasses.replace(gym.spec(info.env_id), max_episode_steps=cap if cap > 0 else None)


def env_requirements(spec: gym.envs.registration.EnvSpec) -> list[str]:
    """The pip requirements that rebuild the env as collected (Minari warns on load when the
    installed ones differ): gymnasium, and mujoco or box2d for their envs."""
    versions = package_versions()
    packages = ["gymnasium"]
    entry_point = str(spec.entry_point)
    packages += [name for name in ("mujoco", "box2d") if f"gymnasium.envs.{name}" in entry_point]
    return [f"{name}=={versions[name]}" for name in packages if name in versions]


def episode_batches(info: DatasetInfo, batch_rows: int = BATCH_ROWS) -> Iterator[list[dict]]:
    """The file's episodes in row order, each a dict of Minari's episode fields
    (``observations`` with T + 1 rows, ``actions``, ``rewards``, ``terminations``,
    ``truncations``), a batch of about ``batch_rows`` rows at a time (one read per array
    and batch)."""
    with h5py.File(info.path, "r") as handle:
        ends = handle["final_observation_rows"][:]
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        first = 0
        while first < len(ends):
            # Whole episodes only; at least one, however long.
            last = int(np.searchsorted(ends, starts[first] + batch_rows, side="left"))
            last = max(last, first + 1)
            rows = slice(int(starts[first]), int(ends[last - 1]) + 1)
            arrays = {name: handle[name][rows] for name in _FLAT_TO_MINARI}
            finals = handle["final_observations"][first:last]
            batch = []
            for k in range(first, last):
                local = slice(int(starts[k]) - rows.start, int(ends[k]) + 1 - rows.start)
                episode = {key: arrays[name][local] for name, key in _FLAT_TO_MINARI.items()}
                episode["observations"] = np.concatenate(
                    [episode["observations"], finals[k - first][None]]
                )
                batch.append(episode)
            yield batch
            first = last


# Flat-file arrays and the names Minari episodes give them.
_FLAT_TO_MINARI = {
    "observations": "observations",
    "actions": "actions",
    "rewards": "rewards",
    "terminated": "terminations",
    "truncated": "truncations",
}


def read_baseline(baseline: Path, info: DatasetInfo) -> dict[str, Any]:
    """The random baseline of the dataset's env, on the same episode cap; else DatasetError."""
    document = json.loads(Path(baseline).read_text())
    if document.get("env_id") != info.env_id:
        raise DatasetError(
            baseline, f"is the baseline of {document.get('env_id')!r}, not {info.env_id!r}"
        )
    baseline_cap = document.get("max_episode_steps") or -1
    dataset_cap = int(info.attrs.get("max_episode_steps", -1))
    if baseline_cap != dataset_cap:
        raise DatasetError(
            baseline,
            f"random episodes capped at {baseline_cap} steps, the dataset's at {dataset_cap}: "
            "the reference scores would measure different tasks",
        )
    return document


@contextlib.contextmanager
def minari_root(path: Path) -> Iterator[None]:
    """``MINARI_DATASETS_PATH`` set to ``path`` inside the block (Minari 0.5 reads it on
    every call), restored after it."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def import_minari():
    """The ``minari`` module, or an ImportError that says how to install the one it needs."""
    from packaging.specifiers import SpecifierSet

    install = "pip install -e '.[minari]' (or pip install 'minari[hdf5]==0.5.3')"
    try:
        import minari
    except ImportError as error:
        raise ImportError(
            f"the Minari export needs minari{MINARI_VERSIONS}: {install}; {error}"
        ) from None
    if minari.__version__ not in SpecifierSet(MINARI_VERSIONS):
        raise ImportError(
            f"the Minari export is written for minari{MINARI_VERSIONS}, not the installed "
            f"{minari.__version__}: {install}"
        )
    return minari


def export_minari(
    dataset: str | os.PathLike,
    baseline: str | os.PathLike,
    output: str | os.PathLike,
    author: str = DEFAULT_AUTHOR,
    author_email: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Write ``dataset`` (a format-2 expert dataset) as a Minari datasets root at ``output``.

    Built in a temporary folder beside ``output``, loaded back with ``minari.load_dataset``
    and counted, then moved into place (an older ``output`` is replaced). Raises
    :class:`DatasetError` naming the file for an invalid or format-1 dataset or a baseline
    of another env or episode cap. Returns the export's summary.
    """
    minari = import_minari()
    from minari.data_collector import EpisodeBuffer

    dataset, baseline, output = Path(dataset), Path(baseline), Path(output)
    info = require_final_observations(check_training_dataset(dataset))
    random = read_baseline(baseline, info)
    dataset_id = minari_dataset_id(info.env_id)
    spec = env_spec(info)
    version = code_version()
    expert = f"{info.attrs.get('expert_algo', 'unknown')} expert"
    sampling = info.attrs.get("expert_sampling", "unknown sampling")
    description = (
        f"{info.n_transitions} transitions of {info.env_id} from a trained {expert} "
        f"({sampling}), collected by gym-llm-bench, the reference implementation of "
        "'Evidence from 20 Gymnasium environments' (Kulak, 2026). Episodes end at each "
        "terminated or truncated step; an episode cut by the end of a collector env "
        "copy's rows is marked truncated. ref_min_score: the uniform random policy's mean "
        "return; ref_max_score: the expert's mean return while sampling this dataset."
    )
    # Beside Minari's own keys: where every number came from.
    provenance = {
        "code_version": version,
        "source_dataset": str(dataset),
        "source_dataset_sha256": sha256_file(dataset),
        "source_format_version": info.format_version,
        "source_baseline": str(baseline),
        "source_baseline_sha256": sha256_file(baseline),
        "ref_min_score_from": f"random policy, mean over {random['n_episodes']} episodes "
        f"(seed {random['seed']})",
        "ref_max_score_from": f"expert while collecting, mean over the dataset's "
        f"{info.n_episodes} complete episodes",
        # Minari's key for the episodes behind the reference scores (it writes 100 by
        # default): the random baseline's; the expert's count is in ref_max_score_from.
        "num_episodes_average_score": int(random["n_episodes"]),
        "expert_sha256": str(info.attrs.get("expert_sha256", "")),
        "dataset_seed": info.seed,
        "versions": {**package_versions(), "minari": minari.__version__},
        "exported_by": "workflow_scripts.minari_export",
    }
    partial = output.with_name(f".{output.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    n_episodes = n_steps = 0
    with minari_root(partial.resolve()):  # Minari 0.5.3 mishandles a relative root
        # Namespaces first, described (Minari would create them empty); the same text in
        # every env's root, so roots merge by copying.
        from minari.namespace import create_namespace

        create_namespace(NAMESPACE, description=NAMESPACE_DESCRIPTION)
        create_namespace(
            dataset_id.rsplit("/", 1)[0], description=f"gym-llm-bench datasets of {info.env_id}"
        )
        # The public constructor writes Minari's own metadata (spaces, env spec, scores,
        # version); episodes follow in batches so memory stays bounded.
        created = minari.create_dataset_from_buffers(
            dataset_id,
            [],
            env=spec,
            eval_env=spec,
            algorithm_name=f"{expert} ({sampling})",
            author=author,
            author_email=author_email,
            code_permalink=version,
            observation_space=info.observation_space,
            action_space=info.action_space,
            ref_min_score=float(random["mean_return"]),
            ref_max_score=info.expert_mean_return,
            description=description,
            data_format="hdf5",
            requirements=env_requirements(spec),
        )
        for batch in episode_batches(info, batch_rows):
            created.storage.update_episodes([EpisodeBuffer(**episode) for episode in batch])
            n_episodes += len(batch)
            n_steps += sum(len(episode["rewards"]) for episode in batch)
        created.storage.update_metadata(provenance)
        loaded = minari.load_dataset(dataset_id)
        if (loaded.total_episodes, loaded.total_steps) != (n_episodes, n_steps):
            raise RuntimeError(
                f"{partial}: Minari reads {loaded.total_episodes} episodes and "
                f"{loaded.total_steps} steps back, {n_episodes} and {n_steps} were written"
            )
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
    return {
        "env_id": info.env_id,
        "dataset_id": dataset_id,
        "output": str(output),
        "n_episodes": n_episodes,
        "n_steps": n_steps,
        "rows_left_out": info.n_transitions - n_steps,
        "ref_min_score": float(random["mean_return"]),
        "ref_max_score": info.expert_mean_return,
        "code_version": version,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, type=Path, help="results/datasets/{env}.h5")
    parser.add_argument("--baseline", required=True, type=Path, help="results/baselines/{env}.json")
    parser.add_argument("--output", required=True, type=Path, help="results/minari/{env}")
    parser.add_argument("--author", default=DEFAULT_AUTHOR)
    parser.add_argument("--author-email", default=None)
    args = parser.parse_args(argv)
    try:
        summary = export_minari(
            args.dataset, args.baseline, args.output, args.author, args.author_email
        )
    except (DatasetError, ImportError) as error:
        print(f"[minari_export] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(
        f"{summary['env_id']}: {summary['n_episodes']} episodes, {summary['n_steps']} steps "
        f"({summary['rows_left_out']} rows after the last episode end left out), "
        f"ref_min_score {summary['ref_min_score']:.3f}, ref_max_score "
        f"{summary['ref_max_score']:.3f} -> {summary['output']}\n"
        f"load with: MINARI_DATASETS_PATH={summary['output']} python -c "
        f"\"import minari; print(minari.load_dataset('{summary['dataset_id']}'))\"",
        flush=True,
    )


if __name__ == "__main__":
    main()
