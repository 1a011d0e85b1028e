import ast

import pytest

from alignfuse import codehash

MODULES = {
    "training.py": "from alignfuse.parquet import read_embeddings\nfrom alignfuse.fusion import build\n",
    "parquet.py": "from alignfuse.errors import AlignfuseError\n",
    "errors.py": "class AlignfuseError(Exception): ...\n",
    "figures/__init__.py": 'FIGURES = {"scaling": "alignfuse.figures.scaling:plot"}\n',
    "figures/style.py": "DPI = 200\n",
    "figures/scaling.py": "def plot():\n    from alignfuse.figures import style\n",
    "fusion/__init__.py": 'FUSION_METHODS = {"concat": "alignfuse.fusion.concat:ConcatHead"}\n',
    "fusion/build.py": "import alignfuse.fusion\n",
    "fusion/concat.py": "from alignfuse.fusion.layers import mlp\n",
    "fusion/layers.py": "def mlp(): ...\n",
    "unused.py": "X = 1\n",
}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A small package laid out like alignfuse, to edit without touching the real source."""
    root = tmp_path / "alignfuse"
    for name, text in MODULES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(codehash, "PACKAGE_DIR", root)
    codehash.code_hash.cache_clear()
    yield root
    codehash.code_hash.cache_clear()


def edit(package, name: str) -> None:
    with (package / name).open("a") as f:
        f.write("EDITED = True\n")
    codehash.code_hash.cache_clear()


def test_dependencies_follow_imports_transitively_and_lazily(package):
    assert codehash.dependencies("training") == {"training", "parquet", "errors", "fusion.build"}
    assert codehash.dependencies("figures.scaling") == {"figures.scaling", "figures.style"}


def test_editing_an_indirect_dependency_changes_the_hash_of_its_users_only(package):
    training, concat = codehash.code_hash("training"), codehash.code_hash("fusion.concat")
    edit(package, "errors.py")
    assert codehash.code_hash("training") != training
    assert codehash.code_hash("fusion.concat") == concat


def test_registries_are_not_dependencies_so_adding_an_entry_reruns_nothing(package):
    training, scaling = codehash.code_hash("training"), codehash.code_hash("figures.scaling")
    edit(package, "fusion/__init__.py")
    edit(package, "figures/__init__.py")
    assert codehash.code_hash("training") == training
    assert codehash.code_hash("figures.scaling") == scaling


def test_hash_ignores_argument_order_and_mtime(package):
    first = codehash.code_hash("training", "fusion.concat")
    (package / "training.py").touch()
    codehash.code_hash.cache_clear()
    assert codehash.code_hash("fusion.concat", "training") == first


def test_a_module_nothing_imports_changes_no_hash(package):
    training = codehash.code_hash("training")
    edit(package, "unused.py")
    assert codehash.code_hash("training") == training


def test_unknown_module_is_an_error():
    with pytest.raises(KeyError, match="alignfuse.nonexistent"):
        codehash.module_path("nonexistent")


def test_the_real_training_hash_covers_the_parquet_reader():
    assert "parquet" in codehash.dependencies("train.condition")


def test_each_alignment_job_hashes_only_the_align_modules_it_runs():
    """Editing the metrics must not refit projections or redo degradations (and retrain what
    trains on them); editing a degradation must not refit projections or re-measure."""

    def align_modules(job: str) -> set[str]:
        return {m for m in codehash.dependencies(job) if m.startswith("align.")}

    shared = {"align.feature_sets"}
    assert align_modules("align.contrastive_set") == shared | {
        "align.contrastive_set",
        "align.contrastive",
        "align.pairing",
    }
    assert align_modules("align.degraded_set") == shared | {
        "align.degraded_set",
        "align.degrade",
        "align.names",
    }
    assert align_modules("align.measurements") == shared | {
        "align.measurements",
        "align.metrics",
        "align.names",
        "align.pairing",
    }


def package_imports(statements) -> set[str]:
    """The package names that import statements import (others are passed over)."""
    found = set()
    for node in statements:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in found if n.startswith("alignfuse.")}


def test_the_import_scan_finds_what_parsing_each_whole_module_finds():
    for path in sorted(codehash.PACKAGE_DIR.rglob("*.py")):
        source = path.read_text()
        scanned = package_imports(codehash.import_statements(source))
        assert scanned == package_imports(ast.walk(ast.parse(source))), path


@pytest.mark.parametrize(
    ("source", "names"),
    [
        (
            "from alignfuse.errors import (\n    AlignfuseError,  # (why\n    code,\n)\n",
            {"alignfuse.errors.AlignfuseError", "alignfuse.errors.code"},
        ),
        (
            "def f():\n    from alignfuse.errors import \\\n        AlignfuseError\n",
            {"alignfuse.errors.AlignfuseError"},
        ),
        ("import alignfuse.errors as e  # (a comment\n", {"alignfuse.errors"}),
    ],
    ids=["parenthesised with a comment", "lazy with a backslash", "aliased"],
)
def test_the_import_scan_reads_statements_over_several_lines(source, names):
    assert package_imports(codehash.import_statements(source)) == names
