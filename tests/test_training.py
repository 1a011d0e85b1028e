"""Seed-vectorised training on a synthetic matching task that needs both modalities."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.build import build_head
from alignfuse.parquet import (
    EmbeddingWriter,
    TokenWriter,
    read_embedding_rows,
    write_frame,
)
from alignfuse.train.condition import train_condition
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.metrics import auroc
from alignfuse.train.optim import SeedAdamW, adamw, keep_optimizer_seeds
from alignfuse.train.schedule import learning_rate
from alignfuse.train.splits import load_splits, training_subsets
from alignfuse.train.stopping import EarlyStopping

pytestmark = pytest.mark.usefixtures("restore_threads")

RUN_COLUMNS = [
    "method",
    "head",
    "seed",
    "n_train",
    "test_accuracy",
    "test_auroc",
    "test_loss",
    "image_shuffled_accuracy",
    "text_shuffled_accuracy",
    "best_dev_accuracy",
    "best_epoch",
    "epochs",
    "params",
    "hparams",
    "wall_s",
    "load_s",
    "train_s",
    "eval_s",
    "seeds_trained_together",
    "resample",
    "scaling",
    "device",
    "token_source",
    "image_tokens",
    "text_tokens",
    "training",
    "tuned",
    "tuned_values",
    "status",
    "diverged_epoch",
]
TIMES = ["wall_s", "load_s", "train_s", "eval_s"]
CURVE_COLUMNS = [
    "method",
    "head",
    "seed",
    "epoch",
    "train_loss",
    "dev_loss",
    "dev_accuracy",
    "dev_auroc",
    "attention_entropy",
    "attention_ceiling",
    "score_grad_norm",
]
HEADS = {
    "concat": {"hidden": [64, 64]},
    "xattn_txt2img": {"tokens": 4, "dim": 32, "heads": 2, "ffn": 64},
}


@pytest.fixture(scope="module")
def token_task(task, tmp_path_factory):
    """The task's items as token files: 6 image tokens, a caption = 2..5 of them + noise.

    Pairs are the task's own; only the features change, so pooled heads and token heads see the
    same pairs.
    """
    root = tmp_path_factory.mktemp("token_task")
    rng = np.random.default_rng(1)
    items, d = 600, 8
    image = rng.standard_normal((items, 6, d)).astype(np.float32)
    captions = [
        image[k, rng.permutation(6)[: rng.integers(2, 6)]] + 0.1 * rng.standard_normal(d)
        for k in range(items)
    ]
    with TokenWriter(root / "image_tokens.parquet", "image_id", d) as writer:
        writer.write([f"i{k}" for k in range(items)], list(image))
    with TokenWriter(root / "text_tokens.parquet", "caption_id", d) as writer:
        writer.write([f"c{k}" for k in range(items)], captions)
    return root


def spec(method, seeds=(0, 1), head=None, **training):
    return {
        "method": method,
        "head": method,
        "hparams": head or HEADS[method],
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


def trained(task, method, n=800, **kwargs):
    """Every table of one condition on the task."""
    return train_condition(
        task / "image.parquet", task / "text.parquet", task / "pairs", n, spec(method, **kwargs), 1
    )


def train(task, method, n=800, **kwargs):
    """(runs, curves) of one condition on the task."""
    return trained(task, method, n, **kwargs)[:2]


@pytest.mark.parametrize("method", ["concat", "xattn_txt2img"])
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
    first_runs, first_curves = train(task, "xattn_txt2img", max_epochs=3)
    second_runs, second_curves = train(task, "xattn_txt2img", max_epochs=3)
    pd.testing.assert_frame_equal(first_runs.drop(columns=TIMES), second_runs.drop(columns=TIMES))
    pd.testing.assert_frame_equal(first_curves, second_curves)


@pytest.mark.parametrize(
    ("method", "schedule"),
    [("concat", "constant"), ("xattn_txt2img", "constant"), ("xattn_txt2img", "warmup_cosine")],
)
def test_adding_seeds_leaves_the_existing_seeds_bit_for_bit_unchanged(task, method, schedule):
    """A seed trained alone and the same seed trained in a stack of four agree exactly in every
    table: initialisation, data order and dropout masks come from the seed alone, the optimiser
    steps each seed's slice as a tensor of its own at a rate that depends on the step alone, and
    evaluation runs in chunks that do not depend on how many seeds train beside it. So the
    workflow's seed blocks (training.seed_block) decide only which job trains a seed, never its
    numbers."""
    hparams = {**HEADS[method], "dropout": 0.3}
    settings = {"head": hparams, "max_epochs": 8, "patience": 1}  # seeds stop at different epochs
    settings |= {"schedule": schedule, "warmup_fraction": 0.2}
    stack = trained(task, method, seeds=(2, 0, 5, 1), **settings)
    assert stack.runs["epochs"].nunique() > 1, "no seed left the stack early"
    for seed in (0, 1):
        alone = trained(task, method, seeds=(seed,), **settings)
        for table in ("runs", "curves", "predictions", "fused"):
            ours, theirs = getattr(alone, table), getattr(stack, table)
            theirs = theirs[theirs["seed"] == seed]
            if table == "runs":
                ours, theirs = (
                    t.drop(columns=[*TIMES, "seeds_trained_together"]) for t in (ours, theirs)
                )
            if table == "fused":
                ours, theirs = (t.assign(z=t["z"].map(list)) for t in (ours, theirs))
            pd.testing.assert_frame_equal(
                ours.reset_index(drop=True), theirs.reset_index(drop=True), check_exact=True
            )


def test_every_step_takes_the_schedules_rate_and_runs_record_the_recipe(task, monkeypatch):
    seen, set_lr = [], SeedAdamW.set_lr
    monkeypatch.setattr(SeedAdamW, "set_lr", lambda self, lr: (seen.append(lr), set_lr(self, lr)))
    cosine = {"max_epochs": 3, "schedule": "warmup_cosine", "warmup_fraction": 0.2}
    runs, _ = train(task, "concat", patience=10, **cosine)
    total = 3 * 13  # 800 pairs in batches of 64
    expected = [learning_rate(spec("concat", **cosine)["training"], k, total) for k in range(total)]
    assert seen == expected and max(seen) == 3e-3 and seen[0] < seen[7] > seen[-1]
    recorded = json.loads(runs["training"].iloc[0])
    assert recorded["schedule"] == "warmup_cosine" and recorded["lr"] == 3e-3
    assert not runs["tuned"].any() and (runs["tuned_values"] == "{}").all()


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


def train_on_tokens(task, token_task, method, head, **kwargs):
    return train_condition(
        token_task / "image_tokens.parquet",
        token_task / "text_tokens.parquet",
        task / "pairs",
        800,
        spec(method, head=head, **kwargs),
        1,
    )[:2]


def test_encoder_token_head_learns_from_token_files_and_records_its_inputs(task, token_task):
    head = {**HEADS["xattn_txt2img"], "token_source": "encoder"}
    runs, _ = train_on_tokens(task, token_task, "xattn_txt2img", head, max_epochs=30)
    assert (runs["token_source"] == "encoder").all()
    assert (runs["image_tokens"] == 6).all()
    assert 2 < runs["text_tokens"].iloc[0] < 5  # the mean caption length of the rows loaded
    assert (runs["test_accuracy"] > 0.8).all(), runs


def test_pooled_and_pseudo_token_heads_record_what_they_attend_over(task):
    runs, _ = train(task, "concat", n=100, max_epochs=1)
    assert runs[["token_source", "image_tokens", "text_tokens"]].iloc[0].tolist() == [
        "pooled",
        1.0,
        1.0,
    ]
    runs, _ = train(task, "xattn_txt2img", n=100, max_epochs=1)
    assert runs[["token_source", "image_tokens", "text_tokens"]].iloc[0].tolist() == [
        "pseudo",
        4.0,
        4.0,
    ]


def test_token_files_for_a_pooled_head_are_an_error_naming_the_files(task, token_task):
    with pytest.raises(AlignfuseError, match=r"image_tokens\.parquet.*'concat' reads pooled"):
        train_on_tokens(task, token_task, "concat", HEADS["concat"])


def test_pooled_files_for_an_encoder_token_head_are_an_error_naming_the_fix(task):
    head = {**HEADS["xattn_txt2img"], "token_source": "encoder"}
    with pytest.raises(AlignfuseError, match=r"image\.parquet.*pooled.*\*_tokens\.parquet"):
        train_condition(
            task / "image.parquet",
            task / "text.parquet",
            task / "pairs",
            100,
            spec("xattn_txt2img", head=head),
            1,
        )


def test_a_token_file_beside_a_pooled_one_is_an_error(task, token_task):
    with pytest.raises(AlignfuseError, match="one holds token sequences and the other pooled"):
        train_condition(
            token_task / "image_tokens.parquet",
            task / "text.parquet",
            task / "pairs",
            100,
            spec("concat"),
            1,
        )


def test_runs_record_the_device_and_an_absent_accelerator_is_a_one_line_error(task):
    runs, _ = train(task, "concat", n=100, max_epochs=1, device="auto")
    expected = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    assert set(runs["device"]) == {expected}
    if not torch.cuda.is_available():
        with pytest.raises(AlignfuseError, match="device 'cuda': not available.*use auto or cpu"):
            train(task, "concat", n=100, max_epochs=1, device="cuda")


def test_each_seed_initialises_as_if_built_alone():
    ensemble = SeedEnsemble("xattn_txt2img", HEADS["xattn_txt2img"], 8, 8, [4, 9])
    torch.manual_seed(9)
    alone = build_head("xattn_txt2img", 8, 8, HEADS["xattn_txt2img"])
    for name, p in alone.named_parameters():
        torch.testing.assert_close(ensemble.params[name][1], p, rtol=0, atol=0)


def test_stacked_fused_adamw_with_seeds_leaving_equals_adamw_per_seed():
    """The training path (gradient layouts adopted, one fused AdamW, a seed dropped halfway).

    The data are seeded: the stacked and the per-seed heads sum in different orders, and on a few
    draws (2 of the first 40 seeds) a gradient entry near zero lands on the other side of it,
    which AdamW's first steps (an update of about lr · sign) turn into a 1e-5 difference."""
    torch.manual_seed(0)
    seeds, x, y = [0, 1, 2], torch.randn(3, 16, 8), torch.randint(0, 2, (3, 16))
    config, cfg = {"dropout": 0.0, **HEADS["concat"]}, {"lr": 1e-2, "weight_decay": 0.1}
    ensemble = SeedEnsemble("concat", config, 8, 8, seeds)
    ensemble.adopt_grad_layout(x, x)
    assert ensemble.params["mlp.0.weight"].shape == (3, 16, 64)  # stored as [S, in, out]
    stacked = adamw(ensemble.params.values(), cfg)
    kept = torch.tensor([0, 2])
    for step in range(6):
        if step == 3:
            ensemble.keep_seeds(kept)
            stacked = keep_optimizer_seeds(stacked, ensemble.params, kept, cfg)
            x, y = x[kept], y[kept]
        loss = F.cross_entropy(ensemble(x, x).transpose(1, 2), y, reduction="none").mean(dim=1)
        stacked.zero_grad()
        loss.sum().backward()
        stacked.step()
    for row, s in enumerate(kept.tolist()):
        torch.manual_seed(seeds[s])
        head = build_head("concat", 8, 8, config)
        alone = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
        for _ in range(6):
            alone.zero_grad()
            F.cross_entropy(head(x[row], x[row]), y[row]).backward()
            alone.step()
        for name, p in head.named_parameters():
            torch.testing.assert_close(ensemble.weights()[name][row], p)


