"""Training recipes for people: how a method label is trained (from the config, before any
job runs) and how its runs were trained (from what they record, with the values tuning chose).

A comparison states both sides' recipes, so a reader sees whether a difference could be the
recipe's rather than the head's.
"""

from __future__ import annotations

import json

MIXED = "mixed recipe"


def recipe_text(recipe: dict) -> str:
    """A label's recipe (``grid.recipe``) for people: "shared", "own (lr 0.003)" (the settings it
    changes) or "tuned on
    dev (lr × schedule on aligned@raw, 4096 pairs, seeds 0)"."""
    if recipe["kind"] == "tuned":
        on = recipe["on"]
        seeds = ", ".join(map(str, on["seeds"]))
        return (
            f"tuned on dev ({' × '.join(sorted(recipe['grid']))} on {on['backbone']}@"
            f"{on['alignment']}, {on['scale']} pairs, seeds {seeds})"
        )
    if recipe["kind"] == "own":
        shown = " · ".join(f"{k} {v}" for k, v in sorted(recipe["changed"].items()))
        return f"own ({shown})"
    return "shared"


def run_recipe(training, tuned, tuned_values) -> str:
    """How a condition's heads were trained, from what its runs record: rate, weight decay and
    schedule, and which of them (or dropout) tuning chose on dev, e.g. "lr 0.0003 · wd 0.01 ·
    warmup_cosine (tuned: lr, schedule)"; "–" for runs that do not record it."""
    if not isinstance(training, str):
        return "–"
    cfg = json.loads(training)
    label = f"lr {cfg['lr']:g} · wd {cfg['weight_decay']:g} · {cfg.get('schedule', 'constant')}"
    if tuned is True or tuned == 1:
        chosen = json.loads(tuned_values)
        shown = ", ".join(f"{k} {v:g}" if k == "dropout" else k for k, v in sorted(chosen.items()))
        label += f" (tuned: {shown})"
    return label
