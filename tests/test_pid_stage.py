"""One condition's PID from the train stage's files, and the study's table of them."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from alignfuse.cli import main
from alignfuse.data.pairs import make_pairs
from alignfuse.data.synthetic import synthetic_captions
from alignfuse.features.synthetic import synthetic_features
from alignfuse.parquet import write_embeddings, write_frame
from alignfuse.pid.stage import condition_pid, pid_markdown, pid_table
from alignfuse.train.condition import train_condition

GENERATOR = {
    "n_images": 600,
    "captions_per_image": 3,
    "split": {"train": 0.5, "dev": 0.1, "test": 0.4},
    "latent_dim": 4,
    "private_dim": 4,
    "private_scale": 1.0,
    "caption_noise": 0.3,
    "noise": 0.05,
    "d_image": 16,
    "d_text": 16,
    "seed": 0,
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("pid_stage")
    captions = synthetic_captions(GENERATOR)
    write_frame(captions, root / "captions.parquet")
    pairs = make_pairs(captions, 0)["test"]
    write_frame(pairs, root / "test.parquet")
    images, v, caption_ids, t = synthetic_features(GENERATOR, 0.0)
    write_embeddings(root / "image.parquet", "image_id", images, v)
    write_embeddings(root / "text.parquet", "caption_id", caption_ids, t)
    image = v[pd.Index(images).get_indexer(pairs["image_id"])]
    text = t[pd.Index(caption_ids).get_indexer(pairs["caption_id"])]
    constant = np.zeros_like(image)  # a head that maps every pair to one representation
    for name, z in (("image_only", image), ("text_only", text), ("collapsed", constant)):
        z = np.pad(z, ((0, 0), (0, 0)))[:, :16].astype(np.float16)
        frames = []
        for seed in (0, 1):
            column = pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1)), 16)
            frames.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "pair": np.arange(len(z)),
                        "z": pd.arrays.ArrowExtensionArray(column),
                    }
                )
            )
        write_frame(
            pd.concat(frames, ignore_index=True), root / f"{name}.fused.parquet", {"view": name}
        )
    probs = pd.concat(
        [
            pd.DataFrame(
                {
                    "seed": s,
                    "pair": np.arange(len(pairs)),
                    "prob": 0.5 + 0.4 * (pairs["label"] - 0.5),
                }
            )
            for s in (0, 1)
        ]
    )
    write_frame(probs, root / "predictions.parquet")
    for name, status in (("runs", ["ok", "ok"]), ("runs_one_diverged", ["ok", "diverged"])):
        write_frame(pd.DataFrame({"seed": [0, 1], "status": status}), root / f"{name}.parquet")
    write_frame(
        pd.DataFrame({"seed": [0, 1], "status": ["diverged", "diverged"]}),
        root / "runs_all_diverged.parquet",
    )
    return root


def decomposed(study, fused, runs="runs"):
    return condition_pid(
        study / "image.parquet",
        study / "text.parquet",
        study / "captions.parquet",
        study / "test.parquet",
        study / f"{runs}.parquet",
        study / "predictions.parquet",
        study / f"{fused}.fused.parquet",
        ks=[6],
        dims=4,
        repeats=5,
    )


def test_a_view_made_of_the_image_alone_is_unique_to_the_image(study):
    rows = decomposed(study, "image_only")
    fused = rows[rows["view"] == "fused"]
    assert (fused["U_img"] > 3 * fused["U_txt"]).all() and fused["U_img_above_noise"].all()
    assert (fused["CI"] > 0.75).all()


def test_a_view_made_of_the_text_alone_is_unique_to_the_text(study):
    fused = decomposed(study, "text_only").query("view == 'fused'")
    assert (fused["U_txt"] > 3 * fused["U_img"]).all() and (fused["CI"] < 0.25).all()


def test_a_collapsed_head_carries_no_information_about_either_input(study):
    fused = decomposed(study, "collapsed").query("view == 'fused'")
    assert (fused["k_target"] == 1).all()
    for term in ("R", "U_img", "U_txt", "S", "I"):
        assert fused[term].to_numpy() == pytest.approx(0.0, abs=1e-6), term


def test_the_match_prediction_has_no_defined_image_and_text_shares(study):
    prediction = decomposed(study, "image_only").query("view == 'prediction'")
    assert prediction["CI"].isna().all() and prediction["CT"].isna().all()


def test_the_table_averages_seeds_and_says_below_noise(study):
    rows = decomposed(study, "image_only").assign(
        dataset="synthetic",
        backbone="aligned",
        alignment="raw",
        method="concat",
        head="concat",
        n_train=256,
    )
    table = pid_table([rows])
    assert set(table["view"]) == {"fused", "prediction"} and (table["n_seeds"] == 2).all()
    fused = table.set_index("view").loc["fused"]
    assert fused["U_img"] == pytest.approx(rows.query("view == 'fused'")["U_img"].mean())
    assert not math.isnan(fused["CI"])
    text = pid_markdown(table)
    assert "below noise" in text and "undefined" in text and "RoBERTa + ViT on VQAv2" in text


LABELS = {
    "dataset": "synthetic",
    "backbone": "aligned",
    "alignment": "raw",
    "method": "concat",
    "head": "concat",
    "n_train": 256,
}


def test_diverged_seeds_are_left_out_of_the_decomposition_and_counted_in_the_table(study):
    """Seed 1 diverged: its rows (still in the predictions and fused files here) are not read,
    the table averages seed 0 alone and says one seed was left out."""
    rows = decomposed(study, "image_only", runs="runs_one_diverged")
    assert set(rows["seed"]) == {0} and (rows["n_diverged"] == 1).all()
    table = pid_table([rows.assign(**LABELS)])
    assert (table["n_seeds"] == 1).all() and (table["n_diverged"] == 1).all()
    fused = table.set_index("view").loc["fused"]
    assert fused["U_img"] == pytest.approx(rows.query("view == 'fused'")["U_img"].item())
    assert "diverged (left out)" in pid_markdown(table)


def test_a_condition_whose_seeds_all_diverged_stays_in_the_table_without_terms(study):
    rows = decomposed(study, "image_only", runs="runs_all_diverged")
    assert rows["seed"].isna().all() and set(rows["view"]) == {"fused", "prediction"}
    table = pid_table([rows.assign(**LABELS)])
    assert (table["n_seeds"] == 0).all() and (table["n_diverged"] == 2).all()
    assert table["I"].isna().all() and table["CI"].isna().all()
    assert "| 0 " in pid_markdown(table)


def test_a_condition_trained_in_seed_blocks_reads_every_blocks_files(study, tmp_path):
    """The pid rule passes one runs, predictions and fused file per seed block: here seed 0's
    block, and seed 1's, which diverged (so its predictions and fused files are empty, as the
    train stage writes them). The decomposition is the one of a single file with both seeds."""
    sources = {
        "runs": pd.read_parquet(study / "runs_one_diverged.parquet"),
        "predictions": pd.read_parquet(study / "predictions.parquet"),
        "fused": pd.read_parquet(study / "image_only.fused.parquet"),
    }
    blocks = {name: [] for name in sources}
    for seed in (0, 1):
        for name, frame in sources.items():
            rows = frame[frame["seed"] == seed]
            if name != "runs" and seed == 1:  # diverged: no predictions or fused rows
                rows = rows.iloc[:0]
            path = tmp_path / f"seeds{seed}-{seed}.{name}.parquet"
            write_frame(rows, path)
            blocks[name].append(str(path))
    out = tmp_path / "n256.parquet"
    argv = [
        "pid-condition",
        f"--image-features={study / 'image.parquet'}",
        f"--text-features={study / 'text.parquet'}",
        f"--captions={study / 'captions.parquet'}",
        f"--test-pairs={study / 'test.parquet'}",
        "--runs",
        *blocks["runs"],
        "--predictions",
        *blocks["predictions"],
        "--fused",
        *blocks["fused"],
        '--settings={"k": [6], "dims": 4, "repeats": 5, "seed": 0}',
        *(f"--label={key}={value}" for key, value in LABELS.items()),
        f"--out={out}",
    ]
    assert main(argv) == 0
    written = pd.read_parquet(out)
    expected = decomposed(study, "image_only", runs="runs_one_diverged")
    assert set(written["seed"]) == {0} and (written["n_diverged"] == 1).all()
    pd.testing.assert_frame_equal(written[expected.columns].reset_index(drop=True), expected)


def test_the_job_on_several_processes_writes_what_one_process_computes(study, tmp_path):
    """The pid rule's command with --workers 2: spawned workers under the console script."""
    script = Path(sys.executable).parent / "alignfuse"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "alignfuse.cli"]
    out = tmp_path / "n256.parquet"
    labels = {"dataset": "synthetic", "backbone": "aligned", "alignment": "raw"}
    labels |= {"method": "concat", "head": "concat", "n_train": "256"}
    subprocess.run(
        [
            *command,
            "pid-condition",
            f"--image-features={study / 'image.parquet'}",
            f"--text-features={study / 'text.parquet'}",
            f"--captions={study / 'captions.parquet'}",
            f"--test-pairs={study / 'test.parquet'}",
            f"--runs={study / 'runs.parquet'}",
            f"--predictions={study / 'predictions.parquet'}",
            f"--fused={study / 'image_only.fused.parquet'}",
            '--settings={"k": [6], "dims": 4, "repeats": 5, "seed": 0}',
            *(f"--label={key}={value}" for key, value in labels.items()),
            "--workers=2",
            f"--out={out}",
        ],
        check=True,
        capture_output=True,
    )
    written = pd.read_parquet(out)
    expected = decomposed(study, "image_only")
    pd.testing.assert_frame_equal(
        written[expected.columns].reset_index(drop=True), expected, check_exact=False, atol=1e-12
    )