def test_seed_adamw_steps_each_seed_bit_for_bit_as_torchs_fused_adamw():
    """The kernel called directly, as torch.optim calls it: parameters and both moments equal."""
    torch.manual_seed(0)
    stack = torch.randn(3, 5, 4, requires_grad=True)
    alone = [stack.detach()[s].clone().requires_grad_() for s in range(3)]
    cfg = {"lr": 3e-2, "weight_decay": 0.1}
    ours = adamw([stack], cfg)
    theirs = torch.optim.AdamW(alone, fused=True, **cfg)
    for _ in range(7):
        grad = torch.randn(3, 5, 4)
        stack.grad = grad.clone()
        for s, p in enumerate(alone):
            p.grad = grad[s].clone()
        ours.step()
        theirs.step()
    for s, p in enumerate(alone):
        torch.testing.assert_close(stack.detach()[s], p.detach(), rtol=0, atol=0)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(
                ours.seed_state(0, s)[key], theirs.state[p][key], rtol=0, atol=0
            )


def test_training_does_not_import_torchdynamo(tmp_path):
    """Building a torch.optim optimiser imports TorchDynamo (seconds of every job's start-up)."""
    script = (
        "import sys, torch\n"
        "from alignfuse.train.optim import adamw\n"
        "p = torch.zeros(2, 3, requires_grad=True)\n"
        "opt = adamw([p], {'lr': 1e-3, 'weight_decay': 0.0})\n"
        "p.sum().backward(); opt.step()\n"
        "assert 'torch._dynamo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)


def test_best_checkpoints_survive_seeds_leaving_the_stack():
    ensemble = SeedEnsemble("concat", HEADS["concat"], 8, 8, [0, 1, 2])
    original = ensemble.snapshot()
    best = ensemble.snapshot()
    with torch.no_grad():
        for p in ensemble.params.values():
            p.add_(1.0)
    ensemble.save_into(best, torch.arange(3), [False, True, False])  # seed 1 improved
    ensemble.keep_seeds(torch.tensor([0, 2]))  # seed 1 stopped
    with torch.no_grad():
        for p in ensemble.params.values():
            p.add_(1.0)
    ensemble.save_into(best, torch.tensor([0, 2]), [True, False])  # seed 0 improved
    ensemble.load(best)
    for name, p in ensemble.params.items():
        torch.testing.assert_close(p[0], original[name][0] + 1 + 1, rtol=0, atol=0)
        torch.testing.assert_close(p[1], original[name][1] + 1, rtol=0, atol=0)
        torch.testing.assert_close(p[2], original[name][2], rtol=0, atol=0)


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) + 0.3 * label, 1).astype(np.float32)  # many ties
    assert auroc(score, label) == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert np.isnan(auroc(score, np.ones(500, dtype=int)))


