"""Run the real workflow with Snakemake in a temporary directory and read its plans."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake -s <repo>/Snakefile -d workdir ...`` with the venv's console scripts on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, list[str]]:
    """Rule name -> outputs of the jobs a dry run would execute."""
    output = snakemake(workdir, "-n", *args).stdout
    jobs: dict[str, list[str]] = defaultdict(list)
    rule = None
    for line in output.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line)
        if header:
            rule = header.group(1)
            jobs[rule].append("")
        elif rule and line.strip().startswith("output:"):
            jobs[rule][-1] = line.split("output:", 1)[1].strip()
    return dict(jobs)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load_preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "workflow/presets" / f"{name}.yaml").read_text())
