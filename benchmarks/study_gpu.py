"""The paper study's training on one device: its whole grid of `alignfuse train` jobs, with one
job at a time (today's profile) and with several jobs sharing the device, in one run.

The grid is config.yaml's (every condition of its three grids: heads, scales, seeds, training
and early stopping as configured) on Flickr8k-sized synthetic features written like
train_grid.py's: one 512-d feature set serves the raw and degraded alignments (the same shapes,
so the same work) and one 256-d set the contrastive ones (the projection's width). Each job runs
as its own process with the train rule's command and ``training.device`` set to the device, so
the seeds' random streams are the job's own whatever shares the device. Reported, per number of
jobs sharing the device: the grid's wall time, the device's mean utilisation while it ran
(nvidia-smi, sampled every half second; not measured on a CPU), seed-epochs, and the largest
difference in any seed's test accuracy from the one-at-a-time run. Then, for a sample of jobs,
seconds per seed-epoch of the job's loop against the per-run loop of train_grid.py (one seed at a
time, a DataLoader) on the same device.

    python benchmarks/study_gpu.py                        # on a CUDA machine
    python benchmarks/study_gpu.py --device cpu --quick   # the same code on the CPU, small (CI)

``--quick`` takes the smoke preset's concat and cross-attention heads on 48-d features of a
sixteenth of Flickr8k's images, one scale, two seeds and three epochs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _common import ROOT, run_measured
from train_grid import per_run_loop, synthetic_flickr8k, train_command

from alignfuse import grid
from alignfuse.config import validate_config
from alignfuse.devices import pick_device
from alignfuse.errors import AlignfuseError

QUICK = {
    "methods": ["concat", "xattn_txt2img"],
    "scales": [512],
    "seeds": [0, 1],
    "max_epochs": 3,
    "dim": 48,
    "shrink": 16,
}


def study(args) -> dict:
    """config.yaml validated (defaults filled); with --quick cut to QUICK's size, smoke's heads."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    if args.quick:
        smoke = yaml.safe_load((ROOT / "workflow/presets/smoke.yaml").read_text())
        config["methods"] = {m: smoke["methods"][m] for m in QUICK["methods"]}
        config["grids"] = {"paper": {"backbones": ["clip"], "alignments": ["raw"]}}
        config["scales"], config["seeds"] = QUICK["scales"], QUICK["seeds"]
        config["training"]["max_epochs"] = QUICK["max_epochs"]
        config["claims"] = []
        config["comparisons"] = []  # they compare the paper's *_tuned heads, left out too
        config.pop("tuning")  # it tunes the paper's *_tuned heads, which the cut leaves out
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")


def job_list(config: dict, device: str) -> list[dict]:
    """Every training job of the study: its condition, seed block and spec on ``device``."""
    jobs = []
    for condition in grid.conditions(config):
        for block in grid.seed_blocks(config, condition.method):
            spec = grid.train_slice(config, condition.method, block.name)
            spec["training"]["device"] = device
            jobs.append({"condition": condition, "block": block.name, "spec": spec})
    return jobs


def run_job(job: dict, files: dict, out: Path, threads: int) -> dict:
    """One `alignfuse train` process, as the train rule runs it; its runs table and wall time."""
    c = job["condition"]
    name = f"{c.backbone}@{c.alignment}_{c.method}_n{c.n}_{job['block']}"
    image, text, pairs = files["contrastive" if c.alignment == "contrastive" else "raw"]
    command = train_command() + [
        "train",
        f"--image-features={image}",
        f"--text-features={text}",
        f"--pairs-dir={pairs}",
        f"--n={c.n}",
        f"--spec={json.dumps(job['spec'])}",
        f"--threads={threads}",
        f"--label=backbone={c.backbone}",
        f"--label=alignment={c.alignment}",
        f"--out={out / f'{name}.parquet'}",
        f"--curves-out={out / f'{name}.curves.parquet'}",
        f"--predictions-out={out / f'{name}.predictions.parquet'}",
        f"--fused-out={out / f'{name}.fused.parquet'}",
    ]
    done = run_measured(command)
    if done.returncode:
        raise SystemExit(f"job {name} failed ({done.returncode}):\n{done.output[-3000:]}")
    runs = pd.read_parquet(out / f"{name}.parquet")
    return {"job": name, "wall": done.wall_s, "runs": runs}


class Utilisation:
    """The device's utilisation (%) sampled by nvidia-smi every half second while it runs."""

    def __init__(self, device: str):
        self.samples: list[float] = []
        self.active = device.startswith("cuda") and shutil.which("nvidia-smi") is not None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self.stop.wait(0.5):
            done = subprocess.run(query + ["-i", "0"], capture_output=True, text=True)
            if done.returncode == 0 and done.stdout.strip():
                self.samples.append(float(done.stdout.split()[0]))

    def __enter__(self):
        if self.active:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.active:
            self.thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def run_grid(jobs: list[dict], files: dict, out: Path, slots: int, args) -> dict:
    """Every job, ``slots`` at a time, longest first (cross-attention, large n): wall time,
    utilisation and the runs."""
    order = sorted(jobs, key=lambda j: ("xattn" not in j["spec"]["head"], -j["condition"].n))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with Utilisation(args.device) as utilisation, ThreadPoolExecutor(slots) as pool:
        done = list(pool.map(lambda j: run_job(j, files, out, args.threads), order))
    wall = time.perf_counter() - start
    runs = pd.concat([d["runs"] for d in done], ignore_index=True)
    return {
        "jobs per device": slots,
        "jobs": len(done),
        "wall s": wall,
        "utilisation %": utilisation.mean,
        "seed-epochs": int(runs["epochs"].sum()),
        "runs": runs,
    }


