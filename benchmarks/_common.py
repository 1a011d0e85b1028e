"""Measurements shared by the benchmark scripts: the machine's matmul peak and a measured subprocess.

Benchmarks report ratios measured in one run (see benchmarks/README.md), so the peak that a job's
FLOP/s is compared with comes from the same run, at the job's thread count.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_heads(*methods: str, study: Path = ROOT / "config.yaml") -> dict[str, dict]:
    """The hyper-parameters of ``methods`` in a study (default the paper's, config.yaml), so the
    benchmarks time the heads the study trains; each method's training overrides are left out."""
    import yaml

    from alignfuse.fusion import METHOD_SETTINGS

    config = yaml.safe_load(Path(study).read_text(encoding="utf-8"))["methods"]
    return {m: {k: v for k, v in config[m].items() if k not in METHOD_SETTINGS} for m in methods}


def matmul_peak(threads: int, size: int = 2048, repeats: int = 7) -> float:
    """FLOP/s of the best of ``repeats`` float32 [size, size] @ [size, size] products on ``threads``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm-up: thread pool, MKL buffers
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best


@dataclass
class Measured:
    """A finished subprocess: exit status, wall and CPU seconds, peak resident bytes, output."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss: int
    output: str


def run_measured(command: list[str], env: dict | None = None) -> Measured:
    """Run ``command`` to completion; wall time, CPU time and peak RSS of that process (os.wait4).

    CPU time (user + system) of a one-thread job is its work without the waiting that other load
    on the machine adds to its wall time.
    """
    with open(os.devnull, "rb") as stdin:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = usage.ru_maxrss * (1 if os.uname().sysname == "Darwin" else 1024)
    return Measured(process.returncode, wall, usage.ru_utime + usage.ru_stime, rss, output)
