"""Aggregation of the per-condition run files into the study's tables.

Every condition's seeds are summarised by mean, standard deviation and two intervals: the Student
t interval across seeds, and the interval that also covers the test set's sampling variance (a
bootstrap over test images), which figures draw and verdicts use. Paired comparisons
(``statistics``) and the claims (``claims``) are tables of the same step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.analysis.alignment_study import alignment_study
from alignfuse.analysis.bootstrap import ImageBootstrap
from alignfuse.analysis.claims import Claim, claims_table
from alignfuse.analysis.comparisons import Comparison, comparisons_frame, declare
from alignfuse.analysis.display import DISPLAYS, html, markdown
from alignfuse.analysis.statistics import (
    Predictions,
    diverged_runs,
    paired_differences,
    seed_halfwidth,
    test_interval,
)
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path, read_frame, write_frame

CONDITION = ["dataset", "backbone", "alignment", "method", "n_train"]
RUN_COLUMNS = [
    *CONDITION,
    "head",
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
    "token_source",
    "image_tokens",
    "text_tokens",
    "status",
]
METRICS = ["test_accuracy", "test_auroc"]
RUNS_FIX = "delete it and rerun the train stage that writes it"
# A condition without a usable seed has no interval of any kind.
NO_INTERVAL = {"test_se": np.nan, "low": np.nan, "high": np.nan, "interval": None}


@dataclass(frozen=True)
class Settings:
    """What the analysis stage is configured with: the config's ``analysis``, its claims and
    the comparisons declared from them (``comparisons.declare``)."""

    reference: str = "concat"
    confidence: float = 0.95
    tolerance_pts: float = 1.0
    bootstrap_resamples: int = 1000
    seed: int = 0
    claims: tuple[Claim, ...] = field(default=())
    comparisons: tuple[Comparison, ...] = field(default=())

    @classmethod
    def from_config(cls, spec: dict, trained) -> Settings:
        """From ``grid.comparison_spec``'s slice of the config and the trained conditions
        (backbone, alignment, method, n), checked as the plan checks them."""
        analysis = spec["analysis"]
        return cls(
            reference=analysis["reference"],
            confidence=analysis["confidence"],
            tolerance_pts=analysis["tolerance_pts"],
            bootstrap_resamples=analysis["bootstrap_resamples"],
            seed=analysis["seed"],
            claims=tuple(Claim.from_config(c, f"claims.{i}") for i, c in enumerate(spec["claims"])),
            comparisons=tuple(declare(spec, trained)),
        )


def trained_conditions(runs: pd.DataFrame) -> set[tuple]:
    """The (backbone, alignment, method, n) conditions that ``runs`` hold."""
    keys = runs[["backbone", "alignment", "method", "n_train"]].drop_duplicates()
    return {(b, a, m, int(n)) for b, a, m, n in keys.itertuples(index=False)}


def collect_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per (condition, seed) from every run file, in a fixed order whatever the input order."""
    if not paths:
        raise AlignfuseError(
            "no run files given; pass the train stage's results/<study>/runs/**/seeds*-*.parquet"
        )
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise AlignfuseError(
                f"{path}: run file not found; run the workflow's train stage first"
            )
        frame = read_frame(path, RUNS_FIX)
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
    runs = runs[RUN_COLUMNS + [c for c in runs.columns if c not in RUN_COLUMNS]]
    return runs.reset_index(drop=True)


def predictions_path(run_path: Path) -> Path:
    """The test predictions that the train stage writes beside a run file."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name.removesuffix(".parquet") + ".predictions.parquet")


def curves_path(run_path: Path) -> Path:
    """The learning curves that the train stage writes beside a run file."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name.removesuffix(".parquet") + ".curves.parquet")


def collect_curves(paths: list[Path]) -> pd.DataFrame:
    """Every condition's per-evaluation curves (dev metrics and the attention diagnostics), with
    the condition's training pairs, in a fixed order whatever the input order."""
    frames = []
    for path in map(Path, paths):
        source = curves_path(path)
        if not source.is_file():
            raise AlignfuseError(
                f"{source}: learning curves not found beside {path.name}; rerun the train stage"
            )
        (n_train,) = read_frame(path, RUNS_FIX, columns=["n_train"])["n_train"].unique()
        frames.append(read_frame(source, RUNS_FIX).assign(n_train=n_train))
    curves = pd.concat(frames, ignore_index=True)
    order = [*CONDITION, "seed", "epoch"]
    curves = curves[order + [c for c in curves.columns if c not in order]]
    return curves.sort_values(order, kind="stable").reset_index(drop=True)


def collect_predictions(paths: list[Path], test_pairs: pd.DataFrame) -> Predictions:
    """Every condition's test probabilities, from the predictions beside each run file."""
    predictions = Predictions()
    for path in map(Path, paths):
        source = predictions_path(path)
        if not source.is_file():
            raise AlignfuseError(
                f"{source}: test predictions not found beside {path.name}; rerun the train stage"
            )
        runs = read_frame(path, RUNS_FIX, columns=CONDITION).drop_duplicates()
        frame = read_frame(source, RUNS_FIX)
        for seed, rows in frame.groupby("seed"):
            if (
                len(rows) != len(test_pairs)
                or (rows["pair"].to_numpy() != np.arange(len(rows))).any()
            ):
                raise AlignfuseError(
                    f"{source}: seed {seed} has predictions for {len(rows)} pairs, but the test "
                    f"split has {len(test_pairs)}; rerun the train stage (the pairs changed)"
                )
            for key in runs.itertuples(index=False):
                predictions.setdefault(tuple(key), {})[seed] = rows["prob"].to_numpy(np.float64)
    return predictions