def test_dropout_is_on_in_training_and_off_in_evaluation():
    ensemble = SeedEnsemble("concat", {"dropout": 0.5, **HEADS["concat"]}, 8, 8, [0, 1])
    x = torch.randn(2, 32, 8)
    ensemble.train()
    assert not torch.equal(ensemble(x, x), ensemble(x, x))
    ensemble.eval()
    assert torch.equal(ensemble(x, x), ensemble(x, x))


def test_each_seeds_dropout_masks_come_from_its_own_stream():
    hparams = {"dropout": 0.5, **HEADS["concat"]}
    pair, single = (SeedEnsemble("concat", hparams, 8, 8, seeds) for seeds in ([3, 7], [7]))
    x = torch.randn(1, 16, 8)
    for ensemble in (pair, single):
        ensemble.measure_dropout(x.expand(len(ensemble), -1, -1), x.expand(len(ensemble), -1, -1))
    for _ in range(3):  # the streams advance step by step, each on its own
        masks, alone = pair.dropout_masks(16), single.dropout_masks(16)
        for name, mask in alone.items():
            assert torch.equal(masks[name][1], mask[0])
            assert not torch.equal(masks[name][0], mask[0])
            assert set(mask.unique().tolist()) == {0.0, 2.0}  # keep-masks scaled by 1 / (1 - p)


