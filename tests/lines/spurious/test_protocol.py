"""SpuFix's held-out protocol on a hand-made case: components are chosen on a selection part of
the spurious-only and in-class images, and every ``spufix_*`` number is computed on the
disjoint evaluation rest (Neuhaus et al., ICCV 2023, choose components on other images than
those SpuFix is evaluated on). Also: the neural-PCA sample-size option and the recorded
protocol.

The toy model has 4 features and 3 classes, ``logit_0 = f0 + f1 - 1.5``,
``logit_1 = f2 + f3 - 1.5`` and a constant ``logit_2 = 0`` (background, no images).
In training, class 0's object feature f0 co-occurs with a spurious feature f1 on half of the
images (class 1: object f2, spurious f3). Spurious-only images carry the spurious feature
alone, strongly. Class k's neural PCA then has one component along its spurious feature: the
clearly spurious one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robustlens.data.base import ClassMapping
from robustlens.errors import ConfigError
from robustlens.lines.spurious.measure import (
    EVALUATION,
    PAPER,
    PROTOCOL_NAME,
    SELECTION,
    SpuriousMeasure,
    class_pca,
    contributions_chunked,
    split_selection,
)
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.metrics.spurious import spufix_multi, spurious_score_per_class

W = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
B = np.array([-1.5, -1.5, 0.0])
CLASSES = ("boat", "car", "background")
OBJECT, SPURIOUS = (0, 2), (1, 3)  # feature of each class's object / spurious feature


class ToyArrays:
    """What the measure reads from a dataset's stored arrays (``StoredArrays``' methods)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, first_id: int = 0) -> None:
        self._features = np.asarray(features, dtype=np.float64)
        self._labels = np.asarray(labels, dtype=np.int64)
        self._first_id = first_id

    def features(self, view: str = "clean") -> np.ndarray:
        return self._features

    def logits(self, view: str = "clean") -> np.ndarray:
        return self._features @ W.T + B

    def labels(self) -> np.ndarray:
        return self._labels

    def index(self) -> np.ndarray:
        return np.arange(len(self._labels))

    def sample_ids(self) -> np.ndarray:
        return self._first_id + np.arange(len(self._labels))


def _images(rng: np.random.Generator, n: int, k: int, kind: str) -> np.ndarray:
    x = np.abs(rng.normal(0.0, 0.1, size=(n, 4)))
    if kind == "real":
        x[:, OBJECT[k]] = 2.0 + rng.normal(0.0, 0.3, size=n)
        x[:, SPURIOUS[k]] = 2.0 * (rng.uniform(size=n) < 0.5) + rng.normal(0.0, 0.1, size=n)
    else:  # spurious-only: the spurious feature, no object
        x[:, SPURIOUS[k]] = 3.0 + rng.normal(0.0, 0.2, size=n)
    return x


def _dataset(n_per_class: dict[int, int], kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    feats = [_images(rng, n, k, kind) for k, n in n_per_class.items()]
    labels = [np.full(n, k) for k, n in n_per_class.items()]
    return np.concatenate(feats), np.concatenate(labels)


@pytest.fixture
def toy() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "toy/train": _dataset({0: 40, 1: 40}, "real", 0),
        "toy/val": _dataset({0: 20, 1: 21}, "real", 1),
        "toy/spurious": _dataset({0: 12, 1: 9}, "spurious", 2),
    }


ROLES = {"toy/train": "train", "toy/val": "id", "toy/spurious": "spurious"}


