"""This machine's speed on a study's heads, measured in the same process in a few seconds.

For each distinct head of the study (hyper-parameters, widths, seeds per job, batch size) the
real training loop (:func:`alignfuse.train.condition.fit`) runs a few optimiser steps and one dev
evaluation on random features of the job's shapes; FLOPs of a step and of an evaluated pair are
counted by ``torch.utils.flop_counter`` (matmul-type operations), so every estimate is counted
work at a measured rate, not a constant from another machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from alignfuse.cost.plan import SplitSize, TrainJob
from alignfuse.features.rows import PooledRows, TokenRows
from alignfuse.train.condition import fit
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.optim import adamw
from alignfuse.train.splits import Split

# Optimiser steps timed per head: at least STEPS, and for a cheap head as many as fill about
# TIMED_S seconds (at most MAX_STEPS); and the dev pairs one calibration evaluates (an
# evaluation's time grows with its pairs; the job's dev split is scaled from this many).
STEPS = 2
TIMED_S = 0.25
MAX_STEPS = 64
EVAL_PAIRS = 256


@dataclass(frozen=True)
class HeadSpeed:
    """One head's measured speed on one device: a training step of the job's stacked seeds and
    a predicted dev pair (all seeds), in seconds and in counted FLOPs, and the attention
    entropy's seconds per pair of its sample."""

    step_s: float
    step_flops: float
    eval_pair_s: float
    eval_pair_flops: float
    entropy_pair_s: float

    @property
    def train_flop_rate(self) -> float:
        return self.step_flops / self.step_s

    @property
    def eval_flop_rate(self) -> float:
        return self.eval_pair_flops / self.eval_pair_s


def speed_key(job: TrainJob) -> str:
    """What a head's speed depends on: its config, widths, tokens, seeds and batch size."""
    spec = job.spec
    return json.dumps(
        [spec["head"], spec["hparams"], job.d_image, job.d_text, job.tokens, job.seeds]
        + [job.batch_size],
        sort_keys=True,
    )


def random_rows(count: int, dim: int, tokens: int | None, device: torch.device):
    """``count`` rows of random unit-scale features: pooled vectors, or ``tokens`` tokens each."""
    if tokens is None:
        return PooledRows(torch.randn(count, dim, device=device) / dim**0.5)
    values = (torch.randn(count * tokens, dim) / dim**0.5).to(torch.float16)
    lengths = torch.full((count,), tokens, dtype=torch.long)
    return TokenRows(values, torch.arange(count) * tokens, lengths).to(device)


def random_split(
    pairs: int, images: int, dims: tuple[int, int], tokens: dict | None, device: torch.device
) -> Split:
    """``pairs`` interleaved pairs over ``images`` images and one caption per two pairs."""
    captions = (pairs + 1) // 2
    image = random_rows(images, dims[0], tokens and tokens["image"], device)
    text = random_rows(captions, dims[1], tokens and tokens["text"], device)
    position = torch.arange(pairs, device=device)
    return Split(
        image=image,
        text=text,
        label=(1 - position % 2).long(),
        image_row=position * images // pairs,
        text_row=position // 2,
    )


