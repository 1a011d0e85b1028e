import shutil

import pytest

from alignfuse import codehash


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A copy of the package's fusion modules to edit without touching the real source."""
    root = tmp_path / "alignfuse"
    shutil.copytree(codehash.PACKAGE_DIR / "fusion", root / "fusion")
    (root / "training.py").write_text("EPOCHS = 1\n")
    monkeypatch.setattr(codehash, "PACKAGE_DIR", root)
    codehash.code_hash.cache_clear()
    yield root
    codehash.code_hash.cache_clear()


def test_editing_a_module_changes_its_hash_only(package):
    training, fusion = codehash.code_hash("training"), codehash.code_hash("fusion")
    (package / "training.py").write_text("EPOCHS = 2\n")
    codehash.code_hash.cache_clear()
    assert codehash.code_hash("training") != training
    assert codehash.code_hash("fusion") == fusion


def test_hash_ignores_argument_order_and_mtime(package):
    first = codehash.code_hash("training", "fusion")
    (package / "training.py").touch()
    codehash.code_hash.cache_clear()
    assert codehash.code_hash("fusion", "training") == first


def test_a_package_hashes_all_its_modules(package):
    files = codehash.module_files("fusion")
    assert package / "fusion" / "__init__.py" in files


def test_unknown_module_is_an_error():
    with pytest.raises(KeyError, match="alignfuse.nonexistent"):
        codehash.module_files("nonexistent")
