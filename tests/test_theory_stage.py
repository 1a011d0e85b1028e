"""The theory stage: curve fits of measured learning curves and the d-scaling exponents."""

import numpy as np
import pandas as pd
import pytest
from declared import TUNED, declared

from alignfuse.analysis.comparisons import comparisons_frame
from alignfuse.parquet import write_embeddings, write_frame
from alignfuse.theory.stage import (
    crossovers,
    curve_fits,
    sample_complexity,
    theory_curves,
    write_theory,
)

SCALES = [128, 256, 512, 1024, 2048, 4096, 8192]


def runs_of(curves: dict, seeds=5, noise=0.003, scales=SCALES) -> pd.DataFrame:
    """curves: (feature_set, method, head) -> accuracy(n); per-seed noise added."""
    rng = np.random.default_rng(0)
    rows = []
    for (feature_set, method, head), accuracy in curves.items():
        backbone, alignment = feature_set.split("@")
        for n in scales:
            for seed in range(seeds):
                rows.append(
                    {
                        "dataset": "synthetic",
                        "backbone": backbone,
                        "alignment": alignment,
                        "method": method,
                        "head": head,
                        "n_train": n,
                        "seed": seed,
                        "status": "ok",
                        "test_accuracy": accuracy(n) + rng.normal(0, noise),
                    }
                )
    return pd.DataFrame(rows)


def write_study(tmp_path, runs: pd.DataFrame):
    """The runs table and the declared comparisons table the theory stage reads."""
    paths = tmp_path / "runs.parquet", tmp_path / "comparisons.parquet"
    write_frame(runs, paths[0])
    write_frame(comparisons_frame(declared(runs)), paths[1])
    return paths


def power_law(e_inf, b, c):
    return lambda n: 1 - (e_inf + b * n ** (-c))


def test_fits_recover_the_curves_and_find_where_cross_attention_overtakes():
    runs = runs_of(
        {
            ("a@raw", "concat", "concat"): power_law(0.10, 1.0, 0.5),
            ("a@raw", "xattn_txt2img", "xattn_txt2img"): power_law(0.02, 8.0, 0.5),
        }
    )
    fits, boots = curve_fits(runs, resamples=50, seed=0)
    crossings, _ = crossovers(runs, comparisons_frame(declared(runs)), boots, 50, 0, 1e7)
    concat = fits.set_index("method").loc["concat"]
    assert concat["identifiable"] and concat["e_inf"] == pytest.approx(0.10, abs=0.02)
    assert concat["heldout_error_pts"] < 1.0
    (crossing,) = crossings.itertuples()
    # 0.10 + n^-1/2 = 0.02 + 8 n^-1/2  ->  sqrt(n) = 7 / 0.08
    assert crossing.n_star == pytest.approx((7 / 0.08) ** 2, rel=0.3)


def test_theory_md_reports_failed_refits_and_no_interval_for_an_unidentified_fit(tmp_path):
    """Noise sd 0.02 over five scales: concat's point fit is not identified and most refits
    fail; theory_fits has no interval for it and theory.md gives its failed_resamples."""
    (feature_set,) = write_family(tmp_path, [32], 0.0)
    curves = {
        ("d32_0.0@raw", "concat", "concat"): power_law(0.1, 3.0, 0.5),
        ("d32_0.0@raw", "xattn_txt2img", "xattn_txt2img"): power_law(0.05, 8.0, 0.5),
    }
    runs = write_study(
        tmp_path, runs_of(curves, noise=0.02, scales=[2048, 4096, 8192, 16384, 32768])
    )
    settings = {
        "target_excess_risk": 0.05,
        "bootstrap_resamples": 40,
        "seed": 0,
        "n_max": 1e7,
        "target_fraction": 0.8,
    }
    methods = {m: {"head": m} for m in ("concat", "xattn_txt2img")}
    out = tmp_path / "tables"
    write_theory(*runs, [feature_set], methods, settings, "concat", out)
    fits = pd.read_parquet(out / "theory_fits.parquet").set_index("method")
    concat = fits.loc["concat"]
    assert not concat["identifiable"] and concat["failed_resamples"] > 0.5
    assert np.isnan(concat[["e_inf_low", "e_inf_high", "c_low", "c_high"]].to_numpy(float)).all()
    crossing = pd.read_parquet(out / "theory_crossovers.parquet").iloc[0]
    assert np.isnan(crossing["n_star"]) and np.isnan(crossing["n_star_low"])
    text = (out / "theory.md").read_text(encoding="utf-8")
    assert "failed_resamples" in text and f"{100 * concat['failed_resamples']:.0f}%" in text
    assert f"| {100 * crossing['failed_resamples']:.0f}% " in text


