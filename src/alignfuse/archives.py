"""Safe, read-in-place access to zip archives of datasets.

Images are read straight from the zip (no thousands of loose files on shared file systems), so
members are found by file name, not by a fixed folder prefix (the public Flickr8k image zip spells
its folder ``Flicker8k_Dataset/`` and carries ``__MACOSX/`` entries).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from alignfuse.errors import AlignfuseError

IGNORED_PREFIXES = ("__MACOSX/",)


def is_ignored(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or PurePosixPath(name).name.startswith("._")


def image_members(zip_path: str | Path, suffix: str = ".jpg") -> dict[str, str]:
    """Map each image file name (e.g. ``1000268201_693b08cb0e.jpg``) to its member name in the zip."""
    with zipfile.ZipFile(zip_path) as zf:
        members: dict[str, str] = {}
        for info in zf.infolist():
            if info.is_dir() or is_ignored(info.filename) or not info.filename.lower().endswith(suffix):
                continue
            name = PurePosixPath(info.filename).name
            if name in members:
                raise AlignfuseError(
                    f"{zip_path}: image '{name}' appears twice ({members[name]}, {info.filename}); "
                    "the archive is not a Flickr8k image archive"
                )
            members[name] = info.filename
    return members
