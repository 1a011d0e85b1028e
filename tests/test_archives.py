import stat
import zipfile

import pytest
from flickr8k_fixture import make_flickr8k_archives

from alignfuse.data.archives import image_members, open_archive, read_member
from alignfuse.errors import AlignfuseError


def zip_with(path, *entries):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Flicker8k_Dataset/ok.jpg", b"fine")
        for entry in entries:
            zf.writestr(entry, b"payload")
    return path


def test_members_are_found_by_file_name_in_the_misspelt_folder(tmp_path):
    archives = make_flickr8k_archives(tmp_path)
    members = image_members(archives.images_zip)
    expected = sorted(sum(archives.splits.values(), []))
    assert sorted(members) == expected
    assert all(member == f"Flicker8k_Dataset/{name}" for name, member in members.items())


def test_macosx_resource_forks_are_ignored(tmp_path):
    archives = make_flickr8k_archives(tmp_path, n_train=2, n_dev=1, n_test=1)
    assert not any(
        "__MACOSX" in m or "/._" in m for m in image_members(archives.images_zip).values()
    )


@pytest.mark.parametrize(
    "entry", ["../evil.jpg", "Flicker8k_Dataset/../../evil.jpg", "/abs/evil.jpg"]
)
def test_zip_slip_entries_are_refused_by_name(tmp_path, entry):
    path = zip_with(tmp_path / "slip.zip", entry)
    with pytest.raises(AlignfuseError, match=f"entry '{entry}'"):
        image_members(path)


def test_symlink_entries_are_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("Flicker8k_Dataset/link.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(AlignfuseError, match="'Flicker8k_Dataset/link.jpg' is a symbolic link"):
        open_archive(path)


def test_truncated_archive_says_to_download_again(tmp_path):
    archives = make_flickr8k_archives(tmp_path, n_train=2, n_dev=1, n_test=1)
    data = archives.images_zip.read_bytes()
    archives.images_zip.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        AlignfuseError, match="truncated or corrupt.*delete it and download it again"
    ) as err:
        image_members(archives.images_zip)
    assert str(archives.images_zip) in str(err.value)


def test_failed_crc_on_read_names_the_archive(tmp_path):
    path = tmp_path / "crc.zip"
    payload = b"JPEG" * 100
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("img.jpg", payload)
    data = path.read_bytes()
    at = data.index(payload) + 10
    path.write_bytes(data[:at] + b"X" + data[at + 1 :])
    with open_archive(path) as zf, pytest.raises(AlignfuseError, match="crc.zip.*Bad CRC"):
        read_member(zf, "img.jpg")


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(AlignfuseError, match="archive not found"):
        open_archive(tmp_path / "absent.zip")
