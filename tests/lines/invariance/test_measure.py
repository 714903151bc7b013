"""Tests of the ``invariance`` measure (seed 001): golden EI cases and the one-pass guarantee."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from robustlens.config import parse_config
from robustlens.data.base import ClassMapping
from robustlens.lines.invariance.measure import INVARIANCE_VIEWS, InvarianceMeasure
from robustlens.measure import DatasetInfo, ModelInfo, dataset_predictions, get_measure
from robustlens.plan import plan_views
from robustlens.roles import world_role
from robustlens.store import Store
from robustlens.study import run_study

CLASSES = ("a", "b", "c", "d")
IDENTITY = ClassMapping.identity(4)
STUDY_SPLITS = ["val", "corrupt/contrast/3", "sketch", "adversarial"]


def _info(name: str, role: str) -> DatasetInfo:
    return DatasetInfo(name, f"fp-{name}", role, CLASSES)


class FakeArrays:
    """Duck-typed StoredArrays holding logits per view in memory."""

    def __init__(self, logits: Mapping[str, np.ndarray]) -> None:
        self._logits = dict(logits)
        n = len(next(iter(self._logits.values())))
        self._labels = np.zeros(n, dtype=np.int64)

    def labels(self) -> np.ndarray:
        return self._labels

    def sample_ids(self) -> np.ndarray:
        return np.arange(len(self._labels)) + 100

    def logits(self, view: str = "clean") -> np.ndarray:
        return self._logits[view]  # KeyError: the measure read a view it did not request


def _compute(views: Mapping[str, np.ndarray], mapping: ClassMapping = IDENTITY):
    m = InvarianceMeasure()
    info = _info("ds", "v2")
    return m.compute(
        ModelInfo("m", "fp-m", CLASSES), {"ds": info}, {"ds": FakeArrays(views)}, {"ds": mapping}
    )


def _random_logits(n: int = 7, k: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, k)) * 2.0


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- requests
def test_requests_five_views_without_features_except_train_and_adversarial():
    m = get_measure("invariance")
    for role in ("id", "v2", "corrupt", "sketch", "rendition", "cue_conflict", "spurious"):
        assert m.requests(_info("x", role)) == dict.fromkeys(
            ("clean", "rot90", "rot180", "rot270", "gray"), False
        )
    assert m.requests(_info("x", "train")) == {}
    assert m.requests(_info("x", "adversarial")) == {}


# ---------------------------------------------------------------------------- golden cases
def test_clean_view_against_itself_gives_confidence():
    z = _random_logits()
    out = _compute(dict.fromkeys(INVARIANCE_VIEWS, z))
    conf = _softmax(z).max(axis=1)
    cols = out.per_sample["ds"]
    np.testing.assert_allclose(cols["ei_rotation"], conf, rtol=1e-12)
    np.testing.assert_allclose(cols["ei_gray"], conf, rtol=1e-12)
    for v in ("rot90", "rot180", "rot270", "gray"):
        assert cols[f"agree_{v}"].all()
    assert out.values[("ds", "ei_rotation")] == pytest.approx(conf.mean())
    assert out.values[("ds", "ei_gray")] == pytest.approx(conf.mean())
    assert out.values[("ds", "agreement_rotation")] == 1.0
    assert out.values[("ds", "agreement_gray")] == 1.0
    np.testing.assert_array_equal(cols["sample_id"], np.arange(7) + 100)


def test_changed_argmax_gives_zero_and_rotation_is_mean_of_three_angles():
    z = _random_logits(seed=1)
    flipped = -z  # argmax becomes the former argmin: every prediction changes
    assert (flipped.argmax(1) != z.argmax(1)).all()
    out = _compute({"clean": z, "rot90": z, "rot180": flipped, "rot270": z, "gray": flipped})
    conf = _softmax(z).max(axis=1)
    cols = out.per_sample["ds"]
    np.testing.assert_array_equal(cols["ei_gray"], 0.0)
    np.testing.assert_allclose(cols["ei_rotation"], (conf + 0 + conf) / 3, rtol=1e-12)
    assert not cols["agree_rot180"].any() and cols["agree_rot90"].all()
    assert out.values[("ds", "agreement_rotation")] == pytest.approx(2 / 3)
    assert out.values[("ds", "agreement_gray")] == 0.0


def test_ei_uses_dataset_space_probabilities_of_the_mapping():
    # the model has 6 outputs; the dataset's 4 classes are outputs 5, 0, 2, 3 (a mask)
    mapping = ClassMapping.from_indices([5, 0, 2, 3], "mask")
    z = _random_logits(k=6, seed=2)
    z[:, 1] = 50.0  # an unmapped output dominates the model-space softmax
    out = _compute(dict.fromkeys(INVARIANCE_VIEWS, z), mapping)
    p, _ = dataset_predictions(z, mapping)
    np.testing.assert_allclose(out.per_sample["ds"]["ei_rotation"], p.max(axis=1), rtol=1e-12)
    assert out.values[("ds", "ei_rotation")] > 0.3  # not ~0, as model-space probs would give


# ---------------------------------------------------------------------------- one pass
@pytest.fixture(scope="module")
def study(tiny_world, tiny_zoo_dir, tmp_path_factory):
    """A fresh store: nothing cached, so the forward passes can be counted exactly."""
    root = tmp_path_factory.mktemp("inv_study")
    data = {
        "store": str(root / "store"),
        "output": str(root / "out"),
        "world": dataclasses.asdict(tiny_world.config),
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": STUDY_SPLITS}],
        "measures": ["accuracy", "invariance", "label_free", "clustering"],
    }
    first = run_study(parse_config(data))
    second = run_study(parse_config(data))
    return first, second


def test_forward_passes_are_the_views_only(study):
    first, second = study
    n_models = len(first.models)
    measures = [get_measure(n) for n in ("accuracy", "invariance", "label_free", "clustering")]
    store = Store(first.store.root)
    infos = {}
    for split in STUDY_SPLITS:
        role, tags = world_role(split)
        infos[f"world/{split}"] = DatasetInfo(f"world/{split}", "", role, CLASSES, tags)
    expected_total = 0
    for r in first.engine_reports:
        views, _ = plan_views(measures, infos[r.dataset])
        n_views = 1 if r.dataset == "world/adversarial" else 5
        assert len(views) == n_views  # clustering's features ride on the clean view
        assert r.forward_passes == r.images * n_views * n_models, r.summary()
        assert r.images_decoded == r.images  # every image decoded once for all models
        expected_total += r.images * n_views * n_models
    assert first.forward_passes == expected_total
    assert second.forward_passes == 0 and second.images_decoded == 0
    assert store.stats()["results"] > 0


def test_study_values_and_per_sample_columns(study):
    first, _ = study
    df = first.results()
    inv = df[df["measure"] == "invariance"]
    assert set(inv["name"]) == {"ei_rotation", "ei_gray", "agreement_rotation", "agreement_gray"}
    assert "world/adversarial" not in set(inv["dataset"])
    assert inv["value"].between(0, 1).all()
    per_sample = pd.read_parquet(first.output / "per_sample" / f"{first.models[0]}.parquet")
    val = per_sample[per_sample["dataset"] == "world/val"]
    agree = val["agree_gray"].astype(bool)  # object column: adversarial rows have no EI
    for col in (
        "ei_rotation",
        "ei_gray",
        "agree_rot90",
        "agree_rot180",
        "agree_rot270",
        "agree_gray",
        "prediction",
    ):
        assert col in val.columns and val[col].notna().all()
    assert (val.loc[~agree, "ei_gray"] == 0).all()  # changed prediction: EI = 0
    assert (val.loc[agree, "ei_gray"] > 0).all()
    mean_ei = inv[
        (inv["model"] == first.models[0])
        & (inv["dataset"] == "world/val")
        & (inv["name"] == "ei_rotation")
    ]["value"].item()
    assert mean_ei == pytest.approx(val["ei_rotation"].mean())
