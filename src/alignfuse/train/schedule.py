"""The learning rate at each optimiser step: constant, or a linear warm-up and a cosine decay.

Attention blocks are usually trained with a warm-up and a decaying rate, MLPs often without; the
schedule is a training setting like any other, so each method can have its own (or have it tuned).
The rate depends on the step alone, and every seed of a stack takes the same steps, so one rate
serves the whole stack and a seed's numbers stay independent of the seeds beside it.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "warmup_cosine")


def total_steps(cfg: dict, pairs: int) -> int:
    """Optimiser steps if no seed stops early: ``max_epochs`` epochs of ``pairs`` training pairs
    in batches of ``batch_size`` (the last one smaller)."""
    return cfg["max_epochs"] * math.ceil(pairs / min(cfg["batch_size"], pairs))


def warmup_steps(cfg: dict, total: int) -> int:
    """Steps of linear warm-up: ``warmup_steps`` when given, else ``warmup_fraction`` of ``total``
    (at most ``total``)."""
    steps = cfg.get("warmup_steps")
    if steps is None:
        steps = round(cfg.get("warmup_fraction", 0.0) * total)
    return min(int(steps), total)


def learning_rate(cfg: dict, step: int, total: int) -> float:
    """The rate of optimiser step ``step`` (0-based) of ``total``.

    ``constant``: ``lr`` throughout. ``warmup_cosine``: rises linearly to ``lr`` over the warm-up
    (lr·(k+1)/W at step k, so the first step already moves), then follows half a cosine from ``lr``
    down to ``final_lr_fraction``·lr at the last step of ``max_epochs``; a seed that stops early
    leaves the decay unfinished.
    """
    lr = cfg["lr"]
    if cfg.get("schedule", "constant") == "constant":
        return lr
    warmup = warmup_steps(cfg, total)
    if step < warmup:
        return lr * (step + 1) / warmup
    final = lr * cfg.get("final_lr_fraction", 0.0)
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))
    return final + (lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
