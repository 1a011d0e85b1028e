import os
from pathlib import Path

import pytest
from filelock import FileLock
from workflow_runner import load_preset, snakemake, write_config

SHARED_SCOPES = {"module", "package", "session"}
# Session fixtures that every worker reads from one copy (built once, under a file lock), so the
# tests using them need not share a worker.
ACROSS_WORKERS = {"smoke_study"}
# Module fixtures cheap enough for each worker to build its own (test_incremental's copy of the
# repository), so the many tests using them spread over the workers instead of queueing on one.
PER_WORKER = {"study"}


# xdist workers share the cores (one more worker than cores, below): torch in each worker and in
# the jobs it starts takes one thread, or the thread pools spin against each other (a tenth of the
# suite's CPU time). Set before any test module imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core and one more. The end-to-end tests wait on Snakemake jobs'
    start-up, SLURM's polling and subprocesses, so two workers kept two cores 61% busy."""
    return len(os.sched_getaffinity(0)) + 1


# first: xdist reads the marks in its own hook of this name
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist's ``--dist loadgroup`` (pyproject's addopts): tests that share a
    module- or session-scoped fixture of this suite (the smoke study, a module's trained heads, the
    SLURM cluster) run on one worker, so each such fixture is built once; the rest spread freely.
    """
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    shared = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.items() if info else ()
        # a fixture of this suite has a node id it belongs to; pytest's and plugins' have none
        # a module-scoped fixture is built once per module, wherever it is defined
        keys = [
            f"{module if fixtures[-1].scope == 'module' else fixtures[-1].baseid}::{name}"
            for name, fixtures in defs
            if fixtures
            and fixtures[-1].scope in SHARED_SCOPES
            and fixtures[-1].baseid
            and name not in ACROSS_WORKERS | PER_WORKER
        ]
        shared[item.nodeid] = keys
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
    for item in items:
        if shared[item.nodeid]:
            item.add_marker(pytest.mark.xdist_group(root(shared[item.nodeid][0])))


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory, worker_id):
    """One finished run of the smoke preset: (working directory, config file).

    Shared by every end-to-end test that only plans from it or reads it, on every xdist worker
    (the first to ask runs it, the others wait on a lock), so the suite pays for one real run;
    tests must not run jobs in it.
    """
    if worker_id == "master":
        return run_smoke_study(tmp_path_factory.mktemp("smoke"))
    shared = tmp_path_factory.getbasetemp().parent
    with FileLock(shared / "smoke.lock"):
        done = shared / "smoke.done"
        if not done.exists():
            run_smoke_study(shared / "smoke")
            done.touch()
    return shared / "smoke", shared / "smoke" / "study.yaml"


def run_smoke_study(workdir: Path) -> tuple[Path, Path]:
    """Run the smoke study with the cost printed at its start (tests/test_cost.py reads the
    output, kept in ``snakemake.log``, and the jobs' benchmarks)."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = write_config(workdir / "study.yaml", load_preset("smoke"))
    os.environ["ALIGNFUSE_COST_ON_START"] = "1"
    try:
        run = snakemake(workdir, "--cores", "2", "--configfile", str(configfile))
    finally:
        del os.environ["ALIGNFUSE_COST_ON_START"]
    (workdir / "snakemake.log").write_text(run.stderr + run.stdout)
    return workdir, configfile


@pytest.fixture(scope="module")
def plugin_path():
    """tests/plugin_encoder.py importable by Snakemake and its jobs (plans hash it too), for the
    end-to-end studies on tiny plug-in encoders."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
        yield


@pytest.fixture
def restore_threads():
    """Training and tuning set torch's global thread count; leave it as other tests expect (use
    with ``pytestmark = pytest.mark.usefixtures("restore_threads")``)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Items split 400/100/100, each image with its own caption (see :func:`write_matching_task`)."""
    from matching_files import write_matching_task

    return write_matching_task(tmp_path_factory.mktemp("task"))
