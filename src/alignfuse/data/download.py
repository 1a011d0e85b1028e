"""Fetch a dataset archive once, verified by checksum, so every later stage can trust it.

Downloads resume from ``<out>.part`` after a dropped connection (the Flickr8k image zip is 1 GB)
and retry with exponential backoff; the archive appears under its final name only after its
checksums match. Offline clusters point at an archive they already have, which is verified and
linked instead of copied.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from alignfuse.errors import AlignfuseError

CHUNK = 1 << 20
TIMEOUT_SECONDS = 60
BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 60.0
LOCAL_KEY = "dataset.flickr8k.archives.<images|text>"


def local_fix(key: str) -> str:
    return f"set {key} in the config to the path of a local copy"


def expected_digests(url: str, md5: str | None, sha256: str | None) -> dict[str, str]:
    expected = {name: value.lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}
    if not expected:
        raise AlignfuseError(f"{url}: no checksum given; set its md5 or sha256 in the config")
    return expected


def file_digests(path: Path, algorithms) -> dict[str, str]:
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def mismatch(path: Path, expected: dict[str, str]) -> str | None:
    """Describe the first checksum of ``path`` that differs from ``expected`` (None if all match)."""
    actual = file_digests(path, expected)
    for name, value in expected.items():
        if actual[name] != value:
            return f"{name} is {actual[name]}, expected {value}"
    return None


def resume_offset(response, offset: int) -> int:
    """Where the response's body starts in the file: ``offset`` if the server honoured Range, else 0."""
    if offset and getattr(response, "status", None) == 206:
        match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            return offset
    return 0


def transfer(url: str, part: Path) -> None:
    """Download ``url`` into ``part``, continuing from its current size where the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "alignfuse"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # The part file already holds the whole archive (or is longer than it): start over
            # unless the server says it is exactly complete.
            total = re.match(r"bytes \*/(\d+)", exc.headers.get("Content-Range", ""))
            if total and int(total.group(1)) == offset:
                return
            part.unlink()
            raise ConnectionError("the server refused to resume the partial download") from None
        raise
    with response:
        start = resume_offset(response, offset)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        with (
            open(part, "ab" if start else "wb") as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                file=sys.stderr,
                mininterval=1.0,
            ) as bar,
        ):
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"the connection closed after {size} of {total} bytes")


def retriable(exc: Exception) -> bool:
    """HTTP client errors (404, 403) will not go away by asking again; everything else may."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return True


def download(url: str, part: Path, retries: int, local_key: str = LOCAL_KEY) -> None:
    last: Exception | None = None
    for attempt in range(max(retries, 1)):
        if attempt:
            delay = min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            print(f"{url}: {last}; retrying in {delay:.0f} s", file=sys.stderr)
            time.sleep(delay)
        try:
            transfer(url, part)
            return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
            if not retriable(exc):
                break
    kept = (
        f" (the partial file {part} is kept and resumed on the next run)" if part.exists() else ""
    )
    raise AlignfuseError(
        f"{url}: download failed after {attempt + 1} attempt(s): {last}. "
        f"Check the network connection and the URL{kept}, or {local_fix(local_key)}"
    )


def link_local(
    local: Path, out: Path, expected: dict[str, str], local_key: str = LOCAL_KEY
) -> None:
    """Point ``out`` at the user's own archive after verifying it: no 1 GB copy."""
    local = local.expanduser().absolute()
    if not local.is_file():
        raise AlignfuseError(
            f"{local}: local archive not found; fix the path ({local_fix(local_key)})"
        )
    problem = mismatch(local, expected)
    if problem:
        raise AlignfuseError(
            f"{local}: this local archive's {problem}; it is incomplete or a different file. "
            f"Download it again, or {local_fix(local_key)} that matches the checksum in the config"
        )
    link = out.with_name(f".{out.name}.{os.getpid()}.link")
    link.unlink(missing_ok=True)
    os.symlink(local, link)
    os.replace(link, out)


def fetch_archive(
    url: str,
    out: Path,
    md5: str | None = None,
    sha256: str | None = None,
    local: Path | None = None,
    retries: int = 5,
    local_key: str = LOCAL_KEY,
) -> None:
    """Make ``out`` a verified copy of the archive at ``url`` (or a link to the verified ``local``);
    ``local_key`` is the config key that errors name for pointing at a local copy."""
    out = Path(out)
    expected = expected_digests(url, md5, sha256)
    out.parent.mkdir(parents=True, exist_ok=True)
    if local is not None:
        link_local(Path(local), out, expected, local_key)
        return
    part = out.with_name(out.name + ".part")
    download(url, part, retries, local_key)
    problem = mismatch(part, expected)
    if problem:
        part.unlink()
        raise AlignfuseError(
            f"{url}: the downloaded file's {problem}; it was deleted. Run again to download it "
            f"afresh; if the mirror's file changed, check it and update the checksum in the "
            f"config, or {local_fix(local_key)}"
        )
    os.replace(part, out)
