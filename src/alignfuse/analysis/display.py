"""The study's tables laid out for people: Markdown and HTML with a footnote that says what each
number means and which sources of variance its interval covers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from alignfuse.analysis.recipes import MIXED, run_recipe
from alignfuse.analysis.statistics import BOOTSTRAP_RESAMPLES, PAIR_KEYS, WILCOXON_MIN_PAIRS


@dataclass(frozen=True)
class Display:
    """A table laid out for people: its title, columns as text, alignment and a footnote."""

    title: str
    frame: pd.DataFrame
    colalign: list[str]
    note: str


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


def seeds_label(needed: float) -> str:
    """Seeds a decisive interval would need: a count, "never" when the test set alone is too
    wide, or a dash without a spread to judge from."""
    if pd.isna(needed):
        return "–"
    if math.isinf(needed):
        return "never (test set too small)"
    return f"{needed:.0f}"


def tokens_label(source: str, image: float, text: float) -> str:
    """What a head attended over, for people: pooled, k pseudo-tokens, or encoder sequence lengths."""
    if source == "pooled":
        return "pooled"
    if source == "pseudo":
        return f"{image:.0f} pseudo"
    return f"encoder {image:.0f} / {text:.1f}"


def covers(intervals: pd.Series) -> str:
    """What the tables' intervals cover, for a footnote."""
    kinds = sorted(set(intervals.dropna()))
    return " / ".join(kinds) if kinds else "seeds"


def summary_display(summary: pd.DataFrame, settings) -> Display:
    """Accuracy in percent and AUROC, each as mean [interval over seeds and test images]."""
    condition = ["dataset", "backbone", "alignment", "method", "n_train"]
    table = summary[[*condition, "n_seeds"]].rename(columns={"n_seeds": "seeds"})
    table["diverged"] = summary["n_diverged"].astype(str)
    table["accuracy (%)"] = [
        with_bounds(r.test_accuracy_mean, r.test_accuracy_low, r.test_accuracy_high, 100, 2)
        for r in summary.itertuples()
    ]
    table["± seeds only"] = [
        "–" if np.isnan(h) else f"{100 * h:.2f}" for h in summary["test_accuracy_ci95"]
    ]
    table["AUROC"] = [
        with_bounds(r.test_auroc_mean, r.test_auroc_low, r.test_auroc_high, 1, 4)
        for r in summary.itertuples()
    ]
    table["params"] = [f"{p:,.0f}" for p in summary["params_mean"]]
    table["scaling"] = text(summary.get("scaling", pd.Series("–", index=summary.index)))
    table["epochs"] = ["–" if np.isnan(e) else f"{e:.1f}" for e in summary["epochs_mean"]]
    table["training"] = [
        run_recipe(r.get("training"), r.get("tuned"), r.get("tuned_values"))
        for _, r in summary.iterrows()
    ]
    table["tokens"] = [
        tokens_label(r.token_source, r.image_tokens, r.text_tokens) for r in summary.itertuples()
    ]
    names = len(condition) - 1  # the condition's keys but n_train are names: left-aligned
    align = ["left"] * names + ["right"] * (table.shape[1] - names - 2) + ["left", "left"]
    level = f"{settings.confidence:.0%}"
    note = (
        f"Mean [{level} interval over {covers(summary.get('interval', pd.Series(dtype=str)))}] "
        "across seeds. The interval adds the test set's sampling variance (a bootstrap over test "
        "images, whose pairs are not independent) to the Student t interval across seeds, "
        "whose half-width alone is shown as '± seeds only'. Diverged seeds are left out; a "
        "condition whose seeds all diverged shows 0 seeds and no estimate. "
        "tokens: what the head attends over: pooled vectors, k pseudo-tokens cut from them, or "
        "the encoders' own sequences (mean tokens per image / per caption). "
        "training: the learning rate, weight decay and schedule the heads trained with; "
        "'tuned' names the settings chosen on dev by the tuning stage (the rest are as set)."
    )
    return Display("Test accuracy and AUROC per condition", table, align, note)