def test_early_stopping_breaks_accuracy_ties_by_lower_loss_and_freezes_stopped_seeds():
    stopping = EarlyStopping(2, patience=1)
    stopping.update(1, [0, 1], [0.8, 0.8], [0.5, 0.5])
    assert stopping.update(2, [0, 1], [0.8, 0.8], [0.4, 0.6]) == [True, False]
    assert stopping.stopped_at == [None, 2]
    assert stopping.update(3, [0, 1], [0.9, 0.9], [0.1, 0.1]) == [True, False]
    assert stopping.best_epoch == [3, 1]
    assert stopping.update(4, [0], [0.95], [0.1]) == [True]  # seed 1 has left the stack
    assert not stopping.done


def embedding_file(path, ids, emb, rows_per_group):
    """An embedding file written in several row groups (as the features stage streams them)."""
    with EmbeddingWriter(path, "image_id", emb.shape[1]) as writer:
        for i in range(0, len(ids), rows_per_group):
            writer.write(ids[i : i + rows_per_group], emb[i : i + rows_per_group])


def test_read_embedding_rows_reads_only_the_row_groups_of_the_requested_ids(tmp_path, monkeypatch):
    ids = np.array([f"i{k}" for k in range(100)])
    emb = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    embedding_file(tmp_path / "image.parquet", ids, emb, rows_per_group=10)
    read_groups = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self, *args, row_groups=None, **kwargs):
        read_groups.extend(row_groups)
        return iter_batches(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    wanted = [57, 3, 55, 8, 99]
    rows = read_embedding_rows(tmp_path / "image.parquet", ids[wanted], batch_rows=3)
    np.testing.assert_array_equal(rows, emb[wanted])
    assert sorted(read_groups) == [0, 5, 9]


def test_read_embedding_rows_widens_float16(tmp_path):
    emb = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float16)
    schema = pa.schema([("image_id", pa.string()), ("emb", pa.list_(pa.float16(), 4))])
    values = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4)
    ids = pa.array([f"i{k}" for k in range(6)])
    pq.write_table(pa.Table.from_arrays([ids, values], schema=schema), tmp_path / "h.parquet")
    rows = read_embedding_rows(tmp_path / "h.parquet", ["i4", "i1"])
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, emb[[4, 1]].astype(np.float32))


