"""Registry of fusion heads: config name -> "module:class", imported only when a head is built.

Keeping the registry as strings lets the Snakefile list methods and hash their source without
importing torch. Adding a method is adding a module and one line here; building a head from its
config lives in :mod:`alignfuse.fusion.build`, which every training job runs.
"""

from __future__ import annotations

import importlib

FUSION_METHODS = {
    "concat": "alignfuse.fusion.concat:ConcatHead",
    "xattn_txt2img": "alignfuse.fusion.xattn:TextToImageHead",
    "xattn_img2txt": "alignfuse.fusion.xattn:ImageToTextHead",
    "xattn_bidir": "alignfuse.fusion.xattn:BidirectionalHead",
    "gated_sum": "alignfuse.fusion.weighted:GatedSumHead",
    "weighted_sum": "alignfuse.fusion.weighted:WeightedSumHead",
    "bilinear": "alignfuse.fusion.bilinear:LowRankBilinearHead",
    "late": "alignfuse.fusion.late:LateFusionHead",
    "image_only": "alignfuse.fusion.unimodal:ImageOnlyHead",
    "text_only": "alignfuse.fusion.unimodal:TextOnlyHead",
}


# Keys of a study's method spec that are settings of the study, not arguments of the head.
METHOD_SETTINGS = ("head", "training", "scaling")

# How each head's modalities meet. Outputs and the theory group heads by family, never by name:
# a comparison carries its method's family, and the gap figure, advise and the crossovers read it.
CONCATENATION = "concatenation"  # a shared projection of [v; t]: linear in each modality
ATTENTION = "attention"  # modalities meet in attention scores: bilinear in them
WEIGHTED_SUM = "weighted sum"  # projections added with fixed or gated weights
BILINEAR = "bilinear pooling"  # a low-rank product of projections
LATE = "late"  # one classifier per modality, logits combined
UNIMODAL = "unimodal baseline"  # one modality only: chance on balanced pairs
HEAD_FAMILIES = {
    "concat": CONCATENATION,
    "xattn_txt2img": ATTENTION,
    "xattn_img2txt": ATTENTION,
    "xattn_bidir": ATTENTION,
    "gated_sum": WEIGHTED_SUM,
    "weighted_sum": WEIGHTED_SUM,
    "bilinear": BILINEAR,
    "late": LATE,
    "image_only": UNIMODAL,
    "text_only": UNIMODAL,
}


def method_module(name: str) -> str:
    """Dotted module path (relative to the package) that implements method ``name``."""
    return FUSION_METHODS[name].split(":")[0].removeprefix("alignfuse.")


def head_family(name: str) -> str:
    """The family of head ``name`` (see ``HEAD_FAMILIES``)."""
    return HEAD_FAMILIES[name]


def head_class(name: str):
    module, cls = FUSION_METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)