def paired_display(paired: pd.DataFrame, settings) -> Display:
    """Differences in points (metric × 100) with their intervals and the tests' p-values."""
    table = paired[[*PAIR_KEYS[:3], "metric", "n_train", "n_seeds"]].rename(
        columns={"n_seeds": "seeds"}
    )
    rows = list(paired.itertuples())
    table.insert(4, "difference", [difference(r) for r in rows])
    level = f"{settings.confidence:.0%}"
    table[f"mean diff (pts) [{level}]"] = [
        with_bounds(r.mean_diff, r.low, r.high, 100, 2) for r in rows
    ]
    table["seeds only (t)"] = [bounds(r.ci_low, r.ci_high, 100, 2) for r in rows]
    table["test images only"] = [bounds(r.test_low, r.test_high, 100, 2) for r in rows]
    table["p (paired t)"] = [pvalue(r.p_ttest) for r in rows]
    table["p (Wilcoxon)"] = [pvalue(r.p_wilcoxon) for r in rows]
    table["p Holm (t)"] = [pvalue(r.p_ttest_holm) for r in rows]
    table["recipes"] = [recipes_text(r.reference_recipe, r.method_recipe) for r in rows]
    table["declared by"] = text(paired["comparison"])
    align = ["left"] * 5 + ["right"] * (table.shape[1] - 7) + ["left", "left"]
    note = (
        "Differences reference − method on the same seeds (same training pairs and data "
        f"order), in points: the metric × 100. The {level} interval covers "
        f"{covers(paired['interval'])}: the Student t interval across seeds and a bootstrap "
        f"over test images ({settings.bootstrap_resamples} resamples of whole images, the same "
        "for both methods) combined as variances; each part is also shown alone. Paired t test "
        f"(scipy ttest_rel); Wilcoxon signed-rank test with at least {WILCOXON_MIN_PAIRS} "
        "seeds; Holm's correction runs over all comparisons of one metric in this table. The "
        f"percentile bootstrap over seeds ({BOOTSTRAP_RESAMPLES} resamples) in the Parquet and "
        "CSV files is too narrow with few seeds and is not used for verdicts."
    )
    note += (
        " Only declared comparisons are paired: the analysis reference against every method "
        "trained by the same recipe, each claim's, and the config's comparisons (declared by). "
        "Each reference's comparisons are their own Holm family. recipes: how the reference; "
        "the method were trained (rate, weight decay, schedule; 'tuned' names what was chosen "
        f"on dev); a row marked '{MIXED}' sets two recipes against each other because the "
        "config says mixed_recipe: true."
    )
    return Display("Paired differences: reference − method", table, align, note)


def difference(row) -> str:
    """reference − method, saying when their recipes differ."""
    text = f"{row.reference} − {row.method}"
    mixed = not pd.isna(row.mixed_recipe) and bool(row.mixed_recipe)
    return f"{text} ({MIXED})" if mixed else text


def recipes_text(reference: str, method: str) -> str:
    """Both sides' recipes, once when they read the same."""
    return f"both {reference}" if reference == method else f"{reference}; {method}"


def recipes_cell(row) -> str:
    """A claims row's recipes, or a dash where no runs recorded them."""
    if pd.isna(row.reference_recipe):
        return "–"
    return recipes_text(row.reference_recipe, row.method_recipe)


def comparisons_display(table: pd.DataFrame, settings) -> Display:
    """What the study compares: each declared pair, its scales, family, sources and recipes."""
    rows = list(table.itertuples())
    shown = pd.DataFrame(
        {
            "feature set": [f"{r.backbone}@{r.alignment}" for r in rows],
            "difference": [difference(r) for r in rows],
            "pairs": [", ".join(map(str, r.scales)) for r in rows],
            "method family": table["family"],
            "declared by": [", ".join(r.sources) for r in rows],
            "recipes": [recipes_text(r.reference_recipe, r.method_recipe) for r in rows],
        }
    )
    note = (
        "Every comparison the study's tables, figures, verdicts, theory and advise show, declared "
        f"from the config: the analysis reference ({settings.reference}) against every method "
        "trained by the same recipe on the same feature set, each claim's pairs, and the "
        "config's comparisons. recipes: how the reference; the method are trained (shared: the "
        "study's training settings; own: the method's overrides; tuned on dev: the grid and "
        f"where it ran). '{MIXED}' marks a pair of different recipes, compared because the "
        "config says mixed_recipe: true."
    )
    return Display("Declared comparisons", shown, ["left"] * shown.shape[1], note)


