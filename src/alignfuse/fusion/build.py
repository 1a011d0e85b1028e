"""Building a head from its config: ``param_match`` resolved to a width, then the class instantiated.

Kept apart from the registry so that the source every training job runs is hashed as one module,
while adding a registry entry reruns nothing.
"""

from __future__ import annotations

import json
import sys
from functools import cache

from alignfuse.fusion import head_class


@cache
def _matched(
    name: str, label: str, d_image: int, d_text: int, config_json: str, target: int
) -> str:
    from alignfuse.fusion.sizing import hyper_parameters, match_parameters

    cls = head_class(name)
    config = json.loads(json.dumps(hyper_parameters(cls, json.loads(config_json))))
    sized, count = match_parameters(label, cls, d_image, d_text, config, target)
    print(
        f"param_match: methods.{label} ({name}) at {d_image}/{d_text}-d features: {count:,} parameters "
        f"(target {target:,}) with {json.dumps(sized, sort_keys=True)}",
        file=sys.stderr,
    )
    return json.dumps(sized, sort_keys=True)


def resolve_config(
    name: str, d_image: int, d_text: int, head_config: dict, label: str | None = None
) -> dict:
    """Constructor arguments of head ``name``: its config, with ``param_match`` turned into a width.

    Without ``param_match`` this is the config itself. With ``param_match: N`` it is every
    hyper-parameter of the head, the width chosen so that the parameter count is closest to N
    (see :mod:`alignfuse.fusion.sizing`); the choice is printed once per process to stderr (the
    job's log). ``label`` is the method's label in the config (default: the head's name), which
    messages name.
    """
    config = dict(head_config)
    target = config.pop("param_match", None)
    if target is None:
        return config
    config_json = json.dumps(config, sort_keys=True)
    return json.loads(_matched(name, label or name, d_image, d_text, config_json, target))


def build_head(name: str, d_image: int, d_text: int, head_config: dict, label: str | None = None):
    """Instantiate head ``name`` for features of the given widths with its config hyper-parameters.

    The constructor arguments actually used (after param_match) are kept as ``head.hparams``.
    """
    config = resolve_config(name, d_image, d_text, head_config, label)
    head = head_class(name)(d_image, d_text, **config)
    head.hparams = config
    return head
