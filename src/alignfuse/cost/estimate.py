"""A study's training cost: each job's seed-epochs, counted FLOPs and seconds at this machine's
measured speed, summed per grid, and the wall time of running them on so many cores or one GPU.

Two numbers per quantity: an upper bound (every seed runs ``max_epochs``) and a typical value
(every seed's dev accuracy peaks at ``best_epoch``, then early stopping waits ``patience``).
"""

from __future__ import annotations

import heapq
import os
import time
from dataclasses import dataclass

import torch

from alignfuse.cost.calibration import HeadSpeed, job_start_s, measure_heads, speed_key
from alignfuse.cost.plan import (
    SplitSize,
    TrainJob,
    split_sizes,
    training_jobs,
    tuning_jobs,
    untimed_jobs,
)
from alignfuse.devices import describe
from alignfuse.train.ensemble import EVAL_PAIRS as ENTROPY_PAIRS

# The bounds an estimate gives, in the order they are printed.
BOUNDS = ("typical", "max")


@dataclass(frozen=True)
class JobCost:
    """One job's seed-epochs, counted FLOPs and seconds (its start included), per bound."""

    job: TrainJob
    seed_epochs: dict[str, int]
    flops: dict[str, float]
    seconds: dict[str, float]


def job_cost(
    job: TrainJob,
    speed: HeadSpeed,
    splits: dict[str, SplitSize],
    best_epoch: int,
    start_s: float,
) -> JobCost:
    """``job``'s cost at ``speed``: its steps, its dev evaluations over the dev split, and after
    training the test split scored three times (predictions and each modality shuffled) and
    the fused representation of every seed's training pairs and the test pairs. Every
    evaluation also measures attention entropy on the dev split's first pairs. A tuning job
    does this training ``job.runs`` times (once per candidate) and scores no test pairs."""
    epochs = {"typical": job.typical_epochs(best_epoch), "max": job.max_epochs}
    dev_pairs = splits["dev"].pairs
    after = 4 * splits["test"].pairs + job.condition.n if job.scores_test else 0
    entropy_s = min(ENTROPY_PAIRS, dev_pairs) * speed.entropy_pair_s
    seed_epochs, flops, seconds = {}, {}, {}
    for bound, e in epochs.items():
        steps, evaluations = job.runs * job.steps_per_epoch * e, job.runs * job.evaluations(e)
        evaluated = evaluations * dev_pairs + after
        seed_epochs[bound] = job.runs * job.seeds * e
        flops[bound] = steps * speed.step_flops + evaluated * speed.eval_pair_flops
        seconds[bound] = (
            start_s + steps * speed.step_s + evaluated * speed.eval_pair_s + evaluations * entropy_s
        )
    return JobCost(job, seed_epochs, flops, seconds)


def study_costs(
    jobs: list[TrainJob],
    speeds: dict[str, HeadSpeed],
    splits: dict[str, SplitSize],
    best_epoch: int,
    start_s: float,
) -> list[JobCost]:
    return [job_cost(j, speeds[speed_key(j)], splits, best_epoch, start_s) for j in jobs]


def wall_s(seconds: list[float], slots: int) -> float:
    """Wall time of jobs of these durations on ``slots`` parallel slots, longest first to the
    least loaded slot (how a scheduler that starts the next ready job on a free core fares)."""
    loads = [0.0] * max(1, slots)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + s)
    return max(loads)


