from pathlib import Path

import pytest
import yaml

from alignfuse import grid
from alignfuse.config import validate_config

ROOT = Path(__file__).resolve().parents[1]


def paper_config() -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")


def test_without_grids_the_study_is_the_product_of_its_lists():
    config = paper_config()
    config["grids"] = {}
    conditions = grid.conditions(config)
    assert len(conditions) == 2 * 1 * len(config["methods"]) * len(config["scales"])
    assert grid.Condition("clip", "raw", "xattn_txt2img", 16384) in conditions


def test_the_paper_study_adds_its_sub_grids_without_multiplying_the_paper_grid():
    config = paper_config()
    conditions = grid.conditions(config)
    methods, scales = len(config["grids"]["paper"]["methods"]), len(config["scales"])
    degradation, tuned = config["grids"]["degradation"], config["grids"]["tuned"]
    extra = (len(degradation["alignments"]) - 1) * len(degradation["methods"])
    extra += len(tuned["methods"]) * len(tuned["scales"])
    assert len(conditions) == 2 * methods * scales + methods * scales + extra
    assert grid.Condition("clip", "rotation-0.5", "xattn_bidir", 4096) in conditions
    assert grid.Condition("clip", "rotation-0.5", "xattn_bidir", 2048) not in conditions
    assert grid.Condition("resnet18", "contrastive", "concat", 32768) in conditions


def test_run_path_follows_the_design_contract():
    block = grid.SeedBlock(0, 4, (0, 1, 2, 3, 4))
    path = grid.run_path("paper", "flickr8k", grid.Condition("clip", "raw", "concat", 2048), block)
    assert path == "results/paper/runs/flickr8k/clip@raw/concat/n2048/seeds0-4.parquet"


def test_the_papers_five_seeds_are_one_block():
    config = paper_config()
    assert config["training"]["seed_block"] == 5
    assert grid.seed_blocks(config, "concat") == [grid.SeedBlock(0, 4, (0, 1, 2, 3, 4))]
    condition = grid.Condition("clip", "raw", "concat", 2048)
    assert grid.run_paths(config, condition, ".predictions") == [
        "results/paper/runs/flickr8k/clip@raw/concat/n2048/seeds0-4.predictions.parquet"
    ]


def test_seed_blocks_hold_the_seeds_of_their_range_whatever_the_seeds_around_them():
    config = paper_config()
    config["training"]["seed_block"] = 3
    config["seeds"] = [7, 0, 1, 12, 2, 3]
    blocks = grid.seed_blocks(config, "concat")
    assert [(b.name, b.seeds) for b in blocks] == [
        ("0-2", (0, 1, 2)),
        ("3-5", (3,)),
        ("6-8", (7,)),
        ("12-14", (12,)),
    ]
    config["seeds"] += [5, 20]  # in an existing block and in a new one
    grown = {b.name: b.seeds for b in grid.seed_blocks(config, "concat")}
    assert grown["3-5"] == (3, 5) and grown["18-20"] == (20,)
    assert {k: v for k, v in grown.items() if k not in ("3-5", "18-20")} == {
        b.name: b.seeds for b in blocks if b.name != "3-5"
    }


def test_a_training_job_holds_only_its_blocks_seeds_and_not_the_block_size():
    config = paper_config()
    config["seeds"] = [0, 1, 2, 3, 4, 5, 6]
    assert grid.train_slice(config, "concat", "5-9")["seeds"] == [5, 6]
    before = grid.train_slice(config, "concat", "0-4")
    assert before["seeds"] == [0, 1, 2, 3, 4]
    assert "seed_block" not in before["training"]
    config["seeds"].append(9)  # another block's seed: this block's job is unchanged
    assert grid.train_slice(config, "concat", "0-4") == before
    with pytest.raises(ValueError, match="no seed block 10-14"):
        grid.train_slice(config, "concat", "10-14")


def test_a_method_may_train_its_seeds_in_blocks_of_its_own():
    config = paper_config()
    config["methods"]["xattn_txt2img"]["training"] = {"seed_block": 2}
    assert [b.name for b in grid.seed_blocks(config, "xattn_txt2img")] == ["0-1", "2-3", "4-5"]
    assert [b.name for b in grid.seed_blocks(config, "concat")] == ["0-4"]


def test_method_overrides_apply_to_that_method_only():
    config = paper_config()
    config["methods"]["xattn_txt2img"]["training"] = {"lr": 0.0003}
    assert grid.train_slice(config, "xattn_txt2img", "0-4")["training"]["lr"] == 0.0003
    assert grid.train_slice(config, "concat", "0-4")["training"]["lr"] == 0.001


def test_train_slice_holds_what_a_training_job_depends_on():
    config = paper_config()
    spec = grid.train_slice(config, "concat", "0-4")
    assert spec["method"] == "concat"
    assert spec["head"] == "concat"
    assert spec["hparams"] == {"hidden": [256, 128], "dropout": 0.1}
    assert spec["seeds"] == config["seeds"]
    assert "training" not in spec["hparams"]


def test_a_method_label_trains_the_head_it_names():
    config = paper_config()
    config["methods"]["xattn_small"] = {**config["methods"]["xattn_txt2img"], "dim": 64}
    config["methods"]["xattn_small"]["head"] = "xattn_txt2img"
    spec = grid.train_slice(config, "xattn_small", "0-4")
    assert (spec["method"], spec["head"], spec["hparams"]["dim"]) == (
        "xattn_small",
        "xattn_txt2img",
        64,
    )


def test_train_slice_ignores_settings_of_other_stages():
    config = paper_config()
    before = grid.train_slice(config, "concat", "0-4")
    config["figures"]["dpi"] = 600
    config["threads"]["train"] = 8
    config["methods"]["xattn_txt2img"]["heads"] = 8
    assert grid.train_slice(config, "concat", "0-4") == before


def test_grids_train_the_union_of_their_products_each_condition_once():
    config = paper_config()
    config["grids"] = {
        "paper": {"alignments": ["raw"]},
        "degradation": {
            "backbones": ["clip"],
            "alignments": ["raw", "rotation-0.5", "noise-0.5"],
            "methods": ["concat", "xattn_txt2img"],
            "scales": [4096],
        },
    }
    conditions = grid.conditions(config)
    paper = 2 * len(config["methods"]) * len(config["scales"])
    assert len(conditions) == paper + 2 * 2  # clip@raw at 4096 is in both grids, counted once
    assert grid.Condition("clip", "rotation-0.5", "xattn_txt2img", 4096) in conditions
    assert grid.Condition("resnet18", "rotation-0.5", "concat", 4096) not in conditions
    assert grid.feature_sets(config) == [
        ("clip", "noise-0.5"),
        ("clip", "raw"),
        ("clip", "rotation-0.5"),
        ("resnet18", "raw"),
    ]
