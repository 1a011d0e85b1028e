"""The training-curves figure and the curves table it draws."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from figure_runs import data_lines

from alignfuse.analysis.tables import collect_curves
from alignfuse.errors import AlignfuseError
from alignfuse.figures import training_curves
from alignfuse.figures.style import save_figure
from alignfuse.parquet import write_frame


def curves_table() -> pd.DataFrame:
    """Two backbones, concat and a cross-attention head, two seeds, two scales, two alignments;
    the head's attention becomes less uniform as it learns."""
    rows = []
    for backbone in ("aligned", "rotated"):
        for alignment in ("raw", "noise-0.5"):
            for n_train in (512, 1024):
                for method, head in (("concat", "concat"), ("xattn_txt2img", "xattn_txt2img")):
                    for seed in (0, 1):
                        for epoch in (1, 2, 3):
                            attention = head.startswith("xattn")
                            rows.append(
                                {
                                    "dataset": "synthetic",
                                    "backbone": backbone,
                                    "alignment": alignment,
                                    "method": method,
                                    "head": head,
                                    "n_train": n_train,
                                    "seed": seed,
                                    "epoch": epoch,
                                    "dev_accuracy": 0.5 + 0.1 * epoch + 0.01 * seed,
                                    "attention_entropy": (4 - epoch) / 3 * math.log(8)
                                    if attention
                                    else np.nan,
                                    "attention_ceiling": math.log(8) if attention else np.nan,
                                }
                            )
    return pd.DataFrame(rows)


def test_one_line_per_seed_and_method_at_the_largest_scale_on_raw(tmp_path):
    fig = training_curves.plot(curves_table(), "synthetic")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["aligned@raw, n = 1024", "rotated@raw, n = 1024"]
    accuracy, entropy = fig.axes[0], fig.axes[2]
    assert len(data_lines(accuracy)) == 4  # 2 methods x 2 seeds
    assert sorted(tuple(line.get_ydata()) for line in data_lines(accuracy))[0] == pytest.approx(
        (0.6, 0.7, 0.8)
    )
    (first, second) = data_lines(entropy)  # only the attention head, 2 seeds
    assert list(first.get_ydata()) == pytest.approx([1.0, 2 / 3, 1 / 3])
    save_figure(fig, [tmp_path / "training_curves.png"], 50)
    assert (tmp_path / "training_curves.png").stat().st_size > 0


def test_another_alignment_can_be_drawn_and_heads_without_attention_get_one_row():
    table = curves_table()
    fig = training_curves.plot(table, "synthetic", alignment="noise-0.5")
    assert fig.axes[0].get_title() == "aligned@noise-0.5, n = 1024"
    concat_only = table[table["method"] == "concat"]
    fig = training_curves.plot(concat_only, "synthetic")
    assert len(fig.axes) == 2  # one row: no attention head


def test_collect_curves_adds_each_conditions_training_pairs(tmp_path):
    table = curves_table()
    paths = []
    for (method, n_train), rows in table[table["alignment"] == "raw"].groupby(
        ["method", "n_train"]
    ):
        run = tmp_path / method / f"n{n_train}.parquet"
        write_frame(rows[["dataset", "backbone", "alignment", "method", "n_train"]], run)
        write_frame(rows.drop(columns="n_train"), run.with_name(f"n{n_train}.curves.parquet"))
        paths.append(run)
    collected = collect_curves(paths[::-1])
    assert len(collected) == (table["alignment"] == "raw").sum()
    assert collected.groupby("method")["n_train"].unique().map(sorted).to_dict() == {
        "concat": [512, 1024],
        "xattn_txt2img": [512, 1024],
    }
    assert collected.equals(collect_curves(paths))  # the same whatever the order


def test_missing_curves_and_wrong_tables_are_refused(tmp_path):
    run = tmp_path / "n512.parquet"
    write_frame(curves_table()[["n_train"]], run)
    with pytest.raises(AlignfuseError, match="learning curves not found"):
        collect_curves([run])
    with pytest.raises(AlignfuseError, match="curves table lacks columns"):
        training_curves.plot(pd.DataFrame({"method": ["concat"]}), "synthetic")
