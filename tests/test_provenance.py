"""Provenance: the code hash that makes Snakemake rerun a stage when its code changes (and
only then), file and folder hashes, the git commit of the code, package versions, atomic
writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from workflow_scripts import provenance
from workflow_scripts.provenance import (
    atomic_path,
    code_commit,
    package_versions,
    sha256_json,
    sha256_tree,
    write_json,
)

# A package of its own, so edits to it cannot touch the real one: a stage that imports a
# module by name, a name from a module, a subpackage module that imports relatively two
# levels up, and a module only a function body imports; plus a module nobody imports.
FAKE_PACKAGE = {
    "__init__.py": '"""A stand-in for workflow_scripts."""\n',
    "stage.py": (
        "import json\n"
        "import numpy as np\n"
        "from fakepkg import helpers\n"
        "from fakepkg.constants import LIMIT\n"
        "from .sub import deep\n\n"
        "def main():\n"
        "    from fakepkg import late\n"
        "    return helpers, LIMIT, deep, late, json, np\n"
    ),
    "helpers.py": "VALUE = 1\n",
    "constants.py": "LIMIT = 10\n",
    "late.py": "LATE = True\n",
    "sub/__init__.py": "",
    "sub/deep.py": "from ..leaf import LEAF\n",
    "leaf.py": "LEAF = 'leaf'\n",
    "unrelated.py": "NOBODY_IMPORTS_ME = 1\n",
    "other_stage.py": "from fakepkg import unrelated\n",
}


@pytest.fixture
def fake_package(tmp_path, monkeypatch) -> Path:
    """``fakepkg`` written under ``tmp_path`` and made the package code_sha256 reads."""
    root = tmp_path / "fakepkg"
    for name, source in FAKE_PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", root)
    monkeypatch.setattr(provenance, "PACKAGE", "fakepkg")
    return root


def code_hash(*modules: str) -> str:
    # The uncached function: the cached one would remember the first answer per module.
    return provenance.code_sha256.__wrapped__(*modules)


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "# edited\n")


def test_code_hash_is_stable_and_names_the_modules_not_their_order(fake_package):
    first = code_hash("fakepkg.stage")
    assert first == code_hash("fakepkg.stage")
    assert len(first) == 64 and int(first, 16) >= 0
    assert code_hash("fakepkg.stage", "fakepkg.other_stage") == code_hash(
        "fakepkg.other_stage", "fakepkg.stage"
    )
    assert code_hash("fakepkg.stage") != code_hash("fakepkg.other_stage")


@pytest.mark.parametrize(
    "changed",
    [
        "stage.py",  # the stage itself
        "helpers.py",  # from pkg import module
        "constants.py",  # from pkg.module import name
        "sub/deep.py",  # from .sub import module
        "leaf.py",  # imported by an imported module, relatively, two levels up
        "late.py",  # imported inside a function
        "__init__.py",  # the package the stage imports from
    ],
)
def test_code_hash_changes_with_the_stage_or_any_package_module_it_imports(fake_package, changed):
    before = code_hash("fakepkg.stage")
    edit(fake_package / changed)
    assert code_hash("fakepkg.stage") != before


def test_code_hash_ignores_modules_the_stage_does_not_import(fake_package):
    before = code_hash("fakepkg.stage")
    edit(fake_package / "unrelated.py")
    edit(fake_package / "other_stage.py")
    assert code_hash("fakepkg.stage") == before


def test_modules_outside_the_package_add_nothing(fake_package):
    # Third-party code is covered by the recorded package versions, not by the code hash.
    assert code_hash("fakepkg.stage", "numpy", "json") == code_hash("fakepkg.stage")
    assert code_hash("fakepkg.does_not_exist") == code_hash()


def test_code_hash_of_the_real_stages_as_the_rules_ask_for_it():
    rollout = provenance.code_sha256("workflow_scripts.rollout")
    assert provenance.code_sha256("workflow_scripts.rollout") == rollout
    assert rollout != provenance.code_sha256("workflow_scripts.baseline")
    # Every stage reads and writes through provenance, so it is part of every stage's hash.
    assert provenance.code_sha256("workflow_scripts.provenance") != code_hash()


def test_sha256_tree_covers_names_and_bytes_and_honours_exclude(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    (folder / "sub" / "config.json").write_text("{}")
    (folder / "provenance.json").write_text('{"time": 1}')
    digest = sha256_tree(folder, exclude=("provenance.json",))
    (folder / "provenance.json").write_text('{"time": 2}')
    assert sha256_tree(folder, exclude=("provenance.json",)) == digest
    assert sha256_tree(folder) != digest
    (folder / "sub" / "config.json").rename(folder / "sub" / "other.json")
    assert sha256_tree(folder, exclude=("provenance.json",)) != digest


def test_sha256_json_ignores_key_order():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})


def test_atomic_path_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    target.parent.mkdir()
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_write_json_writes_numpy_values_and_paths_as_plain_json(tmp_path):
    target = tmp_path / "new" / "record.json"
    write_json(target, {"score": np.float32(0.5), "seeds": np.arange(3), "path": Path("a/b")})
    assert json.loads(target.read_text()) == {"score": 0.5, "seeds": [0, 1, 2], "path": "a/b"}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text())["score"] == 0.5


def test_code_commit_says_which_commit_and_whether_tracked_files_differ(tmp_path):
    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
        return subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert code_commit(tmp_path) == {"commit": None, "dirty": None}  # not a checkout
    git("init", "-q")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "stage.py").write_text("A = 1\n")
    (tmp_path / "notes.txt").write_text("notes\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert code_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "code" / "new.py").write_text("B = 2\n")  # untracked files do not count
    assert code_commit(tmp_path)["dirty"] is False
    (tmp_path / "notes.txt").write_text("edited\n")  # a tracked file outside the folder
    assert code_commit(tmp_path / "code") == {"commit": head, "dirty": False}
    assert code_commit(tmp_path) == {"commit": head, "dirty": True}


def test_code_commit_defaults_to_this_checkout():
    state = code_commit()
    if state["commit"] is not None:  # None when the package is installed, not checked out
        assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)


def test_package_versions_add_the_extra_distributions():
    versions = package_versions("pyyaml", "no-such-distribution-here")
    assert list(versions)[: len(provenance.TRACKED_PACKAGES) + 1] == [
        "python",
        *provenance.TRACKED_PACKAGES,
    ]
    assert versions["pyyaml"] != "not installed"
    assert versions["no-such-distribution-here"] == "not installed"
