"""Run the real workflow with Snakemake in a temporary directory and read its plans."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(
    workdir: Path, *args: str, check: bool = True, clone: Path | None = None
) -> subprocess.CompletedProcess:
    """``snakemake -s <repo>/Snakefile -d workdir ...`` with the venv's console scripts on PATH.

    ``clone`` (from ``copy_repository``) runs that copy instead of this checkout: its Snakefile, and
    its package first on PYTHONPATH, so the Snakefile imports and hashes (and jobs run) its modules.
    """
    repo = ROOT if clone is None else clone
    command = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env=run_env(clone), cwd=workdir
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def run_env(clone: Path | None = None) -> dict[str, str]:
    """Environment of workflow subprocesses; with ``clone``, its ``src`` precedes the editable install.

    PYTHONPATH entries come before site-packages and the paths that ``.pth`` files (the editable
    install) append, so ``import alignfuse`` resolves to the clone's package.
    """
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # the cost estimate at the start of a run calibrates for seconds; tests/test_cost.py runs it
    env.setdefault("ALIGNFUSE_COST_ON_START", "0")
    if clone is not None:
        paths = [str(clone / "src"), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


# What running the workflow needs from the repository: the Snakefile, the default study, the rules,
# schemas and presets, and the package.
REPOSITORY_PARTS = ("Snakefile", "config.yaml", "workflow", "src/alignfuse")


def copy_repository(dest: Path, source: Path = ROOT) -> Path:
    """Copy the workflow and its package from ``source`` (this checkout or another copy) to ``dest``.

    Like a fresh clone, the copy gets new modification times and no bytecode caches; edit its
    modules freely and pass it as ``clone`` to ``snakemake`` or ``planned_jobs``.
    """
    for part in REPOSITORY_PARTS:
        src, dst = source / part, dest / part
        if src.is_dir():
            shutil.copytree(
                src,
                dst,
                copy_function=shutil.copyfile,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return dest


def planned_jobs(workdir: Path, *args: str, clone: Path | None = None) -> dict[str, list[str]]:
    """Rule name -> outputs of the jobs a dry run would execute (``clone``: see ``snakemake``)."""
    output = snakemake(workdir, "-n", *args, clone=clone).stdout
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


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def dry_run(workdir: Path, *args: str, clone: Path | None = None) -> list[PlannedJob]:
    """The jobs a dry run would execute, with their input and output files (``clone``: see
    ``snakemake``); with ``--forceall``, every job of the workflow and so its whole DAG."""
    output = snakemake(workdir, "-n", *args, clone=clone).stdout
    jobs: list[dict] = []
    for line in output.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line)
        if header:
            jobs.append({"rule": header.group(1), "input": (), "output": ()})
        elif jobs and line.startswith("    "):
            key, sep, value = line.strip().partition(": ")
            if sep and key in ("input", "output"):
                jobs[-1][key] = tuple(value.split(", "))
    return [PlannedJob(job["rule"], job["input"], job["output"]) for job in jobs]


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load_preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "workflow/presets" / f"{name}.yaml").read_text())


def tiny_encoder_study(study: str) -> dict:
    """The folder_example preset's smoke-sized study named ``study`` (give it a dataset), cut to
    one backbone of tiny plug-in encoders (tests/plugin_encoder.py, on the path with conftest's
    ``plugin_path``), concat and xattn_txt2img on raw features, PID of concat."""
    config = load_preset("folder_example")
    config["study"] = study
    config["encoders"] = {"tiny": {"library": "python", "model": "plugin_encoder:build"}}
    config["backbones"] = {"tiny": {"image": "tiny", "text": "tiny"}}
    config["methods"] = {m: config["methods"][m] for m in ("concat", "xattn_txt2img")}
    config["grids"] = {"main": {"alignments": ["raw"]}}
    config["alignment"]["contrastive"]["dim"] = 8
    config["pid"]["conditions"] = {"backbones": ["tiny"], "methods": ["concat"]}
    config["threads"] = {"train": 1, "features": 1}
    return config
