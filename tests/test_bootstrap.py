import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from alignfuse.analysis.bootstrap import ImageBootstrap, percentile_interval
from alignfuse.errors import AlignfuseError
from alignfuse.train.metrics import auroc


def split_pairs(images=400, per_image=10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": np.repeat([f"i{k}" for k in range(images)], per_image),
            "label": np.tile([1, 0], images * per_image // 2),
        }
    )


def test_resamples_draw_whole_images_as_often_as_the_split_holds_them():
    pairs = split_pairs(images=50, per_image=4)
    boot = ImageBootstrap.draw(pairs, 300, seed=1)
    assert boot.weights.shape == (300, 200)
    assert (boot.weights.sum(axis=1) == 200).all()  # 50 images drawn, 4 pairs each
    per_image = boot.weights.reshape(300, 50, 4)
    assert (per_image == per_image[..., :1]).all()  # an image's pairs move together


def test_the_same_seed_gives_the_same_resamples():
    pairs = split_pairs(images=30)
    a, b = ImageBootstrap.draw(pairs, 100, 7), ImageBootstrap.draw(pairs, 100, 7)
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, ImageBootstrap.draw(pairs, 100, 8).weights)


def test_pairs_of_one_image_that_agree_give_the_image_level_standard_error():
    """Each image's ten pairs are all right or all wrong: the clustered bootstrap's standard
    error is that of 400 images, sqrt(10) times a naive one over 4,000 independent pairs."""
    pairs = split_pairs(images=400, per_image=10)
    rng = np.random.default_rng(0)
    right_image = rng.random(400) < 0.7
    right = np.repeat(right_image, 10)
    prob = np.where(right == (pairs["label"] == 1), 0.9, 0.1)[None, :]
    boot = ImageBootstrap.draw(pairs, 2000, seed=0)
    draws = boot.accuracy(prob)
    p = right_image.mean()
    assert draws.mean() == pytest.approx(p, abs=0.003)
    assert draws.std(ddof=1) == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=0.08)


def test_identical_predictions_of_two_methods_differ_by_zero_in_every_resample():
    pairs = split_pairs(images=50)
    prob = np.random.default_rng(3).random((3, len(pairs)))
    boot = ImageBootstrap.draw(pairs, 200, seed=0)
    assert np.array_equal(boot.accuracy(prob) - boot.accuracy(prob.copy()), np.zeros(200))


@pytest.mark.parametrize("resample", [0, 1, 17])
def test_weighted_auroc_matches_sklearn_with_sample_weights_and_ties(resample):
    pairs = split_pairs(images=80, per_image=6)
    rng = np.random.default_rng(resample)
    score = np.round(rng.random(len(pairs)) + 0.4 * pairs["label"].to_numpy(), 1)  # many ties
    boot = ImageBootstrap.draw(pairs, 20, seed=5)
    expected = roc_auc_score(pairs["label"], score, sample_weight=boot.weights[resample])
    assert boot.weighted_auroc(score)[resample] == pytest.approx(expected)


def test_weighted_auroc_with_unit_weights_is_the_plain_auroc():
    pairs = split_pairs(images=40)
    score = np.random.default_rng(2).random(len(pairs))
    boot = ImageBootstrap(np.ones((1, len(pairs))), pairs["label"].to_numpy())
    assert boot.weighted_auroc(score)[0] == pytest.approx(auroc(score, pairs["label"].to_numpy()))


def test_percentile_interval_holds_the_central_share():
    draws = np.arange(1001, dtype=float)
    assert percentile_interval(draws, 0.9) == pytest.approx((50.0, 950.0))


def test_too_few_resamples_is_an_error_naming_the_key():
    with pytest.raises(AlignfuseError, match="analysis.bootstrap_resamples"):
        ImageBootstrap.draw(split_pairs(images=5), 1, 0)
