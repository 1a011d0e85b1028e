"""The theory stage: the paper's sample-complexity argument beside the study's learning curves.

For every feature set the study trains on, each method's parameter count and effective
sample-complexity dimension give predicted excess-risk curves and the samples each needs; each
(feature set, method) learning curve is fitted as err(n) = e_inf + b n^-c with a seed bootstrap,
judged on a held-out largest scale, and in each declared comparison of an attention-family method
(the aggregate stage's ``comparisons`` table) the two fitted curves are searched for a crossover.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from alignfuse.fusion import ATTENTION, head_family
from alignfuse.parquet import atomic_path, read_frame, read_metadata, write_frame
from alignfuse.theory.complexity import dimension_ratio, predicted_curves, samples_table
from alignfuse.theory.exponents import fit_exponent, samples_to_target, target_accuracy
from alignfuse.theory.learning_curves import bootstrap_fit, crossover, holdout_check

CHANCE = 0.5
# the d-scaling experiment's theory: n_needed ~ d^beta with beta = 1 for a linear fusion
# projection (d_v + d_t) and 2 for a full-rank bilinear score (d_v·d_t, with d_v = d_t = d)
THEORY_BETA = {"linear": 1.0, "bilinear": 2.0}

FIX = "rerun the stage that writes it"


def file_width(path: Path) -> int:
    """The width of a pooled feature file (its ``emb`` column)."""
    return pq.read_schema(path).field("emb").type.list_size


def theory_curves(
    methods: dict, widths: dict[str, tuple[int, int]], target: float, reference: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predicted curves, samples needed) per feature set and method, constants C = 1 and
    eps = 0 (the theory leaves them free: only ratios between methods are predictions), both
    bilinear counts for cross-attention (full-rank d_v·d_t and factored (d_v + d_t)·d_k)."""
    curves, samples = [], []
    for feature_set, (d_image, d_text) in sorted(widths.items()):
        labels = {"feature_set": feature_set, "d_image": d_image, "d_text": d_text}
        curve = predicted_curves(methods, d_image, d_text, bilinear=("full", "factored"))
        curves.append(curve.assign(**labels))
        table = samples_table(
            methods, d_image, d_text, target, bilinear=("full", "factored"), reference=reference
        )
        samples.append(table.assign(**labels, ratio_dv_dt=dimension_ratio(d_image, d_text)))
    return pd.concat(curves, ignore_index=True), pd.concat(samples, ignore_index=True)


