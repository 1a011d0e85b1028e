"""profiles/slurm: what it asks SLURM for, and the workflow on a real (one-node) SLURM cluster.

The cluster run takes a small cut of the smoke study (up to its tables and one figure) through
snakemake-executor-plugin-slurm with the shipped profile; mid-run, one training job is killed with
``scancel``. The run must still finish (the profile's retries resubmit the job, with more memory
and time), every job but the local rules must have been a SLURM job in the partition named by
ALIGNFUSE_SLURM_PARTITION, and the results must equal the local smoke run's. The science of the
whole smoke study is checked by the local runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from slurm_cluster import ACTIVE, slurm_cluster  # noqa: F401 (fixture)
from snakemake.profiles import ProfileConfigFileParser
from workflow_runner import ROOT, SNAKEMAKE, load_preset, snakemake, write_config

PROFILE = ROOT / "profiles/slurm/config.yaml"
TIMEOUT_S = 900


def read_profile(path: Path) -> dict[str, object]:
    """The command-line settings Snakemake takes from a profile (YTE evaluated)."""
    with path.open() as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def train_resource_expression(name: str) -> str:
    """The profile's expression for a training job's resource, e.g. ``4000 * attempt``."""
    prefix = f"train:{name}="
    with pytest.MonkeyPatch.context() as env:
        for var in [v for v in os.environ if v.startswith("ALIGNFUSE_")]:
            env.delenv(var)
        (setting,) = [r for r in read_profile(PROFILE)["set-resources"] if r.startswith(prefix)]
    return setting.removeprefix(prefix)


def train_resource(name: str, attempt: int) -> int:
    """A training job's resource at an attempt, evaluated as Snakemake does."""
    return eval(train_resource_expression(name), {"attempt": attempt})


def slurm_time(minutes: int) -> str:
    """squeue's time limit format."""
    return f"{minutes // 60}:{minutes % 60:02d}:00" if minutes >= 60 else f"{minutes}:00"


