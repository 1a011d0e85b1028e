import json
import math

import numpy as np
import pandas as pd
import pytest
from declared import TUNED, declared
from scipy import stats

from alignfuse.analysis.claims import Claim
from alignfuse.analysis.tables import (
    RUN_COLUMNS,
    Settings,
    build_tables,
    collect_predictions,
    collect_runs,
    summarize,
    write_tables,
)
from alignfuse.cli import main
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
            "head": method,
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
            "token_source": "pooled" if method == "concat" else "encoder",
            "image_tokens": 1.0 if method == "concat" else 49.0,
            "text_tokens": 1.0 if method == "concat" else 14.25,
            "status": "ok",
        }
    )


# The test split: 100 images with two pairs each (a positive and a negative).
TEST_PAIRS = pd.DataFrame(
    {
        "image_id": np.repeat([f"i{k}" for k in range(100)], 2),
        "caption_id": [f"c{k}" for k in range(200)],
        "label": np.tile([1, 0], 100),
    }
)


def predictions_for(frame: pd.DataFrame) -> pd.DataFrame:
    """Test probabilities that score exactly each seed's accuracy: the first a·N pairs (in a
    seed-shuffled order) right, the rest wrong."""
    rows = []
    label = TEST_PAIRS["label"].to_numpy()
    for seed, accuracy in zip(frame["seed"], frame["test_accuracy"], strict=True):
        right = np.random.default_rng(seed).permutation(len(label)) < round(accuracy * len(label))
        prob = np.where(right == (label == 1), 0.9, 0.1)
        rows.append(pd.DataFrame({"seed": seed, "pair": np.arange(len(label)), "prob": prob}))
    return pd.concat(rows, ignore_index=True)


def curves_for(frame):
    """Two evaluations per seed of a run file, in the train stage's curves columns."""
    labels = ["dataset", "backbone", "alignment", "method", "head", "seed"]
    rows = frame[labels].drop_duplicates()
    curves = pd.concat([rows.assign(epoch=epoch) for epoch in (1, 2)], ignore_index=True)
    return curves.assign(
        train_loss=0.6,
        dev_loss=0.5,
        dev_accuracy=0.7,
        dev_auroc=0.8,
        attention_entropy=np.nan,
        attention_ceiling=np.nan,
        score_grad_norm=np.nan,
    )


def write_run(tmp_path, frame, name):
    """A run file with its test predictions and learning curves, as the train stage writes them."""
    path = tmp_path / f"{name}.parquet"
    write_frame(frame, path)
    write_frame(predictions_for(frame), tmp_path / f"{name}.predictions.parquet")
    write_frame(curves_for(frame), tmp_path / f"{name}.curves.parquet")
    return path


CLAIM = Claim.from_config(
    {
        "id": "clip_gap",
        "statement": "concat beats cross-attention by 4.1–5.1 points",
        "backbone": "clip",
        "alignment": "raw",
        "reference": "concat",
        "methods": ["xattn_txt2img"],
        "scales": [2048, 4096],
        "band": [4.1, 5.1],
    }
)
SETTINGS = Settings(claims=(CLAIM,), bootstrap_resamples=500)


def settings_for(runs: pd.DataFrame) -> Settings:
    """SETTINGS with the comparisons a study of these runs declares: concat against the rest."""
    return Settings(claims=(CLAIM,), bootstrap_resamples=500, comparisons=tuple(declared(runs)))


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
    write_tables(runs, out, settings_for(runs))
    names = {
        f"{t}.{ext}"
        for t in ("runs", "summary", "comparisons", "paired", "paper_vs_ours", "alignment_study")
        for ext in ("parquet", "csv")
    }
    names |= {
        f"{t}.{ext}"
        for t in ("summary", "comparisons", "paired", "paper_vs_ours", "alignment_study")
        for ext in ("md", "html")
    }
    assert {p.name for p in out.iterdir()} == names  # no temporary files left behind
    pd.testing.assert_frame_equal(pd.read_parquet(out / "runs.parquet"), runs, check_dtype=False)
    summary = summarize(runs)
    written = pd.read_parquet(out / "summary.parquet")
    pd.testing.assert_frame_equal(written[summary.columns], summary, check_dtype=False)
    assert written["token_source"].tolist() == ["pooled", "encoder"]
    assert written["text_tokens"].tolist() == [1.0, 14.25]
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), written, check_dtype=False)
    assert len(pd.read_csv(out / "runs.csv")) == 4


