"""envs/alignfuse.yaml (the jobs' conda environment) against pyproject.toml and the lock.

Conda is not needed: the file is read as conda would read it, and its pip section is checked
package by package against pyproject's dependencies and envs/requirements.lock.
"""

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ (as the lock is)")

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs/alignfuse.yaml"
LOCK = ROOT / "envs/requirements.lock"


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load(ENV_FILE.read_text())


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def conda_specs(env: dict) -> dict[str, str]:
    """Conda packages of the environment: name -> version spec ('' when none)."""
    specs = {}
    for item in env["dependencies"]:
        if isinstance(item, str):
            name, _, spec = item.partition(" ")
            specs[name] = spec.strip()
    return specs


def pip_lines(env: dict) -> list[str]:
    sections = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    assert len(sections) == 1, "one pip section"
    return sections[0]


def pip_requirements(env: dict) -> dict[str, Requirement]:
    """The pip section's requirements (not its -c / -e options), by canonical name."""
    reqs = [Requirement(line) for line in pip_lines(env) if not line.startswith("-")]
    return {canonicalize_name(req.name): req for req in reqs}


def locked_versions() -> dict[str, Version]:
    versions = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            versions[canonicalize_name(name)] = Version(version)
    return versions


def test_environment_uses_conda_forge_only_and_pip_for_python_packages(env):
    assert env["name"] == "alignfuse"
    assert env["channels"] == ["conda-forge", "nodefaults"]
    assert set(conda_specs(env)) == {"python", "pip"}


def test_python_version_is_one_the_project_supports(env, project):
    spec = conda_specs(env)["python"]
    assert spec.startswith("=") and not spec.startswith("==")  # conda: =3.11 means 3.11.*
    assert Version(spec.lstrip("=")) in SpecifierSet(project["requires-python"])


def test_pip_section_installs_exactly_the_projects_dependencies(env, project):
    declared = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    assert set(pip_requirements(env)) == declared


def test_every_dependency_is_pinned_to_the_lock_within_the_projects_range(env, project):
    locked = locked_versions()
    ranges = {
        canonicalize_name(req.name): req.specifier
        for req in map(Requirement, project["dependencies"])
    }
    for name, req in pip_requirements(env).items():
        (pin,) = req.specifier
        assert pin.operator == "==", f"{name}: pin it to the lock's version"
        assert Version(pin.version) == locked[name], (
            f"{name}: {pin} but the lock has {locked[name]}"
        )
        assert locked[name] in ranges[name], (
            f"{name}: {locked[name]} outside pyproject {ranges[name]}"
        )


def test_other_packages_are_held_to_the_lock_and_alignfuse_is_installed_from_the_checkout(env):
    # conda runs pip in the environment file's folder: relative paths start there
    options = [line.split() for line in pip_lines(env) if line.startswith("-")]
    assert ["-c", "requirements.lock"] in options
    assert ["-e", ".."] in options
    assert (ENV_FILE.parent / "requirements.lock").is_file()
    checkout = (ENV_FILE.parent / "..").resolve()
    pyproject = tomllib.loads((checkout / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "alignfuse"