def test_read_embedding_rows_names_the_file_and_the_missing_ids(tmp_path):
    ids = np.array([f"i{k}" for k in range(20)])
    embedding_file(tmp_path / "image.parquet", ids, np.zeros((20, 2), np.float32), 5)
    with pytest.raises(AlignfuseError, match=r"image\.parquet: 2 of 3 id\(s\).*'x1', 'x2'"):
        read_embedding_rows(tmp_path / "image.parquet", ["i3", "x1", "x2"])
    embedding_file(
        tmp_path / "twice.parquet", np.r_[ids, ids[:1]], np.zeros((21, 2), np.float32), 5
    )
    with pytest.raises(AlignfuseError, match=r"twice\.parquet: duplicate ids"):
        read_embedding_rows(tmp_path / "twice.parquet", ["i3"])


def test_no_seed_stops_before_min_epochs_even_on_a_plateau():
    stopping = EarlyStopping(1, patience=2, min_epochs=10)
    stopping.update(1, [0], [0.5], [0.69])
    for epoch in range(2, 10):
        stopping.update(epoch, [0], [0.5], [0.69])
        assert stopping.active(0), f"stopped at epoch {epoch}, before min_epochs"
    stopping.update(10, [0], [0.5], [0.69])
    assert not stopping.active(0)


