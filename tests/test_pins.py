"""Package pins: pyproject.toml is the one source, envs/workflow.yaml mirrors it (both files
say so in a comment; this test keeps it true)."""

from __future__ import annotations

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def requirements(lines: list[str]) -> dict[str, Requirement]:
    """{canonical name: requirement} of pip requirement strings (editable installs skipped)."""
    parsed = [Requirement(line) for line in lines if not line.startswith("-")]
    found = {canonicalize_name(requirement.name): requirement for requirement in parsed}
    assert len(found) == len(parsed), f"a package is listed twice in {lines}"
    return found


@pytest.fixture(scope="module")
def pyproject(repo_root) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def conda_env(repo_root) -> dict:
    return yaml.safe_load((repo_root / "envs" / "workflow.yaml").read_text())


def pip_section(conda_env: dict) -> list[str]:
    sections = [item["pip"] for item in conda_env["dependencies"] if isinstance(item, dict)]
    assert len(sections) == 1, "envs/workflow.yaml should have one pip: section"
    return sections[0]


def test_conda_env_pins_every_package_exactly_as_pyproject(pyproject, conda_env):
    source = requirements(pyproject["project"]["dependencies"])
    mirror = requirements(pip_section(conda_env))
    assert sorted(mirror) == sorted(source), "envs/workflow.yaml lists other packages"
    disagreeing = {
        name: (str(source[name].specifier), str(mirror[name].specifier))
        for name in source
        if source[name].specifier != mirror[name].specifier
        or source[name].marker != mirror[name].marker
        or source[name].extras != mirror[name].extras
    }
    assert not disagreeing, f"pins differ (pyproject.toml, envs/workflow.yaml): {disagreeing}"


def test_conda_env_installs_the_package_itself_and_a_supported_python(pyproject, conda_env):
    assert "-e .." in pip_section(conda_env)
    pythons = [
        item.split("=", 1)[1]
        for item in conda_env["dependencies"]
        if isinstance(item, str) and item.startswith("python=")
    ]
    assert len(pythons) == 1
    supported = SpecifierSet(pyproject["project"]["requires-python"])
    assert Version(pythons[0]) in supported, (pythons[0], str(supported))


def test_requirements_parse_and_differ_when_a_pin_differs():
    # The comparison itself: an equal pin agrees, a moved pin does not.
    ours = requirements(["gymnasium==0.29.1", "numpy>=1.26,<2"])
    assert ours["gymnasium"].specifier == Requirement("Gymnasium==0.29.1").specifier
    assert ours["numpy"].specifier != Requirement("numpy>=1.26,<3").specifier
    with pytest.raises(AssertionError, match="twice"):
        requirements(["numpy<2", "NumPy<2"])