def write_family(tmp_path, widths, rotation, metadata=None):
    """Feature files per width d, with the synthetic generator's provenance (or ``metadata(d)``)."""
    sets = []
    for d in widths:
        name = f"d{d}_{rotation}"
        provenance = (
            {
                "encoder": name,
                "library": "synthetic",
                "rotation": rotation,
                "generator": {"latent_dim": 4, "d_image": d, "d_text": d},  # as written
            }
            if metadata is None
            else metadata(d)
        )
        for side in ("image", "text"):
            write_embeddings(
                tmp_path / f"{name}_{side}.parquet",
                f"{side}_id",
                ["x"],
                np.zeros((1, d), np.float32),
                provenance,
            )
        sets.append(
            {
                "backbone": name,
                "alignment": "raw",
                "image": tmp_path / f"{name}_image.parquet",
                "text": tmp_path / f"{name}_text.parquet",
            }
        )
    return sets


def test_d_scaling_recovers_linear_and_quadratic_exponents(tmp_path):
    """Accuracy 0.5 + 0.45 (1 - exp(-n / (k d^beta))): n_needed grows as d^beta."""
    widths = [8, 16, 32, 64]
    sets = write_family(tmp_path, widths, 0.0)
    curves = {}
    for d in widths:
        curves[(f"d{d}_0.0@raw", "concat", "concat")] = lambda n, d=d: (
            0.5 + 0.45 * (1 - np.exp(-n / (4 * d)))
        )
        curves[(f"d{d}_0.0@raw", "xattn_txt2img", "xattn_txt2img")] = lambda n, d=d: (
            0.5 + 0.45 * (1 - np.exp(-n / (0.5 * d**2)))
        )
    runs = runs_of(curves, noise=0.001, scales=[2**k for k in range(6, 17)])
    widths_of = {f"{s['backbone']}@raw": (d, d) for s, d in zip(sets, widths, strict=True)}
    needed, exponents = sample_complexity(runs, sets, widths_of, fraction=0.5)
    beta = exponents.set_index("method")["beta"]
    assert beta["concat"] == pytest.approx(1.0, abs=0.15)
    assert beta["xattn_txt2img"] == pytest.approx(2.0, abs=0.2)
    assert set(exponents["theory_beta"]) == {1.0, 2.0}
    assert (needed["family"] == "rotation 0").all()


def saturating(d, beta, k):
    return lambda n: 0.5 + 0.45 * (1 - np.exp(-n / (k * d**beta)))