def test_runs_and_curves_start_with_the_condition_labels(task):
    labels = {"dataset": "d", "backbone": "b", "alignment": "raw"}
    runs, curves, *_ = train_condition(
        task / "image.parquet",
        task / "text.parquet",
        task / "pairs",
        200,
        spec("concat", seeds=(0,), max_epochs=1),
        1,
        labels,
    )
    for frame in (runs, curves):
        assert list(frame.columns[:4]) == ["dataset", "backbone", "alignment", "method"]
        assert (frame["method"] == "concat").all() and (frame["backbone"] == "b").all()


def test_fixed_subsets_are_the_first_pairs_for_every_seed():
    subsets = training_subsets(100, 10, [0, 1, 2], "fixed")
    assert (subsets == np.arange(10)).all()


def test_per_seed_subsets_are_balanced_nested_and_drawn_from_the_seed_alone():
    small = training_subsets(1000, 20, [4, 9], "per_seed")
    large = training_subsets(1000, 60, [9, 4, 11], "per_seed")
    assert (large[1, :20] == small[0]).all() and (large[0, :20] == small[1]).all()  # nested
    assert not (small[0] == small[1]).all()  # each seed its own sample
    for subset in large:
        assert len(set(subset)) == 60
        assert (subset[0::2] % 2 == 0).all() and (subset[1::2] == subset[0::2] + 1).all()


def interleaved(task, tmp_path):
    """The task's pairs with each split's positives and negatives interleaved, as the pairs stage
    writes them (positive k, then its negative)."""
    for split in ("train", "dev", "test"):
        pairs = pd.read_parquet(task / "pairs" / f"{split}.parquet")
        pos, neg = pairs[pairs["label"] == 1], pairs[pairs["label"] == 0]
        rows = pd.concat([pos.reset_index(drop=True), neg.reset_index(drop=True)], keys=[0, 1])
        write_frame(rows.swaplevel().sort_index(), tmp_path / "pairs" / f"{split}.parquet")
    return tmp_path / "pairs"


def test_per_seed_resampling_trains_each_seed_on_its_own_balanced_pairs(task, tmp_path):
    pairs = interleaved(task, tmp_path)
    features = task / "image.parquet", task / "text.parquet"
    data = load_splits(*features, pairs, 100, seeds=[0, 1], resample="per_seed")
    train = data["train"]
    for subset in train.subsets:
        assert train.label[subset].float().mean() == 0.5
    assert set(train.subsets[0].tolist()) != set(train.subsets[1].tolist())
    per_seed = {**spec("concat", max_epochs=2), "resample": "per_seed"}
    runs = train_condition(*features, pairs, 100, per_seed, 1).runs
    assert (runs["resample"] == "per_seed").all()


def test_per_seed_resampling_refuses_pairs_that_are_not_interleaved(task):
    with pytest.raises(AlignfuseError, match="train.parquet: .*not interleaved"):
        load_splits(
            task / "image.parquet",
            task / "text.parquet",
            task / "pairs",
            100,
            seeds=[0],
            resample="per_seed",
        )


def test_test_predictions_are_the_best_checkpoints_probabilities_per_seed_and_pair(task):
    result = train_condition(
        task / "image.parquet",
        task / "text.parquet",
        task / "pairs",
        200,
        spec("concat", seeds=(4, 9), max_epochs=3),
        1,
    )
    predictions, runs = result.predictions, result.runs.set_index("seed")
    test = pd.read_parquet(task / "pairs" / "test.parquet")
    assert len(predictions) == 2 * len(test)
    for seed, rows in predictions.groupby("seed"):
        assert rows["pair"].tolist() == list(range(len(test)))
        accuracy = ((rows["prob"].to_numpy() > 0.5) == test["label"].to_numpy()).mean()
        assert accuracy == pytest.approx(runs.loc[seed, "test_accuracy"])


