"""Tests of the ``biases`` measure (seed 002): views, one engine pass, PGD, failed fits."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from robustlens.config import parse_config
from robustlens.data.base import ClassMapping
from robustlens.engine import Engine, EngineJob
from robustlens.errors import ConfigError
from robustlens.lines.accuracy.measure import AccuracyMeasure
from robustlens.lines.biases.measure import BiasesMeasure
from robustlens.measure import DatasetInfo, Measure, MeasureOutput, ModelInfo, get_measure
from robustlens.metrics.critical_band import critical_band
from robustlens.plan import plan_views
from robustlens.store import StoredArrays
from robustlens.study import run_study
from robustlens.testing import InMemoryArrays

CLASSES = ("a", "b", "c", "d")
SMALL = {
    "cutoffs": [0.1, 0.2, 0.3, 0.4, 0.5],
    "bands": [3, 4],
    "sigmas": [0.04, 0.16],
    "pgd_steps": 2,
    "pgd_eps": 4 / 255,
}


def _info(name: str, role: str, **tags) -> DatasetInfo:
    return DatasetInfo(name, f"fp-{name}", role, CLASSES, tags)


def _logits_with_accuracy(labels: np.ndarray, acc: float, k: int = 4) -> np.ndarray:
    """One-hot logits: the first round(acc * n) samples right, the others wrong."""
    n = len(labels)
    pred = labels.copy()
    n_right = round(acc * n)
    pred[n_right:] = (labels[n_right:] + 1) % k
    return np.eye(k)[pred] * 5.0


def _model() -> ModelInfo:
    return ModelInfo("m", "fp-m", CLASSES, {})


# ---------------------------------------------------------------------------- requests
def test_requests_per_role_and_stable_pgd_spec():
    m = BiasesMeasure(**SMALL, image_size=32)
    assert m.requests(_info("cc", "cue_conflict")) == {"clean": False}
    views = m.requests(_info("val", "id"))
    expected = {"clean"}
    expected |= {f"lowpass:{c}" for c in SMALL["cutoffs"]}
    expected |= {f"highpass:{c}" for c in SMALL["cutoffs"]}
    expected |= {"bandnoise:3:0.04", "bandnoise:3:0.16", "bandnoise:4:0.04", "bandnoise:4:0.16"}
    expected |= {"bandnoise:3:0.0"}  # the noise-free low-contrast baseline
    assert set(views) == expected
    assert not any(views.values())  # no features needed
    adv = m.requests(_info("adv", "adversarial"))
    assert adv == {"clean": False, "pgd:linf:0.01568627450980392:2:0.00784313725490196": False}
    for role in ("train", "v2", "corrupt", "sketch", "spurious", "rendition", "other"):
        assert m.requests(_info("x", role)) == {}


def test_default_is_seed002_setting_and_spec_round_trips():
    m = get_measure("biases")
    assert m.pgd_spec == f"pgd:linf:{0.5 / 255!r}:40:{2 / 255!r}"
    _, _, eps, steps, step = m.pgd_spec.split(":")
    assert (float(eps), int(steps), float(step)) == (0.5 / 255, 40, 2 / 255)
    assert m.cutoffs == (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
    assert m.sigmas == (0.02, 0.04, 0.08, 0.16)


def test_default_bands_follow_the_image_size():
    m = BiasesMeasure()
    assert m.bands_for(_info("val", "id", image_size=224)) == (0, 1, 2, 3, 4, 5, 6)
    # band b is Laplacian-pyramid level 6 - b: 64 px has 5 levels, 32 px has 4
    assert m.bands_for(_info("val", "id", image_size=64)) == (2, 3, 4, 5, 6)
    assert m.bands_for(_info("val", "id", image_size=32)) == (3, 4, 5, 6)
    assert m.bands_for(_info("val", "id")) == (3, 4, 5, 6)  # size unknown: valid >= 20 px
    assert BiasesMeasure(image_size=224).bands_for(_info("val", "id")) == tuple(range(7))


def test_bad_options_are_config_errors_that_name_the_fix():
    with pytest.raises(ConfigError, match=r"0\.5\] are not among the cutoffs"):
        BiasesMeasure(cutoffs=[0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ConfigError, match=r"valid bands at this size: \[3, 4, 5, 6\]"):
        BiasesMeasure(bands=[0, 3], image_size=32).requests(_info("val", "id"))
    with pytest.raises(ConfigError, match=r"cb_criterion.*'absolute', 'relative'"):
        BiasesMeasure(cb_criterion="halfway")
    with pytest.raises(ConfigError, match="cb_level"):
        BiasesMeasure(cb_level=50)
    with pytest.raises(ConfigError, match="parts"):
        BiasesMeasure(parts=["shape", "colour"])
    with pytest.raises(ConfigError, match="pgd_steps"):
        BiasesMeasure(pgd_steps=2.5)


def test_parts_select_what_is_requested():
    m = BiasesMeasure(**SMALL, parts=["pgd"])
    assert m.requests(_info("val", "id")) == {}
    assert m.requests(_info("cc", "cue_conflict")) == {}
    assert len(m.requests(_info("adv", "adversarial"))) == 2


# ---------------------------------------------------------------------------- compute on fakes
def test_shape_bias_and_spectral_values_on_hand_made_logits():
    m = BiasesMeasure(**SMALL, parts=["shape", "spectral"])
    # cue-conflict: shape labels, texture labels; decisions d.
    shape = np.array([0, 1, 2, 3, 0, 1])
    texture = np.array([1, 2, 3, 0, 0, 3])  # sample 4 has shape == texture: excluded
    decision = np.array([0, 2, 2, 1, 0, 3])  # shape, texture, shape, neither, (excl.), texture
    cc = InMemoryArrays(shape, {"clean": np.eye(4)[decision] * 3.0}, {"texture_label": texture})
    labels = np.array([0, 1, 2, 3] * 5)
    views = {"clean": _logits_with_accuracy(labels, 0.8)}
    low_acc = dict(zip(SMALL["cutoffs"], (0.2, 0.4, 0.6, 0.8, 0.8), strict=True))
    high_acc = dict(zip(SMALL["cutoffs"], (0.4, 0.2, 0.2, 0.0, 0.0), strict=True))
    for c in SMALL["cutoffs"]:
        views[f"lowpass:{c}"] = _logits_with_accuracy(labels, low_acc[c])
        views[f"highpass:{c}"] = _logits_with_accuracy(labels, high_acc[c])
    val = InMemoryArrays(labels, views)
    infos = {"cc": _info("cc", "cue_conflict"), "val": _info("val", "id")}
    ident = ClassMapping.identity(4)
    out = m.compute(_model(), infos, {"cc": cc, "val": val}, {"cc": ident, "val": ident})
    # 5 used images: 2 shape hits, 2 texture hits
    assert out.values[("cc", "shape_bias")] == pytest.approx(0.5)
    assert out.values[("cc", "shape_fraction")] == pytest.approx(2 / 5)
    assert out.values[("cc", "texture_fraction")] == pytest.approx(2 / 5)
    assert out.values[("cc", "shape_bias_n")] == 5
    per_cat = out.artifacts["shape_bias"]["cc"]["per_category"]
    assert per_cat["a"] == 1.0 and per_cat["b"] == 0.0 and per_cat["c"] == 1.0
    assert math.isnan(per_cat["d"])  # shape d: decided neither
    # low bias = mean(0.2, 0.4, 0.6, 0.8, 0.8) / 0.8; high = mean(0.4, 0.2, 0.2, 0, 0) / 0.8
    assert out.values[("val", "low_freq_bias")] == pytest.approx(0.7)
    assert out.values[("val", "high_freq_bias")] == pytest.approx(0.2)
    assert out.values[("val", "spectral_bias")] == pytest.approx(0.2 / 0.9)  # HPP / (LPP + HPP)
    assert out.artifacts["spectral"]["val"]["low_curve"] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0]
    )


def _critical_band_views(labels, table, k=4, bands=(3, 4, 5, 6)):
    """Views of a (noise level x band) table: row 0 noise-free, rows 1.. SD 0.02 .. 0.16."""
    views = {f"bandnoise:{bands[0]}:0.0": _logits_with_accuracy(labels, table[0][0], k)}
    for s, row in zip((0.02, 0.04, 0.08, 0.16), table[1:], strict=True):
        for b, acc in zip(bands, row, strict=True):
            views[f"bandnoise:{b}:{s}"] = _logits_with_accuracy(labels, acc, k)
    return views


def _cb_measure(**opts) -> BiasesMeasure:
    return BiasesMeasure(parts=["critical_band"], image_size=32, **opts)


def _cb_compute(m: BiasesMeasure, table, labels=None) -> MeasureOutput:
    labels = np.array([0, 1, 2, 3] * 25) if labels is None else labels
    a = InMemoryArrays(labels, _critical_band_views(labels, table))
    ident = ClassMapping.identity(4)
    return m.compute(_model(), {"val": _info("val", "id")}, {"val": a}, {"val": ident})


#: bands 3..6 at 32 px (centres 2, 4, 8, 16 cycles per image); rows noise SD 0 .. 0.16
CB_TABLE = [
    [0.90, 0.90, 0.90, 0.90],  # noise-free
    [0.80, 0.70, 0.80, 0.90],  # SD 0.02
    [0.60, 0.40, 0.60, 0.90],  # SD 0.04
    [0.40, 0.20, 0.40, 0.80],  # SD 0.08
    [0.30, 0.10, 0.30, 0.60],  # SD 0.16
]
# by hand (from SD 0.16 up to the first accuracy > 0.5): band 3: 0.30, 0.40, then 0.60 -> 2;
# band 4: 0.10, 0.20, 0.40, then 0.70 -> 3; band 5: as band 3 -> 2; band 6: 0.60 -> 0


def test_critical_band_fit_on_hand_made_table():
    out = _cb_compute(_cb_measure(), CB_TABLE)
    art = out.artifacts["critical_band"]["val"]
    assert art["thresholds"] == (2.0, 3.0, 2.0, 0.0)
    assert art["ok"] and art["criterion"] == 0.5 and art["criterion_kind"] == "absolute"
    np.testing.assert_allclose(art["acc_table"], CB_TABLE)
    assert art["bands"] == [3, 4, 5, 6] and art["sigmas"] == [0.0, 0.02, 0.04, 0.08, 0.16]
    assert art["bands_cpi"] == pytest.approx((2.0, 4.0, 8.0, 16.0))
    assert art["frequency_unit"] == "cycles per image (32 px)"
    # the values are the metric's on the same table (rows noise, columns bands 3..6)
    ref = critical_band(CB_TABLE, bands=[3, 4, 5, 6], side=32)
    assert out.values[("val", "cb_fit_ok")] == 1.0
    assert out.values[("val", "cb_center_cpi")] == pytest.approx(ref.centre_cpi)
    assert out.values[("val", "cb_bandwidth_octaves")] == pytest.approx(ref.bandwidth_octaves)
    assert out.values[("val", "cb_peak_sensitivity")] == pytest.approx(ref.peak_sensitivity)
    assert out.values[("val", "cb_r_squared")] == pytest.approx(ref.r_squared)
    assert out.values[("val", "cb_clean_accuracy")] == pytest.approx(0.9)
    # the peak is between bands 3 and 5, nearer 4 (3 at band 4, 2 on either side)
    assert 3.5 < ref.mu_band < 4.5
    assert 2.0 < out.values[("val", "cb_center_cpi")] < 8.0
    assert out.values[("val", "cb_peak_sensitivity")] == pytest.approx(2.0 ** (ref.amplitude - 4))


def test_model_below_the_criterion_gives_nan_and_fit_ok_zero():
    low = [[0.45] * 4, *([[0.4] * 4] * 4)]  # noise-free accuracy 0.45 <= 0.5
    out = _cb_compute(_cb_measure(), low)
    assert out.values[("val", "cb_fit_ok")] == 0.0
    for key in ("cb_bandwidth_octaves", "cb_center_cpi", "cb_peak_sensitivity", "cb_r_squared"):
        assert math.isnan(out.values[("val", key)]), key
    art = out.artifacts["critical_band"]["val"]
    assert art["ok"] is False
    assert "not above the criterion 0.5" in art["reason"]
    assert art["thresholds"] == (4.0, 4.0, 4.0, 4.0)  # the maximum, by construction
    assert out.values[("val", "cb_clean_accuracy")] == pytest.approx(0.45)


def test_baseline_near_chance_is_a_failed_fit_not_numbers():
    # relative criterion; baseline 0.30 with chance 0.25 and n = 100: within 3 binomial
    # standard errors (0.13)
    table = [
        [0.3, 0.3, 0.3, 0.3],
        [0.28, 0.26, 0.28, 0.3],
        [0.27, 0.25, 0.27, 0.3],
        [0.26, 0.25, 0.26, 0.3],
        [0.25, 0.25, 0.25, 0.29],
    ]
    lenient = _cb_measure(cb_criterion="relative", cb_min_margin_se=0)
    assert _cb_compute(lenient, table).values[("val", "cb_fit_ok")] == 1.0
    out = _cb_compute(_cb_measure(cb_criterion="relative"), table)
    assert out.values[("val", "cb_fit_ok")] == 0.0
    assert math.isnan(out.values[("val", "cb_center_cpi")])
    art = out.artifacts["critical_band"]["val"]
    assert "not clearly above chance 0.25 (needs >= 0.3799" in art["reason"]
    assert art["criterion"] == pytest.approx(0.275) and art["criterion_kind"] == "relative"
    assert art["sensitivities"][1] > 0  # the per-band numbers stay for the plot
    # the absolute criterion (default) rejects it first: 0.3 is not above 0.5
    art = _cb_compute(_cb_measure(), table).artifacts["critical_band"]["val"]
    assert "not above the criterion 0.5" in art["reason"]


def test_numerical_failure_inside_the_fit_is_a_failed_fit(monkeypatch):
    """A fit that does not converge (curve_fit raises, as the reference's own can) fails."""

    def no_convergence(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: The maximum number of function evals")

    monkeypatch.setattr(scipy.optimize, "curve_fit", no_convergence)
    out = _cb_compute(_cb_measure(), CB_TABLE)
    assert out.values[("val", "cb_fit_ok")] == 0.0
    assert math.isnan(out.values[("val", "cb_bandwidth_octaves")])
    art = out.artifacts["critical_band"]["val"]
    assert "did not converge" in art["reason"]
    assert art["thresholds"] == (2.0, 3.0, 2.0, 0.0)


def test_protocol_records_parameters_and_definitions():
    p = BiasesMeasure(cb_criterion="relative").protocol()
    assert p["measure"] == "biases" and "Gavrikov" in p["paper"]
    assert p["parameters"]["cb_criterion"] == "relative"
    assert p["parameters"]["cb_level"] == 0.5
    assert p["parameters"]["sigmas"] == [0.02, 0.04, 0.08, 0.16]
    defs = p["definitions"]
    assert "int(c * (side // 2))" in defs["spectral"] and "1 - c" in defs["spectral"]
    assert "Laplacian" in defs["critical_band_stimulus"]
    assert "2^(A - 4)" in defs["critical_band_fit"]


def test_zero_clean_accuracy_gives_nan_spectral_bias_with_reason():
    labels = np.array([0, 1, 2, 3])
    wrong = _logits_with_accuracy(labels, 0.0)
    m = BiasesMeasure(**SMALL, parts=["spectral"])
    views = {v: wrong for v in m.requests(_info("val", "id"))}
    out = m.compute(
        _model(),
        {"val": _info("val", "id")},
        {"val": InMemoryArrays(labels, views)},
        {"val": ClassMapping.identity(4)},
    )
    assert math.isnan(out.values[("val", "low_freq_bias")])
    assert "clean accuracy is 0.0" in out.artifacts["spectral"]["val"]["reason"]


# ---------------------------------------------------------------------------- with the engine
class _GrayProbe(Measure):
    """Another measure of the study: gray view with features on the id dataset."""

    name = "gray_probe"

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {"clean": True, "gray": True} if dataset.role == "id" else {}

    def compute(self, model, datasets, arrays, mappings) -> MeasureOutput:
        return MeasureOutput()


def _study_cfg(tiny_world, tiny_zoo_dir, root, opts):
    world = dataclasses.asdict(tiny_world.config)
    world = {k: list(v) if isinstance(v, tuple) else v for k, v in world.items()}
    return parse_config(
        {
            "store": str(root / "store"),
            "output": str(root / "out"),
            "world": world,
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["val", "cue_conflict", "adversarial"]}],
            "measures": ["accuracy", "biases"],
            "measure_options": {"biases": opts},
        }
    )