def summarize(
    runs: pd.DataFrame,
    predictions: Predictions | None = None,
    bootstrap: ImageBootstrap | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per condition: seeds, mean, std (ddof 1) and intervals of each metric.

    Columns per metric: ``_mean``, ``_std``, ``_ci95`` (half-width of the t interval across
    seeds), ``_test_se`` (the test bootstrap's standard error of the seeds' mean; NaN without
    predictions) and ``_low``/``_high``, the interval over seeds and test images (over seeds
    alone without predictions; ``interval`` says which). Diverged seeds are left out and counted
    in ``n_diverged``: a condition whose seeds all diverged keeps its row, with 0 seeds and NaN
    estimates, so that it is reported rather than lost; with a single seed std and intervals
    are NaN.
    """
    diverged = diverged_runs(runs)
    every = runs.groupby(CONDITION, sort=True, dropna=False)
    groups = runs[~diverged].groupby(CONDITION, sort=True, dropna=False)
    usable = dict(iter(groups))
    summary = pd.DataFrame(index=every.size().index)
    summary["n_seeds"] = groups.size().reindex(summary.index, fill_value=0).astype(int)
    counts = runs[diverged].groupby(CONDITION, sort=True, dropna=False).size()
    summary["n_diverged"] = counts.reindex(summary.index, fill_value=0).astype(int)
    for metric in METRICS:
        summary[f"{metric}_mean"] = groups[metric].mean().reindex(summary.index)
        summary[f"{metric}_std"] = groups[metric].std(ddof=1).reindex(summary.index)
        summary[f"{metric}_ci95"] = [
            seed_halfwidth(std, n, confidence)
            for std, n in zip(summary[f"{metric}_std"], summary["n_seeds"], strict=True)
        ]
        intervals = []
        for key, row in summary.iterrows():
            if key not in usable:
                intervals.append(NO_INTERVAL)
                continue
            draws = None
            if predictions is not None and bootstrap is not None:
                draws = bootstrap.draws(metric, predictions.stack(key, usable[key]["seed"]))
            intervals.append(
                test_interval(
                    draws, row[f"{metric}_mean"], row[f"{metric}_std"], row["n_seeds"], confidence
                )
            )
        intervals = pd.DataFrame(intervals, index=summary.index)
        for part in ("test_se", "low", "high"):
            summary[f"{metric}_{part}"] = intervals[f"{part}"] if len(intervals) else np.nan
        summary["interval"] = intervals["interval"] if len(intervals) else ""
    summary["head"] = every["head"].first()
    # what the head saw, was built with, and how it was trained (chosen on dev or set)
    for recorded in ("scaling", "hparams", "training", "tuned", "tuned_values"):
        if recorded in runs:
            summary[recorded] = every[recorded].first()
    summary["params_mean"] = every["params"].mean()
    summary["epochs_mean"] = groups["epochs"].mean().reindex(summary.index)
    return summary.reset_index()


def with_tokens(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The summary with each condition's ``token_source`` and mean ``image_tokens``/``text_tokens``."""
    groups = runs.groupby(CONDITION, sort=True, dropna=False)
    tokens = groups.agg(
        token_source=("token_source", "first"),
        image_tokens=("image_tokens", "mean"),
        text_tokens=("text_tokens", "mean"),
    )
    return summary.merge(tokens.reset_index(), on=CONDITION, how="left")


def build_tables(
    runs: pd.DataFrame,
    settings: Settings = Settings(),
    predictions: Predictions | None = None,
    test_pairs: pd.DataFrame | None = None,
    alignment_metrics: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of the study from the runs: runs, summary, the declared comparisons, paired,
    paper_vs_ours and the alignment study (with the feature sets' ``alignment_metrics`` beside
    the gaps).

    With the test ``predictions`` and ``test_pairs``, intervals cover test images too.
    """
    bootstrap = None
    if predictions is not None and test_pairs is not None:
        bootstrap = ImageBootstrap.draw(test_pairs, settings.bootstrap_resamples, settings.seed)
    comparisons = list(settings.comparisons)
    paired = paired_differences(
        runs, comparisons, METRICS, predictions, bootstrap, settings.confidence
    )
    summary = summarize(runs, predictions, bootstrap, settings.confidence)
    study = alignment_study(
        runs,
        alignment_metrics,
        comparisons,
        settings.bootstrap_resamples,
        settings.seed,
        settings.confidence,
    )
    return {
        "runs": runs,
        "summary": with_tokens(summary, runs),
        "comparisons": comparisons_frame(comparisons),
        "paired": paired,
        "paper_vs_ours": claims_table(
            paired,
            list(settings.claims),
            sorted(runs["dataset"].unique()),
            settings.tolerance_pts,
            settings.confidence,
            study,
        ),
        "alignment_study": study,
    }


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tables(
    runs: pd.DataFrame,
    out_dir: Path,
    settings: Settings = Settings(),
    predictions: Predictions | None = None,
    test_pairs: pd.DataFrame | None = None,
    alignment_metrics: pd.DataFrame | None = None,
) -> None:
    """Every table as Parquet (for code) and CSV (for people); the main ones also as .md and .html.

    ``runs`` and ``summary`` are described above; ``paired`` is ``statistics.paired_differences``
    and ``paper_vs_ours`` is ``claims.claims_table``. Each file is written atomically.
    """
    out_dir = Path(out_dir)
    tables = build_tables(runs, settings, predictions, test_pairs, alignment_metrics)
    for name, frame in tables.items():
        write_frame(frame, out_dir / f"{name}.parquet")
        write_csv(frame, out_dir / f"{name}.csv")
        if name in DISPLAYS:
            display = DISPLAYS[name](frame, settings)
            write_text(markdown(display), out_dir / f"{name}.md")
            write_text(html(display), out_dir / f"{name}.html")
