import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from declared import TUNED, declared, paired
from figure_runs import condition_grid, data_lines
from matplotlib.colors import to_hex

from alignfuse.analysis.statistics import paired_differences
from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.figures.gap import plot as plot_gap
from alignfuse.figures.style import method_palette, save_figure
from alignfuse.parquet import write_frame

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCALES = [2048, 4096, 8192, 16384]


PAPER_BAND = {
    "backbone": "clip",
    "low": 4.1,
    "high": 5.1,
    "scales": [2048, 4096, 8192, 16384],
    "label": "paper",
}


def plot(paired, study, bands=(PAPER_BAND,)):
    """The figure with the paper's claimed range, as the workflow passes it from config.yaml."""
    return plot_gap(paired, study, bands=list(bands))


def paired_table(
    backbones=("clip", "resnet18"),
    methods=("xattn_txt2img", "xattn_bidir", "gated_sum"),
    alignments=("raw",),
    scales=SCALES,
):
    """The paired table of runs where concat leads every other method by 4.5 points ± noise."""
    rng = np.random.default_rng(0)
    rows = [
        {
            **key,
            "test_accuracy": 0.7
            + (0.045 if key["method"] == "concat" else 0)
            + rng.normal(0, 0.01),
            "test_auroc": 0.8,
        }
        for key in condition_grid(backbones, alignments, ("concat", *methods), scales)
    ]
    return paired(pd.DataFrame(rows))


def test_one_panel_per_backbone_and_one_line_per_cross_attention_method():
    fig = plot(paired_table(), "paper")
    assert [ax.get_title() for ax in fig.axes] == ["clip", "resnet18"]
    palette = method_palette(["xattn_bidir", "xattn_txt2img"])
    for ax in fig.axes:
        lines = data_lines(ax)
        labels = sorted(line.get_label() for line in lines)
        assert labels == ["concat − xattn_bidir", "concat − xattn_txt2img"]
        for line in lines:  # each line in its head's colour, as in every figure
            method = line.get_label().split(" − ")[1]
            assert to_hex(line.get_color()) == palette[method]
    assert "paper" in fig.get_suptitle()


def test_lines_are_the_paired_mean_differences_in_points_on_a_log2_axis():
    paired = paired_table()
    ax = plot(paired, "paper").axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == SCALES
    line = next(line for line in data_lines(ax) if line.get_label() == "concat − xattn_txt2img")
    expected = paired.query(
        "backbone == 'clip' and method == 'xattn_txt2img' and metric == 'test_accuracy'"
    ).sort_values("n_train")
    np.testing.assert_allclose(line.get_xdata(), expected["n_train"])
    np.testing.assert_allclose(line.get_ydata(), 100 * expected["mean_diff"])
    assert "points" in ax.get_ylabel()


def test_a_dashed_zero_line_on_every_panel():
    for ax in plot(paired_table(), "paper").axes:
        zero = [line for line in ax.get_lines() if line.get_label() == "_zero"]
        assert len(zero) == 1
        assert list(zero[0].get_ydata()) == [0, 0]
        assert zero[0].get_linestyle() == "--"


def test_a_claimed_range_is_shaded_on_its_backbones_panel_only():
    clip, resnet = plot(paired_table(), "paper").axes
    bounds = [line for line in clip.get_lines() if line.get_label() == "_band"]
    assert sorted(line.get_ydata()[0] for line in bounds) == [4.1, 5.1]
    assert [line.get_xdata().tolist() for line in bounds][0] == [2048, 16384]
    assert any(c.get_label() == "_band" for c in clip.collections)
    assert not [a for a in resnet.get_lines() + resnet.collections if a.get_label() == "_band"]
    legend_texts = [t.get_text() for t in plot(paired_table(), "paper").legends[0].get_texts()]
    assert "paper: 4.1–5.1" in legend_texts


def test_no_range_where_the_study_has_no_claim_backbone_or_none_of_its_scales():
    fig = plot(paired_table(backbones=("aligned", "unaligned")), "smoke")
    assert "paper: 4.1–5.1" not in [t.get_text() for t in fig.legends[0].get_texts()]
    ax = plot(paired_table(backbones=("clip",), scales=[128, 256]), "tiny").axes[0]
    assert not [line for line in ax.get_lines() if line.get_label() == "_band"]
    no_claims = plot(paired_table(), "paper", bands=()).axes[0]
    assert not [line for line in no_claims.get_lines() if line.get_label() == "_band"]


def test_every_seed_interval_is_a_band():
    ax = plot(paired_table(backbones=("clip",), methods=("xattn_txt2img",)), "paper").axes[0]
    bands = [c for c in ax.collections if not c.get_label().startswith("_band")]
    assert len(bands) == 1


def test_alignments_are_told_apart_by_line_style():
    fig = plot(paired_table(alignments=("raw", "rot0.5")), "degradation")
    assert len(data_lines(fig.axes[0])) == 4
    assert len(fig.legends) == 2


def test_a_study_without_cross_attention_gets_a_figure_that_says_so(tmp_path):
    fig = plot(paired_table(methods=("gated_sum",)), "fusion")
    assert "No declared comparison" in fig.axes[0].texts[0].get_text()
    outputs = [tmp_path / "gap.pdf", tmp_path / "gap.png"]
    save_figure(fig, outputs, dpi=60)
    assert outputs[0].read_bytes().startswith(PDF_MAGIC)


