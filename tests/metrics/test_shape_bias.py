"""Tests of robustlens.metrics.shape_bias (Geirhos et al. cue-conflict shape bias)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustlens.errors import ValidationError
from robustlens.metrics.shape_bias import shape_bias, shape_bias_per_category

# 3 categories = 3 model classes (identity map). Rows are probabilities.
P = np.array(
    [
        [0.7, 0.2, 0.1],  # decision 0
        [0.1, 0.8, 0.1],  # decision 1
        [0.2, 0.2, 0.6],  # decision 2
        [0.6, 0.3, 0.1],  # decision 0
        [0.1, 0.1, 0.8],  # decision 2
        [0.9, 0.05, 0.05],  # decision 0 (shape == texture: excluded)
    ]
)
SHAPE = [0, 0, 1, 2, 2, 0]
TEXTURE = [1, 1, 2, 0, 0, 0]
# image: 0 shape hit, 1 texture hit, 2 texture hit, 3 texture hit, 4 shape hit, 5 excluded


def test_hand_made_identity_case():
    r = shape_bias(P, SHAPE, TEXTURE)
    assert r["n_used"] == 5
    assert (r["n_shape"], r["n_texture"]) == (2, 3)
    assert r["shape_bias"] == pytest.approx(2 / 5)
    assert r["shape_fraction"] == pytest.approx(2 / 5)
    assert r["texture_fraction"] == pytest.approx(3 / 5)
    assert "reason" not in r


def test_excluded_images_do_not_count():
    # flipping the excluded image's probabilities changes nothing
    p2 = P.copy()
    p2[5] = [0.0, 0.0, 1.0]
    assert shape_bias(p2, SHAPE, TEXTURE) == shape_bias(P, SHAPE, TEXTURE)
    # but making its texture label differ brings it in (decision 0 = shape 0 -> shape hit)
    r = shape_bias(P, SHAPE, [1, 1, 2, 0, 0, 2])
    assert r["n_used"] == 6 and r["n_shape"] == 3


def test_neither_shape_nor_texture_counts_only_in_fractions():
    p = np.array([[0.1, 0.1, 0.8], [1.0, 0.0, 0.0]])
    r = shape_bias(p, [0, 0], [1, 2])  # image 0 predicts 2 (neither), image 1 shape hit
    assert r["shape_bias"] == 1.0
    assert r["shape_fraction"] == 0.5 and r["texture_fraction"] == 0.0


def test_category_map_averages_class_probabilities():
    # 5 classes; category "a" = classes {0, 1}, "b" = {2, 3, 4}. The score is the mean over
    # a category's classes: a = 0.22 > b = 0.1867 (a sum would pick b: 0.44 < 0.56).
    p = np.array([[0.22, 0.22, 0.2, 0.18, 0.18]])
    cmap = {"a": [0, 1], "b": [2, 3, 4]}
    r = shape_bias(p, ["a"], ["b"], cmap)
    assert r["n_shape"] == 1 and r["n_texture"] == 0
    # sequence form and integer positions give the same answer
    assert shape_bias(p, [0], [1], [[0, 1], [2, 3, 4]])["n_shape"] == 1
    # integer-keyed mapping: labels are keys, not positions
    r2 = shape_bias(p, [7], [3], {3: [2, 3, 4], 7: [0, 1]})
    assert r2["n_shape"] == 1


def test_per_category():
    out = shape_bias_per_category(P, SHAPE, TEXTURE)
    # shape 0: images 0 (shape hit), 1 (texture hit); shape 1: image 2 (texture hit);
    # shape 2: images 3 (texture hit), 4 (shape hit)
    assert out == {0: 0.5, 1: 0.0, 2: 0.5}
    named = shape_bias_per_category(P, SHAPE, TEXTURE, {"x": [0], "y": [1], "z": [2]})
    assert list(named) == ["x", "y", "z"]


def test_nan_with_reason():
    r = shape_bias(P[:1], [0], [0])  # all excluded
    assert math.isnan(r["shape_bias"]) and r["n_used"] == 0
    assert "different shape and texture" in r["reason"]
    r = shape_bias(np.array([[0.1, 0.1, 0.8]]), [0], [1])  # no hit at all
    assert math.isnan(r["shape_bias"]) and "0 shape and 0 texture" in r["reason"]
    per = shape_bias_per_category(P[:1], [0], [0])
    assert all(math.isnan(v) for v in per.values())


def test_accepts_torch_tensors():
    r = shape_bias(torch.tensor(P), torch.tensor(SHAPE), torch.tensor(TEXTURE))
    assert r["shape_bias"] == pytest.approx(0.4)


def test_validation():
    with pytest.raises(ValidationError, match="softmax"):
        shape_bias(P * 3 - 1, SHAPE, TEXTURE)
    with pytest.raises(ValidationError, match="inconsistent numbers of samples"):
        shape_bias(P, SHAPE[:5], TEXTURE)
    with pytest.raises(ValidationError, match=r"category indices must lie in \[0, 2\]"):
        shape_bias(P, [0, 0, 1, 2, 3, 0], TEXTURE)
    with pytest.raises(ValidationError, match="unknown categories"):
        shape_bias(P[:1], ["dog"], ["cat"], {"cat": [0], "car": [1]})
    with pytest.raises(ValidationError, match=r"class indices must lie in \[0, 2\]"):
        shape_bias(P, SHAPE, TEXTURE, [[0], [1], [5]])
    with pytest.raises(ValidationError, match="non-empty"):
        shape_bias(P, SHAPE, TEXTURE, [[0], [], [2]])
