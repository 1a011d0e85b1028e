"""The comparisons a test's runs table declares, as a study of one shared recipe would."""

from __future__ import annotations

import pandas as pd

from alignfuse.analysis.comparisons import declare
from alignfuse.analysis.tables import trained_conditions
from alignfuse.fusion import HEAD_FAMILIES

SHARED = {"kind": "shared", "training": {}}
# a recipe tuned on dev, as grid.recipe describes one
TUNED = {
    "kind": "tuned",
    "grid": {"lr": [0.001, 0.003]},
    "on": {"backbone": "clip", "alignment": "raw", "scale": 8192, "seeds": [0], "metric": "dev"},
    "training": {},
}


def labels_of(runs: pd.DataFrame, recipes: dict | None = None) -> dict:
    """Each method label of ``runs`` with its head, the head's family and a recipe (shared unless
    ``recipes`` gives the label another)."""
    heads = runs.groupby("method")["head"].first()
    return {
        label: {
            "head": head,
            "family": HEAD_FAMILIES.get(head, "unregistered"),
            "recipe": (recipes or {}).get(label, SHARED),
        }
        for label, head in heads.items()
    }


def declared(runs, reference="concat", claims=(), comparisons=(), recipes=None):
    """The declared comparisons of a study of these runs: the reference against every label of
    its recipe, and the given claim and comparison entries."""
    spec = {
        "analysis": {"reference": reference},
        "claims": list(claims),
        "comparisons": list(comparisons),
        "labels": labels_of(runs, recipes),
    }
    return declare(spec, trained_conditions(runs))


def paired(runs, reference="concat", **kwargs):
    """The paired table of ``runs``' declared comparisons (see :func:`declared`)."""
    from alignfuse.analysis.statistics import paired_differences

    return paired_differences(runs, declared(runs, reference), **kwargs)


def alignment_study_of(runs, metrics=None, resamples=300, reference="concat"):
    """The alignment study of ``runs``' declared comparisons (see :func:`declared`)."""
    from alignfuse.analysis.alignment_study import alignment_study

    return alignment_study(runs, metrics, declared(runs, reference), resamples)
