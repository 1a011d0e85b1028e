"""`alignfuse cost`: a study's training jobs planned from its config, each head's speed measured
here, and the estimate checked against a measured smoke-sized run."""

import copy
import glob
import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml
from workflow_runner import ROOT, load_preset, write_config

from alignfuse import grid
from alignfuse.config import validate_config
from alignfuse.cost.calibration import HeadSpeed, measure_heads, speed_key
from alignfuse.cost.estimate import cost_text, job_cost, summary, wall_s
from alignfuse.cost.plan import (
    FLICKR8K_IMAGES,
    SplitSize,
    split_sizes,
    training_jobs,
    tuning_jobs,
)
from alignfuse.train.ensemble import EVAL_PAIRS as ENTROPY_PAIRS

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
# The estimate of a job's seconds and the job's measured CPU time (one thread: its time on a free
# core), summed over a run's training jobs, agree within this factor. Both are CPU time, which
# other work on shared cores barely changes; what is left is first-call costs that the
# calibration's few steps and a job's whole run pay differently.
FACTOR = 2.0


@pytest.fixture(scope="module")
def in_tmp(tmp_path_factory):
    """Run in an empty directory: no results/ to read widths or captions from (one for the
    module, so the config checks' cache of head sizes serves every test)."""
    directory = tmp_path_factory.mktemp("plans")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        yield directory


def validated(config: dict) -> dict:
    return validate_config(copy.deepcopy(config), SCHEMA)


def smoke() -> dict:
    return validated(load_preset("smoke"))


def test_training_jobs_are_each_conditions_seed_blocks(in_tmp):
    config = load_preset("smoke")
    config["training"]["seed_block"] = 1
    config = validated(config)
    jobs = training_jobs(config)
    assert len(jobs) == len(grid.conditions(config)) * len(config["seeds"])
    assert {j.condition for j in jobs} == set(grid.conditions(config))
    raw = [j for j in jobs if j.condition.alignment != "contrastive"]
    assert all(j.seeds == 1 for j in jobs) and {(j.d_image, j.d_text) for j in raw} == {(32, 32)}


def test_a_condition_in_two_grids_is_planned_once_under_the_first(in_tmp):
    jobs = training_jobs(smoke())
    shared = grid.Condition("aligned", "raw", "concat", 256)  # in main and degradation
    assert [j.grid for j in jobs if j.condition == shared] == ["main"]
    assert {j.grid for j in jobs} == {"main", "contrastive", "degradation", "tuned"}


def test_contrastive_features_take_the_projections_width(in_tmp):
    config = smoke()
    contrastive = [j for j in training_jobs(config) if j.condition.alignment == "contrastive"]
    dim = config["alignment"]["contrastive"]["dim"]
    assert contrastive and all((j.d_image, j.d_text) == (dim, dim) for j in contrastive)


@pytest.fixture(scope="module")
def paper(in_tmp) -> dict:
    return validated(yaml.safe_load((ROOT / "config.yaml").read_text()))


def test_flickr8k_splits_come_from_its_split_files_before_the_data_stage(paper):
    sizes = split_sizes(paper)
    assert sizes["dev"] == SplitSize(FLICKR8K_IMAGES["dev"], 5 * FLICKR8K_IMAGES["dev"])
    assert sizes["dev"].pairs == 10_000


def test_paper_study_plans_248_jobs_of_five_seeds(paper):
    jobs = training_jobs(paper)
    # 228 with the shared recipe, 20 of the tuned heads (four at clip's five tuned scales)
    assert len(jobs) == 248 and {j.seeds for j in jobs} == {5}
    assert sum(j.grid == "tuned" for j in jobs) == 20
    assert {(j.d_image, j.d_text) for j in jobs} == {(512, 512), (256, 256)}


def test_paper_study_tunes_four_heads_over_their_candidates_before_training(paper):
    jobs = tuning_jobs(paper)
    assert [j.condition.method for j in jobs] == [
        "concat_tuned",
        "xattn_txt2img_tuned",
        "xattn_img2txt_tuned",
        "xattn_bidir_tuned",
    ]
    # 3 rates x 2 weight decays x 2 dropouts x 2 schedules, 2 seeds, at 8192 pairs of clip
    assert {(j.runs, j.seeds, j.condition.n, j.d_image) for j in jobs} == {(24, 2, 8192, 512)}
    assert not any(j.scores_test for j in jobs)


