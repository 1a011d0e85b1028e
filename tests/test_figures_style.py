import importlib
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.figures import FIGURES
from alignfuse.figures.style import (
    METHOD_COLOURS,
    PALETTE,
    REFERENCE_COLOUR,
    alignment_linestyles,
    alignment_markers,
    message_figure,
    method_palette,
    save_figure,
)

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_figure():
    fig, ax = plt.subplots(figsize=(2, 1.5), layout="constrained")
    ax.plot([1, 2, 3], [0.5, 0.7, 0.6], label="concat")
    ax.set_title("a title")
    fig.legend(loc="outside right upper")
    return fig


def test_palette_is_the_same_across_calls_and_method_orders():
    methods = ["xattn", "gated", "concat", "bilinear", "film"]
    palette = method_palette(methods)
    assert palette == method_palette(reversed(methods)) == method_palette(methods + methods)
    assert list(palette) == sorted(methods)
    assert len(set(palette.values())) == len(methods)
    assert set(palette.values()) <= set(PALETTE)


def test_known_methods_keep_their_colour_in_any_company():
    for company in ([], ["gated"], ["a", "b", "c", "d", "e", "f"]):
        palette = method_palette(["concat", "xattn", *company])
        assert palette["concat"] == METHOD_COLOURS["concat"]
        assert palette["xattn"] == METHOD_COLOURS["xattn"]


def test_the_studys_methods_have_distinct_pinned_colours_and_unknown_ones_spare_colours():
    study = [
        "concat",
        "xattn_txt2img",
        "xattn_img2txt",
        "xattn_bidir",
        "gated_sum",
        "weighted_sum",
        "late",
        "image_only",
        "text_only",
    ]
    palette = method_palette([*study, "bilinear", "film"])
    assert {m: palette[m] for m in study} == {m: METHOD_COLOURS[m] for m in study}
    assert len(set(palette.values())) == len(study) + 2
    assert REFERENCE_COLOUR not in palette.values()
    assert METHOD_COLOURS["xattn"] == METHOD_COLOURS["xattn_txt2img"]  # the old name, same head


def test_alignments_take_distinct_markers_with_raw_a_circle():
    markers = alignment_markers(["rot0.5", "raw", "contrastive"])
    assert list(markers) == ["raw", "contrastive", "rot0.5"]
    assert markers["raw"] == "o"
    assert len(set(markers.values())) == 3


def test_a_message_figure_says_why_there_is_nothing_to_draw(tmp_path):
    fig = message_figure("study: gap", "nothing to compare")
    assert fig.axes[0].texts[0].get_text() == "nothing to compare"
    save_figure(fig, [tmp_path / "m.png"], dpi=50)
    assert (tmp_path / "m.png").read_bytes().startswith(PNG_MAGIC)


def test_alignments_take_distinct_line_styles_with_raw_solid():
    styles = alignment_linestyles(["rot0.5", "raw", "contrastive", "raw"])
    assert list(styles) == ["raw", "contrastive", "rot0.5"]
    assert styles["raw"] == "solid"
    assert len(set(styles.values())) == 3


def test_save_figure_writes_pdf_and_png_and_no_temporary_files(tmp_path):
    fig = small_figure()
    outputs = [tmp_path / "out" / "fig.pdf", tmp_path / "out" / "fig.png"]
    save_figure(fig, outputs, dpi=72)
    assert outputs[0].read_bytes().startswith(PDF_MAGIC)
    assert outputs[1].read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig.pdf", "fig.png"]
    assert not plt.fignum_exists(fig.number)


def test_saving_a_figure_twice_gives_identical_bytes(tmp_path):
    fig = small_figure()
    first = [tmp_path / "a.pdf", tmp_path / "a.png"]
    second = [tmp_path / "b.pdf", tmp_path / "b.png"]
    save_figure(fig, first, dpi=72)
    save_figure(fig, second, dpi=72)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_an_unknown_format_writes_nothing_and_names_the_file(tmp_path):
    outputs = [tmp_path / "fig.pdf", tmp_path / "fig.jpeg"]
    with pytest.raises(AlignfuseError, match=r"fig\.jpeg: unsupported figure format"):
        save_figure(small_figure(), outputs, dpi=72)
    assert list(tmp_path.iterdir()) == []


