"""Fetch a pretrained model from the Hugging Face Hub into a local folder, once, before training.

The ``fetch_qwen`` rule runs this on the machine Snakemake runs on (``localrule``: a
login node, where the network is), so the GPU job and the evaluations load the weights
from ``results/models/qwen/base/`` with the hub switched off (``HF_HUB_OFFLINE=1``)
instead of 8 ranks downloading at once on a compute node that may have no internet.

The download goes to a hidden partial folder that a rerun continues
(``snapshot_download`` skips the files it already has), and is moved into place when
whole: ``config.json``, the tokenizer files and every ``*.safetensors`` shard. ``FETCHED.json``
records the repository, the revision asked for and the files with their sizes.

    python -m workflow_scripts.fetch_model --model Qwen/Qwen3-1.7B --output results/models/qwen/base
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from workflow_scripts.provenance import package_versions

# Weights, configs and tokenizer files; not the repository's other formats (.bin, .gguf).
PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "LICENSE*", "*.md"]
PROVENANCE_FILE = "FETCHED.json"


class FetchError(RuntimeError):
    """The download failed or is not a loadable model folder; the message says which."""


def check_model_folder(folder: Path) -> list[Path]:
    """The weight files of a complete download; raise :class:`FetchError` if it is not one."""
    if not (folder / "config.json").is_file():
        raise FetchError(f"{folder}: no config.json (not a transformers model repository?)")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise FetchError(f"{folder}: no *.safetensors weights")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        missing = sorted(shards - {path.name for path in weights})
        if missing:
            raise FetchError(f"{folder}: shards missing from the download: {missing}")
    return weights


def fetch_model(repo_id: str, output: Path, revision: str | None = None) -> Path:
    """Download ``repo_id`` (at ``revision``) into ``output``, atomically and resumably."""
    from huggingface_hub import snapshot_download

    output = Path(output)
    partial = output.with_name(f".{output.name}.partial")  # kept on failure: a rerun resumes
    try:
        snapshot_download(
            repo_id=repo_id, revision=revision, local_dir=partial, allow_patterns=PATTERNS
        )
    except Exception as error:  # network, authentication, unknown repository
        raise FetchError(
            f"cannot download {repo_id} from the Hugging Face Hub ({type(error).__name__}: "
            f"{error}); run where the hub is reachable, or set qwen.model_name_or_path to a "
            "local folder"
        ) from None
    check_model_folder(partial)
    files = {
        str(path.relative_to(partial)): path.stat().st_size
        for path in sorted(partial.rglob("*"))
        if path.is_file() and ".cache" not in path.parts
    }
    record = {
        "repo_id": repo_id,
        "revision": revision or "main",
        "files": files,
        "versions": package_versions(),
    }
    (partial / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="hub id, e.g. Qwen/Qwen3-1.7B")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default main)")
    parser.add_argument("--output", required=True, help="the local model folder to write")
    args = parser.parse_args(argv)
    try:
        folder = fetch_model(args.model, Path(args.output), args.revision)
    except FetchError as error:
        print(f"[fetch_model] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"[fetch_model] {args.model} -> {folder}", flush=True)


if __name__ == "__main__":
    main()