def machine_cores() -> int:
    """The cores this process may run on (what ``snakemake --cores all`` uses)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def summary(
    costs: list[JobCost], cores: list[int], threads: int, gpu: list[JobCost] | None
) -> list[dict]:
    """One row per grid and a total: jobs, seed-epochs, TFLOP, core-hours and the wall hours on
    each number of ``cores`` (jobs of ``threads`` threads each) and, if measured, on one GPU
    running one job at a time (typical and upper bound)."""
    groups = {name: [] for name in dict.fromkeys(c.job.grid for c in costs)}
    for i, c in enumerate(costs):
        groups[c.job.grid].append(i)
    groups["total"] = list(range(len(costs)))
    rows = []
    for name, members in groups.items():
        row = {"grid": name, "jobs": len(members)}
        for bound in BOUNDS:
            seconds = [costs[i].seconds[bound] for i in members]
            row[f"seed-epochs {bound}"] = sum(costs[i].seed_epochs[bound] for i in members)
            row[f"TFLOP {bound}"] = sum(costs[i].flops[bound] for i in members) / 1e12
            row[f"core-hours {bound}"] = sum(seconds) * threads / 3600
            for n in cores:
                row[f"wall hours on {n} cores {bound}"] = wall_s(seconds, n // threads) / 3600
            if gpu is not None:
                row[f"wall hours on the GPU {bound}"] = (
                    sum(gpu[i].seconds[bound] for i in members) / 3600
                )
        rows.append(row)
    return rows


def duration(hours: float) -> str:
    """Hours as a reader takes them in: seconds, minutes or hours."""
    seconds = hours * 3600
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{hours:.1f} h"


def cost_text(rows: list[dict], cores: list[int], gpu_name: str | None, notes: list[str]) -> str:
    """The table ``alignfuse cost`` prints: one line per grid and the total, typical (max)."""
    header = ["grid", "jobs", "seed-epochs", "TFLOP", "CPU time"]
    header += [f"wall, {n} cores" for n in cores]
    if gpu_name:
        header.append("wall, 1 GPU")
    lines = []
    for row in rows:

        def pair(key, fmt, row=row):
            return f"{fmt(row[f'{key} typical'])} ({fmt(row[f'{key} max'])})"

        cells = [row["grid"], str(row["jobs"])]
        cells.append(pair("seed-epochs", lambda v: f"{v:,}"))
        cells.append(pair("TFLOP", lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"))
        cells.append(pair("core-hours", duration))
        cells += [pair(f"wall hours on {n} cores", duration) for n in cores]
        if gpu_name:
            cells.append(pair("wall hours on the GPU", duration))
        lines.append(cells)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    table = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *lines]
    ]
    return "\n".join([*table, "", *notes])


@dataclass(frozen=True)
class StudyCost:
    """What ``alignfuse cost`` reports: the summary rows and the text it prints."""

    rows: list[dict]
    text: str


def study_cost(config: dict, cores: list[int], best_epoch: int) -> StudyCost:
    """Plan ``config``'s training jobs, measure each head here (and on a visible GPU), and
    total their cost per grid on ``cores`` (this machine's cores first)."""
    jobs = tuning_jobs(config) + training_jobs(config)
    splits = split_sizes(config)
    threads = config["threads"]["train"]
    started = time.perf_counter()
    cpu = torch.device("cpu")
    speeds = measure_heads(jobs, splits["dev"], cpu, threads)
    costs = study_costs(jobs, speeds, splits, best_epoch, job_start_s(cpu))
    gpu_costs, gpu_name = None, None
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        gpu_name = describe(gpu)
        speeds = measure_heads(jobs, splits["dev"], gpu, threads)
        gpu_costs = study_costs(jobs, speeds, splits, best_epoch, job_start_s(gpu))
    calibration_s = time.perf_counter() - started
    rows = summary(costs, cores, threads, gpu_costs)
    others = ", ".join(f"{stage} {n}" for stage, n in untimed_jobs(config).items() if n)
    notes = [
        f"study '{config['study']}': tuning and training only, typical (upper bound: every seed runs "
        f"max_epochs); typical = each seed's dev accuracy peaks at epoch {best_epoch}, then "
        "early stopping waits `patience` evaluations.",
        f"Measured here in {calibration_s:.0f} s: each head's training step and dev evaluation "
        f"through the training loop on random features of the job's shapes, {threads} thread(s) "
        "per job, and a job's start (interpreter, imports, first optimiser); wall times for "
        "other core counts assume this machine's per-core speed.",
        "GPU: "
        + (
            f"{gpu_name}, every training job on it, one at a time (as profiles/local-gpu "
            "runs them with ALIGNFUSE_TRAIN_GPU=1 and training.device: auto)."
            if gpu_name
            else "none visible."
        ),
        f"Not timed: data, features, tables and figures{'; jobs of ' + others if others else ''}.",
    ]
    return StudyCost(rows, cost_text(rows, cores, gpu_name, notes))
