import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from figure_runs import condition_grid
from matplotlib.colors import to_hex

from alignfuse.analysis.tables import summarize
from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.figures.params import plot as plot_summary
from alignfuse.figures.style import method_palette, save_figure
from alignfuse.parquet import write_frame

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMS = {"concat": 295_554, "xattn_txt2img": 630_786, "gated_sum": 296_000, "text_only": 150_000}


def plot(runs, study):
    """The figure drawn from the summary table of ``runs``, as the workflow draws it."""
    return plot_summary(summarize(runs), study)


def runs_table(backbones=("clip", "resnet18"), alignments=("raw",), scales=(2048, 4096)):
    rng = np.random.default_rng(0)
    rows = [
        {
            **key,
            "test_accuracy": 0.7 + 0.01 * np.log2(key["n_train"] / 2048) + rng.normal(0, 0.01),
            "test_auroc": 0.8,
            "params": PARAMS[key["method"]],
            "epochs": 10,
        }
        for key in condition_grid(backbones, alignments, PARAMS, scales)
    ]
    return pd.DataFrame(rows)


def markers(ax):
    """(method, x, y) of every data marker: one errorbar container per method."""
    return sorted(
        (c.get_label(), c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0]) for c in ax.containers
    )


def test_one_panel_per_backbone_at_its_largest_scale():
    fig = plot(runs_table(), "paper")
    assert [ax.get_title() for ax in fig.axes] == ["clip (n = 4096)", "resnet18 (n = 4096)"]


def test_one_marker_per_method_at_its_parameters_and_mean_accuracy():
    runs = runs_table()
    ax = plot(runs, "paper").axes[0]
    summary = summarize(runs).query("backbone == 'clip' and n_train == 4096")
    expected = sorted(
        zip(summary["method"], summary["params_mean"], summary["test_accuracy_mean"], strict=True)
    )
    got = markers(ax)
    assert [m for m, _, _ in got] == [m for m, _, _ in expected]
    np.testing.assert_allclose([x for _, x, _ in got], [x for _, x, _ in expected])
    np.testing.assert_allclose([y for _, _, y in got], [y for _, _, y in expected])
    assert ax.get_xscale() == "log"
    assert ax.yaxis.get_major_formatter()(0.75, 0) == "75%"


def test_markers_take_the_method_colours_and_carry_t_interval_error_bars():
    ax = plot(runs_table(backbones=("clip",)), "paper").axes[0]
    palette = method_palette(PARAMS)
    assert len(ax.containers) == len(PARAMS)
    for container in ax.containers:
        assert to_hex(container.lines[0].get_color()) == palette[container.get_label()]
        assert container.has_yerr


def test_a_dashed_chance_line():
    ax = plot(runs_table(), "paper").axes[0]
    chance = [line for line in ax.get_lines() if line.get_label() == "_chance"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.5, 0.5]


def test_each_backbone_uses_its_own_largest_scale():
    runs = pd.concat([runs_table(backbones=("clip",)), runs_table(("tiny",), scales=(128,))])
    assert [ax.get_title() for ax in plot(runs, "mixed").axes] == [
        "clip (n = 4096)",
        "tiny (n = 128)",
    ]


def test_several_alignments_take_marker_shapes_and_a_legend():
    fig = plot(runs_table(alignments=("raw", "rot0.5")), "degradation")
    shapes = {container.lines[0].get_marker() for container in fig.axes[0].containers}
    assert len(shapes) == 2
    assert len(fig.legends) == 2


def test_one_seed_draws_a_marker_without_error_bar():
    runs = runs_table(backbones=("clip",))
    ax = plot(runs[runs["seed"] == 0], "one seed").axes[0]
    assert len(markers(ax)) == len(PARAMS)
    assert not any(container.has_yerr for container in ax.containers)


def test_saves_to_pdf_and_png(tmp_path):
    outputs = [tmp_path / "params.pdf", tmp_path / "params.png"]
    save_figure(plot(runs_table(), "paper"), outputs, dpi=60)
    assert outputs[0].read_bytes().startswith(PDF_MAGIC)
    assert outputs[1].read_bytes().startswith(PNG_MAGIC)


def test_runs_of_several_datasets_or_none_are_refused():
    runs = runs_table()
    with pytest.raises(AlignfuseError, match="flickr8k, synthetic"):
        plot(pd.concat([runs, runs.assign(dataset="synthetic")]), "paper")
    with pytest.raises(AlignfuseError, match="no runs"):
        plot(runs.iloc[:0], "paper")


def test_the_figure_command_draws_from_the_summary_table(tmp_path):
    table = tmp_path / "summary.parquet"
    write_frame(summarize(runs_table()), table)
    outputs = [tmp_path / "params.pdf", tmp_path / "params.png"]
    args = ["figure", "params", "--table", str(table), "--dpi", "60", "--out", *map(str, outputs)]
    assert main(args) == 0
    assert outputs[0].read_bytes().startswith(PDF_MAGIC)


def test_the_same_runs_give_the_same_bytes(tmp_path):
    runs = runs_table()
    saved = []
    for name in ("a", "b"):
        outputs = [tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"]
        save_figure(plot(runs, "paper"), outputs, dpi=60)
        saved.append([p.read_bytes() for p in outputs])
    assert saved[0] == saved[1]
