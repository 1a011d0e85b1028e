import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from figure_runs import condition_grid, data_lines
from matplotlib.colors import to_hex

from alignfuse.analysis.tables import summarize
from alignfuse.errors import AlignfuseError
from alignfuse.figures import FIGURES
from alignfuse.figures.scaling import plot as plot_summary
from alignfuse.figures.style import method_palette, save_figure

SCALES = [2048, 4096, 8192]


def plot(runs, study):
    """The figure drawn from the summary table of ``runs``, as the workflow draws it."""
    return plot_summary(summarize(runs), study)


def runs_table(backbones=("clip", "resnet18"), alignments=("raw",), methods=("concat", "xattn")):
    rng = np.random.default_rng(0)
    rows = [
        {
            **key,
            "test_accuracy": 0.6 + 0.03 * np.log2(key["n_train"] / 2048) + rng.normal(0, 0.01),
            "test_auroc": 0.7,
            "params": 1000,
            "epochs": 10,
        }
        for key in condition_grid(backbones, alignments, methods, SCALES)
    ]
    return pd.DataFrame(rows)


def test_the_registry_names_the_scaling_plot():
    assert FIGURES["scaling"] == "alignfuse.figures.scaling:plot"


def test_one_panel_per_backbone_and_one_line_per_method():
    fig = plot(runs_table(), "paper")
    assert [ax.get_title() for ax in fig.axes] == ["clip", "resnet18"]
    palette = method_palette(["concat", "xattn"])
    for ax in fig.axes:
        lines = data_lines(ax)
        assert sorted(line.get_label() for line in lines) == ["concat", "xattn"]
        for line in lines:
            assert to_hex(line.get_color()) == palette[line.get_label()]
    assert "paper" in fig.get_suptitle()


def test_lines_are_the_t_interval_means_on_a_log2_axis_with_the_scales_as_ticks():
    runs = runs_table()
    fig = plot(runs, "paper")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == SCALES
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(n) for n in SCALES]
    assert ax.yaxis.get_major_formatter()(0.75, 0) == "75%"
    summary = summarize(runs)
    expected = summary.query("backbone == 'clip' and method == 'concat'")["test_accuracy_mean"]
    concat = next(line for line in data_lines(ax) if line.get_label() == "concat")
    np.testing.assert_allclose(concat.get_ydata(), expected)


def test_a_dashed_chance_line_at_one_half():
    ax = plot(runs_table(), "paper").axes[0]
    chance = [line for line in ax.get_lines() if line.get_label() == "_chance"]
    assert len(chance) == 1
    assert list(chance[0].get_ydata()) == [0.5, 0.5]
    assert chance[0].get_linestyle() == "--"


def test_several_alignments_are_told_apart_by_line_style():
    fig = plot(runs_table(alignments=("raw", "rot0.5")), "degradation")
    lines = data_lines(fig.axes[0])
    assert len(lines) == 4
    styles = {line.get_label(): set() for line in lines}
    for line in lines:
        styles[line.get_label()].add(line.get_linestyle())
    assert all(len(s) == 2 for s in styles.values())
    assert len(fig.legends) == 2


def test_a_single_alignment_needs_no_line_style_legend():
    assert len(plot(runs_table(backbones=("clip",)), "paper").legends) == 1


def test_the_same_runs_give_the_same_pdf_bytes(tmp_path):
    runs = runs_table()
    paths = []
    for name in ("a", "b"):
        outputs = [tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"]
        save_figure(plot(runs, "paper"), outputs, dpi=60)
        paths.append(outputs)
    assert paths[0][0].read_bytes() == paths[1][0].read_bytes()
    assert paths[0][1].read_bytes() == paths[1][1].read_bytes()


def test_runs_of_several_datasets_or_none_are_refused():
    runs = runs_table()
    other = runs.assign(dataset="synthetic")
    with pytest.raises(AlignfuseError, match="flickr8k, synthetic"):
        plot(pd.concat([runs, other]), "paper")
    with pytest.raises(AlignfuseError, match="no runs"):
        plot(runs.iloc[:0], "paper")


def note_text(fig) -> str:
    """The note under the panels: the text of the axes drawn without axis lines."""
    return " ".join(t.get_text() for ax in fig.axes if not ax.axison for t in ax.texts)


def test_feature_sets_run_at_one_scale_are_left_out_and_named_in_a_note():
    runs = runs_table(backbones=("clip",))
    degraded = runs[runs["n_train"] == 4096].assign(alignment="noise-0.5")
    fig = plot(pd.concat([runs, degraded]), "paper")
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["clip"]
    lines = data_lines(panels[0])
    assert len(lines) == 2 and all(len(line.get_xdata()) == len(SCALES) for line in lines)
    assert len(fig.legends) == 1  # no alignment legend for a set that is not drawn
    note = " ".join(note_text(fig).split())
    assert "1 feature set run at a single training scale (clip@noise-0.5)" in note
    assert "summary table" in note and "alignment_gap" in note


def test_a_study_with_no_feature_set_at_two_scales_gets_a_figure_that_says_so(tmp_path):
    runs = runs_table()
    fig = plot(runs[runs["n_train"] == 4096], "ablation")
    message = fig.axes[0].texts[0].get_text()
    assert "2 feature sets run at a single training scale" in message
    assert "clip@raw and resnet18@raw" in message
    save_figure(fig, [tmp_path / "scaling.png"], dpi=50)