def test_seeds_whose_loss_diverges_are_recorded_as_diverged(task):
    """A learning rate of 1e12 blows up every seed: each is stopped in the epoch its loss stops
    being finite and marked, instead of being reported as a run near chance."""
    runs, curves = train(task, "concat", n=200, seeds=(0, 1), lr=1e12, max_epochs=5)
    assert (runs["status"] == "diverged").all()
    assert runs["diverged_epoch"].notna().all() and (runs["epochs"] == runs["diverged_epoch"]).all()
    fine, _ = train(task, "concat", n=200, seeds=(0, 1), max_epochs=2)
    assert (fine["status"] == "ok").all() and fine["diverged_epoch"].isna().all()


def test_a_seed_diverging_in_its_first_epoch_is_no_trained_head_downstream(task, monkeypatch):
    """Seed 7's logits are NaN from its first step: it never had a best checkpoint, so its
    initial weights must not stand in for one (no test numbers, predictions or fused view)."""
    forward = SeedEnsemble.__call__

    def poisoned(self, *inputs):
        logits = forward(self, *inputs)
        if self.base.training and len(self) == 2:
            logits = torch.cat([logits[:1], logits[1:] * float("nan")])
        return logits

    monkeypatch.setattr(SeedEnsemble, "__call__", poisoned)
    result = trained(task, "concat", n=400, seeds=(3, 7), max_epochs=3)
    runs = result.runs.set_index("seed")
    assert runs.loc[7, "status"] == "diverged" and runs.loc[7, "diverged_epoch"] == 1
    assert runs.loc[7, "best_epoch"] == 0
    for column in ("test_accuracy", "test_auroc", "test_loss", "best_dev_accuracy"):
        assert np.isnan(runs.loc[7, column]) and np.isfinite(runs.loc[3, column]), column
    assert set(result.predictions["seed"]) == {3} and set(result.fused["seed"]) == {3}


def test_parameters_broken_by_an_epochs_last_step_are_never_kept_as_best(task, monkeypatch):
    """A non-finite dev loss is divergence too: the evaluation must not save the broken
    parameters as the seed's best checkpoint."""
    predict = SeedEnsemble.predict

    def broken(self, split, factored=True):
        logits = predict(self, split, factored)
        if len(self) == 2:
            logits[1] = float("nan")
        return logits

    monkeypatch.setattr(SeedEnsemble, "predict", broken)
    result = trained(task, "concat", n=400, seeds=(3, 7), max_epochs=3)
    runs = result.runs.set_index("seed")
    assert runs.loc[7, "status"] == "diverged" and runs.loc[7, "diverged_epoch"] == 1
    assert runs.loc[3, "status"] == "ok" and set(result.predictions["seed"]) == {3}


