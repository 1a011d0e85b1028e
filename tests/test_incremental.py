"""Incremental re-execution: editing a source module plans exactly the jobs that run it.

Every rule's ``params`` carry a content hash of the modules its jobs run (``alignfuse.codehash``),
computed when the Snakefile builds the DAG. The tests finish one real run of the smoke study from a
copy of the repository, then edit modules of further copies and compare ``snakemake -n`` plans.

The expected plan of an edit is derived, not listed: the jobs that run the edited module (chosen
by rule, or by the method in a training job's output path) and everything downstream of them in
the workflow's full DAG (the plan of ``--forceall``: jobs whose inputs are their outputs, and so
on). So new figures, a report rule and renamed or added fusion methods need no change here.
"""

from __future__ import annotations

import ast
import copy
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import yaml
from workflow_runner import (
    ROOT,
    PlannedJob,
    copy_repository,
    dry_run,
    load_preset,
    run_env,
    snakemake,
    write_config,
)

from alignfuse import grid
from alignfuse.config import validate_config
from alignfuse.figures import FIGURES
from alignfuse.fusion import method_module

pytestmark = pytest.mark.slow

Plan = dict[str, list[str]]  # rule -> the outputs of each of its planned jobs, sorted

# Appended to a module to edit it: a statement (not just a comment), harmless to its behaviour.
EDIT = "\n_EDITED_BY_TEST_INCREMENTAL = True\n"


def module_of(spec: str) -> str:
    """Dotted module of a registry entry: "alignfuse.figures.scaling:plot" -> "figures.scaling"."""
    return spec.split(":")[0].removeprefix("alignfuse.")


def module_path(clone: Path, module: str) -> Path:
    return clone.joinpath("src", "alignfuse", *module.split(".")).with_suffix(".py")