#: few views, so that the fresh-store study stays fast
ENGINE_OPTS = {
    "cutoffs": [0.2],
    "bias_cutoffs": [0.2],
    "bands": [4],
    "sigmas": [0.08],
    "pgd_steps": 1,
}


def test_all_bias_views_in_one_engine_pass_per_dataset(tiny_world, tiny_zoo_dir, tmp_path):
    # a fresh store, so that every forward pass is counted
    cfg = _study_cfg(tiny_world, tiny_zoo_dir, tmp_path, ENGINE_OPTS)
    measures = [AccuracyMeasure(), BiasesMeasure(**ENGINE_OPTS), _GrayProbe()]
    result = run_study(cfg, measures=measures)
    n_models = len(result.models)
    reports = {r.dataset: r for r in result.engine_reports}
    assert len(result.engine_reports) == len(reports) == 3  # one engine run per dataset
    val = tiny_world.dataset("val")
    views, feats = plan_views(measures, DatasetInfo("world/val", "", "id", tuple(val.classes)))
    assert set(views) == {
        "clean",
        "gray",
        "lowpass:0.2",
        "highpass:0.2",
        "bandnoise:4:0.08",
        "bandnoise:4:0.0",
    }
    assert feats == {"clean", "gray"}
    r = reports["world/val"]
    assert r.images_decoded == len(val)  # decoded once for every view of every model
    assert r.forward_passes == len(val) * len(views) * n_models
    adv = reports["world/adversarial"]
    assert adv.images_decoded == adv.images
    assert adv.forward_passes == adv.images * 2 * n_models  # clean + pgd
    cc = reports["world/cue_conflict"]
    assert cc.forward_passes == cc.images * n_models  # clean, shared by accuracy and biases
    df = result.results()
    got = set(df[df["measure"] == "biases"]["name"])
    assert {"shape_bias", "low_freq_bias", "cb_fit_ok", "pgd_accuracy", "clean_accuracy"} <= got


