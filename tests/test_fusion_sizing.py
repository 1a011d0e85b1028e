"""Parameter matching: the width whose parameter count is closest to a target."""

from __future__ import annotations

import pytest
import torch

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import head_class
from alignfuse.fusion.build import build_head, resolve_config
from alignfuse.fusion.concat import ConcatHead
from alignfuse.fusion.sizing import count_parameters, hyper_parameters, match_parameters


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_counting_on_the_meta_device_agrees_with_a_real_head():
    config = {"hidden": [30, 20], "dropout": 0.1}
    assert count_parameters(ConcatHead, 12, 10, config) == n_params(ConcatHead(12, 10, **config))


def test_hyper_parameters_fill_the_constructor_defaults():
    assert hyper_parameters(ConcatHead, {"dropout": 0.0}) == {"hidden": (256, 128), "dropout": 0.0}


@pytest.mark.parametrize("target", [500, 1234, 5000, 20_000])
@pytest.mark.parametrize(("name", "config"), [("concat", {"hidden": [4, 2]}), ("bilinear", {})])
def test_chosen_width_is_the_closest_of_all_widths(name, target, config):
    cls = head_class(name)
    full = hyper_parameters(cls, config)
    sized, count = match_parameters(name, cls, 12, 10, config, target)
    every = [count_parameters(cls, 12, 10, cls.with_width(full, w)) for w in range(1, 400)]
    assert abs(count - target) == min(abs(c - target) for c in every)
    assert count == count_parameters(cls, 12, 10, sized)


def test_matching_is_deterministic_and_independent_of_the_seed():
    torch.manual_seed(0)
    first = build_head("gated_sum", 512, 512, {"param_match": 100_000}).hparams
    torch.manual_seed(1)
    assert build_head("gated_sum", 512, 512, {"param_match": 100_000}).hparams == first


def test_without_param_match_the_config_is_used_as_given():
    config = {"hidden": [8], "dropout": 0.0}
    assert resolve_config("concat", 6, 4, config) == config
    assert build_head("concat", 6, 4, config).hparams == config


def test_the_chosen_width_is_reported_once(capsys):
    for _ in range(3):  # one head per seed
        build_head("bilinear", 40, 30, {"hidden": [8], "param_match": 3_000})
    err = capsys.readouterr().err
    assert err.count("param_match: methods.bilinear") == 1
    assert '"rank": 37' in err and "2,986 parameters (target 3,000)" in err


@pytest.mark.parametrize("target", [10, 10**12])
def test_an_unreachable_target_is_a_config_error_naming_the_key(target):
    with pytest.raises(AlignfuseError, match=r"methods\.late\.param_match"):
        build_head("late", 512, 512, {"hidden": [8], "param_match": target})
