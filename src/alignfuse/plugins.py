"""Plug-in code named in a study's config as "module:attribute" (a fusion head's class).

A plug-in module is found on the Python path (an installed package, or PYTHONPATH) or in the
working directory, the project folder a user runs Snakemake in, whose jobs run there too. Its
source is hashed without importing it, so the plan can rerun exactly the jobs that use it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from alignfuse.errors import AlignfuseError

MISSING = "missing"


@contextmanager
def working_directory_on_path():
    """The working directory importable (after the Python path) while the block runs."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.append(here)
    try:
        yield
    finally:
        if added:
            sys.path.remove(here)


def source_path(module: str) -> Path | None:
    """The source file of plug-in ``module``, or None where it cannot be found."""
    with working_directory_on_path():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


def source_hash(module: str) -> str:
    """Short sha256 of a plug-in module's source; ``missing`` where it cannot be found here
    (the job that imports it then says why)."""
    path = source_path(module)
    return MISSING if path is None else hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load(reference: str, key: str):
    """The attribute that ``reference`` ("module:attribute") names; one error naming the config
    ``key`` and the fix where the module or the attribute is missing."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise AlignfuseError(
            f"config key '{key}': '{reference}' must be 'module:attribute' (my_heads:MyHead)"
        )
    try:
        with working_directory_on_path():
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise AlignfuseError(
            f"config key '{key}': cannot import module '{module_name}' ({err}); put {module_name}.py "
            "in the working directory, on PYTHONPATH, or install it"
        ) from err
    found = getattr(module, attribute, None)
    if found is None:
        raise AlignfuseError(
            f"config key '{key}': module '{module_name}' ({module.__file__}) has no '{attribute}'"
        )
    return found
