"""The stages' one-way flow (pyproject's import-linter contract) holds, and breaks when it should."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter not installed")


def lint_imports(source: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with pyproject's contract over the package under ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=source,
    )


@pytest.fixture
def package_copy(tmp_path) -> Path:
    shutil.copytree(ROOT / "src/alignfuse", tmp_path / "alignfuse")
    return tmp_path


def test_the_package_keeps_the_stage_contract(package_copy):
    result = lint_imports(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "message"),
    [
        ("data/pairs.py", "from alignfuse.train import condition", "alignfuse.data is not allowed"),
        (
            "features/rows.py",
            "import alignfuse.analysis.tables",
            "alignfuse.features is not allowed",
        ),
        (
            "train/metrics.py",
            "from alignfuse.figures import style",
            "alignfuse.train is not allowed",
        ),
        ("parquet.py", "from alignfuse.data import datasets", "alignfuse.parquet is not allowed"),
        ("figures/style.py", "from alignfuse import cli", "alignfuse.figures is not allowed"),
    ],
)
def test_an_import_against_the_flow_breaks_the_contract(package_copy, module, statement, message):
    path = package_copy / "alignfuse" / module
    path.write_text(path.read_text() + f"\n{statement}\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert message in result.stdout
