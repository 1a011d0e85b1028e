"""Parameter matching: choose a head's width so that its parameter count is closest to a target.

Comparing fusion families at equal capacity needs heads of equal size. Each head class maps one
integer width onto its hyper-parameters (its ``with_width``); the search here counts parameters on
the meta device (nothing is allocated) and picks the width whose count is nearest the target.
"""

from __future__ import annotations

import inspect

import torch

from alignfuse.errors import AlignfuseError

MAX_WIDTH = 1 << 16
TOLERANCE = 0.1  # a best match further than this from the target is an error


def hyper_parameters(cls, config: dict) -> dict:
    """``config`` on top of the constructor's defaults: every hyper-parameter of the head."""
    defaults = {
        name: p.default
        for name, p in list(inspect.signature(cls).parameters.items())[2:]
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **config}


def count_parameters(cls, d_image: int, d_text: int, config: dict) -> int:
    """Parameters of ``cls(d_image, d_text, **config)``, built on the meta device."""
    with torch.device("meta"):
        head = cls(d_image, d_text, **config)
    return sum(p.numel() for p in head.parameters())


def match_parameters(
    name: str, cls, d_image: int, d_text: int, config: dict, target: int
) -> tuple[dict, int]:
    """The config at the width whose parameter count is closest to ``target``, and that count.

    Parameter counts grow with the width, so the smallest width reaching the target is found by
    doubling and bisection; it or the width below it is the closest (ties go to the smaller).
    Deterministic: it depends on the config and feature widths only.
    """
    config = hyper_parameters(cls, config)

    def at(width: int) -> tuple[dict, int]:
        sized = cls.with_width(config, width)
        return sized, count_parameters(cls, d_image, d_text, sized)

    high = 1
    while at(high)[1] < target and high < MAX_WIDTH:
        high *= 2
    low = high // 2  # count(low) < target, or low == 0
    while high - low > 1:
        mid = (low + high) // 2
        if at(mid)[1] < target:
            low = mid
        else:
            high = mid
    candidates = [at(w) for w in (low, high) if w >= 1]
    sized, count = min(candidates, key=lambda c: abs(c[1] - target))
    if abs(count - target) > TOLERANCE * target:
        raise AlignfuseError(
            f"config key 'methods.{name}.param_match': no width of this head comes within "
            f"{TOLERANCE:.0%} of {target:,} parameters at {d_image}/{d_text}-d features (closest: "
            f"{count:,}); choose a target between the head's smallest and largest sizes or change "
            "its fixed hyper-parameters"
        )
    return sized, count
