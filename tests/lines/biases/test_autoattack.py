"""AutoAttack as an option of the biases measure (``attack: autoattack``): robustlens gives the
same per-sample robust accuracy as a direct ``torchattacks.AutoAttack`` call on the same images
and seed, records the attack with its results, exports it per sample, and keys its cache on
the options."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustlens.config import parse_config
from robustlens.data.base import ArrayDataset
from robustlens.engine import Engine, EngineJob
from robustlens.errors import ConfigError
from robustlens.lines.biases.measure import BiasesMeasure
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.models.base import ModelAdapter
from robustlens.plan import plan_views
from robustlens.store import Store, StoredArrays
from robustlens.study import measure_run_key, per_sample_path, run_study
from robustlens.transforms.adversarial import (
    MissingDependencyError,
    autoattack,
    spread_indices,
)

torchattacks = pytest.importorskip("torchattacks")

K = 10  # 10 classes: torchattacks' n_classes - 1 target classes = the reference's 9
EPS = 1 / 255  # some images survive the ensemble, some do not


def _linear_model() -> ModelAdapter:
    """A 10-class linear model on 8x8 pixels (normalizing inside, as every adapter does)."""
    torch.manual_seed(0)
    head = nn.Linear(3 * 8 * 8, K)
    return ModelAdapter("tiny-linear", nn.Flatten(), head, [f"c{i}" for i in range(K)])


def _images() -> tuple[np.ndarray, np.ndarray]:
    """8 uint8 images and labels: the model's own predictions, but one wrong on purpose."""
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        pred = _linear_model()(_pixels(images)).argmax(1).numpy()
    labels = pred.copy()
    labels[3] = (labels[3] + 1) % K  # misclassified before any attack
    return images, labels


def _pixels(images: np.ndarray) -> torch.Tensor:
    """What the engine feeds models: (B, 3, H, W) floats in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).contiguous()


def _direct(images: np.ndarray, labels: np.ndarray, seed: int = 0, eps: float = EPS) -> np.ndarray:
    """The reference: torchattacks called by hand; per image, robust or not."""
    model = _linear_model()
    x, y = _pixels(images), torch.from_numpy(labels)
    atk = torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version="standard", n_classes=K, seed=seed
    )
    adv = atk(x, y)
    assert float((adv - x).abs().max().detach()) <= eps + 1e-6
    with torch.no_grad():
        return (model(adv).argmax(1) == y).numpy()


def _through_robustlens(tmp_path, images, labels, **options):
    """The biases measure's adversarial part through the engine and the store."""
    ds = ArrayDataset("adv", images, labels, [f"c{i}" for i in range(K)], "fp-aa-adv")
    model = _linear_model()
    measure = BiasesMeasure(parts=["pgd"], attack="autoattack", aa_eps=EPS, **options)
    info = DatasetInfo("adv", ds.fingerprint(), "adversarial", tuple(ds.classes))
    views, _ = plan_views([measure], info)
    assert views == ("clean", measure.autoattack_spec)
    store = Store(tmp_path / "store")
    report = Engine(store, batch_size=64, device="cpu").run(
        ds, [EngineJob(model, views, frozenset())]
    )
    assert report.forward_passes == 2 * len(ds)  # clean, and the view (attacked or not)
    arrays = StoredArrays(store, model.fingerprint(), ds.fingerprint())
    minfo = ModelInfo(model.name, model.fingerprint(), tuple(model.classes), model.config)
    out = measure.compute(
        minfo, {"adv": info}, {"adv": arrays}, {"adv": ds.class_mapping(model.classes)}
    )
    return measure, out


def test_robust_accuracy_equals_a_direct_torchattacks_call_per_sample(tmp_path):
    images, labels = _images()
    # 5 of the 8 images, evenly spaced; the direct call attacks exactly those, in one batch
    measure, out = _through_robustlens(tmp_path, images, labels, aa_images=5, aa_seed=0)
    chosen = spread_indices(len(images), 5)
    assert chosen.tolist() == [1, 3, 4, 6, 7]
    expected = _direct(images[chosen], labels[chosen], seed=0)
    assert 0 < expected.sum() < len(chosen)  # a mix: the check means something

    cols = out.per_sample["adv"]
    assert cols["autoattack_attacked"].nonzero()[0].tolist() == chosen.tolist()
    robust = cols["autoattack_correct"]
    np.testing.assert_array_equal(robust[chosen], expected.astype(float))
    assert np.isnan(np.delete(robust, chosen)).all()
    assert (np.delete(cols["autoattack_prediction"], chosen) == -1).all()
    assert robust[3] == 0.0  # misclassified before the attack: not robust

    v = out.values
    assert v[("adv", "autoattack_accuracy")] == pytest.approx(expected.mean())
    assert v[("adv", "autoattack_clean_accuracy")] == pytest.approx(4 / 5)
    assert v[("adv", "autoattack_n")] == 5
    art = out.artifacts["autoattack"]["adv"]
    assert art["attack"] == "autoattack" and art["norm"] == "linf"
    assert art["eps"] == EPS and art["version"] == "standard" and art["seed"] == 0
    assert art["n_images"] == 5 and art["n_requested"] == 5 and art["dataset_size"] == 8
    assert art["indices"] == chosen.tolist()
    assert art["torchattacks"] == torchattacks.__version__
    assert art["view"] == measure.autoattack_spec
    assert ("adv", "pgd_accuracy") not in v  # PGD-40 only when asked for


