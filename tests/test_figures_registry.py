"""The figure registry and the figure rules agree: one rule per figure, reading its one table and
hashing the module the figure runs (so editing one figure replans only that figure)."""

import importlib
import re

import pytest
from workflow_runner import ROOT

from alignfuse.codehash import dependencies
from alignfuse.figures import FIGURE_TABLES, FIGURES

RULES = (ROOT / "workflow/rules/figures.smk").read_text(encoding="utf-8")


def rule_text(name: str) -> str:
    match = re.search(rf"^rule figure_{name}:\n(.*?)(?=^rule |\Z)", RULES, re.S | re.M)
    assert match, f"no rule figure_{name} in workflow/rules/figures.smk"
    return match.group(1)


def test_every_registered_figure_names_a_plot_function_and_a_table():
    assert set(FIGURES) == set(FIGURE_TABLES)
    assert set(FIGURE_TABLES.values()) <= {
        "runs",
        "curves",
        "summary",
        "paired",
        "paper_vs_ours",
        "alignment_study",
        "pid",
        "theory_curves",
        "theory_learning_curves",
        "sample_complexity_points",
    }
    for target in FIGURES.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_the_rules_list_every_registered_figure_and_no_other():
    assert set(re.findall(r"^rule figure_(\w+):", RULES, re.M)) == set(FIGURES)
    listed = re.search(r"^FIGURES = \[(.*?)\]", RULES, re.M | re.S).group(1)
    assert set(re.findall(r'"(\w+)"', listed)) == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_a_figure_rule_reads_only_its_table(name):
    text = rule_text(name)
    inputs = re.search(r"input:\n(.*?)\n    \w+:", text, re.S).group(1)
    assert re.findall(r'"([^"]+)"', inputs) == [
        f"results/{{study}}/tables/{FIGURE_TABLES[name]}.parquet"
    ]
    assert f"alignfuse figure {name} --table {{input}}" in text


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_a_figure_rule_hashes_its_own_module_which_covers_the_style(name):
    module = FIGURES[name].split(":")[0].removeprefix("alignfuse.")
    hashed = re.search(
        r"code=f\"\{code_hash\(([^)]*)\)\}:\{FIGURE_REGISTRY\['(\w+)'\]\}", rule_text(name)
    )
    assert re.findall(r"'([\w.]+)'", hashed.group(1)) == [module]
    assert hashed.group(2) == name  # and its registry entry, so repointing it redraws the figure
    assert "figures.style" in dependencies(module)
