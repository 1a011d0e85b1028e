import http.server
import re
import threading

import pytest
from flickr8k_fixture import make_flickr8k_archives

import alignfuse.data.download
from alignfuse.data.download import fetch_archive
from alignfuse.errors import AlignfuseError


@pytest.fixture
def archives(tmp_path):
    return make_flickr8k_archives(tmp_path / "src", n_train=4, n_dev=2, n_test=2)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(alignfuse.data.download, "BACKOFF_SECONDS", 0.0)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``data`` at ``/archive.zip``; honours Range only if ``ranges``; cuts the first
    ``drop_first`` replies short."""

    data = b""
    ranges = True
    drop_first = 0
    requests: list = []

    def do_GET(self):
        if self.path != "/archive.zip":
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        self.requests.append(wanted)
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        start = int(match.group(1)) if match and self.ranges else 0
        if start >= len(self.data) > 0 and match:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(self.data)}")
            self.end_headers()
            return
        body = self.data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
            )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drop_first > 0:
            type(self).drop_first -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(data, ranges=True, drop_first=0):
        handler = type(
            "H",
            (Handler,),
            {"data": data, "ranges": ranges, "drop_first": drop_first, "requests": []},
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/archive.zip", handler

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_file_url_download_verifies_both_checksums(archives, tmp_path):
    out = tmp_path / "data" / "images.zip"
    fetch_archive(archives.images_url, out, md5=archives.images_md5, sha256=archives.images_sha256)
    assert out.read_bytes() == archives.images_zip.read_bytes()
    assert not out.with_name("images.zip.part").exists()


def test_checksum_mismatch_leaves_nothing_behind(archives, tmp_path):
    out = tmp_path / "data" / "images.zip"
    with pytest.raises(
        AlignfuseError, match=f"md5 is {archives.images_md5}, expected 0{{32}}"
    ) as err:
        fetch_archive(archives.images_url, out, md5="0" * 32, sha256=archives.images_sha256)
    assert archives.images_url in str(err.value)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_a_checksum_is_required(archives, tmp_path):
    with pytest.raises(AlignfuseError, match="no checksum given"):
        fetch_archive(archives.images_url, tmp_path / "images.zip")


def test_missing_file_url_fails_clearly_after_retries(tmp_path):
    url = (tmp_path / "absent.zip").as_uri()
    with pytest.raises(
        AlignfuseError, match=r"after 2 attempt\(s\).*Check the network.*archives"
    ) as err:
        fetch_archive(url, tmp_path / "images.zip", md5="0" * 32, retries=2)
    assert url in str(err.value)
    assert not (tmp_path / "images.zip").exists()


def test_http_not_found_is_not_retried(archives, tmp_path, serve):
    url, handler = serve(b"")
    with pytest.raises(AlignfuseError, match="after 1 attempt.*HTTP Error 404"):
        fetch_archive(url.replace("archive.zip", "nope"), tmp_path / "x.zip", md5="0" * 32)


def test_resume_requests_only_the_rest(archives, tmp_path, serve):
    data = archives.images_zip.read_bytes()
    url, handler = serve(data)
    out = tmp_path / "images.zip"
    half = len(data) // 2
    out.with_name("images.zip.part").write_bytes(data[:half])
    fetch_archive(url, out, sha256=archives.images_sha256)
    assert handler.requests == [f"bytes={half}-"]
    assert out.read_bytes() == data


def test_server_ignoring_range_still_gives_the_right_file(archives, tmp_path, serve):
    data = archives.images_zip.read_bytes()
    url, handler = serve(data, ranges=False)
    out = tmp_path / "images.zip"
    out.with_name("images.zip.part").write_bytes(data[: len(data) // 3])
    fetch_archive(url, out, md5=archives.images_md5)
    assert out.read_bytes() == data


def test_dropped_connection_is_retried_and_resumed(archives, tmp_path, serve):
    data = archives.images_zip.read_bytes()
    url, handler = serve(data, drop_first=1)
    out = tmp_path / "images.zip"
    fetch_archive(url, out, sha256=archives.images_sha256, retries=3)
    assert handler.requests == [None, f"bytes={len(data) // 2}-"]
    assert out.read_bytes() == data


def test_complete_part_file_is_not_downloaded_again(archives, tmp_path, serve):
    data = archives.images_zip.read_bytes()
    url, handler = serve(data)
    out = tmp_path / "images.zip"
    out.with_name("images.zip.part").write_bytes(data)
    fetch_archive(url, out, md5=archives.images_md5)
    assert handler.requests == [f"bytes={len(data)}-"]
    assert out.read_bytes() == data


def test_part_file_longer_than_the_archive_starts_over(archives, tmp_path, serve):
    data = archives.images_zip.read_bytes()
    url, handler = serve(data)
    out = tmp_path / "images.zip"
    out.with_name("images.zip.part").write_bytes(data + b"junk")
    fetch_archive(url, out, md5=archives.images_md5)
    assert handler.requests == [f"bytes={len(data) + 4}-", None]
    assert out.read_bytes() == data


def test_local_archive_is_verified_and_linked(archives, tmp_path, monkeypatch):
    monkeypatch.chdir(archives.images_zip.parent)
    out = tmp_path / "data" / "images.zip"
    fetch_archive(
        "https://unreachable.invalid/x.zip",
        out,
        md5=archives.images_md5,
        local="Flickr8k_Dataset.zip",
    )
    assert out.is_symlink()
    assert out.readlink() == archives.images_zip.absolute()
    assert out.read_bytes() == archives.images_zip.read_bytes()


def test_local_archive_with_wrong_checksum_names_the_path(archives, tmp_path):
    out = tmp_path / "images.zip"
    with pytest.raises(
        AlignfuseError, match=f"{archives.text_zip}: this local archive's sha256 is"
    ):
        fetch_archive(
            "https://x.invalid/y.zip", out, sha256=archives.images_sha256, local=archives.text_zip
        )
    assert not out.exists() and not out.is_symlink()
