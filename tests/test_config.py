import copy
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake

from alignfuse import grid
from alignfuse.analysis.comparisons import declare
from alignfuse.config import validate_config
from alignfuse.errors import AlignfuseError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


PRESETS = ROOT / "workflow/presets"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture
def paper() -> dict:
    return load("config.yaml")


@pytest.fixture
def synthetic() -> dict:
    return load("workflow/presets/synthetic.yaml")


SHIPPED = ["config.yaml", *(f"workflow/presets/{p.name}" for p in sorted(PRESETS.glob("*.yaml")))]


def as_a_user_would(config: dict, where: Path) -> dict:
    """A shipped config with what only its user can provide, as its comments ask, made under
    ``where``: the example folder, and for Flickr30k and COCO the sha256 of Karpathy's captions
    and Flickr30k's images from the maintainers' form."""
    kind = config["dataset"]["kind"]
    if kind == "folder":
        from alignfuse.data.example_folder import make_example_folder

        folder = config["dataset"]["folder"]
        make_example_folder(where / "data/folder_example", 200, 1)
        folder["images"], folder["captions"] = (
            str(where / folder[k]) for k in ("images", "captions")
        )
    if kind in ("flickr30k", "coco"):
        config["dataset"][kind]["captions"]["sha256"] = "a" * 64
    if kind == "flickr30k":
        images = where / config["dataset"]["flickr30k"]["images"]
        images.parent.mkdir(parents=True, exist_ok=True)
        images.write_bytes(b"")
        config["dataset"]["flickr30k"]["images"] = str(images)
    return config


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_plans(name, tmp_path):
    """Schema and every semantic check (comparisons declared, recipes matched, sizes reachable)
    pass as the workflow runs them, and the study has conditions to train."""
    config = validate_config(as_a_user_would(load(name), tmp_path), SCHEMA)
    trained = [(c.backbone, c.alignment, c.method, c.n) for c in grid.conditions(config)]
    assert trained
    for comparison in declare(grid.comparison_spec(config), trained):
        differ = grid.recipe(config, comparison.reference) != grid.recipe(config, comparison.method)
        assert differ == comparison.mixed_recipe, comparison
        if differ:  # only where a claim or comparison says so
            entries = config["claims"] + config["comparisons"]
            assert any(e["id"] in comparison.sources and e["mixed_recipe"] for e in entries)


def test_the_planning_test_covers_config_yaml_and_every_preset():
    assert len(SHIPPED) == 1 + len(list(PRESETS.glob("*.yaml"))) >= 10


def test_defaults_are_filled(synthetic):
    config = validate_config(synthetic, SCHEMA)
    assert config["methods"]["concat"]["dropout"] == 0.1
    assert config["methods"]["xattn_txt2img"]["heads"] == 4
    assert config["training"]["batch_size"] == 128
    assert config["alignments"] == ["raw"]
    assert config["figures"]["formats"] == ["pdf", "png"]


def test_paper_config_matches_the_paper(paper):
    config = validate_config(paper, SCHEMA)
    assert {2048, 4096, 8192, 16384} <= set(config["scales"]) and len(config["scales"]) >= 6
    assert len(config["seeds"]) >= 5
    assert config["methods"]["concat"]["hidden"] == [256, 128]
    assert set(config["backbones"]) == {"resnet18", "clip"}
    assert config["backbones"]["resnet18"]["text"] == config["backbones"]["clip"]["text"]


def index(part: str):
    """A path part as a list index where it is one (``claims.0.band``)."""
    return int(part) if part.isdigit() else part