def test_saves_to_pdf_and_png(tmp_path):
    outputs = [tmp_path / "gap.pdf", tmp_path / "gap.png"]
    save_figure(plot(paired_table(), "paper"), outputs, dpi=60)
    assert outputs[0].read_bytes().startswith(PDF_MAGIC)
    assert outputs[1].read_bytes().startswith(PNG_MAGIC)


def test_a_table_that_is_not_the_paired_table_or_spans_datasets_is_refused():
    with pytest.raises(AlignfuseError, match="paired table lacks columns"):
        plot(pd.DataFrame({"method": ["concat"]}), "paper")
    paired = paired_table()
    other = paired.assign(dataset="synthetic")
    with pytest.raises(AlignfuseError, match="flickr8k, synthetic"):
        plot(pd.concat([paired, other]), "paper")


def test_the_figure_command_draws_from_the_paired_table(tmp_path, capsys):
    table = tmp_path / "paired.parquet"
    write_frame(paired_table(), table)
    outputs = [tmp_path / "out" / "gap.pdf", tmp_path / "out" / "gap.png"]
    args = ["figure", "gap", "--table", str(table), "--dpi", "60", "--out", *map(str, outputs)]
    assert main(args) == 0
    assert outputs[1].read_bytes().startswith(PNG_MAGIC)
    missing = ["figure", "gap", "--table", str(tmp_path / "none.parquet"), "--out", "x.png"]
    assert main(missing) == 1
    err = capsys.readouterr().err
    assert "none.parquet: table not found" in err and "results/<study>/tables/paired.parquet" in err


def test_the_same_table_gives_the_same_bytes(tmp_path):
    paired = paired_table()
    saved = []
    for name in ("a", "b"):
        outputs = [tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"]
        save_figure(plot(paired, "paper"), outputs, dpi=60)
        saved.append([p.read_bytes() for p in outputs])
    assert saved[0] == saved[1]


def test_feature_sets_run_at_one_scale_are_left_out_and_named_in_a_note():
    several = paired_table(backbones=("clip",), methods=("xattn_txt2img",))
    single = paired_table(
        backbones=("clip",), methods=("xattn_txt2img",), alignments=("rotation-0.5",), scales=[4096]
    )
    fig = plot(pd.concat([several, single]), "degradation")
    panels = [ax for ax in fig.axes if ax.axison]
    (line,) = data_lines(panels[0])
    assert list(line.get_xdata()) == SCALES
    assert len(fig.legends) == 1
    note = " ".join(t.get_text() for ax in fig.axes if not ax.axison for t in ax.texts)
    assert "1 feature set run at a single training scale (clip@rotation-0.5)" in " ".join(
        note.split()
    )
    assert "paired table" in " ".join(note.split())


def test_a_study_with_no_feature_set_at_two_scales_gets_a_figure_that_says_so():
    fig = plot(paired_table(scales=[2048]), "ablation")
    assert "run at a single training scale" in fig.axes[0].texts[0].get_text()


def tuned_and_shared_runs():
    """concat and xattn_txt2img on the shared recipe beside their tuned copies (same heads)."""
    rng = np.random.default_rng(1)
    rows = []
    for key in condition_grid(("clip",), ("raw",), ("concat", "xattn_txt2img"), SCALES):
        for suffix in ("", "_tuned"):
            accuracy = 0.7 + (0.04 if key["method"] == "concat" else 0) + rng.normal(0, 0.01)
            rows.append(
                {
                    **key,
                    "method": key["method"] + suffix,
                    "test_accuracy": accuracy,
                    "test_auroc": 0.8,
                }
            )
    return pd.DataFrame(rows)


def tuned_and_shared_gap(claims=(), comparisons=()):
    """The gap figure of those runs' declared comparisons, the *_tuned labels tuned alike."""
    runs = tuned_and_shared_runs()
    recipes = {"concat_tuned": TUNED, "xattn_txt2img_tuned": TUNED}
    found = declared(runs, claims=claims, comparisons=comparisons, recipes=recipes)
    return plot(paired_differences(runs, found), "paper")


def test_tuned_labels_are_drawn_against_tuned_concat_and_never_against_untuned_concat():
    claim = {
        "id": "tuned_gap",
        "statement": "tuned",
        "backbone": "clip",
        "reference": "concat_tuned",
        "methods": ["xattn_txt2img_tuned"],
        "scales": SCALES,
        "band": [4.1, 5.1],
    }
    (ax,) = tuned_and_shared_gap(claims=[claim]).axes
    shown = sorted(line.get_label() for line in data_lines(ax))
    assert shown == ["concat − xattn_txt2img", "concat_tuned − xattn_txt2img_tuned"]


def test_a_comparison_of_two_recipes_says_mixed_recipe_in_the_legend():
    entry = {
        "id": "mixed",
        "reference": "concat",
        "methods": ["xattn_txt2img_tuned"],
        "mixed_recipe": True,
    }
    fig = tuned_and_shared_gap(comparisons=[entry])
    shown = sorted(line.get_label() for line in data_lines(fig.axes[0]))
    assert shown == ["concat − xattn_txt2img", "concat − xattn_txt2img_tuned (mixed recipe)"]
    assert "concat − xattn_txt2img_tuned (mixed recipe)" in [
        t.get_text() for t in fig.legends[0].get_texts()
    ]
