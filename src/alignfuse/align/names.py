"""Alignment names: how a feature set is made from a backbone's features, spelled in its path.

``raw`` is the encoders' features; ``contrastive`` their CLIP-style projections into a shared
space (fitted on the train split); ``<kind>-<level>`` degrades the text side of ``raw`` (kind
``rotation``, ``noise`` or ``shuffle``, level in [0, 1]) and ``contrastive+<kind>-<level>`` that
of ``contrastive``. So ``clip@rotation-0.5`` names its own recipe in every path and table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from alignfuse.errors import AlignfuseError

BASES = ("raw", "contrastive")
DEGRADATION_KINDS = ("rotation", "noise", "shuffle")
PATTERN = re.compile(r"^(?:(raw|contrastive)\+)?([a-z]+)-([0-9.]+)$")


@dataclass(frozen=True)
class Alignment:
    """A parsed alignment name: the base feature set and an optional text degradation."""

    name: str
    base: str
    kind: str | None = None
    level: float = 0.0

    @property
    def degraded(self) -> bool:
        return self.kind is not None


def parse_alignment(name: str, key: str = "alignments") -> Alignment:
    """The recipe an alignment name spells; an error naming the config ``key`` if it spells none."""
    if name in BASES:
        return Alignment(name, name)
    match = PATTERN.match(name)
    if not match or match.group(2) not in DEGRADATION_KINDS:
        raise AlignfuseError(
            f"config key '{key}': '{name}' is not an alignment; use raw, contrastive, "
            f"<kind>-<level> or contrastive+<kind>-<level> with kind one of "
            f"{', '.join(DEGRADATION_KINDS)} (e.g. rotation-0.5)"
        )
    base, kind, text = match.group(1) or "raw", match.group(2), match.group(3)
    try:
        level = float(text)
    except ValueError:
        level = math.nan
    if not 0.0 <= level <= 1.0:
        raise AlignfuseError(
            f"config key '{key}': the {kind} level of '{name}' is {text}; use a level from 0 "
            "(features unchanged) to 1 (fully degraded)"
        )
    return Alignment(name, base, kind, level)
