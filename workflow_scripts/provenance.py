"""Provenance and safe output writing shared by every stage.

Every output of the workflow is written to a temporary name beside its final path and
moved into place only when complete, so a killed job never leaves a file that looks
finished. Every output also records the package versions and input hashes it came from.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name

# Packages whose versions change results; recorded in every output.
TRACKED_PACKAGES = (
    "gymnasium",
    "mujoco",
    "box2d",
    "numpy",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "rl-zoo3",
    "transformers",
    "h5py",
    "scipy",
    "faiss-cpu",
    "snakemake",
)


def package_versions(*extra: str) -> dict[str, str]:
    """Installed versions of the packages that matter for reproducibility, then of the
    ``extra`` distributions a stage adds (e.g. its video writer), plus Python's; a package
    that is not installed is ``"not installed"``."""
    versions = {"python": platform.python_version()}
    for name in (*TRACKED_PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_commit(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The git commit checked out at ``folder`` (default: this package's checkout) and
    whether tracked files below ``folder`` differ from it (untracked files do not count):
    ``{"commit": "<40 hex>", "dirty": bool}``, or both None outside a git checkout (an
    installed package, or no git on the machine)."""
    folder = Path(folder) if folder is not None else PACKAGE_DIR.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changes)}


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str:
    """Hex SHA-256 over a folder: relative names and bytes of every file, in sorted order.

    ``exclude`` names files (relative to the folder) left out, e.g. a provenance file that
    records wall-clock times and would make two identical models hash differently.
    """
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file())
    for file in sorted(p for p in files if str(p.relative_to(root)) not in exclude):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of a JSON-serialisable value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def code_sha256(*modules: str) -> str:
    """Hex SHA-256 of the code a stage runs: the source of ``modules`` and of every module of
    this package they import, directly or not (found by reading the files, not importing).

    Rules pass it as a param, so Snakemake's params trigger reruns a stage (and what depends
    on it) when its code changes, and nothing else; a rule's own command is covered by
    Snakemake's code trigger already.
    """
    sources: dict[str, bytes] = {}
    pending = list(modules)
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if name in sources or path is None:
            continue
        sources[name] = path.read_bytes()
        pending += _package_imports(name, path, sources[name])
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    return digest.hexdigest()


def _module_file(name: str) -> Path | None:
    """Source file of a module of this package, or None (not ours, or not a module)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_imports(name: str, path: Path, source: bytes) -> list[str]:
    """Names this module imports that may be modules of this package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports a module; `from mod import name` a name (skipped
            # by _module_file, which finds no file for it).
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return [module for module in found if module.split(".")[0] == PACKAGE]


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it into place on success.

    On any exception (or a kill, where the rename never happens) the final path is left
    untouched and the temporary file is removed when possible.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final_path.name}.", suffix=suffix + ".partial", dir=final_path.parent
    )
    # mkstemp creates the file 0600; the output gets what open() would give it, so others in
    # the group can read results/ on a shared file system when the umask lets them.
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, final_path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """This process's file-creation mask, read without changing it (Linux: /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    # Elsewhere the only way is to set it and put it back; done once per process.
    return _umask_by_setting()


@functools.cache
def _umask_by_setting() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays appear in results; make them plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
