import pandas as pd
import pytest
import yaml
from declared import TUNED
from workflow_runner import ROOT

from alignfuse import grid
from alignfuse.analysis.comparisons import (
    REFERENCE_SOURCE,
    comparisons_frame,
    declare,
)
from alignfuse.config import validate_config
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import ATTENTION, CONCATENATION

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
SHARED = {"kind": "shared", "training": {"lr": 0.001}}
HEADS = {
    "concat": "concat",
    "xattn_txt2img": "xattn_txt2img",
    "concat_tuned": "concat",
    "xattn_txt2img_tuned": "xattn_txt2img",
    "late": "late",
}
FAMILIES = {"concat": CONCATENATION, "xattn_txt2img": ATTENTION, "late": "late"}
SCALES = (2048, 4096)


def spec(claims=(), comparisons=(), reference="concat", recipes=None):
    recipes = {"concat_tuned": TUNED, "xattn_txt2img_tuned": TUNED, **(recipes or {})}
    return {
        "analysis": {"reference": reference},
        "claims": list(claims),
        "comparisons": list(comparisons),
        "labels": {
            label: {"head": head, "family": FAMILIES[head], "recipe": recipes.get(label, SHARED)}
            for label, head in HEADS.items()
        },
    }


def trained(backbones=("clip",), alignments=("raw",), methods=tuple(HEADS), scales=SCALES):
    return [(b, a, m, n) for b in backbones for a in alignments for m in methods for n in scales]


def claim(**changes):
    return {
        "id": "gap",
        "statement": "concat ahead",
        "backbone": "clip",
        "alignment": "raw",
        "reference": "concat",
        "methods": ["xattn_txt2img"],
        "scales": list(SCALES),
        "band": [4.1, 5.1],
        **changes,
    }


def pairs(comparisons):
    return {(c.feature_set, c.reference, c.method) for c in comparisons}


def test_the_reference_is_compared_with_every_label_of_its_recipe_only():
    found = declare(spec(), trained())
    assert pairs(found) == {
        ("clip@raw", "concat", "xattn_txt2img"),
        ("clip@raw", "concat", "late"),
    }
    assert all(c.sources == (REFERENCE_SOURCE,) and not c.mixed_recipe for c in found)
    assert {c.method: c.family for c in found} == {"xattn_txt2img": ATTENTION, "late": "late"}


def test_shared_and_tuned_labels_side_by_side_give_exactly_the_declared_pairs():
    """concat − xattn_txt2img from the reference, concat_tuned − xattn_txt2img_tuned from the
    claim; nothing sets a tuned label against an untuned one."""
    tuned = claim(id="tuned", reference="concat_tuned", methods=["xattn_txt2img_tuned"])
    found = declare(spec(claims=[claim(), tuned]), trained())
    assert pairs(found) == {
        ("clip@raw", "concat", "xattn_txt2img"),
        ("clip@raw", "concat", "late"),
        ("clip@raw", "concat_tuned", "xattn_txt2img_tuned"),
    }
    by_pair = {(c.reference, c.method): c for c in found}
    assert by_pair["concat", "xattn_txt2img"].sources == (REFERENCE_SOURCE, "gap")
    assert by_pair["concat_tuned", "xattn_txt2img_tuned"].sources == ("tuned",)
    assert not any(c.mixed_recipe for c in found)


def test_a_claim_mixing_recipes_is_refused_naming_the_claim_and_both_labels():
    mixed = claim(methods=["xattn_txt2img_tuned"])
    with pytest.raises(AlignfuseError) as info:
        declare(spec(claims=[mixed]), trained())
    message = str(info.value)
    for fragment in (
        "config key 'claims.0'",
        "claim 'gap'",
        "concat (recipe: shared)",
        "xattn_txt2img_tuned (recipe: tuned on dev (lr on clip@raw, 8192 pairs, seeds 0))",
        "claims.0.mixed_recipe: true",
    ):
        assert fragment in message, message


def test_a_claim_that_says_mixed_recipe_is_declared_and_marked():
    mixed = claim(methods=["xattn_txt2img_tuned"], mixed_recipe=True)
    (found,) = [c for c in declare(spec(claims=[mixed]), trained()) if c.sources == ("gap",)]
    assert found.mixed_recipe and found.label == "concat − xattn_txt2img_tuned (mixed recipe)"
    assert found.reference_recipe == "shared"
    assert found.method_recipe.startswith("tuned on dev")