def test_summary_markdown_shows_accuracy_in_percent_with_its_interval(tmp_path):
    runs = pd.concat([run_rows("concat"), run_rows("xattn", accuracies=(0.6,))])
    write_tables(runs, tmp_path, settings_for(runs))
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    halfwidth = 100 * stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert f"80.00 [{80 - halfwidth:.2f}, {80 + halfwidth:.2f}]" in text  # no predictions: seeds
    assert f" {halfwidth:.2f} |" in text  # the seeds-only half-width beside it
    assert "| xattn " in text and " 60.00 |" in text  # one seed: no interval
    assert "295,554" in text
    assert "| pooled " in text and "| encoder 49 / 14.2 " in text


def five_point_study(tmp_path):
    """Run files where concat beats xattn_txt2img by 5 points on each of 3 seeds at 2048 (clip)."""
    return [
        write_run(tmp_path, run_rows("concat", accuracies=(0.75, 0.80, 0.85)), "concat"),
        write_run(tmp_path, run_rows("xattn_txt2img", accuracies=(0.70, 0.75, 0.80)), "xattn"),
    ]


def test_the_test_bootstrap_widens_every_interval_beyond_the_seed_interval(tmp_path):
    paths = five_point_study(tmp_path)
    runs = collect_runs(paths)
    predictions = collect_predictions(paths, TEST_PAIRS)
    tables = build_tables(runs, settings_for(runs), predictions, TEST_PAIRS)
    summary = tables["summary"].set_index("method")
    concat = summary.loc["concat"]
    assert concat["interval"] == "seeds + test images" and concat["test_accuracy_test_se"] > 0
    assert (
        concat["test_accuracy_high"] - concat["test_accuracy_mean"] > concat["test_accuracy_ci95"]
    )
    paired = tables["paired"].set_index("metric").loc["test_accuracy"]
    assert paired["mean_diff"] == pytest.approx(0.05)
    assert paired["ci_low"] == pytest.approx(0.05) and paired["ci_high"] == pytest.approx(0.05)
    assert paired["low"] < 0.05 < paired["high"]  # the test set's variance is not zero
    assert paired["test_low"] < 0.05 < paired["test_high"]


def test_predictions_that_do_not_match_the_test_split_are_refused(tmp_path):
    paths = five_point_study(tmp_path)
    with pytest.raises(
        AlignfuseError, match="predictions for 200 pairs, but the test split has 198"
    ):
        collect_predictions(paths, TEST_PAIRS.iloc[:198])
    (tmp_path / "xattn.predictions.parquet").unlink()
    with pytest.raises(
        AlignfuseError, match="xattn.predictions.parquet: test predictions not found"
    ):
        collect_predictions(paths, TEST_PAIRS)


def test_diverged_seeds_are_counted_and_left_out_of_the_summary():
    runs = run_rows(accuracies=(0.7, 0.8, 0.9, 0.5))
    runs.loc[3, "status"] = "diverged"
    row = summarize(runs).iloc[0]
    assert row["n_seeds"] == 3 and row["n_diverged"] == 1
    assert row["test_accuracy_mean"] == pytest.approx(0.8)


def test_build_tables_pairs_methods_and_judges_the_claims(tmp_path):
    paths = five_point_study(tmp_path)
    runs = collect_runs(paths)
    tables = build_tables(
        runs, settings_for(runs), collect_predictions(paths, TEST_PAIRS), TEST_PAIRS
    )
    assert list(tables) == [
        "runs",
        "summary",
        "comparisons",
        "paired",
        "paper_vs_ours",
        "alignment_study",
    ]
    assert tables["alignment_study"].empty  # no degraded feature sets in this study
    paired = tables["paired"].set_index("metric")
    assert paired.loc["test_accuracy", "mean_diff"] == pytest.approx(0.05)
    claims = tables["paper_vs_ours"].set_index("scales")
    assert claims.loc["2048", "verdict"] in ("consistent but imprecise", "reproduced")
    assert claims.loc["4096", "verdict"] == "not in this study"
    assert claims.loc["2048, 4096", "verdict"] == "not fully tested"


