"""DAG build time: ``snakemake -n`` on the paper's study and on an extended study of 1,000+ jobs.

A dry run parses the Snakefile, validates the config, computes every job's params (config slices
and source hashes) and checks every output, so it grows with the grid; it should stay interactive
(aim: <= 5 s) however large the study. Each study is planned in an empty working directory (every
job is planned) from the repository root (so the workflow profile applies, as for a user); the
times are medians of the whole command's wall time and CPU time (user + system: the dry run is one
process on one core, so on a loaded machine CPU time is the steadier number). Snakemake's own
start-up (``snakemake --version``) is timed too, to show how much of that is import time.
Offline, seconds:

    python benchmarks/dag.py                     # the paper's study and a 1,000-job extension
    python benchmarks/dag.py --jobs 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from alignfuse.config import SCHEMA_NAME, validate_config
from alignfuse.data.datasets import available_pairs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
AIM_S = 5.0

# More encoders for the extended study (a dry run loads no weights); synthetic studies get more
# rotations instead.
IMAGE_ENCODERS = {
    "resnet34": {"library": "torchvision", "model": "resnet34", "pretrained": "IMAGENET1K_V1"},
    "resnet50": {"library": "torchvision", "model": "resnet50", "pretrained": "IMAGENET1K_V2"},
    "vit_b_16": {"library": "torchvision", "model": "vit_b_16", "pretrained": "IMAGENET1K_V1"},
}
TEXT_ENCODERS = {
    "clip16": {"library": "open_clip", "model": "ViT-B-16", "pretrained": "openai"},
}


def extended_study(base: dict, min_jobs: int) -> dict:
    """``base`` with more encoders, every image x text backbone, ten seeds and enough scales.

    Scales are spread log-evenly up to the training pairs the dataset has, so the config stays
    valid under the schema (training jobs = backbones x alignments x methods x scales).
    """
    config = copy.deepcopy(base)
    config["study"] = "dag_benchmark"
    texts = [e for e in config["encoders"] if e in {b["text"] for b in base["backbones"].values()}]
    images = [e for e in config["encoders"] if e not in texts] + texts
    if config["dataset"]["kind"] == "synthetic":
        more_images = {
            f"rotation_{r}": {"library": "synthetic", "rotation": r / 100} for r in (25, 50)
        }
        more_texts = {"rotation_75": {"library": "synthetic", "rotation": 0.75}}
    else:
        more_images, more_texts = IMAGE_ENCODERS, TEXT_ENCODERS
    config["encoders"] |= more_images | more_texts
    images += list(more_images)
    texts += list(more_texts)
    config["backbones"] = {
        f"{image}-{text}": {"image": image, "text": text}
        for image, text in itertools.product(images, texts)
    }
    config["seeds"] = list(range(10))
    config.setdefault("training", {})["seed_block"] = 10  # one training job per condition
    per_scale = (
        len(config["backbones"]) * len(config.get("alignments", ["raw"])) * len(config["methods"])
    )
    n_scales = math.ceil(min_jobs / per_scale)
    largest = available_pairs(config["dataset"], "train")
    smallest = min(256, largest // n_scales)
    ratio = (largest / smallest) ** (1 / max(n_scales - 1, 1))
    scales = {2 * int(smallest * ratio**i / 2) for i in range(n_scales)}
    fill = itertools.count(2, 2)
    while len(scales) < n_scales:  # rounding merged neighbours: add small even scales
        scales.add(next(fill))
    config["scales"] = sorted(scales)
    return config


def run(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of one snakemake command, and its output."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run([*SNAKEMAKE, *args], capture_output=True, text=True, cwd=cwd)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return wall, cpu, result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    """Rule -> jobs from the "Job stats" table of a dry run (with "total")."""
    table = output.split("Job stats:", 1)[1]
    return {
        rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)
    }


def time_dry_run(configfile: Path, repeats: int) -> tuple[list[float], list[float], dict[str, int]]:
    walls, cpus, counts = [], [], {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as workdir:
            dry_run = ["-s", str(ROOT / "Snakefile"), "-d", workdir, "-n"]
            wall, cpu, output = run([*dry_run, "--configfile", str(configfile)], cwd=ROOT)
        walls.append(wall)
        cpus.append(cpu)
        counts = job_counts(output)
    return walls, cpus, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="the base study")
    parser.add_argument("--jobs", type=int, default=1000, help="least jobs of the extended study")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="also write the extended study's config here")
    args = parser.parse_args(argv)

    base = validate_config(yaml.safe_load(args.config.read_text()), ROOT / SCHEMA_NAME)
    startup = [run(["--version"], cwd=ROOT)[:2] for _ in range(args.repeats)]
    print(
        f"snakemake start-up (--version): median {statistics.median(w for w, _ in startup):.2f} s "
        f"wall, {statistics.median(c for _, c in startup):.2f} s CPU"
    )

    with tempfile.TemporaryDirectory() as tmp:
        extended = Path(tmp) / "extended.yaml"
        extended.write_text(yaml.safe_dump(extended_study(base, args.jobs), sort_keys=False))
        if args.keep:
            args.keep.write_text(extended.read_text())
        studies = {args.config.name: args.config, f"extended (>= {args.jobs})": extended}
        slowest, slowest_cpu = 0.0, 0.0
        for name, configfile in studies.items():
            walls, cpus, counts = time_dry_run(configfile, args.repeats)
            median = statistics.median(walls)
            slowest = max(slowest, median)
            slowest_cpu = max(slowest_cpu, statistics.median(cpus))
            rules = ", ".join(f"{r} {n}" for r, n in counts.items() if r != "total")
            print(
                f"{name}: {counts.get('total', 0)} jobs ({rules})\n  snakemake -n: median "
                f"{median:.2f} s wall (of {', '.join(f'{t:.2f}' for t in walls)}), "
                f"{statistics.median(cpus):.2f} s CPU"
            )
    verdict = "within" if slowest <= AIM_S else "OVER"
    print(
        f"slowest median {slowest:.2f} s wall ({slowest_cpu:.2f} s CPU): {verdict} the aim of "
        f"{AIM_S:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