def test_pgd_lowers_accuracy_monotonically_with_eps(tiny_store, tiny_world, tiny_models):
    model = next(m for m in tiny_models if m.name == "tiny-cnn")
    ds = tiny_world.dataset("adversarial")
    info = DatasetInfo("adv", ds.fingerprint(), "adversarial", tuple(ds.classes))
    eps_list = (0.0, 2 / 255, 8 / 255, 32 / 255)
    measures = [
        BiasesMeasure(pgd_eps=e, pgd_steps=3, pgd_step=e / 2, parts=["pgd"]) for e in eps_list
    ]
    views, _ = plan_views(measures, info)
    assert len(views) == 1 + len(eps_list)
    torch.manual_seed(0)
    Engine(tiny_store, batch_size=64, device="cpu").run(ds, [EngineJob(model, views, frozenset())])
    arrays = StoredArrays(tiny_store, model.fingerprint(), ds.fingerprint())
    mapping = ds.class_mapping(model.classes)
    minfo = ModelInfo(model.name, model.fingerprint(), tuple(model.classes), model.config)
    accs, clean = [], []
    for m in measures:
        out = m.compute(minfo, {"adv": info}, {"adv": arrays}, {"adv": mapping})
        accs.append(out.values[("adv", "pgd_accuracy")])
        clean.append(out.values[("adv", "clean_accuracy")])
    # eps = 0 changes nothing: the same logits as the clean view
    np.testing.assert_array_equal(arrays.logits(measures[0].pgd_spec), arrays.logits("clean"))
    # the tiny model is better than chance (1/4) on its 24 images
    assert accs[0] == clean[0] > 0.35
    assert all(b <= a for a, b in itertools.pairwise(accs)), accs
    assert accs[-1] < accs[0] - 0.3, accs
