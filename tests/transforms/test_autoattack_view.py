"""The ``autoattack`` view and the choice of the images it attacks (``spread_mask``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustlens.errors import ValidationError
from robustlens.transforms.adversarial import spread_indices, spread_mask
from robustlens.views import ViewContext, parse_view


@pytest.mark.parametrize(("total", "n"), [(10, 3), (50_000, 5000), (7, 7), (5, 9), (1000, 1)])
def test_spread_mask_chooses_exactly_n_evenly_spaced(total, n):
    idx = spread_indices(total, n)
    assert len(idx) == min(n, total)
    assert len(set(idx.tolist())) == len(idx) and idx.max() < total
    if n < total:
        gaps = np.diff(np.concatenate([[-1], idx]))
        assert gaps.min() >= total // n and gaps.max() <= -(-total // n)  # evenly spaced
    # a mask over any subset of positions agrees with the full choice
    some = np.arange(total)[::3]
    np.testing.assert_array_equal(spread_mask(some, total, n), np.isin(some, idx))


def test_a_class_sorted_dataset_gives_every_class_its_share():
    labels = np.repeat(np.arange(1000), 50)  # ImageNet val in wnid folders
    chosen = labels[spread_indices(len(labels), 5000)]
    assert np.bincount(chosen, minlength=1000).tolist() == [5] * 1000


def test_none_or_more_than_the_dataset_attacks_all():
    assert spread_mask(np.arange(4), 4, None).all() and spread_mask(np.arange(4), 4, 10).all()


def test_view_specs_parse_and_bad_ones_name_the_usage():
    v = parse_view("autoattack:linf:0.01568627450980392:5000:standard:0:9:default")
    assert v.needs_model
    parse_view("autoattack:linf:0.01")  # defaults for the rest
    for bad in (
        "autoattack:l2:0.01",
        "autoattack:linf:-1",
        "autoattack:linf:0.01:0",
        "autoattack:linf:0.01:10:fast",
        "autoattack:linf:0.01:10:standard:0:9:default:extra",
    ):
        with pytest.raises(ValidationError, match="usage: autoattack:linf:EPS"):
            parse_view(bad)


def test_view_attacks_only_the_chosen_images_and_needs_the_model():
    pytest.importorskip("torchattacks")
    view = parse_view("autoattack:linf:0.5:2")
    x = torch.rand(4, 3, 4, 4)
    with pytest.raises(ValidationError, match="needs the model"):
        view(x, ViewContext(torch.arange(4)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with torch.no_grad():
        y = model(x).argmax(1)
    # positions 4..7 of a dataset of 8: spread_indices(8, 2) = [3, 7] -> only the last one
    ctx = ViewContext(torch.arange(4), y, model, torch.arange(4, 8), 8)
    out = view(x, ctx)
    assert torch.equal(out[:3], x[:3])
    assert not torch.equal(out[3], x[3]) and float((out[3] - x[3]).abs().max()) <= 0.5 + 1e-6
    # a batch without chosen images is passed through without calling the attack
    none = ViewContext(torch.arange(3), y[:3], model, torch.arange(4, 7), 8)
    assert view(x[:3], none) is x[:3] or torch.equal(view(x[:3], none), x[:3])