def usable(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that did not diverge, with their error and feature set."""
    return runs[runs.get("status", "ok") == "ok"].assign(
        error=lambda r: 1 - r["test_accuracy"],
        feature_set=lambda r: r["backbone"] + "@" + r["alignment"],
    )


def curve_fits(runs: pd.DataFrame, resamples: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Fits of every (feature set, method) learning curve over its own seeds, and their
    bootstrap fits (for the figure and the crossovers)."""
    runs = usable(runs)
    fits, boots = [], {}
    for (feature_set, method), group in runs.groupby(["feature_set", "method"], sort=True):
        if group["n_train"].nunique() < 2:  # one scale (a degradation level): no curve
            continue
        boot = bootstrap_fit(group, n_predict=(), resamples=resamples, seed=seed)
        held = holdout_check(group)
        point = boot.point
        interval = boot.intervals.set_index("quantity")
        boots[feature_set, method] = boot
        fits.append(
            {
                "feature_set": feature_set,
                "method": method,
                "head": group["head"].iloc[0],
                "scales": group["n_train"].nunique(),
                "n_min": point.n_min,
                "n_max": point.n_max,
                "identifiable": point.identifiable,
                "reason": point.reason,
                **{q: getattr(point, q) for q in ("e_inf", "b", "c")},
                **{
                    f"{q}_{end}": interval.loc[q, end] if q in interval.index else math.nan
                    for q in ("e_inf", "b", "c")
                    for end in ("low", "high")
                },
                "failed_resamples": boot.failed_fraction,
                "heldout_n": held.n_heldout,
                "heldout_from": held.fit.n_max,
                "heldout_predicted": held.predicted,
                "heldout_measured": held.measured,
                "heldout_error_pts": held.abs_error_points,
            }
        )
    return pd.DataFrame(fits), boots


def paired_boots(
    runs: pd.DataFrame, feature_set: str, reference: str, method: str, boots: dict, resamples, seed
) -> tuple[object, object, int]:
    """The bootstrap fits of reference and method paired on seed: their own where both have the
    same seeds, else both refitted on the seeds both have (a method that lost a seed at every
    scale is compared on the rest); None for both where they share none."""
    a, b = boots[feature_set, reference], boots[feature_set, method]
    here = runs[runs["feature_set"] == feature_set]
    seeds = [set(here.loc[here["method"] == m, "seed"]) for m in (reference, method)]
    shared = seeds[0] & seeds[1]
    if seeds[0] == seeds[1]:
        return a, b, len(shared)
    if not shared:
        return None, None, 0
    refit = [
        bootstrap_fit(
            here[(here["method"] == m) & here["seed"].isin(shared)],
            n_predict=(),
            resamples=resamples,
            seed=seed,
        )
        for m in (reference, method)
    ]
    return refit[0], refit[1], len(shared)


CROSSOVER_COLUMNS = [
    "feature_set",
    "reference",
    "method",
    "mixed_recipe",
    "comparison",
    "seeds",
    "n_star",
    "n_star_low",
    "n_star_high",
    "no_crossover_fraction",
    "failed_resamples",
    "reason",
]


def crossovers(
    runs: pd.DataFrame, comparisons: pd.DataFrame, boots: dict, resamples, seed, n_max
) -> tuple[pd.DataFrame, dict]:
    """Where each declared comparison's attention-family method would overtake its reference
    (``comparisons``: the aggregate stage's declared comparisons), with the paired bootstrap
    fits of both sides by (feature set, reference, method)."""
    runs = usable(runs)
    rows, paired = [], {}
    for c in comparisons[comparisons["family"] == ATTENTION].itertuples():
        feature_set = f"{c.backbone}@{c.alignment}"
        if (feature_set, c.reference) not in boots or (feature_set, c.method) not in boots:
            continue
        ref_boot, method_boot, shared = paired_boots(
            runs, feature_set, c.reference, c.method, boots, resamples, seed
        )
        row = {
            "feature_set": feature_set,
            "reference": c.reference,
            "method": c.method,
            "mixed_recipe": bool(c.mixed_recipe),
            "comparison": ", ".join(c.sources),
            "seeds": shared,
        }
        if ref_boot is None:
            rows.append({**row, "n_star": math.nan, "reason": "no seed has runs of both"})
            continue
        paired[feature_set, c.reference, c.method] = (ref_boot, method_boot)
        found = crossover(ref_boot, method_boot, n_max=n_max)
        rows.append(
            {
                **row,
                "n_star": found.n_star,
                "n_star_low": found.low,
                "n_star_high": found.high,
                "no_crossover_fraction": found.no_crossover_fraction,
                "failed_resamples": found.failed_fraction,
                "reason": found.reason,
            }
        )
    return pd.DataFrame(rows, columns=CROSSOVER_COLUMNS), paired


def fit_samples(paired: dict) -> pd.DataFrame:
    """Every bootstrap refit's parameters of both sides of each crossover's comparison, paired by
    ``resample`` (both drawn over the same seeds with the same seed): ``curve`` names the side."""
    frames = [
        boot.samples.assign(feature_set=feature_set, reference=reference, method=method, curve=side)
        for (feature_set, reference, method), boots in paired.items()
        for side, boot in zip((reference, method), boots, strict=True)
    ]
    columns = ["feature_set", "reference", "method", "curve", "resample", "e_inf", "b", "c"]
    return (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )


def learning_curve_points(runs: pd.DataFrame, boots: dict, grid: int = 60) -> pd.DataFrame:
    """For the figure: measured mean test error per (feature set, method, scale) with its
    t interval over seeds, and each identified fit's curve over the measured range (and up to
    4x beyond it)."""
    from scipy import stats

    runs = usable(runs)
    rows = []
    for (feature_set, method, n), group in runs.groupby(["feature_set", "method", "n_train"]):
        if (feature_set, method) not in boots:
            continue
        e = group["error"].to_numpy(float)
        half = (
            stats.t.ppf(0.975, len(e) - 1) * e.std(ddof=1) / math.sqrt(len(e))
            if len(e) > 1
            else math.nan
        )
        rows.append(
            {
                "feature_set": feature_set,
                "method": method,
                "kind": "measured",
                "n": n,
                "error": e.mean(),
                "low": e.mean() - half,
                "high": e.mean() + half,
            }
        )
    for (feature_set, method), boot in boots.items():
        fit = boot.point
        if not fit.identifiable:
            continue
        n = np.geomspace(fit.n_min, 4 * fit.n_max, grid)
        rows += [
            {
                "feature_set": feature_set,
                "method": method,
                "kind": "fitted",
                "n": x,
                "error": fit.predict(x),
                "low": math.nan,
                "high": math.nan,
            }
            for x in n
        ]
    return pd.DataFrame(
        rows, columns=["feature_set", "method", "kind", "n", "error", "low", "high"]
    )


# settings that set the width, the one thing a family varies: an encoder's ``dim``, and the
# synthetic generator's d_image / d_text (which a synthetic encoder's ``dim`` overrides)
WIDTH_KEYS = ("dim", "d_image", "d_text")


def without_width(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key not in WIDTH_KEYS}


def source_provenance(path: Path, side: str) -> dict:
    """The provenance of the encoder output a feature file derives from (aligned feature sets
    nest their sources' provenance; a contrastive pair keeps one per side)."""
    provenance = read_metadata(path)
    while "encoder" not in provenance and "source_provenance" in provenance:
        source = provenance["source_provenance"]
        provenance = source[side] if isinstance(source.get(side), dict) else source
    return provenance


def side_identity(path: Path, side: str) -> dict:
    """What one side's features are, except their width: a synthetic encoder is its generator
    and rotation (its name differs with d), any other encoder its settings without width keys."""
    provenance = source_provenance(path, side)
    if provenance.get("library") == "synthetic":
        return {
            "library": "synthetic",
            "rotation": provenance.get("rotation"),
            "generator": without_width(provenance.get("generator") or {}),
        }
    encoder = provenance.get("encoder")
    if isinstance(encoder, dict):
        return without_width(encoder)
    return {"file": str(path)}  # nothing recorded: a family of its own


def family(feature_set: dict) -> tuple[str, str]:
    """(key, label) of a d-scaling family: feature sets whose encoders differ only in width.

    Two real encoders of different widths (say a ResNet18 and a ResNet50) differ in far more than
    d, so grouping by alignment name would fit β across different models; the key holds both
    sides' identities without width and the alignment, and feature sets that share it differ
    only in d. The label names the family for people: the synthetic generator's rotation, or
    the encoders' models.
    """
    image, text = (side_identity(Path(feature_set[side]), side) for side in ("image", "text"))
    alignment = feature_set["alignment"]
    key = json.dumps([image, text, alignment], sort_keys=True, default=str)
    if text.get("library") == "synthetic":
        label = f"rotation {text['rotation']:g}"
    else:
        label = "/".join(str(side.get("model", side.get("library", "?"))) for side in (image, text))
    return key, label if alignment == "raw" else f"{label}@{alignment}"


NEEDED_COLUMNS = [
    "family",
    "method",
    "d",
    "seed",
    "n_needed",
    "censored",
    "bound",
    "target_accuracy",
    "reason",
]
EXPONENT_COLUMNS = [
    "family",
    "method",
    "head",
    "target_accuracy",
    "beta",
    "beta_low",
    "beta_high",
    "points",
    "right_censored",
    "left_censored",
    "seeds",
    "reason",
    "theory_beta",
    "theory",
]


def sample_complexity(
    runs: pd.DataFrame, feature_sets: list[dict], widths: dict, fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples each method needs per width, the fitted exponent per method) for families of
    feature sets that differ only in their width d (d_v = d_t = d).

    The target is a fixed share ``fraction`` of the gap between chance and the best mean
    accuracy the family reached (the ceiling its generator allows), so it asks the same of every
    d; n_needed is read off each seed's learning curve by log-linear interpolation, and a curve
    that never reaches it (or already has at the smallest n) is kept as a bound on n_needed.
    """
    runs = runs[runs.get("status", "ok") == "ok"].assign(
        feature_set=lambda r: r["backbone"] + "@" + r["alignment"],
        accuracy=lambda r: r["test_accuracy"],
    )
    sets = pd.DataFrame(
        [
            {
                "feature_set": f"{s['backbone']}@{s['alignment']}",
                **dict(zip(("key", "family"), family(s), strict=True)),
                "d": widths[f"{s['backbone']}@{s['alignment']}"][0],
            }
            for s in feature_sets
            if len(set(widths[f"{s['backbone']}@{s['alignment']}"])) == 1
        ],
        columns=["feature_set", "key", "family", "d"],
    )
    needed, exponents = [], []
    for _, members in sets.groupby("key"):
        if members["d"].nunique() < 2 or members["d"].duplicated().any():
            continue  # not a width series: one width, or two sets of one width and family
        fam = members["family"].iloc[0]
        part = runs[runs["feature_set"].isin(members["feature_set"])]
        means = part.groupby(["feature_set", "method", "n_train"])["accuracy"].mean()
        target = target_accuracy(CHANCE, float(means.max()), fraction)
        for method, rows in part.groupby("method"):
            points = []
            for member in members.itertuples():
                curve = rows[rows["feature_set"] == member.feature_set]
                for seed, seed_curve in curve.groupby("seed"):
                    crossing = samples_to_target(seed_curve, target)
                    points.append(
                        {
                            "family": fam,
                            "method": method,
                            "d": member.d,
                            "seed": seed,
                            "n_needed": crossing.n,
                            "censored": crossing.censored,
                            "bound": crossing.bound,
                            "target_accuracy": target,
                            "reason": crossing.reason,
                        }
                    )
            if not points:
                continue
            needed += points
            table = pd.DataFrame(points)
            fit = fit_exponent(
                table["d"], table["n_needed"], table["seed"], table["censored"], table["bound"]
            )
            head = rows["head"].iloc[0]
            theory = "bilinear" if head_family(head) == ATTENTION else "linear"
            exponents.append(
                {
                    "family": fam,
                    "method": method,
                    "head": head,
                    "target_accuracy": target,
                    "beta": fit.beta,
                    "beta_low": fit.low,
                    "beta_high": fit.high,
                    "points": fit.n_points,
                    "right_censored": fit.right_censored,
                    "left_censored": fit.left_censored,
                    "seeds": fit.seeds,
                    "reason": fit.reason,
                    "theory_beta": THEORY_BETA[theory],
                    "theory": theory,
                }
            )
    return pd.DataFrame(needed, columns=NEEDED_COLUMNS), pd.DataFrame(
        exponents, columns=EXPONENT_COLUMNS
    )


def n_text(n: float) -> str:
    return "never" if math.isinf(n) else f"{n:,.0f}"


def n_star_text(row) -> str:
    """A crossover for people: a number with its interval (none where failed refits reach into
    its tails), "never within 10^7", or why there is none."""
    if math.isnan(row["n_star"]):
        return f"– ({row['reason']})"
    point = "never within 10^7" if math.isinf(row["n_star"]) else f"{row['n_star']:,.0f}"
    if np.isnan(row["n_star_low"]) or np.isnan(row["n_star_high"]):
        return f"{point} (no interval)"
    return f"{point} [{n_text(row['n_star_low'])}, {n_text(row['n_star_high'])}]"


def write_theory(
    runs_path: Path,
    comparisons_path: Path,
    feature_sets: list[dict],
    methods: dict,
    settings: dict,
    reference: str,
    out_dir: Path,
) -> None:
    """Every theory table under ``out_dir`` as theory_*.parquet (curves, samples, fits,
    crossovers of the declared comparisons and the learning-curve points the figure draws), and
    ``theory.md``. ``reference`` is the label the theory's sample counts are set against."""
    runs = read_frame(runs_path, FIX)
    comparisons = read_frame(comparisons_path, FIX)
    widths = {
        f"{s['backbone']}@{s['alignment']}": (
            file_width(Path(s["image"])),
            file_width(Path(s["text"])),
        )
        for s in feature_sets
    }
    curves, samples = theory_curves(methods, widths, settings["target_excess_risk"], reference)
    resamples, seed = settings["bootstrap_resamples"], settings["seed"]
    fits, boots = curve_fits(runs, resamples, seed)
    crossings, paired = crossovers(runs, comparisons, boots, resamples, seed, settings["n_max"])
    needed, exponents = sample_complexity(runs, feature_sets, widths, settings["target_fraction"])
    out_dir = Path(out_dir)
    for name, frame in (
        ("theory_curves", curves),
        ("theory_samples", samples),
        ("theory_fits", fits),
        ("theory_crossovers", crossings),
        ("theory_learning_curves", learning_curve_points(runs, boots)),
        ("sample_complexity_points", needed),
        ("sample_complexity", exponents),
        ("theory_fit_samples", fit_samples(paired)),
    ):
        write_frame(frame, out_dir / f"{name}.parquet")
    text = theory_markdown(samples, fits, crossings, settings) + exponent_markdown(exponents)
    with atomic_path(out_dir / "theory.md") as tmp:
        tmp.write_text(text, encoding="utf-8")


def interval_text(low: float, high: float, digits: int) -> str:
    """ " [low, high]", or " (no interval)" where failed refits reach into a tail."""
    if np.isnan(low) or np.isnan(high):
        return " (no interval)"
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def fits_markdown(fits: pd.DataFrame) -> str:
    """The learning-curve fits as a Markdown table (fits exist: a study with one scale has none)."""
    shown = fits.assign(
        fit=[
            f"e_inf {r.e_inf:.3f}{interval_text(r.e_inf_low, r.e_inf_high, 3)}, "
            f"c {r.c:.2f}{interval_text(r.c_low, r.c_high, 2)}"
            if r.identifiable
            else f"not identified: {r.reason}"
            for r in fits.itertuples()
        ],
        failed_resamples=[f"{100 * f:.0f}%" for f in fits["failed_resamples"]],
        heldout=[
            f"n={r.heldout_n:,.0f}: {100 * r.heldout_predicted:.1f} vs {100 * r.heldout_measured:.1f}"
            if np.isfinite(r.heldout_predicted)
            else "–"
            for r in fits.itertuples()
        ],
    )[["feature_set", "method", "scales", "fit", "failed_resamples", "heldout"]]
    return shown.to_markdown(index=False, disable_numparse=True)


def theory_markdown(samples, fits, crossings, settings) -> str:
    shown_samples = samples.assign(
        n_needed=[f"{n:,.0f}" if np.isfinite(n) else "–" for n in samples["n_needed"]],
        ratio=[f"{r:,.1f}" for r in samples["ratio_to_reference"]],
    )[["feature_set", "method", "params", "p_eff", "basis", "n_needed", "ratio"]]
    shown_fits = fits_markdown(fits) if len(fits) else "(none)"
    parts = [
        "## Samples needed (theory)\n",
        shown_samples.to_markdown(index=False, disable_numparse=True),
        f"\nSamples each method needs to reach excess risk {settings['target_excess_risk']} on "
        "C·sqrt(p_eff·log n / n) with C = 1: the constants are free in the theory, so the "
        "ratio to the reference is the prediction, not the numbers.\n",
        "## Learning curves err(n) = e_inf + b·n^-c (measured)\n",
        shown_fits,
        "\nFitted on every seed's test error, with a percentile bootstrap over seeds; a fit the "
        "scales cannot identify says why and has no interval. failed_resamples: the share of "
        "seed resamples whose refit was not identified; each counts at both extremes of an "
        "interval (it could have been anything), so an interval whose tail holds more failures "
        "than its 2.5% is not shown. Held-out: the fit without the largest scale predicts its "
        "error (percent), beside the measured mean.\n",
        "## Crossover: where cross-attention would overtake the reference\n",
    ]
    if len(crossings):
        shown = crossings.assign(
            difference=[
                f"{r.reference} − {r.method}" + (" (mixed recipe)" if r.mixed_recipe else "")
                for r in crossings.itertuples()
            ],
            n_star=[n_star_text(r) for _, r in crossings.iterrows()],
            failed_resamples=[
                "–" if np.isnan(f) else f"{100 * f:.0f}%" for f in crossings["failed_resamples"]
            ],
        )
        parts.append(
            shown[
                [
                    "feature_set",
                    "difference",
                    "seeds",
                    "n_star",
                    "no_crossover_fraction",
                    "failed_resamples",
                ]
            ].to_markdown(index=False, disable_numparse=True)
        )
        parts.append(
            "\nOne row per declared comparison of an attention-family method with both curves "
            "fitted. Both sides are bootstrapped over the seeds both have (seeds), so the "
            "refits are paired; a method that lost a seed everywhere is compared on the rest.\n"
        )
    else:
        parts.append("(no declared comparison of a cross-attention method with fitted curves)")
    return "\n".join(parts) + "\n"


def beta_text(row) -> str:
    """β for people: the estimate with its seed interval, or why there is none."""
    if not np.isfinite(row.beta):
        return f"– ({row.reason})"
    return f"{row.beta:.2f}{interval_text(row.beta_low, row.beta_high, 2)}"


def exponent_markdown(exponents: pd.DataFrame) -> str:
    """The d-scaling exponents beside the theory's, when the study varies d."""
    if exponents.empty:
        return ""
    shown = exponents.assign(
        beta_shown=[beta_text(r) for r in exponents.itertuples()],
        censored=[f"{r.right_censored} / {r.left_censored}" for r in exponents.itertuples()],
    )[
        [
            "family",
            "method",
            "target_accuracy",
            "beta_shown",
            "theory_beta",
            "points",
            "censored",
            "seeds",
        ]
    ]
    return (
        "\n## Sample complexity in the feature width d (n_needed ~ d^beta)\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + "\n\nn_needed: the training pairs at which a seed's learning curve reaches the target "
        "accuracy, a fixed share of the gap between chance and the best accuracy its family "
        "reached. censored: points whose target was never reached / already reached at the "
        "smallest n; they stay in the fit as bounds on n_needed (censored-normal maximum "
        "likelihood of log n_needed on log d; least squares when nothing is censored), since "
        "dropping them biases beta down where a head needs the most samples. The 95% interval "
        "takes the seed as the unit (a seed's points share its data order at every d): Student "
        "t over each seed's own beta; none when a seed's beta cannot be fitted. A family holds "
        "feature sets whose encoders differ only in width. The theory's beta: 1 for a linear "
        "fusion projection (d_v + d_t), 2 for a full-rank bilinear score (d_v·d_t).\n"
    )