@pytest.fixture
def site_env(monkeypatch):
    """Start from an environment without ALIGNFUSE_* settings."""
    for name in list(os.environ):
        if name.startswith("ALIGNFUSE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_profile_without_site_values_names_no_partition_account_constraint_or_gres(site_env):
    profile = read_profile(PROFILE)
    assert profile["executor"] == "slurm"
    resources = profile["default-resources"] + profile["set-resources"]
    site_keys = ("slurm_partition", "slurm_account", "constraint", "gres")
    assert not [r for r in resources if r.split(":")[-1].split("=")[0] in site_keys]
    assert {"runtime", "mem_mb"} == {r.split("=")[0] for r in profile["default-resources"]}
    assert "features:gpu=1" in profile["set-resources"]
    assert not [r for r in profile["set-resources"] if r.startswith("train:gpu")]
    assert "attempt" in train_resource_expression("mem_mb")
    assert "attempt" in train_resource_expression("runtime")
    assert "slurm-array-jobs" not in profile  # see profiles/README.md
    assert profile["slurm-logdir"] == "results/logs/slurm"


def test_site_values_and_the_training_gpu_switch_come_from_the_environment(site_env):
    site_env.setenv("ALIGNFUSE_SLURM_ACCOUNT", "proj42")
    site_env.setenv("ALIGNFUSE_SLURM_PARTITION", "cpu")
    site_env.setenv("ALIGNFUSE_SLURM_GPU_PARTITION", "gpu-a100")
    site_env.setenv("ALIGNFUSE_SLURM_GPU_GRES", "gpu:a100:1")
    site_env.setenv("ALIGNFUSE_TRAIN_GPU", "1")
    profile = read_profile(PROFILE)
    assert {"slurm_account='proj42'", "slurm_partition='cpu'"} <= set(profile["default-resources"])
    for rule in ("features", "train"):
        assert {f"{rule}:gres='gpu:a100:1'", f"{rule}:slurm_partition='gpu-a100'"} <= set(
            profile["set-resources"]
        )
        assert f"{rule}:gpu=1" not in profile["set-resources"]


def test_training_asks_for_a_gpu_only_when_switched_on(site_env):
    for rule in ("train", "tune"):
        assert not any(f"{rule}:gpu" in r for r in read_profile(PROFILE)["set-resources"])
    site_env.setenv("ALIGNFUSE_TRAIN_GPU", "1")
    for rule in ("train", "tune"):
        assert f"{rule}:gpu=1" in read_profile(PROFILE)["set-resources"]


def job_resources(output: str) -> dict[str, list[dict[str, str]]]:
    """Rule -> the resources of each job in a dry run's output."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in output.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line)
        if header:
            rule = header.group(1)
        elif rule and line.strip().startswith("resources:"):
            pairs = line.split("resources:", 1)[1].split(", ")
            jobs.setdefault(rule, []).append(dict(p.strip().split("=", 1) for p in pairs))
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["slurm", "local-gpu"])
def test_snakemake_plans_the_smoke_study_with_the_profile(profile, tmp_path, site_env):
    site_env.setenv("ALIGNFUSE_SLURM_PARTITION", "cpu")
    configfile = write_config(tmp_path / "study.yaml", load_preset("smoke"))
    args = ["-n", "--profile", str(ROOT / "profiles" / profile), "--configfile", str(configfile)]
    jobs = job_resources(snakemake(tmp_path, *args).stdout)
    if profile == "slurm":
        assert {job["mem_mb"] for job in jobs["train"]} == {str(train_resource("mem_mb", 1))}
        assert {job["runtime"] for job in jobs["train"]} == {str(train_resource("runtime", 1))}
        assert {job["slurm_partition"] for job in jobs["train"]} == {"cpu"}
    assert "train" in jobs and "pairs" in jobs


def slurm_command(workdir: Path, configfile: Path) -> list[str]:
    return [
        *SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        *SLURM_TARGETS,
        "--profile",
        str(ROOT / "profiles/slurm"),
        "--configfile",
        str(configfile),
        # the test cluster has no accounting (no sacct): job states come from squeue
        "--slurm-status-command",
        "squeue",
        # seconds-long jobs: poll every few seconds instead of after the plugin's 40 s
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        # keep every job's sbatch log as evidence (by default only failed jobs keep theirs)
        "--slurm-keep-successful-logs",
    ]


def slurm_env(cluster) -> dict[str, str]:
    env = {k: v for k, v in cluster.env.items() if not k.startswith("ALIGNFUSE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # the site value under test: without it jobs would go to the cluster's default partition
    env["ALIGNFUSE_SLURM_PARTITION"] = cluster.partition
    env["ALIGNFUSE_COST_ON_START"] = "0"  # as in workflow_runner.run_env
    return env


def planned_jobs_per_rule(workdir: Path, configfile: Path) -> Counter:
    out = snakemake(workdir, "-n", *SLURM_TARGETS, "--configfile", str(configfile)).stdout
    return Counter(re.findall(r"^rule (\w+):$", out, flags=re.MULTILINE))


def rule_of(job: dict[str, str]) -> str:
    """The rule of a job, from the comment the plugin gives it: rule_<name>[_wildcards_<...>]."""
    return job["comment"].removeprefix("rule_").split("_wildcards_")[0]


def started_training_logs(workdir: Path) -> list[tuple[str, ...]]:
    """The wildcard values of every training job whose command has started (its log exists).

    A log results/<study>/logs/train/<dataset>/<backbone>@<alignment>/<method>/n<n>/seeds<block>
    names its job's wildcards as path parts, the last ones after their prefixes (n, seeds).
    """
    logs = workdir / "results/smoke/logs/train"
    started = []
    for log in logs.rglob("*.log"):
        dataset, condition, method, *rest = log.relative_to(logs).with_suffix("").parts
        values = [re.sub(r"^[a-z]+", "", part) for part in rest]
        started.append(("smoke", dataset, *condition.split("@"), method, *values))
    return started


def is_job_of(comment: str, wildcards: tuple[str, ...]) -> bool:
    """Whether the plugin's comment rule_train_wildcards_<values joined by _> names these values
    in this order."""
    return comment == "rule_train_wildcards_" + "_".join(wildcards)


def cancel_a_training_job_mid_run(cluster, workdir: Path, run: subprocess.Popen) -> dict:
    """scancel the first training job whose command has started (its rule log exists).

    Returns its squeue row.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and run.poll() is None:
        for wildcards in started_training_logs(workdir):
            for job in cluster.jobs():
                if is_job_of(job["comment"], wildcards) and job["state"] == "RUNNING":
                    cluster.run("scancel", job["id"])
                    return job
        time.sleep(0.1)
    raise AssertionError(
        f"no training job was seen running (see {workdir}/snakemake.out)\n{cluster.logs()}"
    )


def slurm_study() -> dict:
    """The smoke study cut to its aligned backbone, concat and tuned cross-attention (one tuning
    job) with smoke's comparison of the two, and no alignment sub-grids."""
    config = load_preset("smoke")
    config["backbones"] = {"aligned": config["backbones"]["aligned"]}
    kept = ("concat", "xattn_txt2img_tuned")
    config["methods"] = {m: config["methods"][m] for m in kept}
    config["tuning"]["methods"] = {m: config["tuning"]["methods"][m] for m in kept[1:]}
    config["grids"] = {}
    config["claims"] = []  # smoke's claims name the labels left out
    (comparison,) = config["comparisons"]
    assert (comparison["reference"], comparison["methods"]) == ("concat", list(kept[1:]))
    config["pid"]["conditions"] = {"backbones": ["aligned"], "methods": ["concat"]}
    return config


# What the SLURM run makes: the gap figure (a local rule) and so data, features, alignment
# metrics, tuning, training and the tables under SLURM. PID, theory and the other figures add
# only more of the same submissions; the local runs check their science.
SLURM_TARGETS = ["results/smoke/figures/gap.pdf"]


def megabytes(memory: str) -> float:
    """squeue's requested memory (``4000M``, ``8G``) in MB."""
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
    return float(memory[:-1]) * units[memory[-1]]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):  # noqa: F811
    """The cut of the smoke study run under SLURM, one training job cancelled mid-run."""
    workdir = tmp_path_factory.mktemp("slurm")
    configfile = write_config(workdir / "study.yaml", slurm_study())
    planned = planned_jobs_per_rule(workdir, configfile)
    started = time.monotonic()
    # Snakemake's log goes to a file: a pipe read only at the end fills up (64 KiB) and blocks
    # Snakemake mid-run, waiting to write its next line.
    log = workdir / "snakemake.out"
    with log.open("w") as sink:
        run = subprocess.Popen(
            slurm_command(workdir, configfile),
            cwd=workdir,
            env=slurm_env(slurm_cluster),
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            cancelled = cancel_a_training_job_mid_run(slurm_cluster, workdir, run)
            run.wait(timeout=TIMEOUT_S)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    output = log.read_text()
    assert run.returncode == 0, f"snakemake under SLURM failed:\n{output}\n{slurm_cluster.logs()}"
    print(f"\nsmoke cut under SLURM: {time.monotonic() - started:.0f} s")
    # Snakemake announces local jobs as "localrule <name>:" and cluster jobs as "rule <name>:"
    local = set(re.findall(r"^localrule (\w+):$", output, flags=re.MULTILINE))
    return {
        "workdir": workdir,
        "output": output,
        "jobs": slurm_cluster.jobs(),
        "cancelled": cancelled,
        "partition": slurm_cluster.partition,
        "remote": Counter({rule: n for rule, n in planned.items() if rule not in local}),
        "local": local,
    }


@pytest.mark.slow
@pytest.mark.slurm
def test_every_job_but_the_local_rules_ran_under_slurm_in_the_configured_partition(slurm_run):
    jobs = slurm_run["jobs"]
    completed = Counter(rule_of(job) for job in jobs if job["state"] == "COMPLETED")
    assert completed == slurm_run["remote"]
    assert {"aggregate", "pairs", "train"} <= set(completed)
    assert any(rule.startswith("figure_") for rule in slurm_run["local"])  # local rules
    others = [job["id"] for job in jobs if job["state"] != "COMPLETED"]
    assert others == [slurm_run["cancelled"]["id"]]
    assert {job["partition"] for job in jobs} == {slurm_run["partition"]}
    assert len({job["name"] for job in jobs}) == 1  # one Snakemake run: the plugin's run id


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_job_ids_are_in_the_plugin_logs_under_results(slurm_run):
    logdir = slurm_run["workdir"] / "results/logs/slurm"
    logged = {path.stem for path in logdir.rglob("*.log")}
    assert {job["id"] for job in slurm_run["jobs"]} <= logged
    rules = {path.name.removeprefix("rule_") for path in logdir.iterdir()}
    assert rules == set(slurm_run["remote"])


@pytest.mark.slow
@pytest.mark.slurm
def test_a_cancelled_job_is_resubmitted_with_more_memory_and_time(slurm_run):
    cancelled = slurm_run["cancelled"]
    same_job = [job for job in slurm_run["jobs"] if job["comment"] == cancelled["comment"]]
    assert [job["state"] for job in same_job] == ["CANCELLED", "COMPLETED"]
    retry = same_job[1]
    for job, attempt in ((cancelled, 1), (retry, 2)):
        assert megabytes(job["memory"]) == train_resource("mem_mb", attempt)
        assert job["time_limit"] == slurm_time(train_resource("runtime", attempt))
    assert megabytes(retry["memory"]) > megabytes(cancelled["memory"])
    message = f"SLURM-job '{cancelled['id']}' failed, SLURM status is: 'CANCELLED'"
    assert message in slurm_run["output"]


@pytest.mark.slow
@pytest.mark.slurm
def test_results_equal_a_local_run(slurm_run, smoke_study):
    local_dir, _ = smoke_study
    local = pd.read_parquet(local_dir / "results/smoke/tables/runs.parquet")
    slurm = pd.read_parquet(slurm_run["workdir"] / "results/smoke/tables/runs.parquet")
    keys = ["backbone", "alignment", "method", "n_train", "seed"]
    # everything but timings (wall_s, load_s, ...: seconds, by their suffix)
    columns = [c for c in local.columns if not c.endswith("_s")]
    # the local smoke study trains every condition of the cut, among others
    local = local.merge(slurm[keys], on=keys)
    assert len(slurm) == len(local) > 0
    pd.testing.assert_frame_equal(
        slurm[columns].sort_values(keys).reset_index(drop=True),
        local[columns].sort_values(keys).reset_index(drop=True),
        check_exact=True,
    )


@pytest.mark.slow
@pytest.mark.slurm
def test_no_job_is_left_in_the_queue(slurm_run, slurm_cluster):  # noqa: F811
    assert not [job for job in slurm_cluster.jobs() if job["state"] in ACTIVE]