def test_tuned_labels_on_different_grids_are_different_recipes():
    other = {**TUNED, "grid": {"lr": [0.001, 0.01]}}
    tuned = claim(reference="concat_tuned", methods=["xattn_txt2img_tuned"])
    with pytest.raises(AlignfuseError, match="their training recipes differ"):
        declare(spec(claims=[tuned], recipes={"concat_tuned": other}), trained())


def test_a_trend_claim_covers_its_degraded_sets_of_its_kinds_only():
    alignments = ("raw", "rotation-0.5", "noise-0.5", "shuffle-0.5")
    trend = claim(kind="trend", scales=[4096], band=[1.3, 2.8], degradations=["rotation", "noise"])
    found = declare(spec(claims=[trend]), trained(alignments=alignments))
    from_trend = {c.feature_set for c in found if "gap" in c.sources}
    assert from_trend == {"clip@raw", "clip@rotation-0.5", "clip@noise-0.5"}


def test_a_comparisons_entry_takes_every_trained_set_and_shared_scale_by_default():
    entry = {"id": "late_vs_tuned", "reference": "late", "methods": ["concat"]}
    found = declare(spec(comparisons=[entry]), trained(backbones=("clip", "resnet18")))
    mine = [c for c in found if c.sources == ("late_vs_tuned",)]
    assert {c.feature_set for c in mine} == {"clip@raw", "resnet18@raw"}
    assert all(c.scales == SCALES for c in mine)
    narrowed = {**entry, "backbones": ["resnet18"], "scales": [4096]}
    (only,) = [
        c
        for c in declare(spec(comparisons=[narrowed]), trained(("clip", "resnet18")))
        if c.sources == ("late_vs_tuned",)
    ]
    assert (only.feature_set, only.scales) == ("resnet18@raw", (4096,))


def test_one_pair_from_two_sources_is_one_comparison_over_both_scales():
    wide = claim(scales=[1024, 2048])
    found = [c for c in declare(spec(claims=[wide]), trained()) if c.method == "xattn_txt2img"]
    (comparison,) = found
    assert comparison.scales == (1024, 2048, 4096)
    assert comparison.sources == (REFERENCE_SOURCE, "gap")


def test_the_comparisons_table_has_a_row_per_comparison_that_parquet_keeps(tmp_path):
    found = declare(spec(claims=[claim()]), trained())
    path = tmp_path / "comparisons.parquet"
    comparisons_frame(found).to_parquet(path)
    table = pd.read_parquet(path)
    assert len(table) == len(found)
    row = table.set_index("method").loc["xattn_txt2img"]
    assert list(row["scales"]) == list(SCALES) and list(row["sources"]) == [REFERENCE_SOURCE, "gap"]
    assert row["family"] == ATTENTION and not row["mixed_recipe"]


def recipe_of(config: dict, label: str) -> dict:
    return grid.recipe(validate_config(config, SCHEMA), label)


def test_recipes_of_the_paper_study():
    config = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()), SCHEMA)
    assert grid.recipe(config, "concat") == grid.recipe(config, "xattn_bidir")
    assert grid.recipe(config, "concat")["kind"] == "shared"
    tuned = grid.recipe(config, "concat_tuned")
    assert tuned["kind"] == "tuned" and tuned == grid.recipe(config, "xattn_txt2img_tuned")
    assert tuned["on"]["scale"] == 8192 and tuned["on"]["seeds"] == [0, 1]
    assert "lr" not in tuned["training"]  # the grid chooses it


def test_a_method_on_its_own_settings_has_its_own_recipe_but_where_it_runs_is_no_part_of_it():
    config = yaml.safe_load((ROOT / "workflow/presets/smoke.yaml").read_text())
    config["methods"]["gated_sum"]["training"] = {"device": "auto"}
    assert recipe_of(config, "gated_sum")["kind"] == "shared"
    config["methods"]["gated_sum"]["training"] = {"lr": 0.01}
    own = recipe_of(config, "gated_sum")
    assert own["kind"] == "own" and own["changed"] == {"lr": 0.01}
