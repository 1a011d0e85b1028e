"""Heads of a study's own (``head: python``): the contract, checked before any job runs."""

import copy
import textwrap

import pytest
import torch
import yaml
from plugin_head import TokenAttentionHead
from workflow_runner import ROOT

from alignfuse import grid
from alignfuse.config import check_trains_as_ensemble, validate_config
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import ATTENTION, head_class, head_family, head_reference
from alignfuse.fusion.build import build_head
from alignfuse.fusion.plugin import check_plugin_class, check_plugin_head
from alignfuse.plugins import MISSING, source_hash
from alignfuse.theory.complexity import effective_dimension

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
REFERENCE = "plugin_head:TokenAttentionHead"


def test_a_plugin_is_built_by_its_module_and_class_like_a_registry_head():
    head = build_head(REFERENCE, 12, 10, {"tokens": 3, "dim": 8})
    assert isinstance(head, TokenAttentionHead) and head.hparams == {"tokens": 3, "dim": 8}
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)
    assert head_class(REFERENCE) is TokenAttentionHead and head_family(REFERENCE) == ATTENTION
    assert head_reference({"head": "python", "model": REFERENCE}) == REFERENCE
    assert head_reference({"head": "concat"}) == "concat"


def test_the_test_plugin_meets_the_contract_and_counts_its_parameters():
    assert check_plugin_class("mine", REFERENCE) == ATTENTION
    count = check_plugin_head("mine", REFERENCE, {"tokens": 4, "dim": 8}, 12, 10)
    assert count == sum(p.numel() for p in TokenAttentionHead(12, 10, 4, 8).parameters())
    check_trains_as_ensemble("mine", REFERENCE, {"tokens": 4, "dim": 8, "dropout": 0.5}, 12, 10)


def test_the_theory_counts_a_plugin_by_its_family():
    assert effective_dimension(REFERENCE, 12, 10)[0] == 120  # attention: full-rank d_v·d_t
    factored, basis = effective_dimension(REFERENCE, 12, 10, {"dim": 8}, "factored")
    assert factored == 22 * 8 and "d_k = 8" in basis


BROKEN = {
    "not a head": (
        "class Head:\n    family = 'attention'\n",
        "not a subclass of alignfuse.fusion.head.FusionHead",
    ),
    "no family": (
        "from plugin_head import TokenAttentionHead\n"
        "class Head(TokenAttentionHead):\n    family = None\n",
        "declares family None",
    ),
    "one logit": (
        "import torch\nfrom plugin_head import TokenAttentionHead\n"
        "class Head(TokenAttentionHead):\n"
        "    def readout(self, fused):\n        return self.out(fused)[..., :1]\n",
        "logits of shape (4, 1)",
    ),
    "torch dropout": (
        "import torch\nfrom plugin_head import TokenAttentionHead\n"
        "class Head(TokenAttentionHead):\n"
        "    def __init__(self, d_image, d_text, **kw):\n"
        "        super().__init__(d_image, d_text, **kw)\n"
        "        self.drop = torch.nn.Dropout(0.1)\n",
        "uses torch's dropout (drop)",
    ),
    "forward beside fused": (
        "from plugin_head import TokenAttentionHead\n"
        "class Head(TokenAttentionHead):\n"
        "    def forward(self, image, text):\n        return 2 * super().forward(image, text)\n",
        "forward is not readout(fused(image, text))",
    ),
    "no factored parts": (
        "import torch\nfrom alignfuse.fusion.head import FusionHead\n"
        "class Head(FusionHead):\n    family = 'concatenation'\n"
        "    def __init__(self, d_image, d_text):\n"
        "        super().__init__()\n        self.out = torch.nn.Linear(d_image + d_text, 2)\n"
        "    def fused(self, image, text):\n        return torch.cat([image, text], -1)\n"
        "    def readout(self, fused):\n        return self.out(fused)\n",
        "implement encode_image, encode_text and join",
    ),
    "bad argument": (
        "from plugin_head import TokenAttentionHead\nclass Head(TokenAttentionHead):\n    pass\n",
        "failed (",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_plugin_is_one_error_naming_the_method(case, tmp_path, monkeypatch):
    source, message = BROKEN[case]
    module = f"broken_{list(BROKEN).index(case)}"  # a module of its own: imports are cached
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)  # imported from the working directory, as in a user's project
    config = {"colour": "red"} if case == "bad argument" else {}
    with pytest.raises(AlignfuseError) as info:
        check_plugin_class("mine", f"{module}:Head")
        check_plugin_head("mine", f"{module}:Head", config, 12, 10)
    assert "methods.mine" in str(info.value) and message in str(info.value), str(info.value)


def test_a_missing_module_or_class_names_the_key_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        AlignfuseError, match=r"methods\.mine\.model.*cannot import module 'nowhere'"
    ):
        check_plugin_class("mine", "nowhere:Head")
    (tmp_path / "somewhere.py").write_text("x = 1\n")
    with pytest.raises(AlignfuseError, match=r"has no 'Head'"):
        check_plugin_class("mine", "somewhere:Head")
    assert source_hash("nowhere") == MISSING and source_hash("somewhere") != MISSING


def smoke_with_plugin(tmp_path, source: str) -> dict:
    """The smoke preset with one more method, a plug-in in ``tmp_path`` (the working directory)."""
    (tmp_path / "my_head.py").write_text(textwrap.dedent(source))
    config = copy.deepcopy(yaml.safe_load((ROOT / "workflow/presets/smoke.yaml").read_text()))
    config["methods"]["mine"] = {"head": "python", "model": "my_head:Head", "tokens": 2, "dim": 8}
    return config


def test_the_plan_records_a_plugins_family_and_declares_it_against_concat(
    tmp_path, monkeypatch, plugin_path
):
    config = smoke_with_plugin(tmp_path, "from plugin_head import TokenAttentionHead as Head\n")
    monkeypatch.chdir(tmp_path)
    config = validate_config(config, SCHEMA)
    assert config["methods"]["mine"]["family"] == ATTENTION
    labels = grid.comparison_spec(config)["labels"]
    assert labels["mine"] == {
        "head": "my_head:Head",
        "family": ATTENTION,
        "recipe": labels["concat"]["recipe"],
    }
    assert grid.train_slice(config, "mine", "0-4")["head"] == "my_head:Head"
    assert "model" not in grid.train_slice(config, "mine", "0-4")["hparams"]
    validate_config(config, SCHEMA)  # validated again (as alignfuse cost does): the same family


def test_the_plan_refuses_a_broken_plugin_naming_the_method(tmp_path, monkeypatch, plugin_path):
    config = smoke_with_plugin(
        tmp_path,
        """
        from plugin_head import TokenAttentionHead
        class Head(TokenAttentionHead):
            def readout(self, fused):
                return self.out(fused)[..., :1]
        """,
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AlignfuseError, match=r"methods\.mine.*shape \(4, 1\).*backbone 'aligned'"):
        validate_config(config, SCHEMA)


def test_the_documented_example_meets_the_contract(tmp_path, monkeypatch):
    """docs/extending.md's head, as written, passes the plan's checks and trains stacked."""
    page = (ROOT / "docs/extending.md").read_text(encoding="utf-8")
    source = page.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_heads.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    model = "my_heads:TokenAttentionHead"
    assert check_plugin_class("resampler", model) == ATTENTION
    config = {"tokens": 8, "dim": 64}
    assert check_plugin_head("resampler", model, config, 512, 512) > 0
    check_trains_as_ensemble("resampler", model, config, 32, 32)