def imported_modules(path: Path) -> set[str]:
    """``alignfuse`` modules that a source file imports, relative to the package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {n.removeprefix("alignfuse.") for n in names if n.startswith("alignfuse.")}


def method_of(job: PlannedJob) -> str:
    """Method of a training job from its output:
    results/{study}/runs/{dataset}/{b}@{a}/{method}/n{n}/seeds{block}..., or of a tuning job:
    results/{study}/tuning/{dataset}/{method}.parquet."""
    output = Path(job.outputs[0])
    return output.stem if job.rule == "tune" else output.parents[1].name


def block_of(job: PlannedJob) -> str:
    """Seed block of a training job from its output (``.../seeds0-4.parquet``: "0-4")."""
    return Path(job.outputs[0]).name.removeprefix("seeds").split(".")[0]


def as_plan(jobs: Iterable[PlannedJob]) -> Plan:
    plan: Plan = {}
    for job in jobs:
        plan.setdefault(job.rule, []).append(", ".join(job.outputs))
    return {rule: sorted(outputs) for rule, outputs in plan.items()}


def with_downstream(jobs: list[PlannedJob], roots: list[PlannedJob]) -> list[PlannedJob]:
    """``roots`` and every job that (transitively) reads one of their outputs."""
    selected, changed = list(roots), {f for job in roots for f in job.outputs}
    grew = True
    while grew:
        grew = False
        for job in jobs:
            if job not in selected and changed.intersection(job.inputs):
                selected.append(job)
                changed.update(job.outputs)
                grew = True
    return selected


@dataclass
class Study:
    """A finished smoke study: its working directory, config file and the repository copy it ran."""

    workdir: Path
    configfile: Path
    clone: Path

    def jobs(
        self, *args: str, clone: Path | None = None, configfile: Path | None = None
    ) -> list[PlannedJob]:
        """The jobs of ``snakemake -n`` (``configfile``: another study config than the study's)."""
        configfile = configfile or self.configfile
        return dry_run(self.workdir, "--configfile", str(configfile), *args, clone=clone)

    def plan(self, clone: Path | None = None) -> Plan:
        """What ``snakemake -n`` would run now, from ``clone`` (default: the unedited copy)."""
        return as_plan(self.jobs(clone=clone or self.clone))

    @cached_property
    def dag(self) -> list[PlannedJob]:
        """Every job of the study with its inputs and outputs."""
        return self.jobs("--forceall", clone=self.clone)

    @cached_property
    def figure_rules(self) -> set[str]:
        return {job.rule for job in self.dag if job.rule.startswith("figure_")}

    def rerun(self, root: Callable[[PlannedJob], bool]) -> Plan:
        """The plan when the jobs that ``root`` selects are out of date: them and all downstream."""
        return as_plan(with_downstream(self.dag, [job for job in self.dag if root(job)]))

    def training(self, methods: set[str]) -> list[str]:
        """Outputs of the training jobs of ``methods``."""
        return as_plan(j for j in self.dag if j.rule == "train" and method_of(j) in methods).get(
            "train", []
        )

    def plan_after_editing(self, tmp_path: Path, module: str) -> Plan:
        """The plan once ``module`` is edited, in a fresh copy of the finished study's repository."""
        clone = copy_repository(tmp_path / "clone", source=self.clone)
        path = module_path(clone, module)
        path.write_text(path.read_text() + EDIT)
        return self.plan(clone)


# The rules that train heads: a method's tuning trains its candidates with the training code.
TRAINING_RULES = ("train", "tune")


def retrains(methods: set[str]) -> Callable[[PlannedJob], bool]:
    """Selects the tuning and training jobs of ``methods``."""
    return lambda job: job.rule in TRAINING_RULES and method_of(job) in methods


def trains(job: PlannedJob) -> bool:
    return job.rule in TRAINING_RULES


@pytest.fixture(scope="module")
def study(smoke_study, tmp_path_factory) -> Study:
    """The finished smoke study, planned from a copy of this repository (modules to edit)."""
    workdir, configfile = smoke_study
    clone = copy_repository(tmp_path_factory.mktemp("incremental") / "clone")
    # The DAG must import and hash the copy, not the editable install of this checkout.
    probe = subprocess.run(
        [sys.executable, "-c", "import alignfuse.codehash as c; print(c.PACKAGE_DIR)"],
        capture_output=True,
        text=True,
        env=run_env(clone),
        cwd=workdir,
        check=True,
    )
    assert Path(probe.stdout.strip()) == (clone / "src/alignfuse").resolve()
    return Study(workdir, configfile, clone)


def test_a_finished_study_has_nothing_to_do(study):
    assert study.plan() == {}


@pytest.mark.parametrize("name", sorted(FIGURES), ids=[f"figures.{n}" for n in sorted(FIGURES)])
def test_editing_a_figure_module_redraws_only_that_figure(study, tmp_path, name):
    rule = f"figure_{name}"
    assert rule in study.figure_rules, f"figure '{name}' is registered but has no rule {rule}"
    plan = study.plan_after_editing(tmp_path, module_of(FIGURES[name]))
    assert plan == study.rerun(lambda job: job.rule == rule)
    assert set(plan) & study.figure_rules == {rule}
    assert "train" not in plan and "aggregate" not in plan


def smoke_heads() -> dict[str, str]:
    """The smoke study's method labels and the registry head each trains."""
    return {m: spec.get("head", m) for m, spec in load_preset("smoke")["methods"].items()}


@pytest.mark.parametrize("module", sorted({method_module(h) for h in smoke_heads().values()}))
def test_editing_one_fusion_method_retrains_only_its_conditions(study, tmp_path, module):
    methods = {m for m, head in smoke_heads().items() if method_module(head) == module}
    plan = study.plan_after_editing(tmp_path, module)
    assert plan == study.rerun(retrains(methods))
    assert plan["train"] == study.training(methods)
    assert {"aggregate", "all"} | study.figure_rules <= set(plan)


def test_editing_the_training_loop_retrains_every_condition(study, tmp_path):
    plan = study.plan_after_editing(tmp_path, "train.condition")
    assert plan == study.rerun(trains)
    assert plan["train"] == as_plan(study.dag)["train"]
    assert plan["tune"] == as_plan(study.dag)["tune"]


def test_editing_the_tuning_module_retunes_and_retrains_only_the_tuned_methods(study, tmp_path):
    tuned = set(load_preset("smoke")["tuning"]["methods"])
    plan = study.plan_after_editing(tmp_path, "train.tuning")
    assert plan == study.rerun(lambda job: job.rule == "tune")
    assert plan["train"] == study.training(tuned)


def test_editing_the_figure_style_redraws_every_figure(study, tmp_path):
    plan = study.plan_after_editing(tmp_path, "figures.style")
    assert plan == study.rerun(lambda job: job.rule in study.figure_rules)
    assert study.figure_rules <= set(plan)
    assert "train" not in plan and "aggregate" not in plan


def test_editing_the_shared_fusion_layers_retrains_the_methods_built_on_them(study, tmp_path):
    methods = {
        m
        for m, head in smoke_heads().items()
        if "fusion.layers" in imported_modules(module_path(study.clone, method_module(head)))
    }
    plan = study.plan_after_editing(tmp_path, "fusion.layers")
    assert plan == study.rerun(retrains(methods))


def test_editing_head_building_or_parameter_matching_retrains_every_condition(study, tmp_path):
    """Every training job builds its head through ``fusion.build``, which imports the width search
    of ``param_match``: the hash follows imports, so both count as shared training code."""
    for module in ("fusion.build", "fusion.sizing"):
        plan = study.plan_after_editing(tmp_path / module, module)
        assert plan == study.rerun(trains)


# The alignment jobs that run each module of the align stage: a job's hash covers its own module
# and what that imports, so a module's edit reruns only the jobs listed (and what reads them).
ALIGNMENT_JOBS = {
    "align.contrastive": {"align_contrastive"},
    "align.contrastive_set": {"align_contrastive"},
    "align.degrade": {"align_degrade"},
    "align.degraded_set": {"align_degrade"},
    "align.metrics": {"alignment_metrics"},
    "align.measurements": {"alignment_metrics"},
    "align.pairing": {"align_contrastive", "alignment_metrics"},
    "align.names": {"align_degrade", "alignment_metrics"},
    "align.feature_sets": {"align_contrastive", "align_degrade", "alignment_metrics"},
}


def test_every_alignment_module_has_its_jobs_listed():
    modules = {f"align.{p.stem}" for p in (ROOT / "src/alignfuse/align").glob("[!_]*.py")}
    assert set(ALIGNMENT_JOBS) == modules


@pytest.mark.parametrize("module", sorted(ALIGNMENT_JOBS))
def test_editing_an_alignment_module_reruns_only_the_jobs_that_run_it(study, tmp_path, module):
    rules = ALIGNMENT_JOBS[module]
    plan = study.plan_after_editing(tmp_path, module)
    assert plan == study.rerun(lambda job: job.rule in rules)


def test_editing_the_alignment_metrics_retrains_nothing(study, tmp_path):
    plan = study.plan_after_editing(tmp_path, "align.metrics")
    assert plan["alignment_metrics"] and "train" not in plan


def test_adding_a_method_to_the_registry_reruns_nothing(study, tmp_path):
    clone = copy_repository(tmp_path / "clone", source=study.clone)
    registry = clone / "src/alignfuse/fusion/__init__.py"
    text = registry.read_text().replace(
        "FUSION_METHODS = {",
        'FUSION_METHODS = {\n    "concat_copy": "alignfuse.fusion.concat:ConcatHead",',
    )
    registry.write_text(text)
    assert study.plan(clone) == {}


def test_pointing_a_registry_name_at_another_class_retrains_its_methods(study, tmp_path):
    clone = copy_repository(tmp_path / "clone", source=study.clone)
    registry = clone / "src/alignfuse/fusion/__init__.py"
    text = registry.read_text()
    entry = '"concat": "alignfuse.fusion.concat:ConcatHead"'
    assert entry in text
    registry.write_text(text.replace(entry, '"concat": "alignfuse.fusion.late:LateFusionHead"'))
    concat = {label for label, head in smoke_heads().items() if head == "concat"}
    assert concat == {"concat", "concat_tuned"}
    assert study.plan(clone) == study.rerun(retrains(concat))


def test_pointing_a_figure_at_another_function_redraws_it(study, tmp_path):
    clone = copy_repository(tmp_path / "clone", source=study.clone)
    registry = clone / "src/alignfuse/figures/__init__.py"
    text = registry.read_text()
    registry.write_text(
        text.replace("alignfuse.figures.params:plot", "alignfuse.figures.scaling:plot")
    )
    assert study.plan(clone) == study.rerun(lambda job: job.rule == "figure_params")


def test_editing_the_command_line_layer_reruns_nothing(study, tmp_path):
    """The CLI is not hashed, by choice: it parses arguments and calls into the modules that do the
    work (those are hashed), so a new subcommand, option or help text reruns nothing. Logic that
    shapes results belongs in a hashed module, not in ``cli.py``."""
    assert study.plan_after_editing(tmp_path, "cli") == {}


def test_a_fresh_clone_with_new_file_dates_has_nothing_to_do(study, tmp_path):
    """A clone gives every source file a new modification time (results are not in git). Content
    hashes, not dates, decide, so the finished study stays up to date; the dates are set an hour
    ahead so that every source file is newer than every result."""
    clone = copy_repository(tmp_path / "fresh", source=study.clone)
    later = time.time() + 3600
    for path in clone.rglob("*"):
        os.utime(path, (later, later))
    assert study.plan(clone) == {}


# --- tuning: a method's grid reruns its tuning and what it feeds ---------------------------------


def test_changing_one_methods_tuning_grid_plans_that_methods_tuning_and_training_only(study):
    """The smoke study tunes two labels' learning rates; another grid for one plans its tuning
    job, its training jobs (which read the chosen values) and the jobs that read every run. (Its
    claim against tuned concat then compares two grids: it must say so.)"""
    config = load_preset("smoke")
    method = "xattn_txt2img_tuned"
    config["tuning"]["methods"][method] = {"lr": [0.001, 0.01]}
    (claim,) = [c for c in config["claims"] if method in c["methods"]]
    claim["mixed_recipe"] = True
    configfile = write_config(study.workdir / "tuning_grid.yaml", config)
    plan = as_plan(study.jobs(clone=study.clone, configfile=configfile))
    assert plan == study.rerun(lambda job: job.rule == "tune" and method_of(job) == method)
    assert len(plan["tune"]) == 1 and plan["train"] == study.training({method})
    assert {"aggregate", "all"} <= set(plan)


def test_tuning_another_method_plans_its_tuning_and_training_and_leaves_the_others(study):
    """gated_sum, in no claim, tuned: its tuning and training only (concat's comparison with it
    is no longer declared, the recipes differing)."""
    config = load_preset("smoke")
    config["tuning"]["methods"]["gated_sum"] = {"lr": [0.001, 0.003]}
    configfile = write_config(study.workdir / "tuning_gated_sum.yaml", config)
    jobs = study.jobs(clone=study.clone, configfile=configfile)
    assert {method_of(job) for job in jobs if job.rule in TRAINING_RULES} == {"gated_sum"}
    assert as_plan(jobs)["train"] == study.training({"gated_sum"})


# --- seeds: adding seeds trains only the seed blocks they fall in ---------------------------------


def smoke_with_seeds(directory: Path, seeds: list[int], name: str) -> Path:
    """The smoke study's config file with other seeds (blocks of 5: training.seed_block)."""
    return write_config(directory / name, load_preset("smoke") | {"seeds": seeds})


def test_adding_seeds_in_a_new_block_trains_only_that_block_and_redoes_the_tables(study):
    """The smoke study's seeds 0 and 1 are block 0-4; seeds 5 and 6 fall in block 5-9: one new
    training job per condition, and the jobs that read every run (tables, PID, theory, figures,
    the summary). Nothing upstream of training reruns."""
    configfile = smoke_with_seeds(study.workdir, [0, 1, 5, 6], "seeds_in_a_new_block.yaml")
    plan = as_plan(study.jobs(clone=study.clone, configfile=configfile))
    dag = study.jobs("--forceall", clone=study.clone, configfile=configfile)
    new_block = [job for job in dag if job.rule == "train" and block_of(job) == "5-9"]
    assert plan == as_plan(with_downstream(dag, new_block))
    config = validate_config(load_preset("smoke"), ROOT / "workflow/schemas/config.schema.yaml")
    assert len(plan["train"]) == len(grid.conditions(config)) == len(new_block)
    assert {"aggregate", "pid", "theory", "study_summary", "all"} | study.figure_rules <= set(plan)


@pytest.fixture(scope="module")
def two_blocks(study, tmp_path_factory) -> tuple[Path, list[str]]:
    """A copy of the finished smoke study in which one condition also has seed 5 trained, in
    its block 5-9 (one training job): (working directory, that condition's two run files)."""
    workdir = tmp_path_factory.mktemp("two_blocks") / "work"
    shutil.copytree(study.workdir, workdir, symlinks=True)  # results and Snakemake's records
    condition = grid.Condition("aligned", "raw", "concat", 128)
    files = [
        grid.run_path("smoke", "smoke", condition, grid.SeedBlock(first, first + 4, ()))
        for first in (0, 5)
    ]
    configfile = smoke_with_seeds(workdir, [0, 1, 5], "seed_5.yaml")
    # run from this checkout, as the study was (the copy has no envs/ to record); same hashes
    snakemake(workdir, "--cores", "1", files[1], "--configfile", str(configfile))
    return workdir, files


@pytest.mark.parametrize(
    ("seeds", "retrained"),
    [
        ([0, 1, 5], []),
        ([0, 1, 2, 5], ["0-4"]),
        ([0, 1, 5, 6], ["5-9"]),
        ([0, 5, 6], ["0-4", "5-9"]),
    ],
    ids=["unchanged", "a seed in block 0-4", "a seed in block 5-9", "one in, one out"],
)
def test_changing_the_seeds_of_one_block_retrains_only_that_block(
    two_blocks, study, seeds, retrained
):
    workdir, files = two_blocks
    configfile = smoke_with_seeds(workdir, seeds, "seeds.yaml")
    jobs = dry_run(workdir, *files, "--configfile", str(configfile), clone=study.clone)
    assert sorted(block_of(job) for job in jobs if job.rule == "train") == retrained
    assert {job.rule for job in jobs} <= {"train"}


# --- encoders: what reruns feature extraction, and what does not --------------------------------

PLUGIN_SOURCE = Path(__file__).with_name("plugin_encoder.py")


@pytest.fixture(scope="module")
def plugin_study(tmp_path_factory):
    """A Flickr8k-format study on two plug-in encoders (the image one with a local weights
    file), one method, one scale and seed, finished up to its runs table (what encoders feed):
    (workdir, config, plug-in folder)."""
    from flickr8k_fixture import make_flickr8k_archives

    root = tmp_path_factory.mktemp("plugin_study")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "tiny_encoder.py").write_text(PLUGIN_SOURCE.read_text())
    archives = make_flickr8k_archives(root / "mirror", n_train=8, n_dev=4, n_test=4)
    workdir = root / "work"
    workdir.mkdir()
    weights = workdir / "image_weights.pt"
    import torch

    torch.manual_seed(0)
    torch.save(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 8)).state_dict(), weights
    )
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config |= {
        "study": "plugins",
        "encoders": {
            "img": {
                "library": "python",
                "model": "tiny_encoder:build_with_tokens",
                "checkpoint": str(weights),
            },
            "txt": {
                "library": "python",
                "model": "tiny_encoder:build_with_tokens",
                "pretrained": False,
            },
        },
        "backbones": {"tiny": {"image": "img", "text": "txt"}},
        "scales": [16],
        "seeds": [0],
        "training": {"max_epochs": 2, "batch_size": 8, "patience": 2},
        "methods": {"concat": {"hidden": [8]}},
        "claims": [],
        "comparisons": [],
        "grids": {},
        "tuning": {},
        "threads": {"train": 1, "features": 1},
    }
    config["dataset"] = {
        "name": "fixture",
        "kind": "flickr8k",
        "flickr8k": {
            "images": {"url": archives.images_url, "sha256": archives.images_sha256},
            "text": {"url": archives.text_url, "sha256": archives.text_sha256},
        },
    }
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(plugins), os.environ.get("PYTHONPATH", "")) if p
    )
    configfile = write_config(workdir / "s.yaml", config)
    snakemake(workdir, *plugin_targets(config), "--cores", "2", "--configfile", str(configfile))
    return workdir, config, plugins


