"""The ``robustness`` measure: consistent ID restriction, shipped-baseline ER, study wiring."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from robustlens.config import parse_config
from robustlens.data.base import ClassMapping
from robustlens.data.imagenet_info import imagenet_r_indices, imagenet_wnids
from robustlens.errors import ConfigError
from robustlens.lines.robustness.measure import restrict_id_to_shift, shift_key
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.metrics.effective_robustness import effective_robustness, imagenet_baseline
from robustlens.study import run_study


class FakeArrays:
    """What a measure reads from the store, held in memory."""

    def __init__(self, logits: np.ndarray, labels: np.ndarray) -> None:
        self._logits = np.asarray(logits, dtype=np.float32)
        self._labels = np.asarray(labels, dtype=np.int64)

    def logits(self, view: str = "clean") -> np.ndarray:
        assert view == "clean"
        return self._logits

    def labels(self) -> np.ndarray:
        return self._labels

    def sample_ids(self) -> np.ndarray:
        return np.arange(len(self._labels), dtype=np.int64)

    def acceptable_labels(self) -> None:
        return None


WNIDS = tuple(imagenet_wnids())
R_IDX = imagenet_r_indices()
NON_R = next(i for i in range(1000) if i not in set(R_IDX))
MODEL = ModelInfo("fake-1k", "fp-model", WNIDS, {"source": "module"})


def _imagenet_r_case():
    """A fake 1000-class model whose top logit is always a non-R class (index NON_R).

    ID (ImageNet val): 4 images of R classes (true logit second highest: wrong unmasked,
    right once restricted to R's 200 classes, except image 3 where another R class wins)
    and 2 images of a class outside R (dropped from the restricted ID accuracy).
    ImageNet-R: 4 images, 2 right under the mask.
    """
    id_labels = np.array([R_IDX[0], R_IDX[5], R_IDX[10], R_IDX[20], NON_R, NON_R])
    id_logits = np.zeros((6, 1000))
    id_logits[:, NON_R] = 10.0
    id_logits[np.arange(6), id_labels] = 5.0
    id_logits[3, R_IDX[21]] = 7.0  # another R class beats the true one
    r_labels = np.array([0, 1, 2, 3])  # dataset-space labels (positions in the 200)
    r_logits = np.zeros((4, 1000))
    r_logits[:, NON_R] = 10.0
    r_logits[np.arange(4), [R_IDX[i] for i in r_labels]] = 5.0
    r_logits[2, R_IDX[50]] = 6.0
    r_logits[3, R_IDX[60]] = 6.0
    datasets = {
        "imagenet_val": DatasetInfo("imagenet_val", "fp-val", "id", WNIDS),
        "imagenet_r": DatasetInfo(
            "imagenet_r", "fp-r", "rendition", tuple(WNIDS[i] for i in R_IDX)
        ),
    }
    arrays = {
        "imagenet_val": FakeArrays(id_logits, id_labels),
        "imagenet_r": FakeArrays(r_logits, r_labels),
    }
    mappings = {
        "imagenet_val": ClassMapping.identity(1000),
        "imagenet_r": ClassMapping.from_indices(R_IDX, "ImageNet-R 200-class mask"),
    }
    return datasets, arrays, mappings


def test_imagenet_r_uses_200_class_masked_id_accuracy():
    datasets, arrays, mappings = _imagenet_r_case()
    out = get_measure("robustness").compute(MODEL, datasets, arrays, mappings)
    v = out.values
    # restricted to R's classes and predicted over R's 200 logits: 3 of 4 right
    assert v[("imagenet_r", "acc_id")] == pytest.approx(0.75)
    assert v[("imagenet_r", "n_id")] == 4
    assert v[("imagenet_r", "acc_ood")] == pytest.approx(0.5)
    assert v[("imagenet_r", "gap")] == pytest.approx(-0.25)
    # unmasked, the same model is wrong on every R-class ID image: the predictions differ
    acc = get_measure("accuracy").compute(MODEL, datasets, arrays, mappings)
    assert not acc.per_sample["imagenet_val"]["correct"][:4].any()
    assert acc.values[("imagenet_val", "accuracy")] == pytest.approx(2 / 6)  # only the NON_R
    for t in ("logit", "probit"):
        expected = effective_robustness(0.75, 0.5, imagenet_baseline("imagenet_r", t))
        assert v[("imagenet_r", f"er_shipped_{t}")] == pytest.approx(expected)
    rec = out.artifacts["shifts"]["imagenet_r"]
    assert rec["id_restricted"] and rec["shift_key"] == "imagenet_r"
    assert out.artifacts["model_config"] == {"source": "module"}


def test_restriction_maps_objectnet_like_many_to_one_classes():
    # 3 model classes; the shift has 2 classes: A = {0, 1}, B = {2}
    shift = ClassMapping(((0, 1), (2,)), "max", "objectnet-like")
    logits = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0], [0.0, 1.0, 5.0], [4.0, 0.0, 1.0]])
    labels = np.array([1, 0, 2, 2])
    pred, lab, kept, restricted = restrict_id_to_shift(
        logits, labels, ClassMapping.identity(3), shift
    )
    assert restricted and kept.all()
    assert lab.tolist() == [0, 0, 1, 1] and pred.tolist() == [0, 0, 1, 0]
    # classes outside the shift are dropped
    only_b = ClassMapping(((2,),), "max", "subset")
    pred, lab, kept, _ = restrict_id_to_shift(logits, labels, ClassMapping.identity(3), only_b)
    assert kept.tolist() == [False, False, True, True] and lab.tolist() == [0, 0]


def test_same_classes_give_plain_id_accuracy_and_no_shipped_er():
    classes = ("disk", "square", "ring")
    id_logits = np.eye(3)[[0, 1, 2, 0]] * 3
    id_labels = np.array([0, 1, 2, 1])  # 3 of 4 right
    ood_logits = np.eye(3)[[0, 0, 0, 0]]
    ood_labels = np.array([0, 1, 2, 0])  # 2 of 4 right
    datasets = {
        "world/val": DatasetInfo("world/val", "a", "id", classes),
        "world/sketch": DatasetInfo("world/sketch", "b", "sketch", classes),
        "world/corrupt/x/1": DatasetInfo("world/corrupt/x/1", "c", "corrupt", classes),
    }
    arrays = {
        "world/val": FakeArrays(id_logits, id_labels),
        "world/sketch": FakeArrays(ood_logits, ood_labels),
    }
    mappings = {n: ClassMapping.identity(3) for n in arrays}
    m = get_measure("robustness")
    assert m.requests(datasets["world/corrupt/x/1"]) == {}
    assert m.requests(datasets["world/sketch"]) == {"clean": False}
    used = {n: i for n, i in datasets.items() if m.requests(i)}
    out = m.compute(ModelInfo("m", "fp", classes), used, arrays, mappings)
    assert out.values[("world/sketch", "acc_id")] == pytest.approx(0.75)
    assert out.values[("world/sketch", "acc_ood")] == pytest.approx(0.5)
    assert not any(k[1].startswith("er_shipped") for k in out.values)
    assert not out.artifacts["shifts"]["world/sketch"]["id_restricted"]


def _imagenet_shift(name: str, role: str = "v2"):
    logits = np.zeros((2, 1000))
    logits[[0, 1], [3, 7]] = 1.0
    datasets = {
        "imagenet_val": DatasetInfo("imagenet_val", "a", "id", WNIDS),
        name: DatasetInfo(name, "b", role, WNIDS),
    }
    arrays = {"imagenet_val": FakeArrays(logits, [3, 7]), name: FakeArrays(logits, [3, 8])}
    mappings = {n: ClassMapping.identity(1000) for n in datasets}
    return datasets, arrays, mappings


def test_shipped_baseline_from_name_layout_tag_or_option():
    assert shift_key("imagenet_v2_threshold0.7") == "imagenet_v2"
    assert shift_key("mine", {"layout": "imagenet_sketch"}) == "imagenet_sketch"
    assert shift_key("imagenet_a") is None and shift_key("world/v2") is None

    out = get_measure("robustness").compute(MODEL, *_imagenet_shift("imagenet_v2"))
    expected = effective_robustness(1.0, 0.5, imagenet_baseline("imagenet_v2"))
    assert out.values[("imagenet_v2", "er_shipped_logit")] == pytest.approx(expected)

    out = get_measure("robustness").compute(MODEL, *_imagenet_shift("my_sketches", "sketch"))
    assert ("my_sketches", "er_shipped_logit") not in out.values
    m = get_measure("robustness", baseline_map={"my_sketches": "imagenet_sketch"})
    out = m.compute(MODEL, *_imagenet_shift("my_sketches", "sketch"))
    expected = effective_robustness(1.0, 0.5, imagenet_baseline("imagenet_sketch", "probit"))
    assert out.values[("my_sketches", "er_shipped_probit")] == pytest.approx(expected)

    out = get_measure("robustness", shipped=False).compute(MODEL, *_imagenet_shift("imagenet_v2"))
    assert ("imagenet_v2", "er_shipped_logit") not in out.values
    with pytest.raises(ConfigError, match="unknown shifts"):
        get_measure("robustness", baseline_map={"x": "imagenet_c"})


def test_id_dataset_must_be_unambiguous():
    datasets, arrays, mappings = _imagenet_shift("imagenet_v2")
    m = get_measure("robustness")
    no_id = {"imagenet_v2": datasets["imagenet_v2"]}
    with pytest.raises(ConfigError, match="needs an in-distribution dataset"):
        m.compute(MODEL, no_id, arrays, mappings)
    two = {**datasets, "val2": DatasetInfo("val2", "c", "id", WNIDS)}
    arrays2 = {**arrays, "val2": arrays["imagenet_val"]}
    mappings2 = {**mappings, "val2": mappings["imagenet_val"]}
    with pytest.raises(ConfigError, match="several datasets have role 'id'"):
        m.compute(MODEL, two, arrays2, mappings2)
    out = get_measure("robustness", id_dataset="val2").compute(MODEL, two, arrays2, mappings2)
    assert out.artifacts["id_dataset"] == "val2"
    with pytest.raises(ConfigError, match="not a dataset of the study"):
        get_measure("robustness", id_dataset="nope").compute(MODEL, two, arrays2, mappings2)


def test_study_on_the_tiny_world(tiny_store, tiny_world, tiny_zoo_dir, tmp_path):
    cfg = parse_config(
        {
            "store": str(tiny_store.root),
            "output": str(tmp_path),
            "world": asdict(tiny_world.config),
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["val", "v2", "sketch", "rendition"]}],
            "measures": ["accuracy", "robustness"],
        }
    )
    result = run_study(cfg)
    df = result.results()
    acc = df[(df.measure == "accuracy") & (df.name == "accuracy")].set_index(["model", "dataset"])
    rob = df[df.measure == "robustness"]
    for shift in ("world/v2", "world/sketch", "world/rendition"):
        r = rob[rob.dataset == shift].set_index(["model", "name"])["value"]
        for model in result.models:
            assert r[(model, "acc_ood")] == pytest.approx(acc.loc[(model, shift), "value"])
            assert r[(model, "acc_id")] == pytest.approx(acc.loc[(model, "world/val"), "value"])
    assert not rob["name"].str.startswith("er_shipped").any()
    member = result.artifacts[result.models[0]]["robustness"]["model_config"]["member"]
    assert member["name"] == result.models[0]