def test_a_tuning_job_costs_its_candidates_runs_without_test_pairs(in_tmp):
    config = smoke()
    job = tuning_jobs(config)[0]
    assert job.runs == 2 and job.condition.method == "concat_tuned"
    speed = HeadSpeed(
        step_s=0.01, step_flops=1e6, eval_pair_s=1e-4, eval_pair_flops=1e3, entropy_pair_s=1e-5
    )
    splits = {"dev": SplitSize(25, 75), "test": SplitSize(25, 75)}
    cost = job_cost(job, speed, splits, best_epoch=25, start_s=3.0)
    steps = 2 * 5 * math.ceil(job.condition.n / job.batch_size)
    assert cost.seed_epochs["max"] == 2 * job.seeds * 5
    assert cost.flops["max"] == pytest.approx(steps * 1e6 + 2 * 5 * 150 * 1e3)


def test_typical_epochs_wait_patience_evaluations_after_the_best(in_tmp):
    config = load_preset("smoke")
    config["training"].update(max_epochs=100, patience=10, eval_every=2, min_epochs=0)
    job = training_jobs(validated(config))[0]
    assert job.typical_epochs(25) == 46  # 25 + 10 evaluations of 2 epochs, on an evaluation
    assert job.typical_epochs(95) == 100  # never past max_epochs
    assert job.evaluations(46) == 23 and job.evaluations(5) == 3  # and one at the last epoch
    config["training"]["min_epochs"] = 60
    assert training_jobs(validated(config))[0].typical_epochs(25) == 60


def test_job_cost_counts_steps_evaluations_and_the_start(in_tmp):
    job = next(j for j in training_jobs(smoke()) if j.condition.n == 256)
    speed = HeadSpeed(
        step_s=0.01, step_flops=1e6, eval_pair_s=1e-4, eval_pair_flops=1e3, entropy_pair_s=1e-5
    )
    splits = {"dev": SplitSize(25, 75), "test": SplitSize(25, 75)}
    cost = job_cost(job, speed, splits, best_epoch=25, start_s=3.0)
    steps = 5 * 256 // 32  # max_epochs 5 bounds the typical epochs too
    evaluated = 5 * 150 + 4 * 150 + 256  # dev per epoch; test x3, fused views of train + test
    assert cost.seed_epochs == {"typical": 10, "max": 10}
    assert cost.flops["max"] == pytest.approx(steps * 1e6 + evaluated * 1e3)
    seconds = 3.0 + steps * 0.01 + evaluated * 1e-4 + 5 * min(ENTROPY_PAIRS, 150) * 1e-5
    assert cost.seconds["max"] == pytest.approx(seconds)


def test_totals_per_grid_on_cores_and_one_gpu_job_at_a_time(in_tmp):
    jobs = training_jobs(smoke())
    speed = HeadSpeed(
        step_s=0.01, step_flops=1e6, eval_pair_s=1e-4, eval_pair_flops=1e3, entropy_pair_s=0.0
    )
    splits = {"dev": SplitSize(25, 75), "test": SplitSize(25, 75)}
    cpu = [job_cost(j, speed, splits, 25, start_s=3.0) for j in jobs]
    gpu = [job_cost(j, speed, splits, 25, start_s=1.0) for j in jobs]
    rows = summary(cpu, cores=[2, 32], threads=1, gpu=gpu)
    assert [r["grid"] for r in rows] == ["main", "contrastive", "degradation", "tuned", "total"]
    total = rows[-1]
    assert total["jobs"] == len(jobs) == sum(r["jobs"] for r in rows[:-1])
    seconds = [c.seconds["max"] for c in cpu]
    assert total["core-hours max"] * 3600 == pytest.approx(sum(seconds))
    assert total["wall hours on 32 cores max"] * 3600 == pytest.approx(max(seconds))
    assert total["wall hours on the GPU max"] * 3600 == pytest.approx(
        sum(c.seconds["max"] for c in gpu)
    )
    text = cost_text(rows, [2, 32], "NVIDIA H200", ["a note"])
    assert text.splitlines()[0].split("  ")[-1].strip() == "wall, 1 GPU"
    assert text.endswith("a note")