def _compute(
    measure: SpuriousMeasure, data: dict[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[Any, dict[str, ToyArrays]]:
    model = ModelInfo("toy", "fp-toy", CLASSES, {}, W, B)
    infos = {n: DatasetInfo(n, f"fp-{n}", ROLES[n], CLASSES) for n in data}
    arrays = {n: ToyArrays(f, y, 1000 * i) for i, (n, (f, y)) in enumerate(data.items())}
    mappings = {n: ClassMapping.identity(3) for n in data}
    return measure.compute(model, infos, arrays, mappings), arrays


def _values(out: Any, dataset: str = "toy/spurious") -> dict[str, float]:
    return {n: v for (d, n), v in out.values.items() if d == dataset}


def _flagged(out: Any) -> dict[int, tuple[list[int], list[float]]]:
    classes = out.artifacts["sets"]["toy/spurious"]["classes"]
    return {c["class_index"]: (c["flagged"], c["flagged_scores"]) for c in classes}


def _parts(out: Any, dataset: str) -> np.ndarray:
    return np.asarray(out.per_sample[dataset]["spufix_part"])


# -- the split ------------------------------------------------------------------------------


def test_split_is_per_class_seeded_and_sized_by_the_fraction():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    mask = split_selection(labels, 0.3, seed=7)
    # round(0.3 * n), at least 1 and at most n - 1; a lone image goes to evaluation
    assert [int(mask[labels == c].sum()) for c in range(4)] == [3, 2, 1, 0]
    np.testing.assert_array_equal(mask, split_selection(labels, 0.3, seed=7))
    assert not np.array_equal(mask, split_selection(labels, 0.3, seed=8))
    # one class's split depends on that class's rows only (here: class 1 dropped)
    keep = labels != 1
    np.testing.assert_array_equal(split_selection(labels[keep], 0.3, seed=7), mask[keep])
    # the stream draws an independent split with the same seed
    assert not np.array_equal(mask, split_selection(labels, 0.3, seed=7, stream=1))


def test_parts_are_disjoint_and_cover_every_image(toy):
    out, _ = _compute(SpuriousMeasure(selection_fraction=0.25, split_seed=3), toy)
    v = _values(out)
    for name, prefix in (("toy/spurious", ""), ("toy/val", "_id")):
        parts = _parts(out, name)
        labels = toy[name][1]
        assert len(parts) == len(labels) and set(parts) == {SELECTION, EVALUATION}
        sel = parts == SELECTION
        assert v[f"spufix_n_selection{prefix}"] == sel.sum()
        assert v[f"spufix_n_evaluation{prefix}"] == (~sel).sum()
        assert v[f"spufix_n_selection{prefix}"] + v[f"spufix_n_evaluation{prefix}"] == len(labels)
        for k in (0, 1):
            n = (labels == k).sum()
            assert sel[labels == k].sum() == int(np.floor(0.25 * n + 0.5))
    split = out.artifacts["sets"]["toy/spurious"]["split"]
    assert split == {
        "selection_fraction": 0.25,
        "split_seed": 3,
        "n_selection": int(v["spufix_n_selection"]),
        "n_evaluation": int(v["spufix_n_evaluation"]),
        "n_selection_id": int(v["spufix_n_selection_id"]),
        "n_evaluation_id": int(v["spufix_n_evaluation_id"]),
    }
    assert (v["spufix_selection_fraction"], v["spufix_split_seed"]) == (0.25, 3.0)
    for c in out.artifacts["sets"]["toy/spurious"]["classes"]:
        k = c["class_index"]
        assert (
            c["n_spurious_selection"]
            == (_parts(out, "toy/spurious")[toy["toy/spurious"][1] == k] == SELECTION).sum()
        )
        assert (
            c["n_id_selection"]
            == (_parts(out, "toy/val")[toy["toy/val"][1] == k] == SELECTION).sum()
        )


# -- choosing on the selection part, scoring on the evaluation part ---------------------------


def test_the_clearly_spurious_component_is_flagged(toy):
    out, _ = _compute(SpuriousMeasure(), toy)
    v = _values(out)
    assert v["n_classes_flagged"] == 2 and v["n_flagged"] == 2
    pca = {}
    for k in (0, 1):
        pca[k], _ = class_pca(toy["toy/train"][0], toy["toy/train"][1], W, k)
        (flagged,), _ = _flagged(out)[k]
        # the flagged component lies along the class's spurious feature
        assert np.argmax(np.abs(pca[k].eigenvectors[:, flagged])) == SPURIOUS[k]
    # SpuFix stops spurious-only images from triggering their class (on the evaluation part)
    assert v["spufix_spurious_trigger_before"] == 1.0
    assert v["spufix_spurious_trigger_after"] < 0.5
    assert v["spufix_spurious_score_after"] > v["spufix_spurious_score_before"]


def _perturb(
    data: dict[str, tuple[np.ndarray, np.ndarray]], name: str, rows: np.ndarray, k_feature: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    feats, labels = data[name]
    feats = feats.copy()
    feats[rows, k_feature] += 10.0
    return {**data, name: (feats, labels)}


@pytest.mark.parametrize("with_train", [True, False], ids=["pca-on-train", "pca-on-id"])
def test_chosen_components_depend_only_on_the_selection_part(toy, with_train):
    data = toy if with_train else {n: d for n, d in toy.items() if n != "toy/train"}
    measure = SpuriousMeasure(n_flag=1, min_gap=0.5)
    out, _ = _compute(measure, data)
    ev_sp = _parts(out, "toy/spurious") == EVALUATION
    ev_id = _parts(out, "toy/val") == EVALUATION
    # evaluation images that would make the OBJECT component look spurious if they were used
    # to choose (a huge object feature on spurious-only images), and in-class images with a
    # huge spurious feature
    changed = _perturb(data, "toy/spurious", np.flatnonzero(ev_sp), OBJECT[0])
    changed = _perturb(changed, "toy/spurious", np.flatnonzero(ev_sp), OBJECT[1])
    changed = _perturb(changed, "toy/val", np.flatnonzero(ev_id), SPURIOUS[0])
    out2, _ = _compute(measure, changed)
    np.testing.assert_array_equal(_parts(out2, "toy/spurious"), _parts(out, "toy/spurious"))
    assert _flagged(out2) == _flagged(out)
    v, v2 = _values(out), _values(out2)
    assert v2["n_flagged"] == v["n_flagged"] == 2
    # ... while the evaluation numbers do see the change
    assert v2["spufix_spurious_score_before"] != v["spufix_spurious_score_before"]
    # and the same change on the selection part does move the choice (the test can fail)
    sel_sp = np.flatnonzero(~ev_sp)
    moved = _perturb(data, "toy/spurious", sel_sp, OBJECT[0])
    out3, _ = _compute(measure, moved)
    assert _flagged(out3)[0] != _flagged(out)[0]


def test_spufix_numbers_are_computed_on_the_evaluation_part_only(toy):
    measure = SpuriousMeasure(selection_fraction=0.4, split_seed=1)
    out, arrays = _compute(measure, toy)
    v = _values(out)
    ev_sp = _parts(out, "toy/spurious") == EVALUATION
    ev_id = _parts(out, "toy/val") == EVALUATION
    (f_tr, y_tr), (f_id, y_id), (f_sp, y_sp) = toy["toy/train"], toy["toy/val"], toy["toy/spurious"]
    logits_id, logits_sp = arrays["toy/val"].logits(), arrays["toy/spurious"].logits()
    # SpuFix by hand with the flagged components, on the evaluation rows only
    flagged = {k: fl for k, (fl, _) in _flagged(out).items() if fl}
    alphas_id, alphas_sp = {}, {}
    for k, fl in flagged.items():
        pca, _ = class_pca(f_tr, y_tr, W, k)
        alphas_id[k] = contributions_chunked(f_id[ev_id], pca, np.array(fl))
        alphas_sp[k] = contributions_chunked(f_sp[ev_sp], pca, np.array(fl))
    ones = {k: np.arange(len(fl)) for k, fl in flagged.items()}
    fixed_id = spufix_multi(logits_id[ev_id], alphas_id, ones)
    fixed_sp = spufix_multi(logits_sp[ev_sp], alphas_sp, ones)

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def score(zi: np.ndarray, zs: np.ndarray) -> float:
        return spurious_score_per_class(softmax(zi), y_id[ev_id], softmax(zs), y_sp[ev_sp])["mean"]

    assert v["spufix_id_accuracy_before"] == pytest.approx(
        np.mean(logits_id[ev_id].argmax(1) == y_id[ev_id])
    )
    assert v["spufix_id_accuracy_after"] == pytest.approx(
        np.mean(fixed_id.argmax(1) == y_id[ev_id])
    )
    assert v["spufix_spurious_trigger_before"] == pytest.approx(
        np.mean(logits_sp[ev_sp].argmax(1) == y_sp[ev_sp])
    )
    assert v["spufix_spurious_trigger_after"] == pytest.approx(
        np.mean(fixed_sp.argmax(1) == y_sp[ev_sp])
    )
    assert v["spufix_spurious_score_before"] == pytest.approx(
        score(logits_id[ev_id], logits_sp[ev_sp])
    )
    assert v["spufix_spurious_score_after"] == pytest.approx(score(fixed_id, fixed_sp))
    # the per-sample SpuFix prediction covers every image, marked by its part
    pred = out.per_sample["toy/spurious"]["spufix_prediction"]
    np.testing.assert_array_equal(pred[ev_sp], fixed_sp.argmax(1))


def test_selection_images_do_not_enter_the_evaluation_numbers(toy):
    """Logits of selection images (not their features: the choice stays) change nothing of the
    spufix_* numbers, while the all-image spurious score sees them."""
    measure = SpuriousMeasure()
    out, arrays = _compute(measure, toy)
    sel_sp = _parts(out, "toy/spurious") == SELECTION

    class Shifted(ToyArrays):
        def logits(self, view: str = "clean") -> np.ndarray:
            z = super().logits(view)
            z[sel_sp] = z[sel_sp][:, ::-1] * 5.0
            return z

    model = ModelInfo("toy", "fp-toy", CLASSES, {}, W, B)
    infos = {n: DatasetInfo(n, f"fp-{n}", ROLES[n], CLASSES) for n in toy}
    arrays2 = dict(arrays)
    arrays2["toy/spurious"] = Shifted(*toy["toy/spurious"], first_id=2000)
    mappings = {n: ClassMapping.identity(3) for n in toy}
    out2 = measure.compute(model, infos, arrays2, mappings)
    v, v2 = _values(out), _values(out2)
    assert v2["spurious_score"] != v["spurious_score"]  # AP over all images, as the paper
    assert v2["spurious_trigger_rate"] != v["spurious_trigger_rate"]
    for name in v:
        if name.startswith("spufix_"):
            assert v2[name] == pytest.approx(v[name], nan_ok=True), name


def test_spurious_score_is_over_all_images_whatever_the_split(toy):
    a, _ = _compute(SpuriousMeasure(selection_fraction=0.2, split_seed=0), toy)
    b, _ = _compute(SpuriousMeasure(selection_fraction=0.7, split_seed=5), toy)
    (f_id, y_id), (f_sp, y_sp) = toy["toy/val"], toy["toy/spurious"]

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    expected = spurious_score_per_class(
        softmax(f_id @ W.T + B), y_id, softmax(f_sp @ W.T + B), y_sp
    )
    for out in (a, b):
        assert _values(out)["spurious_score"] == pytest.approx(expected["mean"])
    assert _values(a)["spufix_n_selection"] != _values(b)["spufix_n_selection"]


# -- options and the recorded protocol --------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan"), "half", None, True])
def test_bad_selection_fraction_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match="selection_fraction"):
        SpuriousMeasure(selection_fraction=bad)
    with pytest.raises(ConfigError, match="selection_fraction"):
        get_measure("spurious", selection_fraction=bad)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None, True])
