"""Safe, read-in-place access to zip archives of datasets.

Images are read straight from the zip (no thousands of loose files on shared file systems), so
members are found by file name, not by a fixed folder prefix (the public Flickr8k image zip spells
its folder ``Flicker8k_Dataset/`` and carries ``__MACOSX/`` entries). Every archive is checked
before use: an entry that could escape a directory if the zip were ever extracted is refused, and a
damaged zip becomes one clear error instead of a traceback deep inside a feature job.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from PIL import Image

from alignfuse.errors import AlignfuseError

IGNORED_PREFIXES = ("__MACOSX/",)
# What reading and decoding one image member can raise when its bytes are damaged.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    Image.DecompressionBombError,
)
DRIVE = re.compile(r"^[A-Za-z]:")


def is_ignored(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or PurePosixPath(name).name.startswith("._")


def damaged(path: str | Path, reason: object) -> AlignfuseError:
    return AlignfuseError(
        f"{path}: the zip archive is truncated or corrupt ({reason}); "
        "delete it and download it again (or point the config at an intact copy)"
    )


def escaping_path(name: str) -> str | None:
    """Why an archive entry's name would land outside the extraction folder (None if it stays)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or DRIVE.match(name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has a '..' path component"
    return None


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is refused: it would land outside the extraction folder, or it is a symlink."""
    if reason := escaping_path(info.filename):
        return reason
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    return None


def open_archive(path: str | Path) -> zipfile.ZipFile:
    """Open a zip for reading after checking that it is intact and every entry is safe."""
    path = Path(path)
    if not path.is_file():
        raise AlignfuseError(
            f"{path}: archive not found; run the workflow's data stage to download it"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise damaged(path, exc) from None
    for info in zf.infolist():
        reason = unsafe_reason(info)
        if reason:
            zf.close()
            raise AlignfuseError(
                f"{path}: entry '{info.filename}' {reason}; refusing an unsafe archive. "
                "Use the dataset's original archive from its official source"
            )
    return zf


def read_member(zf: zipfile.ZipFile, member: str) -> bytes:
    """The bytes of one member; a failed CRC or a cut-off entry names the archive and the fix."""
    try:
        return zf.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise damaged(zf.filename, exc) from None


def image_members(zip_path: str | Path, suffix: str = ".jpg") -> dict[str, str]:
    """Map each image file name (e.g. ``1000268201_693b08cb0e.jpg``) to its member name in the zip."""
    with open_archive(zip_path) as zf:
        members: dict[str, str] = {}
        for info in zf.infolist():
            if (
                info.is_dir()
                or is_ignored(info.filename)
                or not info.filename.lower().endswith(suffix)
            ):
                continue
            name = PurePosixPath(info.filename).name
            if name in members:
                raise AlignfuseError(
                    f"{zip_path}: image '{name}' appears twice ({members[name]}, {info.filename}); "
                    "it is not the dataset's image archive: use the original from its official source"
                )
            members[name] = info.filename
    return members
