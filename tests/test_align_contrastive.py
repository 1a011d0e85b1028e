import numpy as np
import pytest
import torch

from alignfuse.align.contrastive import epoch_pairs, fit_projections
from alignfuse.align.metrics import retrieval_recalls, text_to_image_chance
from alignfuse.errors import AlignfuseError
from alignfuse.features.synthetic import synthetic_features

PER_IMAGE = 3
SPLIT = {"train": 360, "dev": 120, "test": 120}
QUICK = {"dim": 32, "epochs": 3, "batch_size": 128}


def generator(d_image: int = 64, d_text: int = 64) -> dict:
    return {
        "n_images": sum(SPLIT.values()),
        "captions_per_image": PER_IMAGE,
        "split": {"train": 0.6, "dev": 0.2, "test": 0.2},
        "latent_dim": 8,
        "private_dim": 4,
        "private_scale": 1.0,
        "caption_noise": 0.5,
        "noise": 0.1,
        "d_image": d_image,
        "d_text": d_text,
        "seed": 0,
    }


def splits(v: np.ndarray, t: np.ndarray) -> dict[str, tuple]:
    """(V, T, caption_image) per split; images fill train, dev, test in order."""
    out, start = {}, 0
    for name, n in SPLIT.items():
        rows = slice(start * PER_IMAGE, (start + n) * PER_IMAGE)
        out[name] = (v[start : start + n], t[rows], np.repeat(np.arange(n), PER_IMAGE))
        start += n
    return out


@pytest.fixture(scope="module")
def unaligned():
    """Synthetic features whose text side is fully rotated: raw retrieval is at chance."""
    _, v, _, t = synthetic_features(generator(), rotation=1.0)
    return splits(v, t)


def fit(data: dict, **settings):
    return fit_projections(*data["train"], *data["dev"], **{**QUICK, **settings})


def test_learned_projection_lifts_unaligned_retrieval_far_above_chance(unaligned):
    chance = text_to_image_chance(SPLIT["test"], 1)
    raw = retrieval_recalls(*unaligned["test"], ks=(1,))["text_to_image_R@1"]
    assert raw < 5 * chance

    projection = fit(unaligned, epochs=40, lr=1e-2)
    v, t, caption_image = unaligned["test"]
    learned = retrieval_recalls(
        projection.project_image(v), projection.project_text(t), caption_image, ks=(1,)
    )["text_to_image_R@1"]
    assert learned > 0.5 > 50 * chance

    record = projection.record
    assert record["epochs"] == len(record["train_loss"]) == len(record["dev_text_to_image_R@1"])
    assert record["train_loss"][-1] < record["train_loss"][0]
    best = record["dev_text_to_image_R@1"][record["best_epoch"] - 1]
    assert best == max(record["dev_text_to_image_R@1"])
    assert 0.01 <= record["final_temperature"] <= 1.0


def test_projected_rows_are_unit_vectors_in_the_shared_space(unaligned):
    projection = fit(unaligned, epochs=1)
    z = projection.project_text(unaligned["test"][1])
    assert z.shape == (SPLIT["test"] * PER_IMAGE, 32) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_different_widths_fit_into_one_space():
    _, v, _, t = synthetic_features(generator(d_image=96, d_text=40), rotation=1.0)
    data = splits(v, t)
    projection = fit(data, hidden=48, epochs=20, lr=1e-2)
    v_test, t_test, caption_image = data["test"]
    zv, zt = projection.project_image(v_test), projection.project_text(t_test)
    assert zv.shape[1] == zt.shape[1] == 32
    recall = retrieval_recalls(zv, zt, caption_image, ks=(1,))["text_to_image_R@1"]
    assert recall > 20 * text_to_image_chance(SPLIT["test"], 1)
    assert [w.shape for w, _ in projection.image.layers] == [(96, 48), (48, 32)]


def test_test_rows_do_not_change_the_learned_projection(unaligned):
    """Fitting sees train and dev only: other test features give the very same towers."""
    _, v, _, t = synthetic_features({**generator(), "seed": 1}, rotation=1.0)
    other_test = splits(v, t)["test"]
    changed = {**unaligned, "test": other_test}
    first, second = fit(unaligned), fit(changed)
    for a, b in ((first.image, second.image), (first.text, second.text)):
        for (wa, ba), (wb, bb) in zip(a.layers, b.layers, strict=True):
            np.testing.assert_array_equal(wa, wb)
            assert ba is None and bb is None
        np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(
        first.project_text(unaligned["train"][1]), second.project_text(unaligned["train"][1])
    )


def test_fit_is_determined_by_its_seed(unaligned):
    first, again, other = (fit(unaligned, hidden=16, seed=s) for s in (4, 4, 5))
    for a, b in zip(first.text.layers, again.text.layers, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert first.record["train_loss"] == again.record["train_loss"]
    assert not np.array_equal(first.text.layers[0][0], other.text.layers[0][0])


def test_input_scale_does_not_change_what_is_learned(unaligned):
    """Inputs are standardised with train statistics, so rescaled features train alike."""
    scaled = {
        split: (v * 1000.0, t * 0.001, caption_image)
        for split, (v, t, caption_image) in unaligned.items()
    }
    a, b = fit(unaligned, epochs=2), fit(scaled, epochs=2)
    np.testing.assert_allclose(
        a.project_image(unaligned["test"][0]), b.project_image(scaled["test"][0]), atol=1e-4
    )


def test_fitting_restores_the_torch_thread_count(unaligned):
    before = torch.get_num_threads()
    fit(unaligned, epochs=1, threads=1)
    assert torch.get_num_threads() == before


def test_an_epoch_pairs_every_image_once_with_one_of_its_own_captions():
    caption_image = np.repeat(np.arange(50), [1, 2, 3, 4, 5] * 10)
    images, captions = epoch_pairs(caption_image, np.random.default_rng(0))
    assert sorted(images) == list(range(50))
    assert np.array_equal(caption_image[captions], images)
    seen = {
        int(c)
        for seed in range(100)
        for c in epoch_pairs(caption_image, np.random.default_rng(seed))[1]
    }
    assert seen == set(range(len(caption_image)))


def test_bad_settings_and_mismatched_widths_raise(unaligned):
    with pytest.raises(AlignfuseError, match="'batch_size' is 1"):
        fit(unaligned, batch_size=1)
    with pytest.raises(AlignfuseError, match="temperature_init"):
        fit(unaligned, temperature_init=0.001)
    v, t, caption_image = unaligned["dev"]
    wrong = {**unaligned, "dev": (v[:, :10], t, caption_image)}
    with pytest.raises(AlignfuseError, match="image 64 vs 10"):
        fit(wrong)
    projection = fit(unaligned, epochs=1)
    with pytest.raises(AlignfuseError, match="width 64"):
        projection.project_image(v[:, :10])
