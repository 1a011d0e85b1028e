"""Content hashes of the package's source modules, used as Snakemake rerun triggers.

A rule's ``params`` carry the hash of the modules its jobs run, so editing a module reruns exactly
the jobs that use it; file contents (not mtimes, which a fresh clone resets) decide.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def module_files(module: str) -> list[Path]:
    """Source files of a dotted module path relative to the package ("fusion.concat", "figures")."""
    base = PACKAGE_DIR.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    path = base.with_suffix(".py")
    if not path.is_file():
        raise KeyError(f"no module alignfuse.{module}")
    return [path]


@cache
def code_hash(*modules: str) -> str:
    """Short sha256 over the named modules' source, independent of argument order."""
    digest = hashlib.sha256()
    for path in sorted({p for m in modules for p in module_files(m)}):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