LONG_METHODS = ("concat", "xattn_txt2img", "xattn_txt2img_with_a_rather_long_label", "gated_sum")


def long_label_runs(backbones):
    """A runs table of four methods, one with a long label, on the given backbones."""
    import numpy as np
    import pandas as pd
    from figure_runs import condition_grid

    rng = np.random.default_rng(0)
    rows = [
        {
            **key,
            "head": "xattn_txt2img" if key["method"].startswith("xattn") else key["method"],
            "test_accuracy": 0.7 + rng.normal(0, 0.01),
            "test_auroc": 0.8,
            "params": 300_000 if key["method"] == "concat" else 750_000,
            "epochs": 10,
        }
        for key in condition_grid(backbones, ("raw", "noise-0.5"), LONG_METHODS, [2048, 16384])
    ]
    return pd.DataFrame(rows)


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("panels", [1, 2, 3])
@pytest.mark.parametrize("name", ["scaling", "gap", "params"])
def test_legends_keep_clear_of_the_title_and_the_panels(name, panels):
    """With one to three panels and long method labels, no legend covers the title or data."""
    from declared import paired

    from alignfuse.analysis.tables import summarize
    from alignfuse.figures import gap, params, scaling

    runs = long_label_runs(["clip", "resnet18", "another_backbone"][:panels])
    band = {"backbone": "clip", "low": 4.1, "high": 5.1, "scales": [2048], "label": "paper"}
    fig = {
        "scaling": lambda: scaling.plot(summarize(runs), "study"),
        "params": lambda: params.plot(summarize(runs), "study"),
        "gap": lambda: gap.plot(paired(runs), "study", bands=[band]),
    }[name]()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    title = fig._suptitle.get_window_extent(renderer)
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert not overlaps(box, title), (name, panels)
        for ax in fig.axes:
            assert not overlaps(box, ax.get_window_extent(renderer)), (name, panels)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1  # inside the figure


def layout_figure(name: str, layout: str):
    """Figure ``name`` drawn from synthetic tables of a layout's feature sets (figure_runs)."""
    import figure_runs as fr
    from declared import paired

    from alignfuse.analysis.tables import summarize

    sets = fr.layout_sets(layout)
    labels = [f"{b}@{a}" for b, a in sets]
    runs = fr.layout_runs(layout)
    band = {"backbone": sets[0][0], "low": 2.5, "high": 3.5, "scales": fr.SCALES, "label": "paper"}
    table, options = {
        "scaling": lambda: (summarize(runs), {}),
        "gap": lambda: (paired(runs), {"bands": [band]}),
        "params": lambda: (summarize(runs), {}),
        "training_curves": lambda: (fr.curves_of(runs), {}),
        "alignment_gap": lambda: (fr.alignment_study_of(sets), {}),
        "alignment_metrics": lambda: (fr.alignment_study_of(sets), {}),
        "pid_bars": lambda: (fr.pid_of(sets), {}),
        "pid_ci_ct": lambda: (fr.pid_of(sets), {}),
        "theory_curves": lambda: (fr.theory_curves_of(labels), {}),
        "theory_vs_measured": lambda: (fr.learning_points_of(sets), {}),
        "sample_complexity": lambda: (fr.sample_complexity_of(labels), {}),
    }[name]()
    module, function = FIGURES[name].split(":")
    return getattr(importlib.import_module(module), function)(table, "study", **options)


def outside(box, bounds, tolerance=1.0) -> bool:
    return (
        box.x0 < bounds.x0 - tolerance
        or box.y0 < bounds.y0 - tolerance
        or box.x1 > bounds.x1 + tolerance
        or box.y1 > bounds.y1 + tolerance
    )


