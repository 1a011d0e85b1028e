import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import open_clip
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from alignfuse.config import validate_config
from alignfuse.errors import AlignfuseError
from alignfuse.features.encoders import fetch_weights, load_encoder, open_clip_width
from alignfuse.grid import encoder_slice

ROOT = Path(__file__).resolve().parents[1]

RESNET = {"name": "resnet18", "library": "torchvision", "model": "resnet18", "pretrained": False}
CLIP = {"name": "clip", "library": "open_clip", "model": "ViT-B-32", "pretrained": False}
PLUGIN = {"name": "tiny", "library": "python", "model": "plugin_encoder:build", "pretrained": False}


def images(n=2):
    return [Image.new("RGB", (120 + 10 * i, 90), (40 * i, 100, 200)) for i in range(n)]


@pytest.fixture(scope="module")
def resnet():
    return load_encoder(RESNET, "image")


@pytest.fixture(scope="module")
def clip_text():
    return load_encoder(CLIP, "text")


def test_resnet18_gives_512_d_pooled_features_and_49_layer4_tokens(resnet):
    batch = torch.stack([resnet.prepare(im) for im in images()])
    assert batch.shape == (2, 3, 224, 224)
    with torch.inference_mode():
        pooled = resnet.model(batch)
        same, tokens, lengths = resnet.tokens(batch)
    assert resnet.dim == 512 and pooled.shape == (2, 512)
    assert tokens.shape == (2, 49, 512) and lengths.tolist() == [49, 49]
    torch.testing.assert_close(same, pooled)
    torch.testing.assert_close(tokens.mean(dim=1), pooled)  # avgpool of the layer4 grid


def test_encoders_are_frozen_in_eval_mode(resnet):
    assert not resnet.model.training
    assert not any(p.requires_grad for p in resnet.model.parameters())