def test_bad_split_seed_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match="split_seed"):
        get_measure("spurious", split_seed=bad)


@pytest.mark.parametrize("bad", [0, 1, -5, True])
def test_bad_npca_sample_size_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match="max_train_per_class"):
        get_measure("spurious", max_train_per_class=bad)


def test_npca_sample_size_is_an_option_recorded_with_the_results(toy):
    default, _ = _compute(SpuriousMeasure(), toy)
    assert _values(default)["npca_train_per_class"] == 500
    few, _ = _compute(SpuriousMeasure(max_train_per_class=7), toy)
    assert _values(few)["npca_train_per_class"] == 7
    s = few.artifacts["sets"]["toy/spurious"]
    assert s["npca_train_per_class"] == 7
    assert [c["n_train"] for c in s["classes"]] == [7, 7]
    assert few.artifacts["protocol"]["parameters"]["max_train_per_class"] == 7
    every, _ = _compute(SpuriousMeasure(max_train_per_class=None), toy)
    assert _values(every)["npca_train_per_class"] == 40  # all 40 training images per class
    assert every.artifacts["protocol"]["parameters"]["max_train_per_class"] is None


def test_protocol_is_recorded_with_every_parameter_that_moves_the_numbers(toy):
    options = {
        "n_flag": 2,
        "min_gap": 0.25,
        "max_train_per_class": 30,
        "selection_fraction": 0.6,
        "split_seed": 4,
        "default_mark_rate": 0.7,
    }
    out, _ = _compute(get_measure("spurious", **options), toy)
    protocol = out.artifacts["protocol"]
    assert protocol["name"] == PROTOCOL_NAME
    assert protocol["paper"] == PAPER and "ICCV 2023" in PAPER
    assert protocol["parameters"] == options
    assert {"spurious_score", "split", "spufix", "component_selection"} <= set(
        protocol["definitions"]
    )
    # each parameter moves some number (so each one belongs in the protocol)
    base = _values(out)
    for name, other in (
        ("n_flag", 0),
        ("min_gap", 100.0),
        ("max_train_per_class", 3),
        ("selection_fraction", 0.3),
        ("split_seed", 9),
    ):
        moved = _values(_compute(get_measure("spurious", **{**options, name: other}), toy)[0])
        assert moved != base, name
    # the split is also in the values and the artifacts of the set
    assert base["spufix_selection_fraction"] == 0.6 and base["spufix_split_seed"] == 4
    assert out.artifacts["sets"]["toy/spurious"]["split"]["split_seed"] == 4


def test_protocol_is_recorded_without_a_spurious_dataset(toy):
    out, _ = _compute(SpuriousMeasure(), {"toy/train": toy["toy/train"], "toy/val": toy["toy/val"]})
    assert out.values == {}
    assert out.artifacts["protocol"]["name"] == PROTOCOL_NAME
    assert out.artifacts["sets"] == {}
