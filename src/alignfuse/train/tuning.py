"""Tuning a method's training settings on dev before the study compares it with others.

A reviewer's first question of "concat beats cross-attention" is whether cross-attention was
tuned. :func:`tune` trains every candidate of a method's grid (learning rate, weight decay,
dropout, schedule, ...) on the train split and scores each on dev; the study's training jobs then
use the values of the best candidate. The test split is never opened here, so test labels cannot
influence the choice.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from alignfuse.devices import pick_device
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path
from alignfuse.train.condition import fit_seeds
from alignfuse.train.splits import load_splits

# Settings a grid may vary that belong to the head (its constructor's arguments), not training.
HEAD_SETTINGS = ("dropout",)
# Selection metrics: the dev metric of each seed's best checkpoint, and whether higher is better.
METRICS = {"dev_accuracy": True, "dev_auroc": True, "dev_loss": False}


class Tuned(NamedTuple):
    """Every candidate's dev scores (a row per candidate and seed) and the chosen values."""

    candidates: pd.DataFrame
    chosen: dict


def candidates(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, settings in name order, values in the grid's order
    (so the first candidate wins a tie)."""
    names = sorted(grid)
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*map(grid.get, names))
    ]


def with_values(spec: dict, values: dict) -> dict:
    """``spec`` with a candidate's values in place: head settings among its hyper-parameters,
    the rest among its training settings."""
    spec = copy.deepcopy(spec)
    for name, value in values.items():
        spec["hparams" if name in HEAD_SETTINGS else "training"][name] = value
    return spec


def choose(frame: pd.DataFrame, metric: str) -> tuple[pd.Series, int]:
    """Each candidate's score (the seeds' mean ``metric``; NaN if any seed diverged or never
    reached an evaluation) and the chosen candidate: the best score, ties to the earlier one."""
    groups = frame.groupby("candidate", sort=True)
    usable = groups[metric].mean().where(groups["status"].agg(lambda s: (s == "ok").all()))
    if usable.isna().all():
        raise AlignfuseError(
            "every candidate of the tuning grid diverged or was never evaluated; add smaller "
            "learning rates (tuning.methods.<method>.lr) or more epochs"
        )
    signed = usable if METRICS[metric] else -usable
    return usable, int(signed.idxmax())


def tune(
    image_features: Path,
    text_features: Path,
    pairs_dir: Path,
    spec: dict,
    threads: int,
) -> Tuned:
    """Train each candidate of ``spec["grid"]`` on ``spec["scale"]`` training pairs with
    ``spec["seeds"]``, score it on dev, and choose by ``spec["metric"]``.

    Each seed's score is the dev metric of its best checkpoint (the one early stopping keeps, as
    in the study's runs). Only the train and dev pairs are read.
    """
    torch.set_num_threads(threads)
    device = pick_device(spec["training"].get("device", "cpu"))
    seeds, n, metric = list(spec["seeds"]), spec["scale"], spec["metric"]
    data = load_splits(
        image_features,
        text_features,
        pairs_dir,
        n,
        device,
        seeds,
        spec.get("resample", "fixed"),
        spec.get("scaling", "none"),
        splits=("train", "dev"),
    )
    rows, grid = [], candidates(spec["grid"])
    for index, values in enumerate(grid):
        start = time.perf_counter()
        run = with_values(spec, values)
        desc = f"tune {spec['method']} {index + 1}/{len(grid)}"
        _, result, _ = fit_seeds(run, data, device, (image_features, text_features), desc)
        curves = pd.DataFrame(result.curves)
        stopping = result.stopping
        for s, seed in enumerate(seeds):
            best = curves[(curves["seed"] == seed) & (curves["epoch"] == stopping.best_epoch[s])]
            diverged = stopping.diverged_at[s] is not None
            ok = not diverged and len(best) == 1
            rows.append(
                {
                    "candidate": index,
                    **values,
                    "seed": seed,
                    **{m: best[m].iloc[0] if ok else np.nan for m in METRICS},
                    "best_epoch": stopping.best_epoch[s],
                    "epochs": stopping.stopped_at[s] or result.last_epoch,
                    "status": "ok" if ok else "diverged" if diverged else "unevaluated",
                    "wall_s": time.perf_counter() - start,
                }
            )
    frame = pd.DataFrame(rows)
    scores, chosen = choose(frame, metric)
    frame["score"] = frame["candidate"].map(scores)
    frame["chosen"] = frame["candidate"] == chosen
    frame.insert(0, "method", spec["method"])
    frame["metric"] = metric
    return Tuned(
        frame,
        {
            "method": spec["method"],
            "values": grid[chosen],
            "metric": metric,
            "score": float(scores[chosen]),
            "candidates": len(scores),
        },
    )


def write_chosen(chosen: dict, path: Path) -> None:
    """The chosen values as JSON, written atomically (what the study's training jobs read)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")


def read_chosen(path: Path, method: str) -> dict:
    """The values tuning chose for ``method`` from its JSON file (see :func:`write_chosen`)."""
    fix = "delete it and rerun the workflow's tune rule to rebuild it"
    try:
        chosen = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AlignfuseError(f"{path}: cannot read the tuned values ({exc}); {fix}") from None
    if not isinstance(chosen, dict) or not isinstance(chosen.get("values"), dict):
        raise AlignfuseError(f"{path}: no 'values' mapping of tuned settings; {fix}")
    if chosen.get("method") != method:
        raise AlignfuseError(
            f"{path}: tuned values of method '{chosen.get('method')}', not '{method}'; pass "
            f"results/<study>/tuning/<dataset>/{method}.json"
        )
    return chosen["values"]


def apply_chosen(spec: dict, values: dict) -> dict:
    """A training job's spec with the tuned values in place, and recorded as tuned."""
    return {**with_values(spec, values), "tuned": values}
