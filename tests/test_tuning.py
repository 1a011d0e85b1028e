"""Tuning: candidates trained on train, chosen on dev; the test split never influences the choice."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_frame, write_frame
from alignfuse.train.tuning import (
    apply_chosen,
    candidates,
    choose,
    read_chosen,
    tune,
    with_values,
)

pytestmark = pytest.mark.usefixtures("restore_threads")

# A rate at which concat learns the task in a few epochs, between one at which AdamW's steps
# throw the head about (it never settles above chance) and one at which it barely moves.
LEARNS, DIVERGES, STALLS = 3e-3, 1.0, 1e-7


def spec(grid: dict, **training) -> dict:
    return {
        "method": "concat",
        "head": "concat",
        "hparams": {"hidden": [64, 64], "dropout": 0.1},
        "training": {
            "max_epochs": 10,
            "batch_size": 64,
            "lr": 1e-3,
            "weight_decay": 0.01,
            "patience": 10,
            "eval_every": 1,
            **training,
        },
        "grid": grid,
        "scale": 800,
        "seeds": [0, 1],
        "metric": "dev_accuracy",
    }


def tuned(task, pairs_dir=None, **kwargs):
    pairs_dir = pairs_dir or task / "pairs"
    return tune(task / "image.parquet", task / "text.parquet", pairs_dir, spec(**kwargs), 1)


@pytest.fixture(scope="module")
def known_answer(task):
    """Three learning rates, the right one in the middle of the grid."""
    return tuned(task, grid={"lr": [DIVERGES, LEARNS, STALLS]})


def test_tuning_picks_the_rate_at_which_the_head_learns(known_answer):
    frame, chosen = known_answer
    assert chosen["values"] == {"lr": LEARNS}
    scores = frame.drop_duplicates("candidate").set_index("lr")["score"]
    assert scores[LEARNS] > 0.9
    for wrong in (DIVERGES, STALLS):
        assert not scores[wrong] > 0.7  # near chance, or NaN where the seeds diverged
    assert frame.loc[frame["chosen"], "lr"].unique().tolist() == [LEARNS]


def test_tuning_writes_every_candidate_and_seed_with_its_dev_scores(known_answer):
    frame, chosen = known_answer
    assert len(frame) == 3 * 2
    assert set(frame["seed"]) == {0, 1}
    assert {"dev_accuracy", "dev_auroc", "dev_loss", "best_epoch", "status", "score"} <= set(
        frame.columns
    )
    assert chosen["metric"] == "dev_accuracy" and chosen["candidates"] == 3
    ours = frame[frame["lr"] == LEARNS]
    assert chosen["score"] == pytest.approx(ours["dev_accuracy"].mean())


def test_shuffled_test_labels_leave_every_candidates_scores_unchanged(task, known_answer, tmp_path):
    pairs = tmp_path / "pairs"
    shutil.copytree(task / "pairs", pairs)
    test = read_frame(pairs / "test.parquet", "")
    test["label"] = np.random.default_rng(1).permutation(test["label"].to_numpy())
    write_frame(test, pairs / "test.parquet")
    frame, chosen = tuned(task, pairs_dir=pairs, grid={"lr": [DIVERGES, LEARNS, STALLS]})
    assert chosen == known_answer.chosen
    pd.testing.assert_frame_equal(
        frame.drop(columns="wall_s"),
        known_answer.candidates.drop(columns="wall_s"),
        check_exact=True,
    )
    (pairs / "test.parquet").unlink()  # not even opened
    assert tuned(task, pairs_dir=pairs, grid={"lr": [LEARNS]}).chosen["values"] == {"lr": LEARNS}


def test_candidates_are_every_combination_in_grid_order():
    grid = {"schedule": ["constant", "warmup_cosine"], "lr": [1e-3, 3e-4]}
    assert candidates(grid) == [
        {"lr": 1e-3, "schedule": "constant"},
        {"lr": 1e-3, "schedule": "warmup_cosine"},
        {"lr": 3e-4, "schedule": "constant"},
        {"lr": 3e-4, "schedule": "warmup_cosine"},
    ]


def test_a_candidates_dropout_goes_to_the_head_and_the_rest_to_training():
    run = with_values(spec({}), {"dropout": 0.3, "lr": 1e-2, "schedule": "warmup_cosine"})
    assert run["hparams"]["dropout"] == 0.3
    assert run["training"]["lr"] == 1e-2 and run["training"]["schedule"] == "warmup_cosine"
    assert spec({})["hparams"]["dropout"] == 0.1  # the spec itself is left alone


def scores(rows):
    return pd.DataFrame(rows, columns=["candidate", "seed", "dev_accuracy", "dev_loss", "status"])


def test_choice_breaks_ties_to_the_earlier_candidate_and_skips_diverged_ones():
    frame = scores(
        [
            (0, 0, 0.99, 0.1, "diverged"),
            (0, 1, 0.99, 0.1, "ok"),
            (1, 0, 0.80, 0.4, "ok"),
            (1, 1, 0.90, 0.3, "ok"),
            (2, 0, 0.90, 0.2, "ok"),
            (2, 1, 0.80, 0.2, "ok"),
        ]
    )
    score, chosen = choose(frame, "dev_accuracy")
    assert np.isnan(score[0]) and chosen == 1
    assert choose(frame, "dev_loss")[1] == 2  # lower loss is better


def test_a_grid_whose_every_candidate_diverged_is_one_clear_error():
    frame = scores([(0, 0, np.nan, np.nan, "diverged"), (1, 0, np.nan, np.nan, "diverged")])
    with pytest.raises(AlignfuseError, match=r"tuning\.methods\.<method>\.lr"):
        choose(frame, "dev_accuracy")


def test_the_chosen_values_reach_a_training_job_and_are_recorded_as_tuned(tmp_path):
    path = tmp_path / "concat.json"
    path.write_text(json.dumps({"method": "concat", "values": {"lr": 3e-4, "dropout": 0.2}}))
    run = apply_chosen(spec({}), read_chosen(path, "concat"))
    assert run["training"]["lr"] == 3e-4 and run["hparams"]["dropout"] == 0.2
    assert run["tuned"] == {"lr": 3e-4, "dropout": 0.2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot read the tuned values"),
        ('{"method": "concat"}', "no 'values' mapping"),
        ('{"method": "bilinear", "values": {}}', "tuned values of method 'bilinear'"),
    ],
)
def test_a_damaged_or_foreign_tuned_file_is_an_error_naming_it(tmp_path, text, message):
    path = tmp_path / "concat.json"
    path.write_text(text)
    with pytest.raises(AlignfuseError, match=message) as error:
        read_chosen(path, "concat")
    assert str(path) in str(error.value)


def test_the_tune_command_writes_the_candidates_and_the_chosen_values(task, tmp_path, capsys):
    out, chosen = tmp_path / "concat.parquet", tmp_path / "concat.json"
    args = ["tune", "--image-features", str(task / "image.parquet")]
    args += ["--text-features", str(task / "text.parquet"), "--pairs-dir", str(task / "pairs")]
    args += ["--spec", json.dumps(spec({"lr": [LEARNS, STALLS]}, max_epochs=3))]
    args += ["--label", "dataset=task", "--out", str(out), "--chosen-out", str(chosen)]
    assert main(args) == 0
    frame = read_frame(out, "")
    assert frame.columns[:2].tolist() == ["dataset", "method"]
    assert len(frame) == 4 and frame["chosen"].sum() == 2
    assert read_chosen(chosen, "concat") == {"lr": LEARNS}
