"""The spurious measure (neural PCA, spurious score, SpuFix) on the tiny zoo and real layouts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score
from torch import nn

import robustlens.lines.spurious.measure as spurious_measure
from robustlens.config import parse_config
from robustlens.data.imagenet import imagenet_val, spurious_imagenet
from robustlens.data.imagenet_info import imagenet_wnids
from robustlens.engine import Engine, EngineJob
from robustlens.errors import ConfigError
from robustlens.lines.spurious.measure import (
    SpuriousMeasure,
    class_pca,
    contributions_chunked,
    model_space_labels,
    train_mark_rate,
)
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.metrics.spurious import contribution_offset, spufix
from robustlens.models.base import adapter_from_module
from robustlens.report.exports import read_per_sample
from robustlens.store import Store, StoredArrays
from robustlens.study import run_study

SPLITS = ["train", "val", "spurious"]


def _world_dict(world) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(world.config).items()}


@pytest.fixture(scope="module")
def study(tiny_store, tiny_world, tiny_zoo_dir, tmp_path_factory):
    """accuracy + spurious on train/val/spurious of the tiny world, for the 3 tiny models."""
    cfg = parse_config(
        {
            "store": str(tiny_store.root),
            "output": str(tmp_path_factory.mktemp("spur-out")),
            "world": _world_dict(tiny_world),
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": SPLITS}],
            "measures": ["accuracy", "spurious"],
            "engine": {"num_workers": 0},
        }
    )
    return cfg, run_study(cfg)


def _measure_inputs(store: Store, tiny_world, model):
    """What study._compute_measures hands a measure, for one model (no forward pass)."""
    infos, arrays, mappings = {}, {}, {}
    for split, role in (("train", "train"), ("val", "id"), ("spurious", "spurious")):
        ds = tiny_world.dataset(split)
        infos[ds.name] = DatasetInfo(ds.name, ds.fingerprint(), role, tuple(ds.classes))
        arrays[ds.name] = StoredArrays(store, model.fingerprint(), ds.fingerprint())
        mappings[ds.name] = ds.class_mapping(model.classes)
    w, b = model.classifier_weights()
    minfo = ModelInfo(model.name, model.fingerprint(), tuple(model.classes), model.config, w, b)
    return minfo, infos, arrays, mappings


def _values(result, model: str) -> dict[str, float]:
    df = result.results()
    df = df[(df["model"] == model) & (df["measure"] == "spurious")]
    return dict(zip(df["name"], df["value"], strict=True))


def test_requests_features_on_train_id_and_spurious_only():
    m = get_measure("spurious")
    for role in ("train", "id", "spurious"):
        assert m.requests(DatasetInfo("d", "fp", role, ("a",))) == {"clean": True}
    for role in ("corrupt", "v2", "sketch", "cue_conflict"):
        assert m.requests(DatasetInfo("d", "fp", role, ("a",))) == {}


def test_values_on_the_tiny_zoo(study):
    cfg, result = study
    assert set(result.models) == {"tiny-cnn", "tiny-resnet", "tiny-mixer"}
    df = result.results()
    acc = df[(df["measure"] == "accuracy") & (df["name"] == "accuracy")]
    for model in result.models:
        v = _values(result, model)
        assert all(np.isfinite(x) for x in v.values()), v
        assert 0.0 <= v["spurious_score"] <= 1.0
        assert v["spurious_reliance"] == pytest.approx(1.0 - v["spurious_score"])
        assert v["n_classes_scored"] == 4
        # the trigger rate is the accuracy measure's "accuracy" on the spurious split
        on_spur = acc[(acc["model"] == model) & (acc["dataset"] == "world/spurious")]["value"]
        assert v["spurious_trigger_rate"] == pytest.approx(float(on_spur.iloc[0]))
        # SpuFix's "before" is the accuracy measure's on the held-out evaluation part of val
        # (the components are chosen on the selection part), and the trigger rate likewise
        per_sample = read_per_sample(cfg.output, model)
        for ds, name in (
            ("world/val", "spufix_id_accuracy_before"),
            ("world/spurious", "spufix_spurious_trigger_before"),
        ):
            rows = per_sample[per_sample["dataset"] == ds]
            assert set(rows["spufix_part"]) == {"selection", "evaluation"}
            held_out = rows[rows["spufix_part"] == "evaluation"]
            assert v[name] == pytest.approx(float(held_out["correct"].mean()))
            assert v["spufix_n_evaluation_id" if ds == "world/val" else "spufix_n_evaluation"] == (
                len(held_out)
            )
        assert v["npca_train_per_class"] == 500
    # ground truth from the recipes: tiny-mixer trained without marks, the others at 0.8
    rates = {m: _values(result, m)["train_mark_rate"] for m in result.models}
    assert rates == {"tiny-cnn": 0.8, "tiny-resnet": 0.8, "tiny-mixer": 0.0}
    rows = df[(df["measure"] == "spurious") & (df["name"] == "train_mark_rate")]
    assert set(rows["dataset"]) == {"*"}


def test_per_class_ap_matches_sklearn_on_stored_logits(study, tiny_store, tiny_world, tiny_models):
    _, result = study
    model = tiny_models[0]
    art = result.artifacts[model.name]["spurious"]["sets"]["world/spurious"]
    _, _, arrays, _ = _measure_inputs(tiny_store, tiny_world, model)
    lv, ls = arrays["world/val"].logits(), arrays["world/spurious"].logits()
    yv, ys = arrays["world/val"].labels(), arrays["world/spurious"].labels()

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    pv, ps = softmax(lv.astype(np.float64)), softmax(ls.astype(np.float64))
    aps = []
    for cls in art["classes"]:
        k = cls["class_index"]
        y = np.r_[np.ones((yv == k).sum()), np.zeros((ys == k).sum())]
        ap = average_precision_score(y, np.r_[pv[yv == k, k], ps[ys == k, k]])
        assert cls["ap"] == pytest.approx(ap)
        aps.append(ap)
    assert _values(result, model.name)["spurious_score"] == pytest.approx(np.mean(aps))


def test_contributions_sum_to_stored_logit_minus_constant(
    tiny_store, tiny_world, tiny_models, study
):
    for model in tiny_models:
        minfo, _, arrays, mappings = _measure_inputs(tiny_store, tiny_world, model)
        tr, va = arrays["world/train"], arrays["world/val"]
        y_tr = model_space_labels(tr.labels(), mappings["world/train"])
        for k in range(len(model.classes)):
            pca, rows = class_pca(tr.features().astype(np.float64), y_tr, minfo.weight, k, 500)
            assert len(rows) == (y_tr == k).sum()
            alphas = contributions_chunked(va.features().astype(np.float64), pca)
            assert alphas.shape == (len(va.labels()), minfo.weight.shape[1])
            recon = alphas.sum(axis=1) + contribution_offset(pca, minfo.bias[k])
            np.testing.assert_allclose(recon, va.logits()[:, k], rtol=1e-4, atol=1e-4)


def test_contributions_chunked_equals_one_shot(
    tiny_store, tiny_world, tiny_models, study, monkeypatch
):
    minfo, _, arrays, mappings = _measure_inputs(tiny_store, tiny_world, tiny_models[1])
    tr = arrays["world/train"]
    feats = tr.features().astype(np.float64)
    pca, _ = class_pca(
        feats, model_space_labels(tr.labels(), mappings["world/train"]), minfo.weight, 2, 500
    )
    full = contributions_chunked(feats, pca)
    monkeypatch.setattr(spurious_measure, "_CHUNK_ROWS", 7)
    cols = np.array([3, 0])
    np.testing.assert_allclose(contributions_chunked(feats, pca, cols), full[:, cols])


def test_artifacts_point_at_top_activating_images(study, tiny_world):
    _, result = study
    art = result.artifacts["tiny-cnn"]["spurious"]
    s = art["sets"]["world/spurious"]
    assert (s["train_dataset"], s["id_dataset"]) == ("world/train", "world/val")
    train_y = tiny_world.dataset("train").labels()
    spur_y = tiny_world.dataset("spurious").labels()
    for cls in s["classes"]:
        k = cls["class_index"]
        assert cls["class_name"] == tiny_world.classes[k]
        assert len(cls["eigenvalues"]) == 3
        assert cls["eigenvalues"] == sorted(cls["eigenvalues"], reverse=True)
        assert [c["component"] for c in cls["components"]][:3] == [0, 1, 2]
        for comp in cls["components"]:
            tt, ts = comp["top_train"], comp["top_spurious"]
            assert tt["dataset"] == "world/train" and ts["dataset"] == "world/spurious"
            assert len(tt["indices"]) == 8 and len(ts["indices"]) == cls["n_spurious"] == 6
            assert set(train_y[tt["indices"]]) == {k}
            assert set(spur_y[ts["indices"]]) == {k}
            assert tt["alphas"] == sorted(tt["alphas"], reverse=True)
            assert ts["alphas"] == sorted(ts["alphas"], reverse=True)


def test_spufix_without_flagged_components_changes_nothing(
    tiny_store, tiny_world, tiny_models, study
):
    for model in tiny_models:
        inputs = _measure_inputs(tiny_store, tiny_world, model)
        out = SpuriousMeasure(n_flag=0).compute(*inputs)
        v = {n: x for (_, n), x in out.values.items()}
        assert v["n_flagged"] == 0
        assert v["spufix_id_accuracy_after"] == v["spufix_id_accuracy_before"]
        assert v["spufix_spurious_trigger_after"] == v["spufix_spurious_trigger_before"]
        # both on the evaluation part (the all-image spurious_score is another set of images)
        assert v["spufix_spurious_score_after"] == pytest.approx(v["spufix_spurious_score_before"])
        assert all(c["flagged"] == [] for c in out.artifacts["sets"]["world/spurious"]["classes"])


def test_spufix_with_flagged_components_matches_per_class_spufix(
    tiny_store, tiny_world, tiny_models, study
):
    minfo, infos, arrays, mappings = _measure_inputs(tiny_store, tiny_world, tiny_models[0])
    out = SpuriousMeasure(n_flag=2, min_gap=-np.inf).compute(minfo, infos, arrays, mappings)
    v = {n: x for (_, n), x in out.values.items()}
    assert v["n_flagged"] == 2 * 4 and v["n_classes_flagged"] == 4
    # recompute the corrected logits class by class with the single-class SpuFix
    tr, sp = arrays["world/train"], arrays["world/spurious"]
    y_tr = model_space_labels(tr.labels(), mappings["world/train"])
    fixed = sp.logits().astype(np.float64)
    for cls in out.artifacts["sets"]["world/spurious"]["classes"]:
        k = cls["class_index"]
        assert len(cls["flagged"]) == 2
        assert cls["flagged_scores"] == sorted(cls["flagged_scores"], reverse=True)
        pca, _ = class_pca(tr.features().astype(np.float64), y_tr, minfo.weight, k, 500)
        alphas = contributions_chunked(sp.features().astype(np.float64), pca)
        fixed = spufix(fixed, alphas, cls["flagged"], k)
    np.testing.assert_array_equal(
        out.per_sample["world/spurious"]["spufix_prediction"], fixed.argmax(axis=1)
    )
    held_out = out.per_sample["world/spurious"]["spufix_part"] == "evaluation"
    assert v["spufix_spurious_trigger_after"] == pytest.approx(
        np.mean(fixed.argmax(axis=1)[held_out] == sp.labels()[held_out])
    )


def test_measure_runs_no_forward_pass(tiny_store, tiny_world, tiny_models, study, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the spurious measure ran a model or the engine")

    monkeypatch.setattr(nn.Module, "__call__", boom)
    monkeypatch.setattr(Engine, "run", boom)
    inputs = _measure_inputs(tiny_store, tiny_world, tiny_models[0])
    out = SpuriousMeasure().compute(*inputs)
    assert ("world/spurious", "spurious_score") in out.values


def test_second_study_run_is_answered_from_the_store(study):
    cfg, _ = study
    again = run_study(cfg)
    assert again.forward_passes == 0 and again.images_decoded == 0
    assert "spurious" in again.artifacts["tiny-cnn"]


def test_no_spurious_dataset_gives_only_the_ground_truth(
    tiny_store, tiny_world, tiny_models, study
):
    minfo, infos, arrays, mappings = _measure_inputs(tiny_store, tiny_world, tiny_models[0])
    keep = ["world/train", "world/val"]
    out = SpuriousMeasure().compute(
        minfo,
        {k: infos[k] for k in keep},
        {k: arrays[k] for k in keep},
        {k: mappings[k] for k in keep},
    )
    assert out.values == {("*", "train_mark_rate"): 0.8}
    keep = ["world/train", "world/spurious"]
    with pytest.raises(ConfigError, match="role 'id'"):
        SpuriousMeasure().compute(
            minfo,
            {k: infos[k] for k in keep},
            {k: arrays[k] for k in keep},
            {k: mappings[k] for k in keep},
        )


def test_train_mark_rate_ground_truth_and_options():
    assert train_mark_rate({"member": {"mark_rate": None}}, default=0.7) == 0.7
    assert train_mark_rate({"member": {"mark_rate": None}, "world_mark_rate": 0.6}) == 0.6
    assert train_mark_rate({"member": {"mark_rate": 1.0}}) == 1.0
    assert train_mark_rate({"source": "timm"}) is None
    with pytest.raises(ConfigError, match="max_train_per_class"):
        SpuriousMeasure(max_train_per_class=1)


# -- Spurious ImageNet layout, end to end ----------------------------------------------------

SPURIOUS_FOLDERS = {5: "5_snorkel", 12: "class_12_comp_0", 309: "spurious_class_309_comp_2"}


def _noise_jpeg(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG")


@pytest.fixture
def spurious_tree(tmp_path: Path) -> tuple[Path, Path]:
    """Spurious ImageNet (3 classes x 2 images) and its in-class ImageNet val counterpart."""
    rng = np.random.default_rng(0)
    wnids = imagenet_wnids()
    spur, val = tmp_path / "spurious_imagenet", tmp_path / "val"
    for idx, folder in SPURIOUS_FOLDERS.items():
        for j in range(2):
            _noise_jpeg(spur / "images" / folder / f"{j}.jpg", rng)
            _noise_jpeg(val / wnids[idx] / f"ILSVRC2012_val_{idx:05d}{j:03d}.JPEG", rng)
    return spur, val


def test_spurious_imagenet_layout_end_to_end(spurious_tree, tmp_path):
    spur_root, val_root = spurious_tree
    wnids = imagenet_wnids()
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 1000),
    )
    with torch.no_grad():
        module[-1].bias[12] += 20.0  # every image is predicted as class 12
    model = adapter_from_module("tiny-imagenet", module, wnids, input_size=32)
    datasets = {
        "inclass_train": ("train", imagenet_val(val_root, size=32, name="inclass_train")),
        "imagenet_val": ("id", imagenet_val(val_root, size=32)),
        "spurious_imagenet": ("spurious", spurious_imagenet(spur_root, size=32)),
    }
    store = Store(tmp_path / "store")
    engine = Engine(store, batch_size=4, shard_size=4, num_workers=0, device="cpu")
    infos, arrays, mappings = {}, {}, {}
    for name, (role, ds) in datasets.items():
        engine.run(ds, [EngineJob(model, ("clean",), frozenset({"clean"}))])
        infos[name] = DatasetInfo(name, ds.fingerprint(), role, tuple(ds.classes))
        arrays[name] = StoredArrays(store, model.fingerprint(), ds.fingerprint())
        mappings[name] = ds.class_mapping(model.classes)
    # class mapping: the spurious set's 3 classes are a mask onto their ImageNet indices
    assert mappings["spurious_imagenet"].targets == ((5,), (12,), (309,))
    assert mappings["imagenet_val"].is_identity
    w, b = model.classifier_weights()
    minfo = ModelInfo(model.name, model.fingerprint(), tuple(model.classes), model.config, w, b)
    out = SpuriousMeasure(max_train_per_class=2).compute(minfo, infos, arrays, mappings)
    v = {n: x for (d, n), x in out.values.items() if d == "spurious_imagenet"}
    assert all(np.isfinite(x) for x in v.values()), v
    assert 0.0 <= v["spurious_score"] <= 1.0 and v["n_classes_scored"] == 3
    assert ("*", "train_mark_rate") not in out.values  # not a zoo model: no ground truth
    # the trigger rate is in model space: top-1 over the 1000 outputs == the ImageNet index
    sp = arrays["spurious_imagenet"]
    hits = sp.logits().argmax(axis=1) == sp.extra("spurious_label")
    assert v["spurious_trigger_rate"] == pytest.approx(hits.mean()) == pytest.approx(1 / 3)
    s = out.artifacts["sets"]["spurious_imagenet"]
    assert s["train_dataset"] == "inclass_train"
    classes = s["classes"]
    assert [c["class_index"] for c in classes] == [5, 12, 309]
    assert [c["class_name"] for c in classes] == [wnids[5], wnids[12], wnids[309]]
    for c in classes:
        assert 0.0 <= c["ap"] <= 1.0
        assert (c["n_train"], c["n_id"], c["n_spurious"]) == (2, 2, 2)
        comp = c["components"][0]
        assert len(comp["top_spurious"]["indices"]) == 2
        labels = datasets["spurious_imagenet"][1].labels()
        pos = [5, 12, 309].index(c["class_index"])
        assert set(labels[comp["top_spurious"]["indices"]]) == {pos}