def test_the_function_is_the_torchattacks_call(tmp_path):
    images, labels = _images()
    x, y = _pixels(images), torch.from_numpy(labels)
    # a radius at which APGD-CE fools every image: a quick call (the per-sample comparison at
    # a radius some images survive is the test above)
    ours = autoattack(_linear_model(), x, y, eps=8 / 255, seed=3)
    assert float((ours - x).abs().max()) <= 8 / 255 + 1e-6 and 0 <= ours.min() <= ours.max() <= 1
    with torch.no_grad():
        got = (_linear_model()(ours).argmax(1) == y).numpy()
    np.testing.assert_array_equal(got, _direct(images, labels, seed=3, eps=8 / 255))
    model = _linear_model()
    state = torch.random.get_rng_state()
    autoattack(model, x[:1], y[:1], eps=0.5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert torch.equal(autoattack(_linear_model(), x, y, eps=0.0), x)


def test_options_are_checked_recorded_and_in_the_cache_key():
    m = BiasesMeasure(attack="autoattack")
    assert m.autoattack_spec == f"autoattack:linf:{4 / 255!r}:5000:standard:0:9:default"
    assert BiasesMeasure().attack == ("pgd",)  # seed 002's PGD-40 stays the default
    both = BiasesMeasure(attack=["pgd", "autoattack"], aa_images=None, aa_steps=100)
    adv = DatasetInfo("adv", "fp", "adversarial", ("a", "b"))
    assert both.requests(adv) == {
        "clean": False,
        both.pgd_spec: False,
        f"autoattack:linf:{4 / 255!r}:all:standard:0:9:100": False,
    }
    proto = get_measure("biases", attack="autoattack", aa_images=100, aa_seed=7).protocol()
    rec = proto["attacks"]["autoattack"]
    assert (rec["eps"], rec["n_images"], rec["version"], rec["seed"]) == (
        4 / 255,
        100,
        "standard",
        7,
    )
    assert rec["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert rec["torchattacks"] == torchattacks.__version__
    assert proto["parameters"]["attack"] == ["autoattack"]
    for bad, match in (
        ({"attack": "cw"}, "biases.attack"),
        ({"aa_images": 0}, "aa_images"),
        ({"aa_version": "fast"}, "aa_version"),
        ({"aa_eps": -1}, "aa_eps"),
    ):
        with pytest.raises(ConfigError, match=match):
            BiasesMeasure(**bad)

    model = ModelInfo("m", "fp-m", ("a", "b"))
    keys = {
        measure_run_key(BiasesMeasure(attack="autoattack", **o), model, {"adv": adv}, {"adv": 0})
        for o in (
            {},
            {"aa_eps": 8 / 255},
            {"aa_images": 10},
            {"aa_seed": 1},
            {"aa_version": "plus"},
        )
    }
    keys.add(measure_run_key(BiasesMeasure(), model, {"adv": adv}, {"adv": 0}))
    assert len(keys) == 6


def test_missing_torchattacks_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks fails
    with pytest.raises(ConfigError, match=r'pip install "robustlens\[attacks\]"'):
        BiasesMeasure(attack="autoattack")
    BiasesMeasure(attack="autoattack", parts=["shape"])  # no adversarial part: not needed
    BiasesMeasure()  # nor for PGD
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(MissingDependencyError, match=r"robustlens\[attacks\]"):
        autoattack(_linear_model(), x, torch.zeros(1, dtype=torch.long))


def test_study_exports_autoattack_per_sample_and_records_it(tiny_world, tiny_zoo_dir, tmp_path):
    world = dataclasses.asdict(tiny_world.config)
    world = {k: list(v) if isinstance(v, tuple) else v for k, v in world.items()}
    opts = {"parts": ["pgd"], "attack": ["pgd", "autoattack"], "pgd_steps": 1, "aa_images": 4}
    opts["aa_eps"] = 32 / 255  # every image falls to APGD-CE: a fast study
    cfg = parse_config(
        {
            "store": str(tmp_path / "store"),
            "output": str(tmp_path / "out"),
            "world": world,
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["adversarial"]}],
            "measures": ["biases"],
            "measure_options": {"biases": opts},
            "engine": {"num_workers": 0},
        }
    )
    result = run_study(cfg)
    df = result.results()
    n = len(tiny_world.dataset("adversarial"))
    chosen = spread_indices(n, 4)
    for model in result.models:
        rows = df[(df["model"] == model) & (df["dataset"] == "world/adversarial")]
        values = dict(zip(rows["name"], rows["value"], strict=True))
        assert {"pgd_accuracy", "autoattack_accuracy", "autoattack_n"} <= set(values)
        per = pd.read_parquet(per_sample_path(cfg.output, model))
        per = per[per["dataset"] == "world/adversarial"].reset_index(drop=True)
        assert len(per) == n
        assert per["autoattack_attacked"].to_numpy().nonzero()[0].tolist() == chosen.tolist()
        assert per["autoattack_correct"].mean() == pytest.approx(values["autoattack_accuracy"])
        assert per["autoattack_correct"].isna().sum() == n - 4
        assert "pgd_correct" in per.columns  # PGD's columns are kept next to AutoAttack's
        art = json.loads((Path(cfg.output) / "artifacts" / "biases" / f"{model}.json").read_text())
        rec = art["autoattack"]["world/adversarial"]
        assert (rec["eps"], rec["n_images"], rec["seed"]) == (32 / 255, 4, 0)
        assert art["pgd"]["world/adversarial"]["attack"] == "pgd"
    assert result.protocols["biases"]["attacks"]["autoattack"]["eps"] == 32 / 255

    again = run_study(cfg)  # same options: nothing is run again
    assert again.forward_passes == 0