def plugin_targets(config: dict) -> list[str]:
    """The runs table and the token files of the encoders that ask for them."""
    tokens = [
        f"results/features/fixture/{name}/{modality}_tokens.parquet"
        for name, modality in (("img", "image"), ("txt", "text"))
        if config["encoders"][name].get("tokens")
    ]
    return ["results/plugins/tables/runs.parquet", *tokens]


def planned(workdir: Path, config: dict, name: str) -> Plan:
    configfile = write_config(workdir / name, config)
    # targets first: --configfile takes every value after it
    return as_plan(dry_run(workdir, *plugin_targets(config), "--configfile", str(configfile)))


def test_changing_an_encoders_batch_size_reruns_nothing(plugin_study):
    workdir, config, _ = plugin_study
    config = copy.deepcopy(config)
    config["encoders"]["img"]["batch_size"] = 3
    assert planned(workdir, config, "batch.yaml") == {}


def test_turning_tokens_on_extracts_only_the_token_sequences(plugin_study):
    workdir, config, _ = plugin_study
    config = copy.deepcopy(config)
    config["encoders"]["txt"]["tokens"] = True
    plan = planned(workdir, config, "tokens.yaml")
    assert plan == {"tokens": ["results/features/fixture/txt/text_tokens.parquet"]}


def test_editing_a_plugin_encoders_module_re_extracts_its_features_and_retrains(plugin_study):
    workdir, config, plugins = plugin_study
    module = plugins / "tiny_encoder.py"
    original = module.read_text()
    try:
        module.write_text(original + EDIT)
        plan = planned(workdir, config, "edited.yaml")
    finally:
        module.write_text(original)
    assert len(plan["features"]) == 2 and "train" in plan and "aggregate" in plan


def test_replacing_an_encoders_weights_file_re_extracts_what_it_encodes(plugin_study):
    workdir, config, _ = plugin_study
    import torch

    weights = Path(config["encoders"]["img"]["checkpoint"])
    original = weights.read_bytes()
    try:
        state = torch.load(weights, weights_only=True)
        torch.save({k: v + 1 for k, v in state.items()}, weights)  # other weights, same file
        plan = planned(workdir, config, "weights.yaml")
    finally:
        weights.write_bytes(original)
    assert plan["features"] == ["results/features/fixture/img/image.parquet"]
    assert "fetch_weights" in plan and "train" in plan