@pytest.fixture(scope="module")
def trained_heads(study):
    """late, image_only and text_only trained on the study's pairs (3 seeds, 512 pairs), their
    files written as the train stage writes them."""
    for split, pairs in make_pairs(pd.read_parquet(study / "captions.parquet"), 0).items():
        write_frame(pairs, study / "pairs" / f"{split}.parquet")
    for head in ("late", "image_only", "text_only"):
        training = {"max_epochs": 5, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.01}
        spec = {
            "method": head,
            "head": head,
            "hparams": {"hidden": [16]},
            "training": training | {"patience": 5, "eval_every": 1},
            "seeds": [0, 1, 2],
        }
        trained = train_condition(
            study / "image.parquet", study / "text.parquet", study / "pairs", 512, spec, 1
        )
        for name in ("runs", "predictions", "fused"):
            write_frame(getattr(trained, name), study / f"{head}.{name}.parquet", {"method": head})
    return study


def trained_share(study, head) -> float:
    """The image's share CI of the head's fused view, mean over its seeds."""
    rows = condition_pid(
        study / "image.parquet",
        study / "text.parquet",
        study / "captions.parquet",
        study / "pairs" / "test.parquet",
        study / f"{head}.runs.parquet",
        study / f"{head}.predictions.parquet",
        study / f"{head}.fused.parquet",
        ks=[6],
        dims=4,
        repeats=5,
    )
    assert rows["seed"].nunique() == 3
    return rows.query("view == 'fused'")["CI"].mean()


def test_trained_unimodal_heads_fused_views_are_all_image_or_all_text(trained_heads):
    assert trained_share(trained_heads, "image_only") > 0.9
    assert trained_share(trained_heads, "text_only") < 0.1


def test_late_fusions_fused_view_carries_the_image_too(trained_heads):
    """Late fusion's view is both towers' logits: the image's share is far from the text-only
    head's (its text tower's last layer alone gave 0.06 here)."""
    assert 0.2 < trained_share(trained_heads, "late") < 0.8