def test_one_diverging_seed_leaves_the_stack_and_the_others_train_on(task, monkeypatch):
    """Seed 7's logits turn to NaN from its 12th step on (epoch 2 at 400 pairs, batch 64)."""
    forward, calls = SeedEnsemble.__call__, {"n": 0}

    def poisoned(self, *inputs):
        logits = forward(self, *inputs)
        if self.base.training:
            calls["n"] += 1
            if calls["n"] >= 12 and len(self) == 2:
                logits = torch.cat([logits[:1], logits[1:] * float("nan")])
        return logits

    monkeypatch.setattr(SeedEnsemble, "__call__", poisoned)
    runs, curves = train(task, "concat", n=400, seeds=(3, 7), max_epochs=5, patience=10)
    runs = runs.set_index("seed")
    assert runs.loc[7, "status"] == "diverged" and runs.loc[7, "diverged_epoch"] == 2
    assert runs.loc[3, "status"] == "ok" and runs.loc[3, "epochs"] == 5
    assert curves[curves["seed"] == 3]["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert runs.loc[3, "test_accuracy"] > 0.7


def test_curves_of_attention_heads_record_entropy_and_score_gradients(task):
    """Each evaluation records the attention's entropy against its ceiling (log of the keys) and
    the query/key projections' gradient norm, so a plateau is visible; other heads get NaN."""
    _, curves = train(task, "xattn_txt2img", max_epochs=3)
    assert curves["attention_ceiling"].to_numpy() == pytest.approx(np.log(4))  # 4 pseudo-tokens
    assert (curves["attention_entropy"] > 0).all()
    assert (curves["attention_entropy"] <= curves["attention_ceiling"] + 1e-6).all()
    assert (curves["score_grad_norm"] > 0).all()
    _, concat = train(task, "concat", max_epochs=2)
    assert concat[["attention_entropy", "score_grad_norm"]].isna().all().all()


def test_shuffling_either_modality_across_test_pairs_takes_a_matching_head_to_chance(task):
    """The modality ablation: matching needs both sides of a pair, so with one side shuffled the
    best checkpoint falls from far above chance to about chance."""
    runs, _ = train(task, "concat", seeds=(0,))
    row = runs.iloc[0]
    assert row["test_accuracy"] > 0.8
    assert abs(row["image_shuffled_accuracy"] - 0.5) < 0.1
    assert abs(row["text_shuffled_accuracy"] - 0.5) < 0.1


def test_fused_representations_are_kept_per_seed_and_test_pair_as_leading_components(task):
    result = train_condition(
        task / "image.parquet",
        task / "text.parquet",
        task / "pairs",
        200,
        spec("xattn_txt2img", seeds=(1, 2), max_epochs=2),
        1,
    )
    fused, test = result.fused, pd.read_parquet(task / "pairs" / "test.parquet")
    assert len(fused) == 2 * len(test) and set(fused["seed"]) == {1, 2}
    assert fused.groupby("seed")["pair"].apply(list).tolist() == [list(range(len(test)))] * 2
    z = np.stack(fused["z"].to_numpy())
    assert z.shape == (2 * len(test), 16) and z.dtype == np.float16
    assert np.isfinite(z).all() and (z.astype(np.float64).var(axis=0) > 0).all()


FACTORED_HEADS = {
    "concat": {"hidden": [32, 16]},
    "xattn_txt2img": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32, "token_map": "mixed"},
    "xattn_img2txt": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32},
    "xattn_bidir": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32, "norm": "pre"},
    "gated_sum": {"dim": 16, "hidden": [8], "gate_hidden": 8},
    "weighted_sum": {"dim": 16, "hidden": [8]},
    "bilinear": {"rank": 16, "hidden": [8]},
    "late": {"hidden": [16], "combine": "learned"},
    "image_only": {"hidden": [16]},
    "text_only": {"hidden": [16]},
}


@pytest.mark.parametrize("head", sorted(FACTORED_HEADS))
def test_factored_evaluation_equals_the_per_pair_forward_within_rounding(head):
    """Evaluation computes each image's and caption's part once and joins them per pair: the
    same numbers as running every pair through the head, up to float rounding."""
    from alignfuse.features.rows import PooledRows
    from alignfuse.fusion import FUSION_METHODS
    from alignfuse.train.splits import Split

    assert set(FACTORED_HEADS) == set(FUSION_METHODS)
    torch.manual_seed(0)
    model = SeedEnsemble(head, FACTORED_HEADS[head], 12, 10, [0, 1])
    image, text = PooledRows(torch.randn(30, 12)), PooledRows(torch.randn(90, 10))
    split = Split(
        image,
        text,
        torch.zeros(700, dtype=torch.long),
        torch.randint(0, 30, (700,)),
        torch.randint(0, 90, (700,)),
    )
    torch.testing.assert_close(
        model.predict(split), model.predict(split, factored=False), rtol=1e-5, atol=1e-5
    )
