"""The condition grid of the figure tests' runs tables, and a reader of their plotted lines."""

from __future__ import annotations


def condition_grid(backbones, alignments, methods, scales, seeds: int = 3) -> list[dict]:
    """A runs table's key columns, one dict per (backbone, alignment, method, n_train, seed).

    The order is fixed (seeds innermost), so a table built from it draws its noise the same way
    every time.
    """
    return [
        {
            "dataset": "flickr8k",
            "backbone": backbone,
            "alignment": alignment,
            "method": method,
            "head": method,
            "n_train": n,
            "seed": seed,
        }
        for backbone in backbones
        for alignment in alignments
        for method in methods
        for n in scales
        for seed in range(seeds)
    ]


def data_lines(ax):
    """The lines of an axes that stand for data (matplotlib names helper lines ``_...``)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


LONG_METHOD = "xattn_txt2img_with_an_unusually_long_name"  # 40 characters, a cross-attention head
METHODS = {
    "concat": "concat",
    "xattn_txt2img": "xattn_txt2img",
    "xattn_bidir": "xattn_bidir",
    LONG_METHOD: "xattn_txt2img",
    "gated_sum": "gated_sum",
    "late": "late",
    "image_only": "image_only",
    "text_only": "text_only",
}


def long_alignment(i: int) -> str:
    """A 40-character alignment name, distinct per ``i``."""
    return f"contrastive+rotation-0.{i}-of-a-long-recipe".ljust(40, "x")


def study_runs(backbones, alignments, scales, single_scale=(), methods=METHODS, seeds=2):
    """A runs table of ``methods`` (name -> head) on every backbone@alignment at ``scales``, plus
    the feature sets ``single_scale`` (backbone, alignment) at the largest scale only, as a
    degradation sub-grid adds them; concat leads the others by three points."""
    import numpy as np
    import pandas as pd

    keys = condition_grid(backbones, alignments, methods, scales, seeds)
    for backbone, alignment in single_scale:
        keys += condition_grid([backbone], [alignment], methods, [max(scales)], seeds)
    rng = np.random.default_rng(0)
    rows = [
        {
            **key,
            "head": methods[key["method"]],
            "test_accuracy": 0.7
            + 0.02 * np.log2(key["n_train"] / min(scales))
            + (0.03 if key["method"] == "concat" else 0.0)
            + rng.normal(0, 0.01),
            "test_auroc": 0.8,
            "params": 300_000 if key["method"] == "concat" else 750_000,
            "epochs": 10,
        }
        for key in keys
    ]
    return pd.DataFrame(rows)


SCALES = [2048, 4096, 8192]
LAYOUTS = {
    "smoke": (["aligned", "unaligned"], ["raw"]),
    "eight alignments": (["clip"], [long_alignment(i) for i in range(8)]),
    "eight backbones": ([f"backbone_{i}_" + "b" * 30 for i in range(8)], ["raw"]),
}


def layout_runs(layout: str):
    """The runs of a layout's feature sets at three scales, and two degraded sets at one."""
    backbones, alignments = LAYOUTS[layout]
    degraded = [(backbones[0], "noise-0.5"), (backbones[0], "rotation-0.5")]
    return study_runs(backbones, alignments, SCALES, single_scale=degraded)


def layout_sets(layout: str) -> list[tuple[str, str]]:
    backbones, alignments = LAYOUTS[layout]
    return [(b, a) for b in backbones for a in alignments]


def curves_of(runs):
    """Three epochs of dev accuracy per run; attention entropy for cross-attention heads."""
    import math

    import pandas as pd

    rows = []
    for run in runs.to_dict("records"):
        attention = run["head"].startswith("xattn")
        for epoch in (1, 2, 3):
            rows.append(
                {
                    **run,
                    "epoch": epoch,
                    "dev_accuracy": 0.5 + 0.1 * epoch,
                    "attention_entropy": (4 - epoch) / 3 * math.log(8) if attention else None,
                    "attention_ceiling": math.log(8) if attention else None,
                }
            )
    return pd.DataFrame(rows).astype({"attention_entropy": float, "attention_ceiling": float})