def set_key(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[index(part)]
    node[index(last)] = value
    return config


def drop_key(config: dict, path: str) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    del node[last]
    return config


MALFORMED = [
    # (description, config transform, expected fragments of the message)
    (
        "unknown top-level key",
        lambda c: set_key(c, "epochs", 5),
        ["(top level)", "'epochs' was unexpected"],
    ),
    (
        "unknown training key",
        lambda c: set_key(c, "training.learning_rate", 0.1),
        ["training", "learning_rate"],
    ),
    (
        "wrong type",
        lambda c: set_key(c, "training.max_epochs", "ten"),
        ["training.max_epochs", "not of type 'integer'"],
    ),
    (
        "negative learning rate",
        lambda c: set_key(c, "training.lr", -0.001),
        ["training.lr", "-0.001"],
    ),
    (
        "seed block of zero seeds",
        lambda c: set_key(c, "training.seed_block", 0),
        ["training.seed_block", "less than the minimum of 1"],
    ),
    (
        "seed block that is not a whole number",
        lambda c: set_key(c, "training.seed_block", 2.5),
        ["training.seed_block", "not of type 'integer'"],
    ),
    (
        "a method's seed block of zero seeds",
        lambda c: set_key(c, "methods.xattn_txt2img.training", {"seed_block": 0}),
        ["methods.xattn_txt2img.training.seed_block", "less than the minimum of 1"],
    ),
    ("zero seeds", lambda c: set_key(c, "seeds", []), ["'seeds'", "should be non-empty"]),
    ("odd scale", lambda c: set_key(c, "scales", [1000, 1001]), ["scales.1", "multiple of 2"]),
    ("duplicate seeds", lambda c: set_key(c, "seeds", [0, 0]), ["'seeds'", "non-unique"]),
    (
        "unknown head",
        lambda c: set_key(c, "methods.lstm", {"head": "lstm"}),
        ["methods.lstm.head", "'lstm' is not one of"],
    ),
    (
        "unknown dataset kind",
        lambda c: set_key(c, "dataset.kind", "laion"),
        ["dataset.kind", "'laion'"],
    ),
    (
        "missing backbones",
        lambda c: drop_key(c, "backbones"),
        ["(top level)", "'backbones' is a required property"],
    ),
    (
        "bad checksum",
        lambda c: set_key(c, "dataset.flickr8k.text.md5", "xyz"),
        ["dataset.flickr8k.text.md5", "'xyz'"],
    ),
    (
        "dropout of one",
        lambda c: set_key(c, "methods.concat.dropout", 1.0),
        ["methods.concat.dropout", "1.0"],
    ),
    (
        "method training override with a typo",
        lambda c: set_key(c, "methods.xattn_txt2img.training", {"lrr": 1}),
        ["methods.xattn_txt2img.training", "'lrr' was unexpected"],
    ),
    (
        "a hyper-parameter of another head",
        lambda c: set_key(c, "methods.small", {"head": "concat", "dim": 64}),
        ["methods.small", "'dim' was unexpected"],
    ),
    (
        "a direction on a cross-attention name, which binds its own",
        lambda c: set_key(c, "methods.xattn_img2txt.direction", "txt2img"),
        ["methods.xattn_img2txt", "'direction' was unexpected"],
    ),
    (
        "param_match that is not a count",
        lambda c: set_key(c, "methods.gated_sum.param_match", "296K"),
        ["methods.gated_sum.param_match", "not of type 'integer'", "target parameter count"],
    ),
    (
        "param_match of zero",
        lambda c: set_key(c, "methods.late.param_match", 0),
        ["methods.late.param_match", "less than the minimum of 1"],
    ),
    (
        "unknown gate",
        lambda c: set_key(c, "methods.gated_sum.gate", "tanh"),
        ["methods.gated_sum.gate", "'tanh'"],
    ),
    (
        "one weight for two modalities",
        lambda c: set_key(c, "methods.weighted_sum.weights", [1.0]),
        ["methods.weighted_sum.weights", "too short"],
    ),
    (
        "negative modality weight",
        lambda c: set_key(c, "methods.weighted_sum.weights", [-0.5, 1.0]),
        ["methods.weighted_sum.weights.0", "-0.5"],
    ),
    (
        "unknown late combination",
        lambda c: set_key(c, "methods.late.combine", "max"),
        ["methods.late.combine", "'max'"],
    ),
    (
        "empty hidden widths",
        lambda c: set_key(c, "methods.image_only.hidden", []),
        ["methods.image_only.hidden", "should be non-empty"],
    ),
    (
        "bad on_bad_image",
        lambda c: set_key(c, "dataset.flickr8k.on_bad_image", "ignore"),
        ["dataset.flickr8k.on_bad_image", "'ignore'"],
    ),
    (
        "an unknown schedule",
        lambda c: set_key(c, "methods.xattn_txt2img.training", {"schedule": "cosine"}),
        ["methods.xattn_txt2img.training.schedule", "'cosine'"],
    ),
    (
        "a warm-up of the whole run",
        lambda c: set_key(c, "training.warmup_fraction", 1.0),
        ["training.warmup_fraction", "1.0"],
    ),
    (
        "a tuning grid of a setting that cannot be tuned",
        lambda c: set_key(c, "tuning", {"methods": {"concat": {"batch_size": [64, 128]}}}),
        ["tuning.methods.concat", "batch_size"],
    ),
    (
        "a tuning grid with no values",
        lambda c: set_key(c, "tuning", {"methods": {"concat": {"lr": []}}}),
        ["tuning.methods.concat.lr"],
    ),
    (
        "an unknown tuning metric",
        lambda c: set_key(c, "tuning", {"metric": "test_accuracy"}),
        ["tuning.metric", "'test_accuracy'"],
    ),
]


@pytest.mark.parametrize(
    ("description", "transform", "fragments"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_schema_rejects_malformed_config_naming_the_key(paper, description, transform, fragments):
    with pytest.raises(AlignfuseError) as info:
        validate_config(transform(paper), SCHEMA)
    message = str(info.value)
    assert message.startswith("config key '")
    assert "config.schema.yaml" in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message


SEMANTIC = [
    (
        "scale larger than the available pairs",
        lambda c: set_key(c, "scales", [2048, 65536]),
        ["'scales'", "[65536]", "60000 training pairs"],
    ),
    (
        "backbone naming an unknown encoder",
        lambda c: set_key(c, "backbones.clip.text", "bert"),
        ["backbones.clip.text", "'bert'", "clip, resnet18"],
    ),
    (
        "encoder without a model",
        lambda c: drop_key(c, "encoders.resnet18.model"),
        ["encoders.resnet18.model", "required"],
    ),
    (
        "plug-in encoder that is not module:function",
        lambda c: set_key(c, "encoders.clip", {"library": "python", "model": "mymodule"}),
        ["encoders.clip.model", "module:function"],
    ),
    (
        "missing local archive",
        lambda c: set_key(c, "dataset.flickr8k.archives.images", "does/not/exist.zip"),
        ["dataset.flickr8k.archives.images", "does/not/exist.zip", "not a file"],
    ),
    (
        "synthetic encoder on a real dataset",
        lambda c: set_key(c, "encoders.clip", {"library": "synthetic"}),
        ["encoders.clip.library", "flickr8k"],
    ),
    (
        "attention width not divisible by heads",
        lambda c: set_key(c, "methods.xattn_txt2img.dim", 250),
        ["methods.xattn_txt2img.dim", "heads=4"],
    ),
    (
        "bidirectional attention width not divisible by heads",
        lambda c: set_key(c, "methods.xattn_bidir.heads", 5),
        ["methods.xattn_bidir.dim", "heads=5"],
    ),
    (
        "encoder tokens from an encoder that does not cache them",
        lambda c: set_key(c, "methods.xattn_img2txt.token_source", "encoder"),
        ["methods.xattn_img2txt.token_source", "'resnet18'", "encoders.resnet18.tokens: true"],
    ),
    (
        "token source that does not exist",
        lambda c: set_key(c, "methods.xattn_img2txt.token_source", "patches"),
        ["methods.xattn_img2txt.token_source", "'patches' is not one of", "pseudo"],
    ),
    (
        "a param_match target no width of the head can reach",
        lambda c: set_key(c, "methods.gated_sum.param_match", 10),
        ["methods.gated_sum.param_match", "no width of this head comes within", "backbone"],
    ),
    (
        "min_epochs above max_epochs",
        lambda c: set_key(c, "training.min_epochs", 500),
        ["training.min_epochs", "500 is more than max_epochs = 100"],
    ),
    (
        "a method's max_epochs below the global min_epochs",
        lambda c: set_key(
            set_key(c, "training.min_epochs", 20), "methods.concat.training", {"max_epochs": 5}
        ),
        ["methods.concat.training.min_epochs", "more than max_epochs = 5"],
    ),
    (
        "an alignment that spells no recipe",
        lambda c: set_key(c, "alignments", ["raw", "warped"]),
        ["alignments.1", "'warped' is not an alignment"],
    ),
    (
        "a degradation level above one",
        lambda c: set_key(c, "grids", {"d": {"alignments": ["raw", "rotation-1.5"]}}),
        ["grids.d.alignments.1", "1.5", "level from 0"],
    ),
    (
        "a grid naming a backbone the study lacks",
        lambda c: set_key(c, "grids", {"d": {"backbones": ["vit"]}}),
        ["grids.d.backbones", "['vit']", "clip"],
    ),
    (
        "a grid scale beyond the training pairs",
        lambda c: set_key(c, "grids", {"d": {"scales": [70000]}}),
        ["grids.d.scales", "[70000]"],
    ),
    (
        "encoder tokens on a degraded feature set",
        lambda c: set_key(
            set_key(
                set_key(set_key(c, "encoders.clip.tokens", True), "encoders.resnet18.tokens", True),
                "methods.xattn_img2txt.token_source",
                "encoder",
            ),
            "grids",
            {"d": {"backbones": ["clip"], "alignments": ["rotation-0.5"]}},
        ),
        ["methods.xattn_img2txt.token_source", "raw features only"],
    ),
    (
        "both modality weights zero",
        lambda c: set_key(c, "methods.weighted_sum.weights", [0.0, 0.0]),
        ["methods.weighted_sum.weights", "both zero"],
    ),
    (
        "an analysis reference that is not a method",
        lambda c: set_key(c, "analysis.reference", "concatenation"),
        ["analysis.reference", "'concatenation'", "not one of the methods"],
    ),
    (
        "a claim naming a method label that is not defined",
        lambda c: set_key(c, "claims.0.methods", ["xattn_txt2img", "xattn_typo"]),
        ["claims.0.methods.1", "'xattn_typo'", "not a method this study trains"],
    ),
    (
        "a claim naming a method that no grid trains",
        lambda c: set_key(c, "grids", {"only": {"methods": ["concat", "xattn_txt2img"]}}),
        ["claims.0.methods.1", "'xattn_img2txt'", "trained: concat, xattn_txt2img"],
    ),
    (
        "a claim naming an unknown backbone",
        lambda c: set_key(c, "claims.1.backbone", "vit"),
        ["claims.1.backbone", "'vit'", "clip, resnet18"],
    ),
    (
        "a claim against a reference the study does not train",
        lambda c: set_key(c, "claims.0.reference", "concat_typo"),
        ["claims.0.reference", "'concat_typo'", "not a method this study trains"],
    ),
    (
        "a gap claim's band written high to low",
        lambda c: set_key(c, "claims.0.band", [5.1, 4.1]),
        ["claims.0.band", "[5.1, 4.1] is written high to low", "write [4.1, 5.1]"],
    ),
    (
        "a trend claim whose ends are equal",
        lambda c: set_key(c, "claims.1.band", [2.0, 2.0]),
        ["claims.1.band", "both are 2", "no rise or fall"],
    ),
    (
        "a claim that sets untuned concat against tuned cross-attention",
        lambda c: set_key(c, "claims.2.reference", "concat"),
        [
            "claims.2",
            "clip_gap_tuned",
            "concat (recipe: shared)",
            "xattn_txt2img_tuned (recipe: tuned on dev",
            "claims.2.mixed_recipe: true",
        ],
    ),
    (
        "a comparison that sets tuned concat against untuned cross-attention",
        lambda c: set_key(
            c, "comparisons", [{"id": "x", "reference": "concat_tuned", "methods": ["bilinear"]}]
        ),
        ["comparisons.0", "concat_tuned (recipe: tuned", "bilinear (recipe: shared)"],
    ),
    (
        "a comparison naming a method no grid trains",
        lambda c: set_key(c, "comparisons", [{"id": "x", "reference": "concat", "methods": ["y"]}]),
        ["comparisons.0.methods.0", "'y'", "not a method this study trains"],
    ),
    (
        "a comparison that names its reference among its methods",
        lambda c: set_key(
            c, "comparisons", [{"id": "x", "reference": "concat", "methods": ["concat"]}]
        ),
        ["comparisons.0.methods", "names the reference 'concat'"],
    ),
    (
        "a comparison on a backbone the study does not train",
        lambda c: set_key(
            c,
            "comparisons",
            [{"id": "x", "reference": "concat", "methods": ["late"], "backbones": ["vit"]}],
        ),
        ["comparisons.0.backbones", "['vit']", "clip, resnet18"],
    ),
    (
        "a comparison at scales where nothing is trained",
        lambda c: set_key(
            c,
            "comparisons",
            [{"id": "x", "reference": "concat", "methods": ["late"], "scales": [3]}],
        ),
        ["comparisons.0", "matches no feature set and scale", "concat"],
    ),
    (
        "a comparison whose id is a claim's",
        lambda c: set_key(
            c, "comparisons", [{"id": "clip_gap", "reference": "concat", "methods": ["late"]}]
        ),
        ["comparisons.0.id", "'clip_gap' is already the id of claims.0.id"],
    ),
    (
        "a tuning grid for a method the study lacks",
        lambda c: set_key(c, "tuning", {"methods": {"xattn": {"lr": [1e-3]}}}),
        ["tuning.methods.xattn", "not one of the methods", "'all'"],
    ),
    (
        "tuning on a backbone the study lacks",
        lambda c: set_key(c, "tuning", {"methods": {"all": {"lr": [1e-3]}}, "backbone": "vit"}),
        ["tuning.backbone", "'vit'"],
    ),
    (
        "tuning on a feature set the study does not train on",
        lambda c: set_key(
            c, "tuning", {"methods": {"all": {"lr": [1e-3]}}, "alignment": "noise-0.5"}
        ),
        ["tuning.alignment", "no resnet18@noise-0.5 features", "resnet18@raw"],
    ),
    (
        "a tuning scale beyond the training pairs",
        lambda c: set_key(c, "tuning", {"methods": {"all": {"lr": [1e-3]}}, "scale": 65536}),
        ["tuning.scale", "[65536]"],
    ),
]


@pytest.mark.parametrize(
    ("description", "transform", "fragments"), SEMANTIC, ids=[s[0] for s in SEMANTIC]
)
def test_semantic_checks_name_the_key(paper, description, transform, fragments):
    with pytest.raises(AlignfuseError) as info:
        validate_config(transform(paper), SCHEMA)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_synthetic_scale_limit_follows_the_generator(synthetic):
    # 4000 images, 75% train, 5 captions, one negative per positive: 30000 pairs.
    validate_config(set_key(synthetic, "scales", [30000]), SCHEMA)
    with pytest.raises(AlignfuseError, match="30000 training pairs"):
        validate_config(set_key(synthetic, "scales", [30002]), SCHEMA)


def test_synthetic_split_must_sum_to_one(synthetic):
    bad = set_key(synthetic, "dataset.synthetic.split", {"train": 0.5, "dev": 0.2, "test": 0.2})
    with pytest.raises(AlignfuseError, match="dataset.synthetic.split"):
        validate_config(bad, SCHEMA)


def test_rotation_is_only_for_synthetic_encoders(paper):
    bad = set_key(paper, "encoders.clip.rotation", 0.5)
    with pytest.raises(AlignfuseError, match="encoders.clip.rotation"):
        validate_config(bad, SCHEMA)


def test_synthetic_subspaces_must_fit_before_any_job_runs(synthetic):
    bad = set_key(synthetic, "dataset.synthetic.latent_dim", 600)
    with pytest.raises(AlignfuseError, match=r"dataset\.synthetic\.latent_dim"):
        validate_config(bad, SCHEMA)


def test_pretrained_encoders_must_say_which_weights(paper):
    with pytest.raises(AlignfuseError, match=r"encoders\.clip\.pretrained"):
        validate_config(drop_key(paper, "encoders.clip.pretrained"), SCHEMA)


def test_a_label_that_is_not_a_head_must_name_its_head(paper):
    with pytest.raises(AlignfuseError) as info:
        validate_config(set_key(paper, "methods.xattn", {}), SCHEMA)
    message = str(info.value)
    assert "config key 'methods.xattn.head' is required" in message
    assert "xattn_txt2img, xattn_img2txt, xattn_bidir" in message


def test_two_variants_of_one_head_sit_in_one_study(paper):
    paper["methods"]["xattn_matched"] = {
        "head": "xattn_txt2img",
        "token_map": "chunks",
        "param_match": 295_554,
    }
    methods = validate_config(paper, SCHEMA)["methods"]
    assert methods["xattn_matched"]["head"] == methods["xattn_txt2img"]["head"]
    assert methods["xattn_matched"]["heads"] == 4  # the head's defaults are filled
    assert methods["concat"]["head"] == "concat"  # a registry name names its own head


def test_a_tuned_method_defaults_to_the_first_backbone_raw_features_and_the_largest_scale(paper):
    paper["claims"] = []  # they set concat against untuned cross-attention: mixed recipes
    config = validate_config(
        set_key(paper, "tuning", {"methods": {"concat": {"lr": [1e-3]}}}), SCHEMA
    )
    assert grid.tuned_methods(config) == ["concat"]
    assert grid.tuning_target(config) == {
        "backbone": "resnet18",
        "alignment": "raw",
        "scale": 32768,
        "seeds": [0],
        "metric": "dev_accuracy",
    }


def test_an_all_grid_tunes_every_method_without_one_of_its_own(paper):
    grids = {"all": {"lr": [1e-3, 3e-4]}, "concat": {"dropout": [0.0, 0.1]}}
    paper["claims"] = []  # concat's grid differs from the heads it is claimed against
    config = validate_config(set_key(paper, "tuning", {"methods": grids}), SCHEMA)
    assert grid.tuned_methods(config) == list(config["methods"])
    assert grid.tuning_grid(config, "concat") == {"dropout": [0.0, 0.1]}
    assert grid.tuning_grid(config, "bilinear") == {"lr": [1e-3, 3e-4]}


def test_an_untuned_method_on_the_constant_rate_keeps_its_jobs_settings_as_before(paper):
    """Adding the schedule keys changed no job of a study that does not use them."""
    config = validate_config(paper, SCHEMA)
    training = grid.train_slice(config, "concat", "0-4")["training"]
    assert not {"schedule", "warmup_fraction", "final_lr_fraction"} & set(training)
    config["methods"]["xattn_txt2img"]["training"] = {"schedule": "warmup_cosine"}
    training = grid.train_slice(config, "xattn_txt2img", "0-4")["training"]
    assert training["schedule"] == "warmup_cosine" and training["warmup_fraction"] == 0.05


def test_method_defaults_are_filled(synthetic):
    synthetic["methods"] = {"late": {}, "gated_sum": {"param_match": 40_000}}
    synthetic["grids"] = {}
    synthetic["analysis"] = {"reference": "late"}
    synthetic["claims"] = []  # its claims compare concat and cross-attention
    synthetic["tuning"] = {}  # it tunes copies of concat and cross-attention
    methods = validate_config(synthetic, SCHEMA)["methods"]
    assert methods["late"] == {
        "head": "late",
        "hidden": [256, 128],
        "combine": "sum",
        "dropout": 0.1,
    }
    assert methods["gated_sum"]["gate"] == "sigmoid"
    assert methods["gated_sum"]["param_match"] == 40_000


def test_without_methods_the_paper_pair_is_trained(synthetic):
    del synthetic["methods"], synthetic["tuning"], synthetic["pid"]
    synthetic["grids"] = {"main": {"alignments": ["raw"]}}  # the preset's grids name its methods
    synthetic["claims"] = [c for c in synthetic["claims"] if c["methods"] == ["xattn_txt2img"]]
    assert set(validate_config(synthetic, SCHEMA)["methods"]) == {"concat", "xattn_txt2img"}


def test_encoder_tokens_need_a_dataset_with_token_sequences(synthetic):
    synthetic["methods"]["xattn_txt2img"]["token_source"] = "encoder"
    with pytest.raises(
        AlignfuseError, match="xattn_txt2img.token_source.*use token_source: pseudo"
    ):
        validate_config(synthetic, SCHEMA)


def test_encoder_tokens_are_valid_when_every_backbone_encoder_caches_them(paper):
    for encoder in paper["encoders"].values():
        encoder["tokens"] = True
    paper["grids"] = {"paper": {"alignments": ["raw"]}}  # token sequences exist for raw only
    paper["methods"]["xattn_txt2img"]["token_source"] = "encoder"
    config = validate_config(paper, SCHEMA)
    assert config["methods"]["xattn_img2txt"]["token_source"] == "pseudo"  # the default


def test_a_trend_claim_may_claim_a_fall(paper):
    """A trend's band runs from the undegraded gap to the most degraded one, in either order."""
    config = validate_config(set_key(paper, "claims.1.band", [2.8, 1.3]), SCHEMA)
    assert config["claims"][1]["band"] == [2.8, 1.3]


def test_command_line_strings_become_the_numbers_the_schema_asks_for(synthetic):
    """Snakemake's --config hands list items and nested values over as text."""
    synthetic["seeds"] = ["0", "1", "2"]
    synthetic["scales"] = ["16", "32"]
    synthetic["pid"] = {"k": ["5", "10"]}
    synthetic["training"]["lr"] = "3e-4"
    synthetic["methods"]["concat"]["dropout"] = "0.2"  # a head's conditional branch
    synthetic["encoders"][next(iter(synthetic["encoders"]))]["tokens"] = "false"
    config = validate_config(synthetic, SCHEMA)
    assert config["seeds"] == [0, 1, 2] and config["scales"] == [16, 32]
    assert config["pid"]["k"] == [5, 10]
    assert config["training"]["lr"] == 3e-4
    assert config["methods"]["concat"]["dropout"] == 0.2
    assert next(iter(config["encoders"].values()))["tokens"] is False
    assert type(config["seeds"][0]) is int


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("seeds", ["0", "one"], "config key 'seeds.1': 'one' is not of type 'integer'"),
        ("scales", ["16.5"], "config key 'scales.0': '16.5' is not of type 'integer'"),
        ("study", "12", None),  # a string key keeps its text
    ],
)
def test_strings_that_spell_no_number_are_still_refused(synthetic, path, value, fragment):
    config = set_key(synthetic, path, value)
    if fragment is None:
        assert validate_config(config, SCHEMA)[path] == value
        return
    with pytest.raises(AlignfuseError) as info:
        validate_config(config, SCHEMA)
    assert fragment in str(info.value)


@pytest.mark.slow
def test_the_documented_seed_override_plans_the_study(tmp_path):
    """docs/configuration.md: `snakemake --cores all --config seeds=[0,1,2]`, on the smoke preset."""
    doc = (ROOT / "docs/configuration.md").read_text()
    assert "`snakemake --cores all --config seeds=[0,1,2]`" in doc
    result = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "all",
        "--configfile",
        str(ROOT / "workflow/presets/smoke.yaml"),
        "--config",
        "seeds=[0,1,2]",
    )
    assert "rule train:" in result.stdout
    assert not (tmp_path / "results").exists()