def test_random_weights_are_seeded_and_leave_the_global_generator_alone(resnet):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = load_encoder(RESNET, "image")
    assert torch.equal(torch.rand(3), expected)
    for a, b in zip(
        resnet.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert resnet.weights_id == "torchvision:resnet18:random"


def test_random_weights_use_the_preprocessing_of_the_pretrained_ones(resnet):
    assert "crop_size=[224]" in resnet.preprocessing and "resize_size=[256]" in resnet.preprocessing


def test_torchvision_checkpoint_loads_and_records_its_hash(tmp_path, resnet):
    model = torchvision.models.resnet18()
    torch.nn.init.constant_(model.conv1.weight, 0.01)
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    encoder = load_encoder({**RESNET, "checkpoint": str(path)}, "image")
    assert torch.equal(encoder.model.conv1.weight, model.conv1.weight)
    assert hashlib.sha256(path.read_bytes()).hexdigest() in encoder.weights_id
    assert encoder.weights_id.startswith(f"checkpoint:{path}")


def test_checkpoint_of_another_model_names_the_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(AlignfuseError, match=r"other\.pth.*encoders\.resnet18\.checkpoint"):
        load_encoder({**RESNET, "checkpoint": str(path)}, "image")


def test_missing_checkpoint_names_the_key(tmp_path):
    with pytest.raises(AlignfuseError, match=r"not found.*encoders\.resnet18\.checkpoint"):
        load_encoder({**RESNET, "checkpoint": str(tmp_path / "nope.pth")}, "image")


def test_download_failure_names_the_encoder_and_the_fix(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(AlignfuseError, match=r"encoders\.resnet18.*fetch-weights.*checkpoint"):
        load_encoder({**RESNET, "pretrained": "IMAGENET1K_V1"}, "image")
    with pytest.raises(AlignfuseError, match=r"encoders\.clip.*fetch-weights.*checkpoint"):
        fetch_weights({**CLIP, "pretrained": "openai"})


@pytest.mark.parametrize(
    ("spec", "modality", "message"),
    [
        (RESNET, "text", "no text tower"),
        ({**RESNET, "model": "resnet5"}, "image", "not a torchvision classification model"),
        ({**RESNET, "pretrained": "IMAGENET9K"}, "image", "IMAGENET1K_V1"),
        ({**CLIP, "model": "ViT-Q-1"}, "image", "not an open_clip architecture"),
        ({**CLIP, "pretrained": "nope"}, "image", "openai"),
        ({"name": "rotated", "library": "synthetic"}, "image", "data stage"),
        ({"name": "x", "library": "torchvision", "model": "resnet18"}, "image", "pretrained"),
        ({**PLUGIN, "model": "no_such_module:build"}, "image", "cannot import"),
        ({**PLUGIN, "model": "plugin_encoder:missing"}, "image", "no function 'missing'"),
        ({**PLUGIN, "model": "plugin_encoder:incomplete"}, "image", "must return a dict"),
    ],
)
def test_bad_specs_name_the_key(spec, modality, message):
    with pytest.raises(AlignfuseError, match=message):
        load_encoder(spec, modality)


def test_clip_text_tower_gives_raw_512_d_embeddings_and_tokens_up_to_end_of_text(clip_text):
    batch = clip_text.prepare(["A dog runs .", "Two people walk along a long sandy beach ."])
    with torch.inference_mode():
        pooled = clip_text.model(batch)
        same, tokens, lengths = clip_text.tokens(batch)
    assert clip_text.dim == 512 and pooled.shape == (2, 512)
    assert not torch.allclose(pooled.norm(dim=-1), torch.ones(2))  # not L2-normalised
    torch.testing.assert_close(same, pooled)
    assert lengths[0] < lengths[1] and tokens.shape[-1] == 512
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(tokens[row, n - 1], pooled[row])  # end-of-text = pooled


def test_clip_image_tower_gives_512_d_embeddings_and_49_patch_tokens():
    encoder = load_encoder(CLIP, "image")
    batch = torch.stack([encoder.prepare(im) for im in images()])
    with torch.inference_mode():
        pooled = encoder.model(batch)
        same, tokens, lengths = encoder.tokens(batch)
    assert pooled.shape == (2, 512) and tokens.shape == (2, 49, 512)
    torch.testing.assert_close(same, pooled)
    assert encoder.weights_id == "open_clip:ViT-B-32:random"
    assert "Normalize" in encoder.preprocessing


def test_python_plugin_form_loads_a_user_encoder(tmp_path):
    image = load_encoder(PLUGIN, "image")
    assert image.model(image.prepare(images(1)[0])[None]).shape == (1, 8)
    text = load_encoder(PLUGIN, "text")
    assert text.model(text.prepare(["a", "bb"])).shape == (2, 8)
    assert text.weights_id == "python:plugin_encoder:build:random" and text.tokens is None
    path = tmp_path / "tiny.pt"
    torch.save(torch.nn.EmbeddingBag(256, 8).state_dict(), path)
    assert "sha256" in load_encoder({**PLUGIN, "checkpoint": str(path)}, "text").weights_id


def test_fetch_weights_loads_a_plugins_towers_and_returns_the_weights_id():
    assert fetch_weights(PLUGIN, ("text",)) == "python:plugin_encoder:build:random"


def test_random_library_weights_have_nothing_to_fetch(monkeypatch):
    """A random initialisation is built where it encodes: fetching it would only cost time."""
    monkeypatch.setattr(torchvision.models, "get_model", pytest.fail)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", pytest.fail)
    monkeypatch.setattr(open_clip, "create_model", pytest.fail)
    assert fetch_weights(RESNET) == "torchvision:resnet18:random"
    assert fetch_weights(CLIP) == "open_clip:ViT-B-32:random"


def documented_plugin_spec() -> tuple[str, dict]:
    """The plug-in example config (``encoders: {minilm: {...}}``), read from docs/data.md."""
    doc = (ROOT / "docs/data.md").read_text()
    line = re.search(r"with `(encoders: \{minilm: \{library: python[^`]*)`", doc).group(1)
    ((name, spec),) = yaml.safe_load(line)["encoders"].items()
    return name, spec


def test_the_documented_plugin_example_needs_no_pretrained_tag():
    """Its config passes validation and loads; its module needs a download, so the test's own
    module stands in for it under the same keys."""
    name, spec = documented_plugin_spec()
    assert "pretrained" not in spec
    spec = {**spec, "model": "plugin_encoder:build"}
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["encoders"][name] = spec
    for backbone in config["backbones"].values():
        backbone["text"] = name
    config = validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    encoder = load_encoder(encoder_slice(config, name), "text")
    assert encoder.model(encoder.prepare(["a dog", "two people"])).shape == (2, 8)
    assert encoder.weights_id == "python:plugin_encoder:build"


def test_open_clip_widths_read_from_its_config_files_are_its_own():
    for name in open_clip.list_models():
        assert open_clip_width(name) == open_clip.get_model_config(name)["embed_dim"], name


def test_checking_sizes_at_known_widths_imports_no_encoder_library():
    """The config check of a synthetic study sizes heads at numeric widths: no open_clip or
    torchvision import (seconds at every Snakemake start)."""
    request = {
        "backbones": {"b": {"image": 32, "text": 32}},
        "methods": {
            "g": {"head": "gated_sum", "hidden": [16], "gate_hidden": 8, "param_match": 2642}
        },
    }
    code = (
        "import json, sys; from alignfuse.config import check_sizes; "
        f"assert check_sizes({request!r})['error'] is None; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('open_clip', 'torchvision'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_plug_in_encoders_jobs_import_neither_torchvision_nor_open_clip():
    """Feature extraction imports a library where its model is built: a plug-in's job does not
    pay seconds for torchvision's and open_clip's imports."""
    code = (
        "import json, sys; import alignfuse.features.extraction as x; "
        "from alignfuse.features.encoders import fetch_weights; "
        f"fetch_weights({PLUGIN!r}); x.versions(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('open_clip', 'torchvision'))))"
    )
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": tests},
    )
    assert json.loads(done.stdout) == []
