"""Partial information decomposition: how much of what the image and the text tell about a label
is redundant, unique to one view or synergistic, estimated from discretized features."""

from __future__ import annotations

from alignfuse.pid.broja import broja
from alignfuse.pid.contributions import decompose, joint_table, null_floor
from alignfuse.pid.discretize import Codebook, fit_codebook

__all__ = ["Codebook", "broja", "decompose", "fit_codebook", "joint_table", "null_floor"]
