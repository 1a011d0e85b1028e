"""profiles/local-gpu: how many jobs of each kind share the workstation's GPUs."""

import os

import pytest
from snakemake.profiles import ProfileConfigFileParser
from workflow_runner import ROOT

PROFILE = ROOT / "profiles/local-gpu/config.yaml"


@pytest.fixture
def read_profile(monkeypatch):
    """The profile's settings (YTE evaluated) under the ALIGNFUSE_* variables given."""
    for name in [v for v in os.environ if v.startswith("ALIGNFUSE_")]:
        monkeypatch.delenv(name)

    def read(**env: str) -> dict:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with PROFILE.open() as stream:
            return dict(ProfileConfigFileParser().parse(stream))

    return read


def test_by_default_one_job_uses_the_gpu_and_training_stays_on_the_cpu(read_profile):
    profile = read_profile()
    assert profile["resources"] == ["gpu=1"]
    assert profile["set-resources"] == ["features:gpu=1"]


def test_several_training_and_tuning_jobs_share_each_gpu_and_a_feature_job_takes_a_whole_one(
    read_profile,
):
    profile = read_profile(
        ALIGNFUSE_TRAIN_GPU="1", ALIGNFUSE_GPUS="2", ALIGNFUSE_TRAIN_JOBS_PER_GPU="4"
    )
    assert profile["resources"] == ["gpu=8"]
    assert sorted(profile["set-resources"]) == ["features:gpu=4", "train:gpu=1", "tune:gpu=1"]