@pytest.fixture
def folder_example(tmp_path, monkeypatch):
    """The folder_example preset in a working directory holding its example folder."""
    from alignfuse.data.example_folder import make_example_folder

    monkeypatch.chdir(tmp_path)
    make_example_folder(tmp_path / "data/folder_example", 200, 1)
    return load("workflow/presets/folder_example.yaml")


def test_folder_example_preset_is_valid_on_the_example_folder(folder_example):
    config = validate_config(folder_example, SCHEMA)
    assert config["dataset"]["folder"]["on_bad_image"] == "error"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: set_key(c, "dataset.folder.images", None),
            ["dataset.folder.images' is required for kind folder"],
        ),
        (
            lambda c: set_key(c, "dataset.folder.images", "data/folder_example/captions.csv"),
            ["dataset.folder.images", "neither a directory nor a zip"],
        ),
        (
            lambda c: set_key(c, "dataset.folder.captions", "nowhere.csv"),
            ["dataset.folder.captions", "nowhere.csv is not a file"],
        ),
        (
            lambda c: set_key(c, "dataset.folder.split", {"train": 0.8, "dev": 0.1, "test": 0.3}),
            ["dataset.folder.split", "must sum to 1"],
        ),
        (
            lambda c: set_key(c, "scales", [128, 512]),
            ["config key 'scales': [512] exceed the 320 training pairs", "dataset.folder.split"],
        ),
        (
            lambda c: set_key(
                c, "dataset.folder.split", {"train": 0.99, "dev": 0.005, "test": 0.005}
            ),
            ["captions.csv: the dev split gets 1 image(s)", "raise 'dataset.folder.split.dev'"],
        ),
    ],
    ids=[
        "no images",
        "images neither folder nor zip",
        "no captions file",
        "fractions not summing to 1",
        "scale above the folder's training pairs",
        "split too small to pair",
    ],
)
def test_bad_folder_configs_are_refused_naming_the_key_or_file(folder_example, edit, expected):
    with pytest.raises(AlignfuseError) as err:
        validate_config(edit(folder_example), SCHEMA)
    for part in expected:
        assert part in str(err.value)
