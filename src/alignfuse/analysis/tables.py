"""Aggregation of the per-condition run files into the study's tables.

Every condition's seeds are summarised by mean, standard deviation and a 95% Student t interval,
the interval the figures draw too, so a number in a table and a band in a figure always agree.
Paired comparisons (``statistics``) and the paper's claims (``paper``) are tables of the same step.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.analysis.paper import PAPER, paper_vs_ours
from alignfuse.analysis.statistics import (
    BOOTSTRAP_RESAMPLES,
    PAIR_KEYS,
    WILCOXON_MIN_PAIRS,
    paired_differences,
)
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path, write_frame

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
    runs = runs[RUN_COLUMNS + [c for c in runs.columns if c not in RUN_COLUMNS]]
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
    summary["head"] = groups["head"].first()
    summary["params_mean"] = groups["params"].mean()
    summary["epochs_mean"] = groups["epochs"].mean()
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


def tokens_label(source: str, image: float, text: float) -> str:
    """What a head attended over, for people: pooled, k pseudo-tokens, or encoder sequence lengths."""
    if source == "pooled":
        return "pooled"
    if source == "pseudo":
        return f"{image:.0f} pseudo"
    return f"encoder {image:.0f} / {text:.1f}"


def with_interval(mean: float, halfwidth: float, scale: float, digits: int) -> str:
    if np.isnan(halfwidth):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {halfwidth * scale:.{digits}f}"


def with_bounds(mean: float, low: float, high: float, scale: float, digits: int) -> str:
    """``mean [low, high]``, or the mean alone (or a dash) where a value is missing."""
    if pd.isna(mean):
        return "–"
    if pd.isna(low) or pd.isna(high):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def bounds(low: float, high: float, scale: float, digits: int) -> str:
    if pd.isna(low) or pd.isna(high):
        return "–"
    return f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def text(values: pd.Series, missing: str = "–") -> list[str]:
    return [missing if pd.isna(v) else str(v) for v in values]


def pvalue(p: float) -> str:
    return "–" if pd.isna(p) else f"{p:.3g}"


@dataclass(frozen=True)
class Display:
    """A table laid out for people: its title, columns as text, alignment and a footnote."""

    title: str
    frame: pd.DataFrame
    colalign: list[str]
    note: str


def summary_display(summary: pd.DataFrame) -> Display:
    """Accuracy in percent and AUROC, each as mean ± 95% CI half-width."""
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
    table["tokens"] = [
        tokens_label(r.token_source, r.image_tokens, r.text_tokens) for r in summary.itertuples()
    ]
    names = len(CONDITION) - 1  # the condition's keys but n_train are names: left-aligned
    align = ["left"] * names + ["right"] * (table.shape[1] - names - 1) + ["left"]
    note = (
        "Mean ± half-width of the 95% Student t interval across seeds (none with one seed). "
        "tokens: what the head attends over: pooled vectors, k pseudo-tokens cut from them, or "
        "the encoders' own sequences (mean tokens per image / per caption)."
    )
    return Display("Test accuracy and AUROC per condition", table, align, note)


def paired_display(paired: pd.DataFrame) -> Display:
    """Differences in points (metric × 100) with both intervals and the tests' p-values."""
    table = paired[[*PAIR_KEYS[:3], "metric", "n_train", "n_seeds"]].rename(
        columns={"n_seeds": "seeds"}
    )
    table.insert(
        4,
        "difference",
        [f"{r} − {m}" for r, m in zip(paired["reference"], paired["method"], strict=True)],
    )
    rows = list(paired.itertuples())
    table["mean diff (pts) [95% t CI]"] = [
        with_bounds(r.mean_diff, r.ci_low, r.ci_high, 100, 2) for r in rows
    ]
    table["bootstrap 95% CI"] = [bounds(r.boot_low, r.boot_high, 100, 2) for r in rows]
    table["p (paired t)"] = [pvalue(r.p_ttest) for r in rows]
    table["p (Wilcoxon)"] = [pvalue(r.p_wilcoxon) for r in rows]
    table["p Holm (t)"] = [pvalue(r.p_ttest_holm) for r in rows]
    align = ["left"] * 5 + ["right"] * (table.shape[1] - 5)
    note = (
        "Differences reference − method on the same seeds (same data order), in points: the "
        "metric × 100. Student t interval and paired t test (scipy ttest_rel); Wilcoxon "
        f"signed-rank test with at least {WILCOXON_MIN_PAIRS} seeds; percentile bootstrap of "
        f"the mean difference ({BOOTSTRAP_RESAMPLES} resamples, fixed seed). Holm's correction "
        "runs over all comparisons of one metric in this table. With few seeds the bootstrap "
        "interval cannot reach past the observed differences and is too narrow; the verdicts of "
        "paper_vs_ours use the t interval."
    )
    return Display("Paired differences: concat − each method", table, align, note)


