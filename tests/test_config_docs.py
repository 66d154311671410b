"""docs/configuration.md is generated from the schema descriptions: it must be current,
cover every key of config.yaml, and its generator must stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from workflow_scripts import config_docs
from workflow_scripts.config import load_schema

REGENERATE = "python -m workflow_scripts.config_docs --write"


@pytest.fixture(scope="module")
def paper_config(repo_root) -> dict:
    return yaml.safe_load((repo_root / "config.yaml").read_text())


def leaf_keys(value, prefix="") -> set[str]:
    """Dotted names of every non-mapping value in a config."""
    if not isinstance(value, dict):
        return {prefix}
    keys = set()
    for key, child in value.items():
        keys |= leaf_keys(child, f"{prefix}.{key}" if prefix else key)
    return keys


def documented_rows(paper_config) -> list[tuple[str, str, str, str]]:
    schema = load_schema()
    rows = config_docs.rows({"properties": schema["properties"]}, paper_config, "")
    return rows


def test_configuration_reference_is_current(repo_root, paper_config):
    expected = config_docs.reference(load_schema(), *config_docs.configs())
    actual = (repo_root / "docs" / "configuration.md").read_text()
    assert actual == expected, f"docs/configuration.md is stale: run `{REGENERATE}`"


def test_every_key_of_the_paper_config_is_documented(paper_config):
    documented = {key for key, *_ in documented_rows(paper_config)}
    # Per-env keys are documented once, as experts.<env>.<key>.
    wanted = {
        ".".join(["experts", "<env>", *key.split(".")[2:]]) if key.startswith("experts.") else key
        for key in leaf_keys(paper_config)
    }
    # A record (a job's resources, a model shape) is one row for all its keys.
    missing = {
        key for key in wanted if not any(key == d or key.startswith(d + ".") for d in documented)
    }
    assert not missing, f"keys without a row in docs/configuration.md: {sorted(missing)}"


def test_every_row_is_explained_by_its_schema_or_its_parent(paper_config):
    rows = documented_rows(paper_config)
    explained = {key for key, _, _, meaning in rows if meaning}
    unexplained = [
        key
        for key, _, _, meaning in rows
        if not meaning and key.rpartition(".")[0] not in explained
    ]
    assert not unexplained, f"add a description: to these schema keys: {unexplained}"


def test_cells_read_as_one_table_row():
    assert config_docs.inline("a\n  b | c") == "a b \\| c"
    assert config_docs.show(None) == "`null`" and config_docs.show(True) == "`true`"
    assert config_docs.show(list(range(20))) == "20 items"
    assert config_docs.constraint({"type": "integer", "minimum": 1}) == "integer ≥ 1"
    assert config_docs.constraint({"type": ["string", "null"]}) == "string or `null`"


def test_generator_imports_neither_torch_nor_transformers(repo_root):
    code = (
        "import sys, workflow_scripts.config_docs as d; d.main([]);"
        "sys.stderr.write(repr(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Configuration reference")
    assert result.stderr.strip().endswith("[]"), result.stderr
