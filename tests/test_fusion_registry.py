"""The registry of fusion heads, its schema entries and the shipped method configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alignfuse.codehash import code_hash
from alignfuse.fusion import (
    FAMILIES,
    FUSION_METHODS,
    HEAD_FAMILIES,
    PLUGIN,
    head_class,
    method_module,
)
from alignfuse.fusion.build import build_head
from alignfuse.fusion.sizing import hyper_parameters

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())

# Parameter counts at 512/512 features of the heads in config.yaml (documented there).
PAPER_COUNTS = {
    "concat": 295_554,
    "xattn_txt2img": 757_570,
    "xattn_img2txt": 757_570,
    "xattn_bidir": 1_466_786,
    "gated_sum": 328_772,
    "weighted_sum": 295_810,
    "bilinear": 295_810,
    "late": 328_964,
    "image_only": 164_482,
    "text_only": 164_482,
}


def schema_defaults(name: str) -> dict:
    """The hyper-parameter defaults that the schema fills for head ``name``."""
    entry = SCHEMA["$defs"][f"{name}_method"]
    if "allOf" in entry:
        entry = SCHEMA["$defs"][entry["allOf"][0]["$ref"].split("/")[-1]]
    return {
        key: spec["default"]
        for key, spec in entry["properties"].items()
        if key not in ("head", "training", "param_match", "scaling")
    }


def schema_heads() -> set[str]:
    """The heads that a method's ``head`` may name, and those with a schema branch."""
    methods = SCHEMA["properties"]["methods"]["additionalProperties"]
    branches = {b["if"]["properties"]["head"]["const"] for b in methods["allOf"]}
    assert branches == set(methods["properties"]["head"]["enum"])
    return branches


def methods_of(preset: str) -> dict:
    return yaml.safe_load((ROOT / preset).read_text())["methods"]


def test_every_registered_method_has_a_schema_entry_and_back():
    assert schema_heads() == set(FUSION_METHODS) | {PLUGIN}


def test_the_schemas_families_are_the_registrys():
    entry = SCHEMA["$defs"]["python_method"]["properties"]["family"]
    assert entry["enum"] == list(FAMILIES)
    assert set(HEAD_FAMILIES.values()) <= set(FAMILIES)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_schema_defaults_are_the_constructor_defaults(name):
    defaults = schema_defaults(name)
    constructor = hyper_parameters(head_class(name), {})
    assert set(defaults) == set(constructor)
    for key, value in defaults.items():
        expected = constructor[key]
        assert value == (list(expected) if isinstance(expected, tuple) else expected), key


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_every_method_module_is_hashable_for_rerun_triggers(name):
    assert method_module(name).startswith("fusion.")
    assert len(code_hash(method_module(name))) == 16


def test_the_three_cross_attention_names_share_one_module():
    assert {method_module(f"xattn_{d}") for d in ("txt2img", "img2txt", "bidir")} == {
        "fusion.xattn"
    }


def test_listing_the_registry_does_not_import_torch():
    code = "import sys, alignfuse.fusion; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paper_config_has_every_family_with_its_documented_size():
    """Every family once under its own name, and the tuned labels exact copies of their heads."""
    methods = methods_of("config.yaml")
    shared = {label: config for label, config in methods.items() if "head" not in config}
    assert set(shared) == set(FUSION_METHODS)
    for name, config in shared.items():
        count = sum(p.numel() for p in build_head(name, 512, 512, config).parameters())
        assert count == PAPER_COUNTS[name], name
    for label, config in methods.items():
        if label not in shared:
            head = config["head"]
            assert label == f"{head}_tuned"
            assert {k: v for k, v in config.items() if k != "head"} == shared[head]
    for name in ("xattn_txt2img", "xattn_img2txt"):  # the paper's ~757K
        assert abs(PAPER_COUNTS[name] - 757_000) < 0.002 * 757_000


def test_param_matched_preset_sizes_every_head_to_concat_within_one_percent():
    methods = methods_of("workflow/presets/param_matched.yaml")
    matched = {label: c for label, c in methods.items() if c.get("param_match") == 295_554}
    assert set(matched) == set(FUSION_METHODS) - {"concat"}
    for label, config in matched.items():
        hparams = {k: v for k, v in config.items() if k != "head"}
        head = build_head(config.get("head", label), 512, 512, hparams)
        count = sum(p.numel() for p in head.parameters())
        assert abs(count - 295_554) <= 0.01 * 295_554, (label, count)


def test_param_matched_preset_keeps_the_papers_cross_attention_head_beside_the_matched_one():
    paper = methods_of("workflow/presets/param_matched.yaml")["xattn_txt2img_paper"]
    hparams = {k: v for k, v in paper.items() if k != "head"}
    assert hparams == methods_of("config.yaml")["xattn_txt2img"]
    count = sum(p.numel() for p in build_head(paper["head"], 512, 512, hparams).parameters())
    assert count == PAPER_COUNTS["xattn_txt2img"]


def test_smoke_preset_stays_small():
    methods = methods_of("workflow/presets/smoke.yaml")
    assert len({spec.get("head", label) for label, spec in methods.items()}) <= 4
    assert len(methods) <= 5


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_every_head_classifies_the_fused_representation_it_names(name):
    """Diagnostics read ``fused``; the logits must be ``readout`` of exactly that, per pair and
    through the per-modality parts that evaluation uses."""
    import torch

    from alignfuse.fusion.head import FusionHead

    torch.manual_seed(0)
    head = build_head(name, 12, 10, methods_of("workflow/presets/smoke.yaml").get(name, {}))
    head.eval()
    assert isinstance(head, FusionHead)
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    with torch.no_grad():
        fused = head.fused(image, text)
        assert fused.dim() == 2 and len(fused) == 5
        torch.testing.assert_close(head(image, text), head.readout(fused), rtol=0, atol=0)
        parts = head.combine(head.encode_image(image), head.encode_text(text))
        torch.testing.assert_close(parts, head(image, text), rtol=1e-5, atol=1e-6)