def alignment_study_of(sets, methods=METHODS, reference="concat"):
    """An alignment study table: each feature set (backbone, base) degraded by three kinds at
    three levels, the reference's lead over every other method growing with the level."""
    import pandas as pd

    rows = []
    for backbone, base in sets:
        for kind in ("noise", "rotation", "shuffle"):
            for level in (0.0, 0.5, 1.0):
                for method in methods:
                    if method == reference:
                        continue
                    gap = 1.0 + 2.0 * level
                    rows.append(
                        {
                            "backbone": backbone,
                            "base": base,
                            "degradation": kind,
                            "level": level,
                            "reference": reference,
                            "method": method,
                            "n_train": 4096,
                            "gap_pts": gap,
                            "gap_low_pts": gap - 0.5,
                            "gap_high_pts": gap + 0.5,
                            "trend": "increasing",
                            "cosine_gap": 0.5 * (1 - level),
                            "text_to_image_R@1": 0.4 * (1 - level),
                            "mutual_knn": 0.3,
                            "cka": 0.6,
                        }
                    )
    return pd.DataFrame(rows)


def pid_of(sets, methods=METHODS):
    """A PID table of the fused view at k = 4: every term one bit, text's unique below noise."""
    import pandas as pd

    rows = []
    for backbone, alignment in sets:
        for method in methods:
            row = {"backbone": backbone, "alignment": alignment, "method": method}
            row |= {"view": "fused", "k": 4, "CI": 0.6, "CI_low": 0.5, "CI_high": 0.7}
            for term in ("R", "U_img", "U_txt", "S"):
                row |= {term: 1.0, f"{term}_above_noise": term != "U_txt"}
            rows.append(row)
    return pd.DataFrame(rows)


def learning_points_of(sets, methods=METHODS):
    """Measured test errors at three scales and a fitted curve through them, per set and method."""
    import pandas as pd

    rows = []
    for backbone, alignment in sets:
        for method in methods:
            for n, error in zip(SCALES, (0.3, 0.2, 0.15), strict=True):
                for kind in ("measured", "fitted"):
                    rows.append(
                        {
                            "feature_set": f"{backbone}@{alignment}",
                            "method": method,
                            "kind": kind,
                            "n": n,
                            "error": error,
                            "low": error - 0.02,
                            "high": error + 0.02,
                        }
                    )
    return pd.DataFrame(rows)


def sample_complexity_of(families, methods=METHODS):
    """Training pairs needed growing as d (concat) or d² (the others), two seeds per width."""
    import pandas as pd

    rows = [
        {
            "family": family,
            "method": method,
            "d": d,
            "seed": seed,
            "n_needed": float(d if method == "concat" else d * d) * (1 + 0.1 * seed),
        }
        for family in families
        for method in methods
        for d in (16, 32, 64)
        for seed in (0, 1)
    ]
    return pd.DataFrame(rows)


def theory_curves_of(sets, methods=METHODS):
    """Predicted excess risk sqrt(p_eff log n / n) per set (each of its own width) and method;
    cross-attention at both bilinear counts, as the theory stage labels them."""
    import numpy as np
    import pandas as pd

    n = np.logspace(2, 7, 6)
    frames = []
    for i, feature_set in enumerate(sets):
        d = 16 * (i + 1)
        for method, head in methods.items():
            counts = {"full": d * d, "factored": 2 * d * 8} if head.startswith("xattn") else {}
            for label, p_eff in (
                {f"{method} ({c})": p for c, p in counts.items()} or {method: 2 * d}
            ).items():
                frames.append(
                    pd.DataFrame(
                        {
                            "feature_set": feature_set,
                            "method": label,
                            "head": head,
                            "p_eff": p_eff,
                            "n": n,
                            "excess_risk": np.sqrt(p_eff * np.log(n) / n),
                            "d_image": d,
                            "d_text": d,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)
