"""Flickr30k's images as one zip that the features stage reads in place, like every other kind.

The maintainers hand the images out only through a request form, as ``flickr30k-images.tar.gz``
(JPEGs named by Flickr id under ``flickr30k-images/``). A gzipped tar has no random access, so its
members are streamed once, without extracting anything, into a stored (uncompressed: JPEGs do
not shrink) zip; a zip of the images is linked instead, and an extracted directory is packed like
the tar. Tar members get the checks zip entries get (no absolute or ``..`` paths, no links or
devices), and the archive's sha256 is computed on the way and checked when the config gives one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from alignfuse.data.archives import escaping_path, image_members, is_ignored
from alignfuse.data.download import CHUNK, link_local
from alignfuse.errors import AlignfuseError

KEY = "dataset.flickr30k"
SUFFIX = ".jpg"


class HashingReader:
    """A binary file that feeds everything read from it to a sha256."""

    def __init__(self, f):
        self.f = f
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha256.update(data)
        return data

    def drain(self) -> str:
        """Read what the tar reader left (end-of-archive padding) and return the digest."""
        while self.read(CHUNK):
            pass
        return self.sha256.hexdigest()


def tar_problem(info: tarfile.TarInfo) -> str | None:
    """Why a tar member is refused (None for a regular file or a directory that stays inside)."""
    if reason := escaping_path(info.name):
        return reason
    if info.issym() or info.islnk():
        return "is a link"
    if not (info.isfile() or info.isdir()):
        return "is not a regular file or directory"
    return None


class ImageZip:
    """Writes images into a new stored zip, one per file name, at a temporary path."""

    def __init__(self, source: Path, out: Path):
        self.source = source
        self.out = out
        self.part = out.with_name(f".{out.name}.{os.getpid()}.part")
        self.names: dict[str, str] = {}

    def __enter__(self):
        self.zf = zipfile.ZipFile(self.part, "w", zipfile.ZIP_STORED)
        return self

    def add(self, member: str, data: bytes) -> None:
        name = PurePosixPath(member).name
        if name in self.names:
            raise AlignfuseError(
                f"{self.source}: image '{name}' appears twice ({self.names[name]}, {member}); "
                f"use the original flickr30k-images archive"
            )
        self.names[name] = member
        self.zf.writestr(f"flickr30k-images/{name}", data)

    def __exit__(self, kind, exc, tb):
        self.zf.close()
        if exc is not None:
            self.part.unlink(missing_ok=True)

    def publish(self) -> None:
        if not self.names:
            self.part.unlink(missing_ok=True)
            raise AlignfuseError(
                f"{self.source}: no {SUFFIX} images in it; set {KEY}.images to "
                "flickr30k-images.tar.gz (or its zip, or the folder it unpacks to)"
            )
        os.replace(self.part, self.out)


def wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIX) and not is_ignored(name)


def pack_tar(source: Path, out: Path, sha256: str | None) -> str:
    """Stream the tar's images into ``out``; return the tar file's sha256. With ``sha256`` given,
    a tar of another digest is refused before ``out`` appears."""
    with open(source, "rb") as f, ImageZip(source, out) as images:
        reader = HashingReader(f)
        try:
            with tarfile.open(fileobj=reader, mode="r|*") as tar:
                for info in tar:
                    if problem := tar_problem(info):
                        raise AlignfuseError(
                            f"{source}: member '{info.name}' {problem}; refusing an unsafe "
                            "archive. Use the original flickr30k-images.tar.gz"
                        )
                    if info.isfile() and wanted(info.name):
                        images.add(info.name, tar.extractfile(info).read())
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise AlignfuseError(
                f"{source}: the tar archive is truncated or corrupt ({exc}); get an intact copy "
                f"and point {KEY}.images at it"
            ) from None
        digest = reader.drain()
    if sha256 and digest != sha256:
        images.part.unlink(missing_ok=True)
        raise AlignfuseError(
            f"{source}: this archive's sha256 is {digest}, expected {sha256} "
            f"({KEY}.images_sha256); it is incomplete or a different file. Get an intact "
            "copy, or fix the checksum in the config"
        )
    images.publish()
    return digest


def pack_directory(source: Path, out: Path) -> None:
    """Pack the directory's images (files under it, not links out of it) into ``out``."""
    root = source.resolve()
    with ImageZip(source, out) as images:
        for path in sorted(source.rglob(f"*{SUFFIX}")):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and path.resolve().is_relative_to(root) and wanted(relative):
                images.add(relative, path.read_bytes())
    images.publish()


def pack_images(source: Path, out: Path, sha256: str | None = None) -> dict:
    """Make ``out`` a zip of Flickr30k's images from the user's tar(.gz), zip or directory."""
    source, out = Path(source).expanduser().absolute(), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    expected = {"sha256": sha256.lower()} if sha256 else {}
    if source.is_dir():
        if sha256:
            raise AlignfuseError(
                f"{source} is a directory, which has no checksum; unset {KEY}.images_sha256 "
                f"or point {KEY}.images at the archive"
            )
        pack_directory(source, out)
        how, digest = "packed from a directory", None
    elif source.is_file() and zipfile.is_zipfile(source):
        link_local(source, out, expected, f"{KEY}.images")
        image_members(out)  # refuses an unsafe or damaged zip now, not in a features job
        how, digest = "linked (a zip)", None
    elif source.is_file() and tarfile.is_tarfile(source):
        digest = pack_tar(source, out, expected.get("sha256"))
        how = "packed from a tar archive"
    elif source.exists():
        raise AlignfuseError(
            f"{source} is neither a tar(.gz) archive, a zip, nor a directory; set {KEY}.images "
            "to flickr30k-images.tar.gz from the maintainers' request form"
        )
    else:
        raise AlignfuseError(
            f"{source}: not found; set {KEY}.images to your copy of flickr30k-images.tar.gz"
        )
    report = {"source": str(source), "how": how, "sha256": digest}
    print(f"Flickr30k images {how}: {source} -> {out}; sha256 {digest or '-'}", file=sys.stderr)
    return report