def test_unreached_targets_stay_in_the_d_scaling_fit_as_bounds(tmp_path):
    """Cross-attention at d = 64 never reaches the target within n ≤ 2^12: the point is kept as
    a right-censored bound at the largest n, not dropped, and β still comes out near 2."""
    widths = [8, 16, 32, 64]
    sets = write_family(tmp_path, widths, 0.0)
    curves = {}
    for d in widths:
        curves[(f"d{d}_0.0@raw", "concat", "concat")] = saturating(d, 1, 4)
        curves[(f"d{d}_0.0@raw", "xattn_txt2img", "xattn_txt2img")] = saturating(d, 2, 2)
    runs = runs_of(curves, noise=0.001, scales=[2**k for k in range(5, 13)])
    widths_of = {f"{s['backbone']}@raw": (d, d) for s, d in zip(sets, widths, strict=True)}
    needed, exponents = sample_complexity(runs, sets, widths_of, fraction=0.5)
    xattn = needed[(needed["method"] == "xattn_txt2img") & (needed["d"] == 64)]
    assert (xattn["censored"] == "right").all() and (xattn["bound"] == 2**12).all()
    assert xattn["n_needed"].isna().all()
    row = exponents.set_index("method").loc["xattn_txt2img"]
    assert row["right_censored"] == 5 and row["points"] == 20
    assert row["beta"] == pytest.approx(2.0, abs=0.2)


def test_real_encoders_of_different_widths_are_not_one_d_series(tmp_path):
    """Two raw encoder pairs of different models and widths share the alignment name but not
    what the features are: no exponent is fitted across them. The same encoder at two widths
    (its `dim` setting) is a series."""

    def encoder(model):
        return lambda d: {"encoder": {"library": "torchvision", "model": model, "dim": d}}

    small = write_family(tmp_path / "a", [16], "a", encoder("resnet18"))
    large = write_family(tmp_path / "b", [32], "b", encoder("resnet50"))
    same = write_family(tmp_path / "c", [8, 64], "c", encoder("vit"))
    sets = small + large + same
    curves = {
        (f"{s['backbone']}@raw", "concat", "concat"): saturating(d, 1, 4)
        for s, d in zip(sets, [16, 32, 8, 64], strict=True)
    }
    runs = runs_of(curves, noise=0.001, scales=[2**k for k in range(5, 13)])
    widths_of = {f"{s['backbone']}@raw": (d, d) for s, d in zip(sets, [16, 32, 8, 64], strict=True)}
    needed, exponents = sample_complexity(runs, sets, widths_of, fraction=0.5)
    assert list(exponents["family"]) == ["vit/vit"]
    assert set(needed["d"]) == {8, 64}


def test_predicted_curves_come_from_the_built_heads_at_every_width():
    methods = {"concat": {"head": "concat"}, "xattn_txt2img": {"head": "xattn_txt2img"}}
    curves, samples = theory_curves(methods, {"c@raw": (512, 512)}, 0.05, "concat")
    ratio = samples.set_index("method")["ratio_to_reference"]
    assert ratio["xattn_txt2img (full)"] > 200  # d_v·d_t / (d_v + d_t) = 256, with a log
    assert (samples["ratio_dv_dt"] == 256).all()
    assert set(curves["feature_set"]) == {"c@raw"}


def test_a_study_method_spec_with_its_settings_builds_the_same_head():
    """A method's study settings (its training overrides, its input scaling) are not arguments
    of the head: the theory counts the head the train stage builds."""
    plain = {"xattn_txt2img": {"head": "xattn_txt2img", "dim": 32, "heads": 4, "ffn": 64}}
    spec = {
        "xattn_txt2img": {
            **plain["xattn_txt2img"],
            "scaling": "zscore",
            "training": {"lr": 0.01},
        }
    }
    _, with_settings = theory_curves(spec, {"a@raw": (64, 64)}, 0.05, "xattn_txt2img")
    _, without = theory_curves(plain, {"a@raw": (64, 64)}, 0.05, "xattn_txt2img")
    assert with_settings.equals(without)
    assert (with_settings["params"] > 0).all()


