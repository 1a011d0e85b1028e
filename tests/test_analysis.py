import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alignfuse.analysis import RUN_COLUMNS, collect_runs, summarize, write_tables
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame


def run_rows(method="concat", n_train=2048, accuracies=(0.7, 0.8, 0.9), backbone="clip"):
    """A train-stage run file's rows: one per seed, the given test accuracies."""
    seeds = range(len(accuracies))
    return pd.DataFrame(
        {
            "dataset": "flickr8k",
            "backbone": backbone,
            "alignment": "raw",
            "method": method,
            "n_train": n_train,
            "seed": list(seeds),
            "test_accuracy": list(accuracies),
            "test_auroc": [a + 0.05 for a in accuracies],
            "test_loss": 0.5,
            "best_dev_accuracy": list(accuracies),
            "best_epoch": [3 + s for s in seeds],
            "epochs": [13 + s for s in seeds],
            "params": 295_554,
            "wall_s": 1.5,
            "seeds_trained_together": len(accuracies),
        }
    )


def write_run(tmp_path, frame, name):
    path = tmp_path / f"{name}.parquet"
    write_frame(frame, path)
    return path


def test_collect_runs_concatenates_in_a_fixed_order_whatever_the_file_order(tmp_path):
    paths = [
        write_run(tmp_path, run_rows("xattn", 4096), "a"),
        write_run(tmp_path, run_rows("concat", 4096), "b"),
        write_run(tmp_path, run_rows("concat", 2048), "c"),
    ]
    runs = collect_runs(paths)
    assert len(runs) == 9
    assert list(runs.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    conditions = list(dict.fromkeys(zip(runs["method"], runs["n_train"], strict=True)))
    assert conditions == [("concat", 2048), ("concat", 4096), ("xattn", 4096)]
    assert runs["seed"].tolist() == [0, 1, 2] * 3
    pd.testing.assert_frame_equal(runs, collect_runs(paths[::-1]))


def test_collect_runs_names_the_file_and_its_missing_columns(tmp_path):
    good = write_run(tmp_path, run_rows(), "good")
    bad = write_run(tmp_path, run_rows().drop(columns=["test_auroc", "params"]), "bad")
    with pytest.raises(AlignfuseError, match=r"bad\.parquet.*test_auroc, params"):
        collect_runs([good, bad])


def test_collect_runs_rejects_a_missing_file_and_a_file_given_twice(tmp_path):
    path = write_run(tmp_path, run_rows(), "once")
    with pytest.raises(AlignfuseError, match=r"absent\.parquet: run file not found"):
        collect_runs([tmp_path / "absent.parquet"])
    with pytest.raises(AlignfuseError, match=r"once\.parquet.*each run file once"):
        collect_runs([path, path])
    with pytest.raises(AlignfuseError, match="no run files"):
        collect_runs([])


def test_summary_mean_std_and_t_interval_of_three_seeds():
    row = summarize(run_rows(accuracies=(0.7, 0.8, 0.9))).iloc[0]
    sample_std = math.sqrt(((0.1**2) + 0 + (0.1**2)) / 2)
    assert row["n_seeds"] == 3
    assert row["test_accuracy_mean"] == pytest.approx(0.8)
    assert row["test_accuracy_std"] == pytest.approx(sample_std)
    assert row["test_accuracy_ci95"] == pytest.approx(4.302652729911275 * sample_std / math.sqrt(3))
    assert row["test_auroc_mean"] == pytest.approx(0.85)
    assert row["test_auroc_ci95"] == pytest.approx(row["test_accuracy_ci95"])
    assert row["params_mean"] == 295_554
    assert row["epochs_mean"] == pytest.approx(14)


def test_summary_interval_matches_scipy_t_interval():
    accuracies = (0.61, 0.64, 0.58, 0.66, 0.63)
    row = summarize(run_rows(accuracies=accuracies)).iloc[0]
    low, high = stats.t.interval(
        0.95, len(accuracies) - 1, loc=np.mean(accuracies), scale=stats.sem(accuracies)
    )
    assert row["test_accuracy_mean"] - row["test_accuracy_ci95"] == pytest.approx(low)
    assert row["test_accuracy_mean"] + row["test_accuracy_ci95"] == pytest.approx(high)


def test_summary_with_one_seed_has_a_mean_but_no_interval():
    row = summarize(run_rows(accuracies=(0.75,))).iloc[0]
    assert row["n_seeds"] == 1
    assert row["test_accuracy_mean"] == pytest.approx(0.75)
    assert math.isnan(row["test_accuracy_std"])
    assert math.isnan(row["test_accuracy_ci95"])


def test_summary_has_one_row_per_condition_in_sorted_order():
    runs = pd.concat(
        [run_rows("xattn", 2048), run_rows("concat", 4096), run_rows("concat", 2048, backbone="a")]
    )
    summary = summarize(runs)
    keys = list(zip(summary["backbone"], summary["method"], summary["n_train"], strict=True))
    assert keys == [("a", "concat", 2048), ("clip", "concat", 4096), ("clip", "xattn", 2048)]
    assert summary["n_seeds"].tolist() == [3, 3, 3]


def test_write_tables_writes_every_table_and_they_round_trip(tmp_path):
    runs = collect_runs(
        [
            write_run(tmp_path, run_rows("concat"), "concat"),
            write_run(tmp_path, run_rows("xattn", accuracies=(0.6,)), "xattn"),
        ]
    )
    out = tmp_path / "tables"
    write_tables(runs, out)
    names = {"runs.parquet", "runs.csv", "summary.parquet", "summary.csv", "summary.md"}
    assert {p.name for p in out.iterdir()} == names  # no temporary files left behind
    pd.testing.assert_frame_equal(pd.read_parquet(out / "runs.parquet"), runs, check_dtype=False)
    summary = summarize(runs)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "summary.parquet"), summary, check_dtype=False
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary, check_dtype=False)
    assert len(pd.read_csv(out / "runs.csv")) == 4


def test_summary_markdown_shows_accuracy_in_percent_with_its_interval(tmp_path):
    runs = pd.concat([run_rows("concat"), run_rows("xattn", accuracies=(0.6,))])
    write_tables(runs, tmp_path)
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    halfwidth = 100 * stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert f"80.00 ± {halfwidth:.2f}" in text
    assert "| xattn " in text and " 60.00 |" in text  # one seed: no interval
    assert "295,554" in text
