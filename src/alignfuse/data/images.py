"""Where a dataset's images are: zips read in place (never extracted) or a directory.

Released datasets ship their images in zips whose folder prefix varies (Flickr8k spells its own
``Flicker8k_Dataset/``), so their image ids are file names and are looked up by name. A user's own
folder names each image by its path relative to the images root (two folders may both hold a
``1.jpg``), so its ids are looked up by that path. Paths that would leave the root (absolute,
``..``, a symbolic link out of it) are refused, as zip entries that would escape are.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from alignfuse.data.archives import (
    DECODE_ERRORS,
    DRIVE,
    image_members,
    is_ignored,
    open_archive,
)
from alignfuse.errors import AlignfuseError

IMAGE_KEYS = ("name", "path")


def escape_reason(relative: str) -> str | None:
    """Why an image path relative to the root is refused (None when it stays inside)."""
    if relative.startswith("/") or "\\" in relative or DRIVE.match(relative):
        return "is not a relative path with '/' separators"
    if ".." in relative.split("/"):
        return "has a '..' path component"
    return None


class ImageSource:
    """The images of a dataset, by image id: members of a zip or files under a directory.

    ``key`` says what an image id is: its file ``name`` (released archives) or its ``path``
    relative to the root (a user's folder). Picklable, so DataLoader workers each open their own
    handle on first use.
    """

    def __init__(self, path: str | Path | list, key: str = "name"):
        if key not in IMAGE_KEYS:
            raise ValueError(f"key must be one of {IMAGE_KEYS}, not {key!r}")
        paths = [Path(p) for p in path] if isinstance(path, list | tuple) else [Path(path)]
        if not paths:
            raise ValueError("no images path given")
        self.paths = paths
        self.path = paths[0]
        self.key = key
        self.where = ", ".join(str(p) for p in paths)
        self.is_zip = self.path.is_file()
        if len(paths) > 1:
            # a dataset split over several zips (COCO's train2014 and val2014), found by name
            not_zips = [str(p) for p in paths if not p.is_file()]
            if not_zips or key != "name":
                raise AlignfuseError(
                    f"{', '.join(not_zips) or self.where}: images split over several archives "
                    "must all be zip files, looked up by file name; fix the paths"
                )
        elif not self.is_zip and not self.path.is_dir():
            raise AlignfuseError(
                f"{self.path}: no such zip archive or directory of images; fix the path"
            )
        if not self.is_zip and key == "name":
            raise AlignfuseError(f"{self.path}: a directory of images is looked up by path")
        self.archives: dict[int, zipfile.ZipFile] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "archives": {}}

    def members(self) -> dict[str, str]:
        """Map each image id the source holds to what ``read`` takes (a member or a relative path).

        For a directory this lists nothing up front: ``locate`` checks the ids it is given. Over
        several zips a location is ``<archive index>:<member>``, and a name in two is refused.
        """
        if not self.is_zip:
            raise TypeError("a directory's images are found with locate()")
        if len(self.paths) > 1:
            merged: dict[str, str] = {}
            for i, path in enumerate(self.paths):
                for name, member in image_members(path).items():
                    if name in merged:
                        first = self.paths[int(merged[name].partition(":")[0])]
                        raise AlignfuseError(
                            f"image '{name}' is in both {first} and {path}; use the dataset's "
                            "original archives, one per image folder"
                        )
                    merged[name] = f"{i}:{member}"
            return merged
        if self.key == "name":
            return image_members(self.path)
        with open_archive(self.path) as zf:
            return {
                info.filename: info.filename
                for info in zf.infolist()
                if not info.is_dir() and not is_ignored(info.filename)
            }

    def locate(self, ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """Split ``ids`` into those found (id -> location) and the rest (id -> why not)."""
        found, problems = {}, {}
        if self.is_zip:
            members = self.members()
            for image in ids:
                reason = escape_reason(image) if self.key == "path" else None
                if reason:
                    problems[image] = reason
                elif image in members:
                    found[image] = members[image]
                else:
                    problems[image] = "is missing from the archive"
            return found, problems
        root = self.path.resolve()
        for image in ids:
            reason = escape_reason(image)
            if reason is None:
                target = (root / image).resolve()
                if not target.is_relative_to(root):
                    reason = "leads outside the images folder (a symbolic link)"
                elif not target.is_file():
                    reason = "is missing from the folder"
            if reason:
                problems[image] = reason
            else:
                found[image] = image
        return found, problems

    def read(self, location: str) -> bytes:
        """The bytes of one image (a damaged member raises one of ``DECODE_ERRORS``)."""
        if not self.is_zip:
            return (self.path / location).read_bytes()
        index, member = 0, location
        if len(self.paths) > 1:
            head, _, member = location.partition(":")
            index = int(head)
        if index not in self.archives:
            self.archives[index] = zipfile.ZipFile(self.paths[index])
        return self.archives[index].read(member)

    def decode_problem(self, location: str) -> str | None:
        """Why one image cannot be decoded (None when it can): reads and fully decodes it."""
        try:
            with Image.open(io.BytesIO(self.read(location))) as image:
                image.convert("RGB")
        except DECODE_ERRORS as err:
            return f"cannot be decoded ({err})"
        return None

    def close(self) -> None:
        for archive in self.archives.values():
            archive.close()
        self.archives = {}


def undecodable(source: ImageSource, locations: dict[str, str]) -> dict[str, str]:
    """The images (id -> location) that cannot be decoded, with the reason: decodes each fully."""
    problems = {}
    try:
        for image in tqdm(locations, desc="checking images", file=sys.stderr, mininterval=5):
            if reason := source.decode_problem(locations[image]):
                problems[image] = reason
    finally:
        source.close()
    return problems
