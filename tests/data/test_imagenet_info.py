"""ImageNet class metadata from timm's packaged files, and category-mapping files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustlens.data.imagenet_info import (
    imagenet_a_indices,
    imagenet_a_wnids,
    imagenet_names,
    imagenet_r_indices,
    imagenet_r_wnids,
    imagenet_wnids,
    load_category_mapping,
    wnid_to_index,
)
from robustlens.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "../shared/imagenet"


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"reference file {path} is absent (the shared ImageNet facts are optional)")
    return path


def test_wnids_are_the_1000_classes_in_index_order() -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert wnids[0] == "n01440764" and wnids[1] == "n01443537" and wnids[-1] == "n15075141"
    assert wnids == sorted(wnids)  # the standard order is the sorted wnids
    wnids.append("mutated")  # callers get a copy
    assert len(imagenet_wnids()) == 1000
    assert wnid_to_index()["n01443537"] == 1


def test_names_follow_the_wnids() -> None:
    names = imagenet_names()
    assert len(names) == 1000
    assert names[0].startswith("tench") and names[1].startswith("goldfish")


def test_r_and_a_indices_are_200_sorted_distinct_classes() -> None:
    for idx, wnids in (
        (imagenet_r_indices(), imagenet_r_wnids()),
        (imagenet_a_indices(), imagenet_a_wnids()),
    ):
        assert len(idx) == 200 and len(set(idx)) == 200
        assert idx == sorted(idx) and idx[0] >= 0 and idx[-1] <= 999
        all_wnids = imagenet_wnids()
        assert wnids == [all_wnids[i] for i in idx]
    assert imagenet_r_indices()[:4] == [1, 2, 4, 6]
    assert imagenet_a_indices()[:4] == [6, 11, 13, 15]
    assert imagenet_r_indices() != imagenet_a_indices()


def write(tmp_path: Path, obj, name: str = "m.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_load_category_mapping_reads_the_documented_format(tmp_path: Path) -> None:
    p = write(tmp_path, {"bear": [294, 295], "airplane": [404]})
    m = load_category_mapping(p)
    assert m == {"bear": [294, 295], "airplane": [404]}
    assert list(m) == ["bear", "airplane"]  # file order kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"bear": [294, 1000]}, r"'bear'.*\[0, 999\].*1000"),
        ({"bear": [-1]}, r"'bear'.*-1"),
        ({"cat": []}, r"'cat'.*non-empty"),
        ({"cat": 281}, r"'cat'.*non-empty list"),
        ({"cat": [281.0]}, r"'cat'.*integers"),
        ({"cat": ["281"]}, r"'cat'.*integers"),
        ({"cat": [True]}, r"'cat'.*integers"),
        ({"cat": [281, 281]}, r"'cat'.*duplicate"),
        ({" ": [1]}, r"empty"),
        ([[1, 2]], r"JSON object.*list"),
        ({}, r"empty"),
        ('{"cat": [1], "cat": [2]}', r"'cat' appears twice"),
        ('{"cat": [1,', r"not valid JSON"),
    ],
)
def test_load_category_mapping_names_the_bad_entry(tmp_path: Path, content, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_category_mapping(write(tmp_path, content))


def test_load_category_mapping_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.json"):
        load_category_mapping(tmp_path / "nope.json")


def test_load_category_mapping_respects_n_classes(tmp_path: Path) -> None:
    p = write(tmp_path, {"a": [5]})
    assert load_category_mapping(p, n_classes=10) == {"a": [5]}
    with pytest.raises(ConfigError, match=r"\[0, 3\]"):
        load_category_mapping(p, n_classes=4)


def test_shared_cue_conflict_mapping_has_16_categories() -> None:
    m = load_category_mapping(shared("cue_conflict_16_categories.json"))
    assert len(m) == 16
    assert {"airplane", "bear", "cat", "dog", "truck", "oven"} <= set(m)
    assert m["airplane"] == [404]


def test_shared_objectnet_mapping_has_113_classes_and_125_indices() -> None:
    m = load_category_mapping(shared("objectnet_folder_to_imagenet.json"))
    assert len(m) == 113
    indices = [i for v in m.values() for i in v]
    assert len(indices) == 125 and len(set(indices)) == 125


def test_timm_subsets_equal_the_published_200_class_lists() -> None:
    subsets = json.loads(shared("subsets_200.json").read_text())
    assert imagenet_r_indices() == subsets["imagenet_r"]
    assert imagenet_a_indices() == subsets["imagenet_a"]


def test_timm_wnids_and_names_equal_the_published_class_list() -> None:
    classes = json.loads(shared("classes.json").read_text())
    assert [c["index"] for c in classes] == list(range(1000))
    assert imagenet_wnids() == [c["wnid"] for c in classes]
    assert imagenet_names() == [c["name"] for c in classes]
