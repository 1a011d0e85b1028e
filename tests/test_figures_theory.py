"""theory_vs_measured: the legend promises fitted curves only where there are some."""

import matplotlib.pyplot as plt
import pandas as pd

from alignfuse.figures.theory_vs_measured import plot


def points(fitted: bool) -> pd.DataFrame:
    rows = []
    for n, error in ((512, 0.3), (1024, 0.2), (2048, 0.15), (4096, 0.12)):
        rows.append({"kind": "measured", "n": n, "error": error, "low": error - 0.02})
        if fitted:
            rows.append({"kind": "fitted", "n": n, "error": error, "low": error})
    frame = pd.DataFrame(rows).assign(feature_set="clip@raw", method="concat")
    return frame.assign(high=frame["error"] + 0.02)


def legend(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_the_legend_names_the_fitted_curve_only_when_one_is_drawn():
    with_fits = plot(points(fitted=True), "paper")
    assert "fitted e_inf + b n^-c" in legend(with_fits)
    without = plot(points(fitted=False), "paper")
    assert "fitted e_inf + b n^-c" not in legend(without)
    assert "no fitted curve (not identified)" in legend(without)
    plt.close("all")
