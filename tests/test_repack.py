import io
import tarfile
import zipfile

import pytest
from karpathy_fixture import make_karpathy_archives

from alignfuse.data.archives import image_members
from alignfuse.data.repack import pack_images
from alignfuse.errors import AlignfuseError


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    return make_karpathy_archives(tmp_path_factory.mktemp("karpathy"))


def names(archives) -> set[str]:
    return {n for images in archives.splits["flickr30k"].values() for n in images}


def test_the_tar_is_packed_into_a_zip_of_its_images_with_its_sha256(archives, tmp_path):
    out = tmp_path / "images.zip"
    report = pack_images(archives.flickr30k_tar, out)
    assert report["sha256"] == archives.sha256(archives.flickr30k_tar)
    assert set(image_members(out)) == names(archives)  # the readme is left out
    with zipfile.ZipFile(out) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_a_wrong_sha256_leaves_nothing_behind(archives, tmp_path):
    out = tmp_path / "images.zip"
    with pytest.raises(AlignfuseError, match="dataset.flickr30k.images_sha256"):
        pack_images(archives.flickr30k_tar, out, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_zip_is_linked_and_a_directory_packed(archives, tmp_path):
    packed = tmp_path / "packed.zip"
    pack_images(archives.flickr30k_tar, packed)
    linked = tmp_path / "linked.zip"
    assert pack_images(packed, linked)["how"] == "linked (a zip)"
    assert linked.is_symlink()
    folder = tmp_path / "flickr30k-images"
    with tarfile.open(archives.flickr30k_tar) as tar:
        tar.extractall(tmp_path, filter="data")
    out = tmp_path / "from_folder.zip"
    pack_images(folder, out)
    assert set(image_members(out)) == names(archives)


@pytest.mark.parametrize(
    ("member", "reason"),
    [("../evil.jpg", "'..' path component"), ("/abs/evil.jpg", "absolute path")],
)
def test_an_escaping_tar_member_is_refused(tmp_path, member, reason):
    source = tmp_path / "bad.tar.gz"
    with tarfile.open(source, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"jpg"))
    with pytest.raises(AlignfuseError, match=f"'{member}' has an? {reason}"):
        pack_images(source, tmp_path / "images.zip")
    assert not (tmp_path / "images.zip").exists()


def test_a_link_in_the_tar_is_refused(tmp_path):
    source = tmp_path / "link.tar"
    with tarfile.open(source, "w") as tar:
        info = tarfile.TarInfo("flickr30k-images/1.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(AlignfuseError, match="is a link; refusing an unsafe archive"):
        pack_images(source, tmp_path / "images.zip")


def test_a_truncated_tar_names_the_file_and_the_key(archives, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    data = archives.flickr30k_tar.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AlignfuseError, match="truncated or corrupt.*dataset.flickr30k.images"):
        pack_images(cut, tmp_path / "images.zip")
    assert not (tmp_path / "images.zip").exists()


def test_a_file_that_is_no_archive_is_refused(tmp_path):
    other = tmp_path / "images.txt"
    other.write_text("not images")
    with pytest.raises(AlignfuseError, match="neither a tar"):
        pack_images(other, tmp_path / "images.zip")
