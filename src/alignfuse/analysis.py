"""Aggregation of the per-condition run files into the study's tables.

Every condition's seeds are summarised by mean, standard deviation and a 95% Student t interval,
the interval the figures draw too, so a number in a table and a band in a figure always agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path, write_frame

CONDITION = ["dataset", "backbone", "alignment", "method", "n_train"]
RUN_COLUMNS = [
    *CONDITION,
    "seed",
    "test_accuracy",
    "test_auroc",
    "test_loss",
    "best_dev_accuracy",
    "best_epoch",
    "epochs",
    "params",
    "wall_s",
    "seeds_trained_together",
]
METRICS = ["test_accuracy", "test_auroc"]
CONFIDENCE = 0.95


def collect_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per (condition, seed) from every run file, in a fixed order whatever the input order."""
    if not paths:
        raise AlignfuseError(
            "no run files given; pass the train stage's results/runs/**/n*.parquet"
        )
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise AlignfuseError(
                f"{path}: run file not found; run the workflow's train stage first"
            )
        frame = pd.read_parquet(path)
        missing = [c for c in RUN_COLUMNS if c not in frame.columns]
        if missing:
            raise AlignfuseError(
                f"{path}: missing run columns {', '.join(missing)}; "
                "it is not a train-stage run file (rerun the train stage that writes it)"
            )
        frames.append(frame.assign(_file=str(path)))
    runs = pd.concat(frames, ignore_index=True)
    duplicated = runs[runs.duplicated([*CONDITION, "seed"], keep=False)]
    if not duplicated.empty:
        files = sorted(duplicated["_file"].unique())
        raise AlignfuseError(
            f"the same condition and seed appear more than once in {', '.join(files)}; "
            "pass each run file once"
        )
    runs = runs.drop(columns="_file").sort_values([*CONDITION, "seed"], kind="stable")
    return runs.reset_index(drop=True)


def t_halfwidth(std: pd.Series, n: pd.Series) -> pd.Series:
    """Half-width of the Student t interval of a mean; NaN for one seed (no spread to estimate)."""
    return stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / np.sqrt(n)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition: seeds, mean, std (ddof 1) and 95% t-interval half-width of each metric.

    Columns ``{metric}_mean``, ``{metric}_std``, ``{metric}_ci95`` (the half-width: the interval is
    mean ± ci95) for test_accuracy and test_auroc, plus ``params_mean`` and ``epochs_mean``. With a
    single seed std and ci95 are NaN: one run says nothing about seed-to-seed spread.
    """
    groups = runs.groupby(CONDITION, sort=True, dropna=False)
    summary = groups.size().rename("n_seeds").to_frame()
    for metric in METRICS:
        summary[f"{metric}_mean"] = groups[metric].mean()
        summary[f"{metric}_std"] = groups[metric].std(ddof=1)
        summary[f"{metric}_ci95"] = t_halfwidth(summary[f"{metric}_std"], summary["n_seeds"])
    summary["params_mean"] = groups["params"].mean()
    summary["epochs_mean"] = groups["epochs"].mean()
    return summary.reset_index()


def with_interval(mean: float, halfwidth: float, scale: float, digits: int) -> str:
    if np.isnan(halfwidth):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {halfwidth * scale:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: accuracy in percent and AUROC, each as mean ± 95% CI."""
    table = summary[[*CONDITION, "n_seeds"]].rename(columns={"n_seeds": "seeds"})
    table["accuracy (%)"] = [
        with_interval(m, h, 100, 2)
        for m, h in zip(summary["test_accuracy_mean"], summary["test_accuracy_ci95"], strict=True)
    ]
    table["AUROC"] = [
        with_interval(m, h, 1, 4)
        for m, h in zip(summary["test_auroc_mean"], summary["test_auroc_ci95"], strict=True)
    ]
    table["params"] = [f"{p:,.0f}" for p in summary["params_mean"]]
    table["epochs"] = [f"{e:.1f}" for e in summary["epochs_mean"]]
    names = len(CONDITION) - 1  # the condition's keys but n_train are names: left-aligned
    align = ["left"] * names + ["right"] * (table.shape[1] - names)
    text = table.to_markdown(index=False, disable_numparse=True, colalign=align)
    note = "Mean ± half-width of the 95% Student t interval across seeds (none with one seed)."
    return f"{text}\n\n{note}\n"


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_tables(runs: pd.DataFrame, out_dir: Path) -> None:
    """runs and summary as Parquet (for code) and CSV (for people), plus summary.md for reports."""
    out_dir = Path(out_dir)
    summary = summarize(runs)
    for name, frame in (("runs", runs), ("summary", summary)):
        write_frame(frame, out_dir / f"{name}.parquet")
        write_csv(frame, out_dir / f"{name}.csv")
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary), encoding="utf-8")