def test_a_study_at_one_scale_still_writes_every_table(tmp_path):
    """An ablation at one scale fits no learning curve and has no width family: the tables are
    written empty with their columns, and theory.md says there is nothing to fit."""
    (feature_set,) = write_family(tmp_path, [32], 0.0)
    curves = {("d32_0.0@raw", m, m): (lambda n: 0.8) for m in ("concat", "xattn_txt2img")}
    runs = write_study(tmp_path, runs_of(curves, scales=[2048]))
    methods = {m: {"head": m} for m in ("concat", "xattn_txt2img")}
    settings = {
        "target_excess_risk": 0.05,
        "bootstrap_resamples": 50,
        "seed": 0,
        "n_max": 1e7,
        "target_fraction": 0.8,
    }
    out = tmp_path / "tables"
    write_theory(*runs, [feature_set], methods, settings, "concat", out)
    points = pd.read_parquet(out / "sample_complexity_points.parquet")
    assert points.empty
    assert {"family", "method", "d", "seed", "n_needed", "censored", "bound"} <= set(points.columns)
    assert "(none)" in (out / "theory.md").read_text(encoding="utf-8")


def test_a_method_that_lost_a_seed_at_every_scale_is_crossed_on_the_seeds_both_have(tmp_path):
    """Seed 4 of cross-attention diverged at every scale: the crossover bootstraps both curves
    over seeds 0-3 (paired), and every table and theory.md are written."""
    curves = {
        ("a@raw", "concat", "concat"): power_law(0.10, 1.0, 0.5),
        ("a@raw", "xattn_txt2img", "xattn_txt2img"): power_law(0.02, 8.0, 0.5),
    }
    runs = runs_of(curves)
    lost = (runs["method"] == "xattn_txt2img") & (runs["seed"] == 4)
    runs.loc[lost, "status"] = "diverged"
    fits, boots = curve_fits(runs, resamples=50, seed=0)
    crossings, paired = crossovers(runs, comparisons_frame(declared(runs)), boots, 50, 0, 1e7)
    (crossing,) = crossings.itertuples()
    assert crossing.seeds == 4 and np.isfinite(crossing.n_star)
    reference, method = paired["a@raw", "concat", "xattn_txt2img"]
    assert reference.draws == method.draws  # paired resamples of the same four seeds
    assert {s for draw in reference.draws for s in draw} == {0, 1, 2, 3}
    (feature_set,) = write_family(tmp_path, [32], 0.0)
    settings = {
        "target_excess_risk": 0.05,
        "bootstrap_resamples": 30,
        "seed": 0,
        "n_max": 1e7,
        "target_fraction": 0.8,
    }
    out = tmp_path / "tables"
    methods = {m: {"head": m} for m in ("concat", "xattn_txt2img")}
    write_theory(*write_study(tmp_path, runs), [feature_set], methods, settings, "concat", out)
    assert "| a@raw " in (out / "theory.md").read_text(encoding="utf-8")
    samples = pd.read_parquet(out / "theory_fit_samples.parquet")
    assert set(samples["curve"]) == {"concat", "xattn_txt2img"}


def test_crossovers_are_searched_for_declared_comparisons_only():
    """A tuned cross-attention copy beside untuned concat is not crossed with it; with tuned
    concat declared as its reference, it is."""
    curves = {
        ("a@raw", label, head): power_law(0.10, 1.0, 0.5)
        for label, head in (
            ("concat", "concat"),
            ("xattn_txt2img", "xattn_txt2img"),
            ("concat_tuned", "concat"),
            ("xattn_txt2img_tuned", "xattn_txt2img"),
        )
    }
    runs = runs_of(curves)
    recipes = {"concat_tuned": TUNED, "xattn_txt2img_tuned": TUNED}
    entry = {"id": "tuned", "reference": "concat_tuned", "methods": ["xattn_txt2img_tuned"]}
    comparisons = comparisons_frame(declared(runs, comparisons=[entry], recipes=recipes))
    _, boots = curve_fits(runs, resamples=20, seed=0)
    crossings, _ = crossovers(runs, comparisons, boots, 20, 0, 1e7)
    assert sorted(zip(crossings["reference"], crossings["method"], strict=True)) == [
        ("concat", "xattn_txt2img"),
        ("concat_tuned", "xattn_txt2img_tuned"),
    ]
