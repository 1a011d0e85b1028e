"""The alignment figures: the lead and the alignment metrics against the degradation level."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
from declared import alignment_study_of
from figure_runs import data_lines
from test_alignment_study import metrics_for, runs_with_gaps

from alignfuse.errors import AlignfuseError
from alignfuse.figures import alignment_gap, alignment_metrics
from alignfuse.figures.style import save_figure

LEVELS = {0: 1.3, 0.25: 1.8, 0.5: 2.3, 1.0: 2.8}


def study_table():
    rotation = runs_with_gaps(LEVELS, kind="rotation")
    noise = runs_with_gaps(LEVELS, kind="noise")
    runs = pd.concat([rotation, noise[noise["alignment"] != "raw"]])
    metrics = pd.concat([metrics_for(LEVELS, "rotation"), metrics_for(LEVELS, "noise")])
    return alignment_study_of(runs, metrics.drop_duplicates(), 200)


def test_the_gap_figure_has_a_panel_per_degradation_kind_and_a_line_per_method():
    fig = alignment_gap.plot(study_table(), "paper")
    assert [ax.get_title() for ax in fig.axes] == ["noise", "rotation"]
    for ax in fig.axes:
        (line,) = data_lines(ax)
        assert list(line.get_xdata()) == [0.0, 0.25, 0.5, 1.0]
        assert list(line.get_ydata()) == pytest.approx([1.3, 1.8, 2.3, 2.8], abs=0.2)
        assert "increasing" in line.get_label()


def test_the_metrics_figure_has_a_panel_per_metric_and_a_line_per_kind():
    fig = alignment_metrics.plot(study_table(), "paper")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cosine gap", "text→image R@1", "mutual k-NN (k = 10)", "debiased CKA"]
    cosine = fig.axes[0]
    assert sorted(line.get_label().split()[0] for line in data_lines(cosine)) == [
        "noise",
        "rotation",
    ]


def test_a_study_without_degradations_gets_a_figure_that_says_so(tmp_path):
    empty = study_table().iloc[:0]
    for module in (alignment_gap, alignment_metrics):
        fig = module.plot(empty, "paper")
        assert "No degraded feature sets" in fig.axes[0].texts[0].get_text()
        save_figure(fig, [tmp_path / "x.png"], 50)


def test_a_table_that_is_not_the_alignment_study_is_refused():
    with pytest.raises(AlignfuseError, match="alignment_study table lacks columns"):
        alignment_gap.plot(pd.DataFrame({"method": ["concat"]}), "paper")
