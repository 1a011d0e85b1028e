import math

import numpy as np
import pandas as pd
import pytest
from declared import paired as paired_of
from scipy import stats

from alignfuse.analysis.statistics import (
    BOOTSTRAP_RESAMPLES,
    PAIRED_COLUMNS,
    bootstrap_ci,
    holm,
    paired_differences,
    wilcoxon_test,
)
from alignfuse.errors import AlignfuseError

T_975_DF4 = 2.7764451051977987  # Student t quantile 0.975 with 4 degrees of freedom (tables)


def runs_of(accuracies: dict, n_train=2048, backbone="clip", seeds=None) -> pd.DataFrame:
    """A runs table: method -> per-seed test accuracies (AUROC = accuracy + 0.1)."""
    rows = []
    for method, values in accuracies.items():
        for seed, accuracy in zip(seeds or range(len(values)), values, strict=True):
            rows.append(
                {
                    "dataset": "flickr8k",
                    "backbone": backbone,
                    "alignment": "raw",
                    "method": method,
                    "head": method,
                    "n_train": n_train,
                    "seed": seed,
                    "test_accuracy": accuracy,
                    "test_auroc": accuracy + 0.1,
                }
            )
    return pd.DataFrame(rows)


def accuracy_row(paired, method="xattn_txt2img", **where):
    rows = paired[(paired["metric"] == "test_accuracy") & (paired["method"] == method)]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1
    return rows.iloc[0]


def test_mean_difference_t_statistic_and_interval_match_the_textbook_formulas():
    # differences 0.05, 0.03, 0.07, 0.04, 0.06: mean 0.05, sd sqrt(0.001 / 4) -> t = 5 * sqrt(2)
    xattn = [0.60, 0.62, 0.58, 0.61, 0.59]
    concat = [x + d for x, d in zip(xattn, [0.05, 0.03, 0.07, 0.04, 0.06], strict=True)]
    row = accuracy_row(paired_of(runs_of({"concat": concat, "xattn_txt2img": xattn})))
    sd = math.sqrt(0.001 / 4)
    assert row["n_seeds"] == 5
    assert row["mean_diff"] == pytest.approx(0.05)
    assert row["std_diff"] == pytest.approx(sd)
    assert row["t_stat"] == pytest.approx(5 * math.sqrt(2))
    assert row["p_ttest"] == pytest.approx(2 * stats.t.sf(5 * math.sqrt(2), df=4))
    halfwidth = T_975_DF4 * sd / math.sqrt(5)
    assert row["ci_low"] == pytest.approx(0.05 - halfwidth)
    assert row["ci_high"] == pytest.approx(0.05 + halfwidth)
    assert row["reference_mean"] == pytest.approx(np.mean(concat))
    assert row["method_mean"] == pytest.approx(np.mean(xattn))


def test_runs_are_matched_on_seed_not_on_row_order():
    concat = runs_of({"concat": [0.70, 0.80, 0.90]})
    xattn = runs_of({"xattn_txt2img": [0.85, 0.65, 0.75]}, seeds=[2, 0, 1])  # seeds shuffled
    row = accuracy_row(paired_of(pd.concat([xattn, concat])))
    assert row["mean_diff"] == pytest.approx(0.05)
    assert row["std_diff"] == pytest.approx(0, abs=1e-12)


def test_a_seed_only_one_method_has_is_left_out_and_counted():
    concat = runs_of({"concat": [0.70, 0.80, 0.90, 0.99]})
    xattn = runs_of({"xattn_txt2img": [0.60, 0.70, 0.80]})
    row = accuracy_row(paired_of(pd.concat([concat, xattn])))
    assert row["n_seeds"] == 3
    assert row["unmatched_seeds"] == 1
    assert row["mean_diff"] == pytest.approx(0.1)


def test_one_row_per_other_method_scale_and_metric_with_concat_as_reference():
    runs = pd.concat(
        [
            runs_of({"concat": [0.7, 0.8], "gated_sum": [0.6, 0.7], "xattn_txt2img": [0.5, 0.6]}),
            runs_of({"concat": [0.7, 0.8], "xattn_txt2img": [0.5, 0.6]}, n_train=4096),
        ]
    )
    paired = paired_of(runs)
    assert list(paired.columns) == PAIRED_COLUMNS
    assert set(paired["reference"]) == {"concat"}
    assert sorted(set(zip(paired["method"], paired["n_train"], strict=True))) == [
        ("gated_sum", 2048),
        ("xattn_txt2img", 2048),
        ("xattn_txt2img", 4096),
    ]
    assert (paired["metric"].value_counts() == 3).all()
    auroc = paired[(paired["metric"] == "test_auroc") & (paired["method"] == "gated_sum")]
    assert auroc["mean_diff"].iloc[0] == pytest.approx(0.1)


def test_a_constant_difference_of_five_points_has_a_point_interval_and_p_near_zero():
    xattn = [0.61, 0.66, 0.72]
    concat = [x + 0.05 for x in xattn]
    row = accuracy_row(paired_of(runs_of({"concat": concat, "xattn_txt2img": xattn})))
    assert row["mean_diff"] == pytest.approx(0.05)
    assert row["ci_low"] == pytest.approx(0.05)
    assert row["ci_high"] == pytest.approx(0.05)
    assert row["p_ttest"] < 1e-6
    assert row["boot_low"] == pytest.approx(0.05)
    assert row["boot_high"] == pytest.approx(0.05)