def claims_display(table: pd.DataFrame, settings) -> Display:
    """Claims beside our estimates (points), the seeds a decisive interval needs, and a verdict."""
    rows = list(table.itertuples())
    level = f"{settings.confidence:.0%}"
    shown = pd.DataFrame(
        {
            "claim": table["statement"],
            "condition": [f"{r.backbone}@{r.alignment}" for r in rows],
            "pairs": text(table["scales"]),
            "difference": [difference(r) for r in rows],
            "claimed (pts)": [f"{r.paper_low_pts:g}–{r.paper_high_pts:g}" for r in rows],
            f"ours (pts) [{level}]": [
                with_bounds(r.ours_mean_pts, r.ours_low_pts, r.ours_high_pts, 1, 2) for r in rows
            ],
            "seeds": ["–" if pd.isna(r.n_seeds) else str(r.n_seeds) for r in rows],
            "seeds for a decisive interval": [seeds_label(r.seeds_needed) for r in rows],
            "recipes": [recipes_cell(r) for r in rows],
            "verdict": table["verdict"],
            "note": text(table["note"], missing=""),
        }
    )
    align = ["left"] * 4 + ["right"] * 4 + ["left"] * 3
    note = (
        f"Each claim's difference and ours, in points, with the {level} interval of paired.md "
        "(seeds and test images). Verdicts use the claimed range widened by "
        f"{settings.tolerance_pts:g} point(s) on each side (analysis.tolerance_pts). "
        "Reproduced: our whole interval lies inside it. Consistent but imprecise: the interval "
        "overlaps it but is too wide to fit inside, so the study cannot tell. Same sign, "
        "smaller/larger: the interval lies wholly short of or beyond it, on the claim's side of "
        "0; not reproduced: short of it and holding 0, or (for a claim at every scale) some "
        "scale rejects it; reversed: wholly on the other side of 0. Not fully tested: the study "
        "lacks some of the claim's scales. A claim of no difference (a band around 0) is "
        "reproduced when the whole interval lies inside the widened band, not reproduced when "
        "it lies wholly outside. A wider interval never earns a better verdict. recipes: how the "
        f"reference; the method were trained ('{MIXED}' where they differ). Seeds "
        "for a decisive interval: how many seeds would make the interval fit inside or fall "
        "outside the widened range at the observed spread; 'never' when the test set's own "
        "variance is already too large."
    )
    return Display("Claims vs ours", shown, align, note)


def alignment_study_display(study: pd.DataFrame, settings) -> Display:
    """The gap at every degradation level beside the feature set's alignment, and the trend."""
    rows = list(study.itertuples())
    shown = pd.DataFrame(
        {
            "feature set": [f"{r.backbone}@{r.alignment}" for r in rows],
            "degradation": [f"{r.degradation} {r.level:g}" for r in rows],
            "difference": [difference(r) for r in rows],
            "pairs": [str(r.n_train) for r in rows],
            "seeds": [
                f"{r.n_seeds} ({r.n_diverged} diverged)" if r.n_diverged else str(r.n_seeds)
                for r in rows
            ],
            "gap (pts) [t, seeds]": [
                with_bounds(r.gap_pts, r.gap_low_pts, r.gap_high_pts, 1, 2) for r in rows
            ],
            "cosine gap": [f"{r.cosine_gap:.3f}" for r in rows],
            "t→i R@1": [f"{v:.3f}" for v in study["text_to_image_R@1"]],
            "mutual k-NN": [f"{r.mutual_knn:.3f}" for r in rows],
            "CKA": [f"{r.cka:.3f}" for r in rows],
            "trend": [
                f"{r.trend} (rho {r.spearman:.2f} [{r.spearman_low:.2f}, {r.spearman_high:.2f}],"
                f" Page p rise {r.page_p:.3g}, fall {r.page_p_fall:.3g})"
                for r in rows
            ],
        }
    )
    align = ["left"] * 3 + ["right"] * 7 + ["left"]
    note = (
        "The reference's lead over each method as the text side of a feature set is degraded "
        "(level 0 is the undegraded set), paired on seed, with the Student t interval across "
        "seeds, beside the feature set's alignment measured on the test split. Trend: Spearman's "
        "rho between level and mean gap, with a bootstrap interval over seeds, and Page's trend "
        "test with seeds as blocks, one-sided for a rise and for a fall; 'increasing' "
        "('decreasing') needs the rho interval above (below) 0 and Page's p for a rise (fall) "
        f"below {1 - settings.confidence:.2g}."
    )
    return Display("Alignment study: the gap as alignment degrades", shown, align, note)


def markdown(display: Display) -> str:
    if display.frame.empty:
        return f"{display.note}\n\n(no rows)\n"
    body = display.frame.to_markdown(index=False, disable_numparse=True, colalign=display.colalign)
    return f"{body}\n\n{display.note}\n"


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

DISPLAYS = {
    "summary": summary_display,
    "comparisons": comparisons_display,
    "paired": paired_display,
    "paper_vs_ours": claims_display,
    "alignment_study": alignment_study_display,
}
