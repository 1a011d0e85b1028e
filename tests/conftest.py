import pytest
from workflow_runner import load_preset, snakemake, write_config


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """One finished run of the smoke preset: (working directory, config file).

    Shared by every end-to-end test that only plans from it or reads it, so the suite pays for
    one real run; tests must not run jobs in it.
    """
    workdir = tmp_path_factory.mktemp("smoke")
    configfile = write_config(workdir / "study.yaml", load_preset("smoke"))
    snakemake(workdir, "--cores", "2", "--configfile", str(configfile))
    return workdir, configfile