def test_wall_time_gives_the_longest_jobs_out_first():
    assert wall_s([2, 3, 4, 3], 2) == 6  # 4 + 2 and 3 + 3, whatever the order given
    assert wall_s([5, 1, 1], 4) == 5
    assert wall_s([1, 1], 0) == 2  # fewer cores than a job's threads still runs one at a time


def test_counted_flops_are_the_heads_arithmetic(in_tmp):
    """concat 32+32 -> 32 -> 16 -> 2: forward 2*(64*32 + 32*16 + 16*2) multiply-adds per pair,
    backward the same again for the weights plus the inputs of the two upper layers."""
    jobs = [j for j in training_jobs(smoke()) if j.spec["head"] == "concat"][:1]
    speeds = measure_heads(jobs, split_sizes(smoke())["dev"], torch.device("cpu"), threads=1)
    speed = speeds[speed_key(jobs[0])]
    forward = 2 * (64 * 32 + 32 * 16 + 16 * 2)
    per_pair = 2 * forward + 2 * (32 * 16 + 16 * 2)
    assert speed.step_flops == jobs[0].seeds * jobs[0].batch_size * per_pair
    assert speed.step_s > 0 and speed.eval_pair_s > 0 and speed.entropy_pair_s > 0


def cost_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alignfuse.cli", "cost", *args], capture_output=True, text=True
    )


def test_a_missing_config_file_is_one_line_naming_it(in_tmp):
    done = cost_command("--configfile", "nowhere.yaml")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "alignfuse cost: error: nowhere.yaml: config file not found; pass a study's YAML file"
    )


def test_a_bad_key_is_named_before_any_calibration(in_tmp):
    config = load_preset("smoke")
    config["training"]["batch_size"] = 0
    done = cost_command("--configfile", str(write_config(in_tmp / "bad.yaml", config)))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "bad.yaml: invalid configuration" in done.stderr
    assert "training.batch_size" in done.stderr


@pytest.fixture(scope="module")
def trained_cut(smoke_study, tmp_path_factory):
    """The smoke study, run by Snakemake with the cost printed at the start (conftest), and the
    same study's estimate from `alignfuse cost`: (run output, estimate rows, workdir, printed)."""
    workdir, configfile = smoke_study
    out = tmp_path_factory.mktemp("cost") / "cost.json"
    done = subprocess.run(
        [sys.executable, "-m", "alignfuse.cli", "cost", "--configfile", str(configfile)]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        cwd=workdir,
        check=True,
    )
    run_output = (workdir / "snakemake.log").read_text()
    return run_output, json.loads(out.read_text()), workdir, done.stdout


@pytest.mark.slow
def test_a_run_that_trains_prints_the_cost_first(trained_cut):
    output, _, _, printed = trained_cut
    assert "Expected cost of the study's training (alignfuse cost):" in output
    assert output.index("Expected cost") < output.index("rule train")
    header = next(line for line in printed.splitlines() if line.startswith("grid")).split()
    shown = output[output.index("Expected cost") :].splitlines()[1].split()
    assert shown == header  # the command's own table (its numbers are measured anew)
    assert "study 'smoke': tuning and training only" in output


@pytest.mark.slow
def test_the_estimate_is_within_a_factor_of_the_measured_run(trained_cut):
    _, rows, workdir, _ = trained_cut
    total = rows[-1]
    # smoke's two tuning jobs and 25 trainings
    assert total["grid"] == "total" and total["jobs"] == 27
    benchmarks = [
        f
        for stage in ("tune", "train")
        for f in glob.glob(
            str(workdir / f"results/smoke/benchmarks/{stage}/**/*.tsv"), recursive=True
        )
    ]
    measured = sum(float(pd.read_csv(f, sep="\t")["cpu_time"].iloc[0]) for f in benchmarks)
    assert len(benchmarks) == 27
    # smoke's 5 epochs are below any early stop: typical and upper bound are the same run
    estimated = total["core-hours max"] * 3600
    assert estimated == total["core-hours typical"] * 3600
    assert measured / FACTOR < estimated < measured * FACTOR, (estimated, measured)