def paper_display(table: pd.DataFrame) -> Display:
    """The paper's claims beside our estimates (points) and a verdict."""
    rows = list(table.itertuples())
    shown = pd.DataFrame(
        {
            "claim": table["statement"],
            "condition": [
                "–" if pd.isna(r.backbone) else f"{r.backbone}@{r.alignment}" for r in rows
            ],
            "pairs": text(table["scales"]),
            "method": text(table["method"]),
            "paper (pts)": [f"{r.paper_low_pts:g}–{r.paper_high_pts:g}" for r in rows],
            "ours (pts) [95% t CI]": [
                with_bounds(r.ours_mean_pts, r.ours_ci_low_pts, r.ours_ci_high_pts, 1, 2)
                for r in rows
            ],
            "seeds": ["–" if pd.isna(r.n_seeds) else str(r.n_seeds) for r in rows],
            "verdict": table["verdict"],
            "note": text(table["note"], missing=""),
        }
    )
    align = ["left"] * 4 + ["right"] * 3 + ["left"] * 2
    note = (
        f"Claims of {PAPER} (concat − cross-attention, accuracy points) and ours, with the same "
        "paired statistics as paired.md. Reproduced: our interval excludes 0 and meets the paper's "
        "range; same sign, smaller/larger: it excludes 0 but misses the range; inconclusive: it "
        "holds 0 and meets the range; not reproduced: it holds 0 and misses the range, or a scale "
        "fails; reversed: it lies below 0. The paper's clip backbone, raw alignment and "
        "cross-attention (methods named xattn*) are matched by name."
    )
    return Display(f"Paper ({PAPER}) vs ours", shown, align, note)


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: accuracy in percent and AUROC, each as mean ± 95% CI."""
    return markdown(summary_display(summary))


def markdown(display: Display) -> str:
    if display.frame.empty:
        return f"{display.note}\n\n(no rows)\n"
    text = display.frame.to_markdown(index=False, disable_numparse=True, colalign=display.colalign)
    return f"{text}\n\n{display.note}\n"


def html(display: Display) -> str:
    """A standalone HTML page of the table, for the Snakemake report (which shows HTML inline)."""
    table = display.frame.to_html(index=False, border=0, escape=True, na_rep="–")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(display.title)}</title><style>{HTML_STYLE}</style></head>\n"
        f"<body><h2>{escape(display.title)}</h2>\n{table}\n"
        f"<p>{escape(display.note)}</p></body></html>\n"
    )


HTML_STYLE = (
    "body{font-family:sans-serif;font-size:13px}"
    "table{border-collapse:collapse}"
    "th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}"
    "th{background:#f4f4f4}"
)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def build_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table of the study from the runs: runs, summary, paired and paper_vs_ours."""
    paired = paired_differences(runs)
    return {
        "runs": runs,
        "summary": with_tokens(summarize(runs), runs),
        "paired": paired,
        "paper_vs_ours": paper_vs_ours(paired, sorted(runs["dataset"].unique())),
    }


DISPLAYS = {"summary": summary_display, "paired": paired_display, "paper_vs_ours": paper_display}


def write_tables(runs: pd.DataFrame, out_dir: Path) -> None:
    """Every table as Parquet (for code) and CSV (for people); the main ones also as .md and .html.

    ``runs`` and ``summary`` are described above; ``paired`` is ``statistics.paired_differences``
    and ``paper_vs_ours`` is ``paper.paper_vs_ours``. Each file is written atomically.
    """
    out_dir = Path(out_dir)
    for name, frame in build_tables(runs).items():
        write_frame(frame, out_dir / f"{name}.parquet")
        write_csv(frame, out_dir / f"{name}.csv")
        if name in DISPLAYS:
            display = DISPLAYS[name](frame)
            write_text(markdown(display), out_dir / f"{name}.md")
            write_text(html(display), out_dir / f"{name}.html")
