"""Registry of fusion heads: config name -> "module:class", imported only when a head is built.

Keeping the registry as strings lets the Snakefile list methods and hash their source without
importing torch. Adding a method is adding a module and one line here; building a head from its
config lives in :mod:`alignfuse.fusion.build`, which every training job runs. A study's own head
needs no line here: ``head: python`` with ``model: "module:Class"`` (docs/extending.md), and a
head is then referred to by that "module:Class" wherever a registry name would be.
"""

from __future__ import annotations

import importlib

from alignfuse.errors import AlignfuseError
from alignfuse.plugins import load

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


# The ``head`` of a method whose class is the study's own, named by its ``model``.
PLUGIN = "python"

# Keys of a study's method spec that are settings of the study, not arguments of the head.
METHOD_SETTINGS = ("head", "model", "family", "training", "scaling")

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
FAMILIES = (CONCATENATION, ATTENTION, WEIGHTED_SUM, BILINEAR, LATE, UNIMODAL)


def head_reference(spec: dict) -> str:
    """What builds a method's head: its registry name, or a plug-in's "module:Class"."""
    return spec["model"] if spec["head"] == PLUGIN else spec["head"]


def is_plugin(reference: str) -> bool:
    return reference not in FUSION_METHODS and ":" in reference


def method_module(name: str) -> str:
    """Dotted module path (relative to the package) that implements method ``name``."""
    return FUSION_METHODS[name].split(":")[0].removeprefix("alignfuse.")


def head_family(reference: str) -> str:
    """The family of a head: the registry's for a built-in head (``HEAD_FAMILIES``), the class's
    own ``family`` for a plug-in (importing it)."""
    if reference in HEAD_FAMILIES:
        return HEAD_FAMILIES[reference]
    return head_class(reference).family  # a plug-in's, or the registry's error


def head_class(reference: str):
    """The class of a registry name, or of a plug-in's "module:Class" (imported from the
    Python path or the working directory)."""
    if is_plugin(reference):
        return load(reference, f"methods.<label>.model ({reference})")
    if reference not in FUSION_METHODS:
        raise AlignfuseError(
            f"head '{reference}' is not in the fusion registry ({', '.join(FUSION_METHODS)}); "
            "for a head of your own use head: python with model: module:Class"
        )
    module, cls = FUSION_METHODS[reference].split(":")
    return getattr(importlib.import_module(module), cls)