def test_one_seed_gives_a_difference_but_no_interval_or_test():
    row = accuracy_row(paired_of(runs_of({"concat": [0.8], "xattn_txt2img": [0.7]})))
    assert row["mean_diff"] == pytest.approx(0.1)
    for column in ("std_diff", "ci_low", "ci_high", "t_stat", "p_ttest", "boot_low", "boot_high"):
        assert math.isnan(row[column]), column


def test_a_condition_and_seed_given_twice_is_refused():
    runs = runs_of({"concat": [0.8, 0.9], "xattn_txt2img": [0.7, 0.8]})
    with pytest.raises(AlignfuseError, match="more than once"):
        paired_of(pd.concat([runs, runs.iloc[:1]]))


def test_no_declared_comparison_gives_an_empty_table_with_the_columns():
    paired = paired_differences(runs_of({"xattn_txt2img": [0.7, 0.8], "late": [0.6, 0.7]}), [])
    assert paired.empty
    assert list(paired.columns) == PAIRED_COLUMNS


def test_wilcoxon_runs_from_six_pairs_on():
    assert math.isnan(wilcoxon_test(np.array([1.0, 2, 3, 4, 5]))["p_wilcoxon"])
    result = wilcoxon_test(np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06]))
    # all six differences positive: exact two-sided p = 2 / 2**6
    assert result["wilcoxon_stat"] == 0
    assert result["p_wilcoxon"] == pytest.approx(2 / 64)


def test_wilcoxon_in_the_table_only_with_six_seeds():
    five = runs_of({"concat": [0.8] * 5, "xattn_txt2img": [0.7, 0.71, 0.72, 0.73, 0.74]})
    six = runs_of(
        {"concat": [0.8] * 6, "xattn_txt2img": [0.7, 0.71, 0.72, 0.73, 0.74, 0.75]}, n_train=4096
    )
    paired = paired_of(pd.concat([five, six]))
    assert math.isnan(accuracy_row(paired, n_train=2048)["p_wilcoxon"])
    assert accuracy_row(paired, n_train=4096)["p_wilcoxon"] == pytest.approx(2 / 64)


def test_holm_on_known_p_values_leaves_missing_ones_out():
    pvalues = pd.Series([0.01, 0.04, np.nan, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone
    expected = [0.03, 0.06, np.nan, 0.06, 0.02]
    np.testing.assert_allclose(holm(pvalues), expected)


def test_holm_in_the_table_corrects_within_each_metric():
    runs = runs_of(
        {
            "concat": [0.80, 0.82, 0.85],
            "xattn_txt2img": [0.70, 0.75, 0.71],
            "late": [0.79, 0.80, 0.86],
        }
    )
    paired = paired_of(runs)
    for _, family in paired.groupby("metric"):
        p = family["p_ttest"].to_numpy()
        low, high = np.argmin(p), np.argmax(p)
        assert family["p_ttest_holm"].iloc[low] == pytest.approx(min(1, 2 * p[low]))
        assert family["p_ttest_holm"].iloc[high] == pytest.approx(max(p[high], min(1, 2 * p[low])))


def test_bootstrap_interval_contains_the_mean_and_is_deterministic():
    differences = np.array([0.05, 0.01, 0.08, 0.03, 0.06])
    low, high = bootstrap_ci(differences)
    assert low < differences.mean() < high
    assert (low, high) == bootstrap_ci(differences)
    assert differences.min() <= low and high <= differences.max()


def test_bootstrap_resamples_pairs_so_seed_effects_cancel():
    # the seeds differ a lot, the methods by exactly 3 points on each: resampling seeds (pairs)
    # keeps each pair together, so every resample's mean difference is 0.03
    xattn = [0.55, 0.90, 0.62, 0.75]
    concat = [x + 0.03 for x in xattn]
    row = accuracy_row(paired_of(runs_of({"concat": concat, "xattn_txt2img": xattn})))
    assert row["boot_low"] == pytest.approx(0.03)
    assert row["boot_high"] == pytest.approx(0.03)


def test_a_rows_bootstrap_does_not_depend_on_the_other_rows():
    base = runs_of({"concat": [0.8, 0.82, 0.85, 0.9], "xattn_txt2img": [0.7, 0.75, 0.8, 0.78]})
    extra = runs_of({"concat": [0.6, 0.7], "late": [0.5, 0.55]}, backbone="a_first")
    alone = accuracy_row(paired_of(base))
    together = accuracy_row(paired_of(pd.concat([extra, base])), backbone="clip")
    assert (alone["boot_low"], alone["boot_high"]) == (together["boot_low"], together["boot_high"])
    assert BOOTSTRAP_RESAMPLES >= 9999


def test_a_method_whose_seeds_all_diverged_keeps_a_row_without_an_estimate():
    runs = runs_of({"concat": [0.7, 0.8, 0.9], "xattn_txt2img": [0.5, 0.5, 0.5]})
    runs["status"] = np.where(runs["method"] == "xattn_txt2img", "diverged", "ok")
    row = accuracy_row(paired_of(runs))
    assert row["n_seeds"] == 0 and row["diverged_seeds"] == 3
    assert np.isnan(row["mean_diff"]) and np.isnan(row["low"]) and np.isnan(row["p_ttest"])


def test_a_seed_that_diverged_in_both_methods_counts_once():
    runs = runs_of({"concat": [0.7, 0.8, 0.9], "xattn_txt2img": [0.6, 0.7, 0.8]})
    runs["status"] = np.where(runs["seed"] == 2, "diverged", "ok")
    row = accuracy_row(paired_of(runs))
    assert row["n_seeds"] == 2 and row["diverged_seeds"] == 1