def per_run_sample(jobs: list[dict], files: dict, config: dict, args) -> list[dict]:
    """For the sample's jobs, seconds per seed-epoch in the job's own loop (its runs table:
    train_s over its seed-epochs) against train_grid.py's per-run loop, seed by seed, on the
    same device with the same heads, pairs and early stopping."""
    rows = []
    for job, runs in jobs:
        c, training = job["condition"], job["spec"]["training"]
        options = argparse.Namespace(
            threads=args.threads,
            batch_size=training["batch_size"],
            max_epochs=training["max_epochs"],
            patience=training["patience"],
            scaling=job["spec"]["scaling"],
        )
        heads = {c.method: job["spec"]["hparams"]}
        image, text, pairs = files["contrastive" if c.alignment == "contrastive" else "raw"]
        seeds = [
            per_run_loop(c.method, c.n, s, image, text, pairs, options, args.device, heads)
            for s in job["spec"]["seeds"]
        ]
        ours = runs["train_s"].iloc[0] / runs["epochs"].sum()
        theirs = sum(s["loop_s"] for s in seeds) / sum(s["epochs"] for s in seeds)
        rows.append(
            {
                "job": f"{c.backbone}@{c.alignment} {c.method} n={c.n}",
                "s per seed-epoch, job": ours,
                "s per seed-epoch, per-run loop": theirs,
                "ratio": theirs / ours,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="training.device of every job")
    parser.add_argument("--quick", action="store_true", help="a small cut of the grid (CI)")
    parser.add_argument(
        "--jobs-per-device",
        default="1,4",
        help="comma-separated numbers of jobs sharing the device, each a run of the whole grid "
        "(the first is the reference the others' accuracies are compared with)",
    )
    parser.add_argument("--threads", type=int, default=1, help="--threads of every job")
    parser.add_argument("--sample", type=int, default=2, help="jobs timed against a per-run loop")
    parser.add_argument("--work-dir", type=Path, help="keep generated features and runs here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    try:
        pick_device(args.device)
    except AlignfuseError as exc:
        raise SystemExit(f"study_gpu.py: {exc}") from None
    config = study(args)
    jobs = job_list(config, args.device)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="study_gpu_"))
    dim, shrink = (QUICK["dim"], QUICK["shrink"]) if args.quick else (512, 1)
    files = {"raw": synthetic_flickr8k(work / "raw", dim, shrink)}
    if any(j["condition"].alignment == "contrastive" for j in jobs):
        width = config["alignment"]["contrastive"]["dim"]
        files["contrastive"] = synthetic_flickr8k(work / "contrastive", width, shrink)

    grids = []
    for slots in (int(k) for k in args.jobs_per_device.split(",")):
        grids.append(run_grid(jobs, files, work / f"runs_{slots}", slots, args))
        print(f"{slots} job(s) per device: {grids[-1]['wall s']:.1f} s", flush=True)
    key = ["backbone", "alignment", "method", "n_train", "seed"]
    reference = grids[0]["runs"].set_index(key)["test_accuracy"]
    for g in grids:
        other = g["runs"].set_index(key)["test_accuracy"].reindex(reference.index)
        g["max |Δ test accuracy|"] = float((other - reference).abs().max())
    # the sample: the first job of each head, from the one-at-a-time run
    first = {}
    for job in jobs:
        first.setdefault(job["spec"]["head"], job)
    reference_runs = grids[0]["runs"]
    sample = [
        (
            job,
            reference_runs[
                (reference_runs["backbone"] == job["condition"].backbone)
                & (reference_runs["method"] == job["condition"].method)
                & (reference_runs["alignment"] == job["condition"].alignment)
                & (reference_runs["n_train"] == job["condition"].n)
            ],
        )
        for job in list(first.values())[: args.sample]
    ]
    sampled = per_run_sample(sample, files, config, args)

    table = [{k: v for k, v in g.items() if k != "runs"} for g in grids]
    base = table[0]["wall s"]
    print("\n| jobs per device | jobs | seed-epochs | wall s | vs one at a time | utilisation % |")
    print("|---|---|---|---|---|---|")
    for row in table:
        use = "n/a" if row["utilisation %"] is None else f"{row['utilisation %']:.0f}"
        print(
            f"| {row['jobs per device']} | {row['jobs']} | {row['seed-epochs']} | "
            f"{row['wall s']:.1f} | {base / row['wall s']:.2f}× | {use} |"
        )
    print("\n| job | s per seed-epoch, job | per-run loop | ratio |\n|---|---|---|---|")
    for row in sampled:
        print(
            f"| {row['job']} | {row['s per seed-epoch, job']:.4f} | "
            f"{row['s per seed-epoch, per-run loop']:.4f} | {row['ratio']:.2f}× |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"device": args.device, "grid": table, "per-run": sampled}, indent=2)
        )
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