@pytest.mark.slow  # every figure drawn three times: most of this file's time
@pytest.mark.parametrize("layout", ["smoke", "eight alignments", "eight backbones"])
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_keeps_its_legends_texts_and_panels_on_the_canvas(name, layout, tmp_path):
    """Eight feature sets, eight methods and 40-character labels: nothing is cut at an edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig = layout_figure(name, layout)
    png = tmp_path / f"{name}.png"
    save_figure(fig, [png], dpi=20)  # lays the figure out once and freezes it, as the rules do
    width, height = fig.get_size_inches() * 20
    saved = Image.open(png).size
    assert abs(saved[0] - width) <= 1 and abs(saved[1] - height) <= 1  # whole pixels of the size
    renderer = FigureCanvasAgg(fig).get_renderer()
    artists = [*fig.legends, *fig.texts, *fig.axes]
    if fig._suptitle is not None:
        artists.append(fig._suptitle)
    assert fig.legends
    for artist in artists:
        box = artist.get_tightbbox(renderer)
        assert not outside(box, fig.bbox), (name, layout, artist, box, fig.bbox)
    panels = [ax for ax in fig.axes if ax.axison]
    notes = [text for ax in fig.axes if not ax.axison for text in ax.texts]
    placed = [*fig.legends, fig._suptitle, *notes]
    boxes = [a.get_window_extent(renderer) for a in placed + panels]
    for i, box in enumerate(boxes[: len(placed)]):
        for j, other in enumerate(boxes):
            assert i == j or not overlaps(box, other), (name, layout, i, j)
    titles = [ax.title.get_window_extent(renderer) for ax in panels if ax.get_title()]
    for left, right in itertools.pairwise(titles):
        assert not overlaps(left, right), (name, layout)


def comparable(rc) -> dict:
    """rc settings with the colour cycle as RGBA (the sheet spells colours in hex)."""
    from matplotlib.colors import to_rgba

    settings = {k: v for k, v in rc.items() if k not in ("image.cmap", "axes.prop_cycle")}
    settings["colours"] = [to_rgba(c) for c in rc["axes.prop_cycle"].by_key()["color"]]
    return settings


def test_the_style_sheet_is_seaborns_paper_theme(monkeypatch):
    """apply_style's sheet sets what seaborn's set_theme sets, so figures look as they did when
    they imported seaborn (image.cmap aside: seaborn's own colormap, which no figure draws)."""
    import seaborn as sns

    from alignfuse.figures.style import apply_style

    monkeypatch.setattr(matplotlib, "rcParams", matplotlib.rcParams.copy())
    matplotlib.rcdefaults()
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette=PALETTE,
        rc={"pdf.fonttype": 42, "ps.fonttype": 42},
    )
    seaborns = comparable(matplotlib.rcParams)
    matplotlib.rcdefaults()
    apply_style()
    assert comparable(matplotlib.rcParams) == seaborns
    assert matplotlib.rcParams["image.cmap"] == matplotlib.rcParamsDefault["image.cmap"]


def test_a_comparison_takes_its_methods_colour_unless_the_method_is_in_two():
    from alignfuse.figures.style import comparison_palette, method_palette

    colours = method_palette(["xattn_txt2img", "xattn_bidir"])
    once = comparison_palette(
        ["xattn_txt2img", "xattn_bidir"], ["concat − xattn_txt2img", "concat − xattn_bidir"]
    )
    assert once == {
        "concat − xattn_txt2img": colours["xattn_txt2img"],
        "concat − xattn_bidir": colours["xattn_bidir"],
    }
    twice = comparison_palette(
        ["xattn_txt2img_tuned"] * 2,
        ["concat − xattn_txt2img_tuned (mixed recipe)", "concat_tuned − xattn_txt2img_tuned"],
    )
    assert len(set(twice.values())) == 2