def test_the_tables_for_people_read_in_points_with_intervals_and_verdicts(tmp_path):
    out = tmp_path / "tables"
    paths = five_point_study(tmp_path)
    runs = collect_runs(paths)
    write_tables(runs, out, settings_for(runs), collect_predictions(paths, TEST_PAIRS), TEST_PAIRS)
    paired = (out / "paired.md").read_text(encoding="utf-8")
    assert "| concat − xattn_txt2img " in paired
    assert " [5.00, 5.00] " in paired  # the seeds-only interval of a constant difference
    assert "Holm" in paired and "seeds + test images" in paired
    claims = (out / "paper_vs_ours.md").read_text(encoding="utf-8")
    assert "| not in this study " in claims and "| not fully tested " in claims
    assert "4.1–5.1" in claims and "widened by 1 point(s)" in claims
    page = (out / "paper_vs_ours.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<table" in page
    csv = pd.read_csv(out / "paired.csv")
    assert set(csv["method"]) == {"xattn_txt2img"}


def test_a_study_without_a_declared_comparison_still_writes_every_table(tmp_path):
    runs = collect_runs([write_run(tmp_path, run_rows("xattn_txt2img"), "xattn")])
    out = tmp_path / "tables"
    write_tables(runs, out, SETTINGS)
    assert pd.read_parquet(out / "paired.parquet").empty
    assert "(no rows)" in (out / "paired.md").read_text(encoding="utf-8")
    verdicts = set(pd.read_csv(out / "paper_vs_ours.csv")["verdict"])
    assert verdicts == {"not in this study", "not fully tested"}


def test_the_aggregate_command_writes_the_tables_and_reports_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "tables"
    pairs = tmp_path / "test.parquet"
    write_frame(TEST_PAIRS, pairs)
    settings = json.dumps(
        {
            "analysis": {
                "reference": "concat",
                "confidence": 0.95,
                "tolerance_pts": 1.0,
                "bootstrap_resamples": 200,
                "seed": 0,
            },
            "claims": [],
            "labels": {
                label: {"head": label, "family": "attention", "recipe": {"kind": "shared"}}
                for label in ("concat", "xattn_txt2img")
            },
        }
    )
    common = ["--test-pairs", str(pairs), "--settings", settings, "--out-dir", str(out)]
    runs = list(map(str, five_point_study(tmp_path)))
    assert main(["aggregate", "--runs", *runs, *common]) == 0
    assert (out / "paper_vs_ours.md").is_file()
    curves = pd.read_parquet(out / "curves.parquet")
    assert len(curves) == 2 * len(pd.read_parquet(out / "runs.parquet"))
    assert curves["n_train"].notna().all()
    assert main(["aggregate", "--runs", str(tmp_path / "absent.parquet"), *common]) == 1
    assert "absent.parquet: run file not found" in capsys.readouterr().err


def test_the_aggregate_command_by_hand_refuses_what_the_plan_refuses(tmp_path, capsys):
    """A claim of concat against a tuned cross-attention label, without mixed_recipe: the same
    check as the plan's (comparisons.declare), one line naming the claim and both labels."""
    pairs = tmp_path / "test.parquet"
    write_frame(TEST_PAIRS, pairs)
    analysis = {
        "reference": "concat",
        "confidence": 0.95,
        "tolerance_pts": 1.0,
        "bootstrap_resamples": 200,
        "seed": 0,
    }
    claim = {
        "id": "clip_gap",
        "statement": "concat ahead",
        "backbone": "clip",
        "reference": "concat",
        "methods": ["xattn_txt2img"],
        "scales": [2048],
        "band": [4.1, 5.1],
    }
    labels = {
        "concat": {"head": "concat", "family": "concatenation", "recipe": {"kind": "shared"}},
        "xattn_txt2img": {"head": "xattn_txt2img", "family": "attention", "recipe": TUNED},
    }
    settings = json.dumps({"analysis": analysis, "claims": [claim], "labels": labels})
    runs = list(map(str, five_point_study(tmp_path)))
    args = ["--test-pairs", str(pairs), "--settings", settings, "--out-dir", str(tmp_path / "t")]
    assert main(["aggregate", "--runs", *runs, *args]) == 1
    err = capsys.readouterr().err
    assert "config key 'claims.0'" in err and "concat (recipe: shared)" in err
    assert "xattn_txt2img (recipe: tuned on dev" in err and "mixed_recipe: true" in err
    assert not (tmp_path / "t").exists()


def test_a_truncated_run_file_is_one_error_naming_it_and_the_fix(tmp_path):
    path = write_run(tmp_path, run_rows(), "cut")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(AlignfuseError, match=r"cut\.parquet: not a readable Parquet file.*rerun"):
        collect_runs([path])


def test_a_condition_whose_seeds_all_diverged_stays_in_the_summary_and_its_claim_says_so(
    tmp_path,
):
    diverged = run_rows("xattn_txt2img", accuracies=(0.5, 0.5, 0.5)).assign(status="diverged")
    paths = [
        write_run(tmp_path, run_rows("concat", accuracies=(0.75, 0.80, 0.85)), "concat"),
        write_run(tmp_path, diverged, "xattn"),
    ]
    no_predictions = pd.DataFrame(
        {"seed": pd.Series(dtype="int64"), "pair": pd.Series(dtype="int64"), "prob": []}
    )
    write_frame(no_predictions, tmp_path / "xattn.predictions.parquet")  # diverged seeds have none
    runs = collect_runs(paths)
    tables = build_tables(
        runs, settings_for(runs), collect_predictions(paths, TEST_PAIRS), TEST_PAIRS
    )
    row = tables["summary"].set_index("method").loc["xattn_txt2img"]
    assert row["n_seeds"] == 0 and row["n_diverged"] == 3
    for part in ("mean", "std", "ci95", "test_se", "low", "high"):
        assert np.isnan(row[f"test_accuracy_{part}"]), part
    assert row["head"] == "xattn_txt2img" and row["params_mean"] == 295_554
    claims = tables["paper_vs_ours"].set_index("scales")
    assert claims.loc["2048", "verdict"] == "runs diverged"
    assert claims.loc["2048", "diverged_seeds"] == 3
    assert "all 3 seed(s) diverged" in claims.loc["2048", "note"]
    assert claims.loc["2048, 4096", "verdict"] == "runs diverged"
    assert np.isnan(claims.loc["2048", "ours_mean_pts"])


def test_a_condition_trained_in_seed_blocks_gives_the_tables_of_one_run_file(tmp_path):
    """The train stage writes one run file per seed block: seed 0 in one, seeds 1 and 2 in
    another, as in one file. Also for a condition whose blocks all diverged, each block's
    predictions file empty."""
    concat = run_rows("concat", accuracies=(0.75, 0.80, 0.85))
    xattn = run_rows("xattn_txt2img", accuracies=(0.5, 0.5, 0.5)).assign(status="diverged")
    no_predictions = pd.DataFrame(
        {"seed": pd.Series(dtype="int64"), "pair": pd.Series(dtype="int64"), "prob": []}
    )

    def tables(directory, blocks):
        paths = []
        for method, frame in (("concat", concat), ("xattn", xattn)):
            for i, seeds in enumerate(blocks):
                name = f"{method}_{i}"
                paths.append(write_run(directory, frame[frame["seed"].isin(seeds)], name))
                if method == "xattn":
                    write_frame(no_predictions, directory / f"{name}.predictions.parquet")
        predictions = collect_predictions(paths, TEST_PAIRS)
        runs = collect_runs(paths)
        return build_tables(runs, settings_for(runs), predictions, TEST_PAIRS)

    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    one, two = tables(tmp_path / "one", [[0, 1, 2]]), tables(tmp_path / "two", [[0], [1, 2]])
    for name in ("runs", "summary", "paired", "paper_vs_ours"):
        pd.testing.assert_frame_equal(two[name], one[name], check_exact=True)
    row = two["summary"].set_index("method").loc["xattn_txt2img"]
    assert row["n_seeds"] == 0 and row["n_diverged"] == 3


def test_the_summary_for_people_shows_a_condition_whose_seeds_all_diverged(tmp_path):
    diverged = run_rows("xattn_txt2img", accuracies=(0.5, 0.5)).assign(status="diverged")
    paths = [
        write_run(tmp_path, run_rows("concat"), "concat"),
        write_run(tmp_path, diverged, "xattn"),
    ]
    runs = collect_runs(paths)
    write_tables(runs, tmp_path / "tables", settings_for(runs))
    text = (tmp_path / "tables/summary.md").read_text()
    line = next(line for line in text.splitlines() if "| xattn_txt2img " in line)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[5:8] == ["0", "2", "–"]  # seeds, diverged, accuracy
    assert "nan" not in line
