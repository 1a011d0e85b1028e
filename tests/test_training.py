"""Seed-vectorised training on a synthetic matching task that needs both modalities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import build_head
from alignfuse.parquet import write_embeddings, write_frame
from alignfuse.training import EarlyStopping, SeedEnsemble, train_condition

RUN_COLUMNS = [
    "seed",
    "n_train",
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
CURVE_COLUMNS = ["seed", "epoch", "train_loss", "dev_loss", "dev_accuracy", "dev_auroc"]
HEADS = {
    "concat": {"hidden": [64, 64]},
    "xattn": {"tokens": 4, "dim": 32, "heads": 2, "ffn": 64},
}


@pytest.fixture(autouse=True)
def restore_threads():
    """train_condition sets torch's global thread count; leave it as other tests expect."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Items split 400/100/100; each image has its own caption (image + noise).

    Positives pair an image with its caption, negatives with another item's caption of the same
    split, so either modality alone is uninformative (both marginals match) and only their
    agreement decides the label.
    """
    root = tmp_path_factory.mktemp("task")
    rng = np.random.default_rng(0)
    items, d = (400, 100, 100), 8
    image = rng.standard_normal((sum(items), d)).astype(np.float32)
    text = (image + 0.1 * rng.standard_normal(image.shape)).astype(np.float32)
    write_embeddings(
        root / "image.parquet", "image_id", [f"i{k}" for k in range(len(image))], image
    )
    write_embeddings(root / "text.parquet", "caption_id", [f"c{k}" for k in range(len(text))], text)
    start = 0
    for split, m in zip(("train", "dev", "test"), items, strict=True):
        own = np.arange(start, start + m)
        other = own[(np.arange(m) + rng.integers(1, m, m)) % m]
        pairs = pd.DataFrame(
            {
                "image_id": [f"i{i}" for i in np.concatenate([own, own])],
                "caption_id": [f"c{j}" for j in np.concatenate([own, other])],
                "label": np.repeat([1, 0], m),
            }
        ).sample(frac=1, random_state=0)
        write_frame(pairs, root / "pairs" / f"{split}.parquet")
        start += m
    return root


def spec(method, seeds=(0, 1), **training):
    return {
        "method": method,
        "head": HEADS[method],
        "training": {
            "max_epochs": 15,
            "batch_size": 64,
            "lr": 3e-3,
            "weight_decay": 0.01,
            "patience": 15,
            "eval_every": 1,
            **training,
        },
        "seeds": list(seeds),
    }


def train(task, method, n=800, **kwargs):
    return train_condition(
        task / "image.parquet", task / "text.parquet", task / "pairs", n, spec(method, **kwargs), 1
    )


@pytest.mark.parametrize("method", ["concat", "xattn"])
def test_head_learns_matching_far_above_chance(task, method):
    runs, _ = train(task, method)
    assert (runs["test_accuracy"] > 0.8).all(), runs
    assert (runs["test_auroc"] > 0.9).all(), runs


def test_runs_and_curves_have_one_row_per_seed_and_per_evaluation(task):
    runs, curves = train(task, "concat", n=300, seeds=(3, 5, 7), max_epochs=4, eval_every=2)
    assert list(runs.columns) == RUN_COLUMNS
    assert list(curves.columns) == CURVE_COLUMNS
    assert runs["seed"].tolist() == [3, 5, 7]
    assert (runs["n_train"] == 300).all() and (runs["seeds_trained_together"] == 3).all()
    assert (
        runs["params"]
        == sum(p.numel() for p in build_head("concat", 8, 8, HEADS["concat"]).parameters())
    ).all()
    assert sorted(curves["epoch"].unique()) == [2, 4]
    assert len(curves) == 3 * 2


def test_same_inputs_give_bit_identical_results(task):
    first_runs, first_curves = train(task, "xattn", max_epochs=3)
    second_runs, second_curves = train(task, "xattn", max_epochs=3)
    pd.testing.assert_frame_equal(
        first_runs.drop(columns="wall_s"), second_runs.drop(columns="wall_s")
    )
    pd.testing.assert_frame_equal(first_curves, second_curves)


def test_seed_result_barely_depends_on_seeds_trained_with_it(task):
    """Only dropout masks (drawn for all seeds at once) and summation order tie seeds together."""
    together, _ = train(task, "xattn", seeds=(0, 1), max_epochs=5)
    alone, _ = train(task, "xattn", seeds=(1,), max_epochs=5)
    seed_1, alone = together.iloc[1], alone.iloc[0]
    assert seed_1["test_accuracy"] == pytest.approx(alone["test_accuracy"], abs=0.03)
    assert seed_1["test_loss"] == pytest.approx(alone["test_loss"], rel=0.1)


def test_early_stopping_ends_training_before_max_epochs(task):
    runs, curves = train(task, "concat", max_epochs=200, patience=2, lr=3e-2)
    assert (runs["epochs"] < 200).all()
    assert (runs["epochs"] - runs["best_epoch"] == 2).all()
    for seed, rows in curves.groupby("seed"):
        assert rows["epoch"].max() == runs.set_index("seed").loc[seed, "epochs"]


def test_more_pairs_than_available_names_the_train_file(task):
    with pytest.raises(AlignfuseError, match=r"train\.parquet.*800 available"):
        train(task, "concat", n=801)


def test_pair_with_unknown_feature_id_names_the_feature_file(task, tmp_path):
    pairs = tmp_path / "pairs"
    for split in ("train", "dev", "test"):
        frame = pd.read_parquet(task / "pairs" / f"{split}.parquet")
        if split == "dev":
            frame.loc[0, "caption_id"] = "nowhere"
        write_frame(frame, pairs / f"{split}.parquet")
    with pytest.raises(AlignfuseError, match=r"text\.parquet.*nowhere"):
        train_condition(
            task / "image.parquet", task / "text.parquet", pairs, 100, spec("concat"), 1
        )


def test_each_seed_initialises_as_if_built_alone():
    ensemble = SeedEnsemble("xattn", HEADS["xattn"], 8, 8, [4, 9])
    torch.manual_seed(9)
    alone = build_head("xattn", 8, 8, HEADS["xattn"])
    for name, p in alone.named_parameters():
        torch.testing.assert_close(ensemble.params[name][1], p, rtol=0, atol=0)


def test_one_adamw_over_stacked_seeds_equals_adamw_per_seed():
    seeds, x, y = [0, 1], torch.randn(2, 16, 8), torch.randint(0, 2, (2, 16))
    ensemble = SeedEnsemble("concat", {"dropout": 0.0, **HEADS["concat"]}, 8, 8, seeds)
    stacked = torch.optim.AdamW(ensemble.params.values(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        loss = F.cross_entropy(ensemble(x, x).transpose(1, 2), y, reduction="none").mean(dim=1)
        stacked.zero_grad()
        loss.sum().backward()
        stacked.step()
    for s, seed in enumerate(seeds):
        torch.manual_seed(seed)
        head = build_head("concat", 8, 8, {"dropout": 0.0, **HEADS["concat"]})
        alone = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
        for _ in range(3):
            alone.zero_grad()
            F.cross_entropy(head(x[s], x[s]), y[s]).backward()
            alone.step()
        for name, p in head.named_parameters():
            torch.testing.assert_close(ensemble.params[name][s], p)


def test_dropout_is_on_in_training_and_off_in_evaluation():
    ensemble = SeedEnsemble("concat", {"dropout": 0.5, **HEADS["concat"]}, 8, 8, [0, 1])
    x = torch.randn(2, 32, 8)
    ensemble.train()
    assert not torch.equal(ensemble(x, x), ensemble(x, x))
    ensemble.eval()
    assert torch.equal(ensemble(x, x), ensemble(x, x))


def test_early_stopping_breaks_accuracy_ties_by_lower_loss_and_freezes_stopped_seeds():
    stopping = EarlyStopping(2, patience=1)
    stopping.update(1, [{"accuracy": 0.8, "loss": 0.5}, {"accuracy": 0.8, "loss": 0.5}])
    improved = stopping.update(2, [{"accuracy": 0.8, "loss": 0.4}, {"accuracy": 0.8, "loss": 0.6}])
    assert improved.tolist() == [True, False]
    assert stopping.stopped_at == [None, 2]
    improved = stopping.update(3, [{"accuracy": 0.9, "loss": 0.1}, {"accuracy": 0.9, "loss": 0.1}])
    assert improved.tolist() == [True, False]
    assert stopping.best_epoch == [3, 1]
    assert not stopping.done
