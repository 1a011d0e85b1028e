"""Registry of fusion heads: config name -> "module:class", imported only when a head is built.

Keeping the registry as strings lets the Snakefile list methods and hash their source without
importing torch. Adding a method is adding a module and one line here.
"""

from __future__ import annotations

import importlib

FUSION_METHODS = {
    "concat": "alignfuse.fusion.concat:ConcatHead",
    "xattn": "alignfuse.fusion.xattn:CrossAttentionHead",
}


def method_module(name: str) -> str:
    """Dotted module path (relative to the package) that implements method ``name``."""
    return FUSION_METHODS[name].split(":")[0].removeprefix("alignfuse.")


def head_class(name: str):
    module, cls = FUSION_METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_head(name: str, d_image: int, d_text: int, head_config: dict):
    """Instantiate method ``name`` for features of the given widths with its config hyper-parameters."""
    return head_class(name)(d_image, d_text, **head_config)