def measure_head(job: TrainJob, dev: SplitSize, device: torch.device) -> HeadSpeed:
    """Time optimiser steps of ``job``'s head through the job's loop (at least :data:`STEPS`,
    more for a cheap head, until they take about :data:`TIMED_S`), then a dev evaluation's two
    parts on :data:`EVAL_PAIRS` pairs: the predictions, and the attention entropy that every
    evaluation also computes on its first pairs (``ensemble.EVAL_PAIRS`` of them).

    One step and one prediction, under the FLOP counter, warm up (allocations, first-call
    costs) before anything is timed.
    """
    dims, seeds, batch = (job.d_image, job.d_text), list(job.spec["seeds"]), job.batch_size
    model = SeedEnsemble(
        job.spec["head"], job.spec["hparams"], *dims, seeds, device, job.spec["method"]
    )
    first = random_split(batch, batch, dims, job.tokens, device)
    probe = torch.arange(batch, device=device).expand(len(seeds), -1)
    model.adopt_grad_layout(*first.inputs(probe))
    model.measure_dropout(*first.inputs(first.longest().expand(len(seeds), -1)))
    cfg = {**job.spec["training"], "max_epochs": 1, "eval_every": 1, "patience": 1}
    optimizer = adamw(model.params.values(), cfg)

    model.train()
    start = time.perf_counter()
    with FlopCounterMode(display=False) as counter:
        logits = model(*first.inputs(probe))
        loss = F.cross_entropy(logits.flatten(0, 1), first.label[probe.flatten()])
        optimizer.zero_grad()
        loss.backward()
    optimizer.step()
    warm_s = time.perf_counter() - start
    step_flops = counter.get_total_flops()
    dev_pairs = min(dev.pairs, EVAL_PAIRS)
    evaluated = random_split(
        dev_pairs, max(2, dev_pairs * dev.images // dev.pairs), dims, job.tokens, device
    )
    with FlopCounterMode(display=False) as counter:
        model.predict(evaluated)
    eval_flops = counter.get_total_flops() / dev_pairs

    steps = min(MAX_STEPS, max(STEPS, math.ceil(TIMED_S / warm_s)))
    train = random_split(steps * batch, steps * batch, dims, job.tokens, device)
    train.subsets = torch.arange(steps * batch).expand(len(seeds), -1)
    # the loop's own evaluation, on two pairs, is taken out of its time
    tiny = random_split(2, 2, dims, job.tokens, device)
    start = time.perf_counter()
    loop_s, result = timed(device, fit, model, optimizer, train, tiny, cfg, seeds, "calibration")
    evaluating = result.eval_s / (time.perf_counter() - start)  # the loop's share (by the clock)
    predict_s, _ = timed(device, model.predict, evaluated)
    entropy_s, _ = timed(device, model.attention_entropy, evaluated)
    return HeadSpeed(
        step_s=max(loop_s * (1 - evaluating), 1e-9) / steps,
        step_flops=step_flops,
        eval_pair_s=predict_s / dev_pairs,
        eval_pair_flops=eval_flops,
        entropy_pair_s=entropy_s / dev_pairs,
    )


def timed(device: torch.device, function, *args):
    """(seconds, result) of ``function(*args)``, waiting for the device's queued work.

    On the CPU the seconds are the fewer of the clock's and the process's CPU time: a one-thread
    job's CPU time is what it takes on a free core, which other work on a shared machine does
    not inflate; with more threads the clock is the fewer, and counts. On a GPU, the clock.
    """
    synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    synchronize(device)
    return elapsed(device, time.perf_counter() - start, time.process_time() - cpu), result


def elapsed(device: torch.device, wall_s: float, cpu_s: float) -> float:
    """What :func:`timed` counts: the fewer of wall and CPU seconds on the CPU, else wall."""
    return min(wall_s, cpu_s) if device.type == "cpu" else wall_s


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_heads(
    jobs: list[TrainJob], dev: SplitSize, device: torch.device, threads: int
) -> dict[str, HeadSpeed]:
    """Every distinct head of ``jobs``, measured once on ``device`` with ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        speeds = {}
        for job in jobs:
            key = speed_key(job)
            if key not in speeds:
                # heads sized by param_match report their width; the loop draws a progress bar
                with contextlib.redirect_stderr(io.StringIO()):
                    speeds[key] = measure_head(job, dev, device)
        return speeds
    finally:
        torch.set_num_threads(before)


def job_start_s(device: torch.device) -> float:
    """Seconds a training job spends before its loop that a study pays per job: a fresh
    interpreter importing the training code and building its first optimiser (which imports
    ``torch._dynamo``), and, on a GPU, starting CUDA. Measured in a subprocess (seconds as
    :func:`timed` counts them)."""
    code = (
        "import torch, alignfuse.train.condition;"
        f"p = torch.zeros(1, device='{device.type}', requires_grad=True);"
        "torch.optim.AdamW([p])"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return elapsed(device, wall_s, cpu_s)
