"""The synthetic zoo: planted causes per recipe, the demo zoos' design, the augmentations."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
import yaml

from robustlens.config import parse_config
from robustlens.demo import demo_config_dict
from robustlens.models.planted import PLANTED_KEYS
from robustlens.models.zoo import (
    BASE_CAUSES,
    TrainingData,
    ZooMember,
    augment_batch,
    default_zoo,
    load_zoo_model,
    quick_zoo,
    train_member,
)

CAUSES = tuple(BASE_CAUSES)


def test_presets_resolve_to_the_planted_causes():
    std = ZooMember("a", "cnn", 8, "standard", 3).planted(world_mark_rate=0.4)
    assert tuple(std) == PLANTED_KEYS
    assert std == {
        "mark_rate": 0.4,
        "texture_randomization": 0.0,
        "rotation_augmentation": 0.0,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": "none",
        "generated_fraction": 0.0,
        "epochs": 3,
        "width": 8,
        "arch": "cnn",
    }
    assert ZooMember("b", augment="texrand").planted()["texture_randomization"] == 0.8
    assert ZooMember("c", augment="strong").planted()["corruption_augmentation"] == "mixed"
    none = ZooMember("d", augment="none", mark_rate=0.0).planted(0.9)
    assert none["grayscale_augmentation"] == 0.0 and none["mark_rate"] == 0.0
    gen = ZooMember("e", generated="/g", generated_ratio=1.0).planted()
    assert gen["generated_fraction"] == 0.5
    own = ZooMember("f", augment="texrand", texture_randomization=0.3, grayscale_augmentation=1.0)
    assert own.planted()["texture_randomization"] == 0.3
    assert own.planted()["grayscale_augmentation"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"texture_randomization": 1.5}, "texture_randomization must be in"),
        ({"rotation_augmentation": -0.1}, "rotation_augmentation must be in"),
        ({"corruption_augmentation": "fog"}, "unknown corruption_augmentation 'fog'"),
        ({"augment": "cutmix"}, "unknown augment 'cutmix'"),
    ],
)
def test_invalid_recipes_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ZooMember("x", **kwargs)


def _levels(zoo: list[ZooMember]) -> dict[str, set]:
    out: dict[str, set] = defaultdict(set)
    for m in zoo:
        for k, v in m.planted().items():
            out[k].add(v)
    return out


def test_default_zoo_sweeps_each_cause_over_architectures():
    zoo = default_zoo()
    names = [m.name for m in zoo]
    assert len(names) == len(set(names)) == 20
    assert {"cnn32-standard", "resnet16-standard"} <= set(names)  # the generated twins' bases
    levels = _levels(zoo)
    assert levels["mark_rate"] == {0.0, 0.25, 0.5, 0.8, 1.0}
    assert levels["texture_randomization"] == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert levels["corruption_augmentation"] == {"none", "noise", "blur", "mixed"}
    assert len(levels["rotation_augmentation"]) >= 3 and len(levels["grayscale_augmentation"]) >= 3
    assert len(levels["epochs"]) >= 3 and len(levels["width"]) >= 3
    assert levels["arch"] == {"cnn", "resnet", "mixer"}
    base = {m.planted()["arch"] for m in zoo if m.tags == ("base",)}
    assert base == {"cnn", "resnet", "mixer"}
    for cause in CAUSES:
        swept = [m for m in zoo if m.tags == (f"sweep:{cause}",)]
        assert len({m.arch for m in swept}) >= 2, cause  # not one architecture's cause
        for m in swept:  # a sweep member moves its cause only
            moved = {c for c in CAUSES if m.planted()[c] != BASE_CAUSES[c]}
            assert moved == {cause}, m.name
    # plain training (the effective-robustness baseline) iff only the mark rate or capacity moved
    for m in zoo:
        plain = m.tags in (("base",), ("sweep:mark_rate",), ("sweep:capacity",))
        assert (m.augment == "standard") == plain, m.name


def test_quick_zoo_keeps_three_levels_of_each_cause():
    zoo = quick_zoo()
    assert len(zoo) < len(default_zoo())
    levels = _levels(zoo)
    for key in PLANTED_KEYS:
        if key != "generated_fraction":  # generated twins are added by the zoo section
            assert len(levels[key]) >= 3, (key, levels[key])
    assert {"cnn32-standard", "resnet16-standard"} <= {m.name for m in zoo}


def _batch(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_no_augmentation_leaves_pixels_alone():
    m = ZooMember("m", augment="none")
    x = _batch()
    assert torch.equal(augment_batch(x.clone(), m, torch.Generator().manual_seed(0)), x)


def test_rotation_grayscale_contrast_and_corruption_augmentations():
    gen = torch.Generator().manual_seed(0)
    x = _batch()
    rot = ZooMember("r", augment="none", rotation_augmentation=1.0)
    y = augment_batch(x.clone(), rot, gen)
    for a, b in zip(x, y, strict=True):
        assert any(torch.equal(torch.rot90(a, k, dims=(-2, -1)), b) for k in (1, 2, 3))
    gray = ZooMember("g", augment="none", grayscale_augmentation=1.0)
    y = augment_batch(x.clone(), gray, gen)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    dim = ZooMember("c", augment="none", contrast_jitter=1.0)
    y = augment_batch(x.clone(), dim, gen)
    assert (y.std(dim=(1, 2, 3)) < x.std(dim=(1, 2, 3))).all()
    noisy = ZooMember("n", augment="none", corruption_augmentation="noise")
    y = augment_batch(_batch(64), noisy, gen)
    changed = (y != _batch(64)).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 0.9  # about CORRUPTION_PROBABILITY of the images


def test_texture_randomization_refills_only_the_object(tiny_world):
    member = ZooMember("t", "cnn", 8, "none", 1, mark_rate=0.0, texture_randomization=1.0)
    data = TrainingData(tiny_world, member)
    idx = np.arange(16)
    x, y = data.batch(idx, torch.Generator().manual_seed(0))
    orig = torch.from_numpy(np.asarray(data.images[idx])).permute(0, 3, 1, 2).float() / 255
    outside = torch.from_numpy(np.asarray(data.masks[idx]) == 0)[:, None].expand_as(x)
    inside = torch.from_numpy(np.asarray(data.masks[idx]) == 255)[:, None].expand_as(x)
    assert torch.allclose(x[outside], orig[outside], atol=1 / 255)
    assert not torch.allclose(x[inside], orig[inside], atol=0.05)
    assert torch.equal(y, torch.from_numpy(np.asarray(data.labels[idx])))


def test_trained_member_records_its_planted_causes(tiny_world, tmp_path):
    member = ZooMember(
        "p", "cnn", 8, "custom", 1, rotation_augmentation=0.5, corruption_augmentation="blur"
    )
    path = train_member(tiny_world, member, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["planted"] == member.planted(tiny_world.config.mark_rate)
    assert meta["planted"]["mark_rate"] == tiny_world.config.mark_rate
    model = load_zoo_model(path)
    assert model.config["planted"] == meta["planted"]
    assert model.config["world_mark_rate"] == tiny_world.config.mark_rate
    assert model.config["member"]["corruption_augmentation"] == "blur"


def test_the_quick_demo_lists_the_quick_zoo_and_the_full_demo_the_default(tmp_path):
    quick = parse_config(yaml.safe_load(yaml.safe_dump(demo_config_dict(quick=True))))
    assert list(quick.zoo.members) == quick_zoo(epochs_scale=0.5)
    full = parse_config(demo_config_dict())
    assert full.zoo.members == "default"
    for cfg in (quick, full):  # the demo's world plants the shortcuts the zoo is built around
        assert cfg.world.texture_correlation == 0.8 and cfg.world.mark_rate == 0.5
        assert cfg.world.stylized and cfg.world.natural
    assert "ground_truth" in full.measures
