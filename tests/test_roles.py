"""Tests of robustlens.roles: the role of a dataset from its name and from a study's roles."""

from __future__ import annotations

from robustlens.roles import dataset_roles, role_from_name


def test_role_inference_from_names():
    names = {
        "world/val": "id",
        "world/v2": "v2",
        "world/corrupt/fog/5": "corrupt",
        "world/sketch": "sketch",
        "world/cue_conflict": "cue_conflict",
        "world/adversarial": "adversarial",
        "world/train": "train",
        "world/weird": "other",
        "imagenet_val": "id",
        "imagenet_v2": "v2",
        "imagenet_c/fog/3": "corrupt",
        "imagenet_r": "rendition",
        "imagenet_sketch": "sketch",
        "imagenet_a": "natural",
        "objectnet": "natural",
        "cue_conflict": "cue_conflict",
        "my_photos": "other",
    }
    assert {n: role_from_name(n) for n in names} == names
    assert dataset_roles(list(names), {"my_photos": "id"})["my_photos"] == "id"
