"""Content hashes of the source a job runs, used as Snakemake rerun triggers.

A rule names the entry modules its jobs run; the hash covers those and every ``alignfuse`` module
they import, directly or not (found by reading the source, not by importing it), so editing any
module a job runs reruns exactly the jobs that use it. File contents decide, not mtimes, which a
fresh clone resets. Registries (``fusion``, ``figures``) are tables of names: a job depends on its
own entry, which the rule names, so adding a method or a figure reruns nothing else.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from alignfuse.plugins import source_hash

PACKAGE = "alignfuse"
PACKAGE_DIR = Path(__file__).resolve().parent
REGISTRIES = frozenset({"fusion", "figures"})
# A line that starts an import of the package (inside a function too).
IMPORT_LINE = re.compile(
    rf"^[ \t]*(?:from[ \t]+{PACKAGE}[\w.]*[ \t]+import\b|import[ \t]+{PACKAGE}\b)", re.M
)
# The most lines one import statement may span (a parenthesised list of names).
MAX_IMPORT_LINES = 60


def module_path(module: str) -> Path:
    """Source file of a dotted module path relative to the package ("fusion.concat", "train.condition")."""
    base = PACKAGE_DIR.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise KeyError(f"no module {PACKAGE}.{module}")


def is_module(module: str) -> bool:
    try:
        module_path(module)
    except KeyError:
        return False
    return True


def imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source (lazy imports too)."""
    path = module_path(module)
    return set(imports_in(path, path.stat().st_mtime_ns))


@cache
def imports_in(path: Path, mtime_ns: int) -> frozenset[str]:
    """Package imports in the source at ``path``, parsed once per version of the file: every rule's
    hash walks the same shared modules, and parsing dominated the workflow's start-up."""
    found: set[str] = set()
    for node in import_statements(path.read_text()):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if is_module(n.removeprefix(f"{PACKAGE}.")) else node.module for n in names]
        else:
            continue
        found.update(
            name.removeprefix(f"{PACKAGE}.") for name in names if name.startswith(f"{PACKAGE}.")
        )
    return frozenset(found)


def import_statements(source: str) -> Iterator[ast.stmt]:
    """The package's import statements in ``source``: each line that starts one, parsed with as
    many following lines as complete it. Parsing whole modules took most of the workflow's
    start-up; an import-like line in a string counts too, which can only add a dependency."""
    lines = source.splitlines()
    for match in IMPORT_LINE.finditer(source):
        first = source.count("\n", 0, match.start())
        for last in range(first, min(first + MAX_IMPORT_LINES, len(lines))):
            try:
                yield from ast.parse("\n".join(lines[first : last + 1]).strip()).body
                break
            except SyntaxError:
                continue


def dependencies(*modules: str) -> set[str]:
    """``modules`` and everything they import from the package, registries left out."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(m for m in imported_modules(module) if m not in REGISTRIES and m not in seen)
    return seen


@cache
def code_hash(*modules: str) -> str:
    """Short sha256 over the source of ``modules`` and their dependencies, order-independent."""
    digest = hashlib.sha256()
    for path in sorted({module_path(m) for m in dependencies(*modules)}):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def plugin_hash(module: str) -> str:
    """Short sha256 of a plug-in module's source (``library: python`` encoders, ``head: python``
    heads), found on the Python path or in the working directory without importing it, so that
    editing the plug-in reruns its jobs. ``missing`` when it cannot be found here (its job then
    says why)."""
    return source_hash(module)
