"""The validity table on hand-made results: monotone relations recovered, random ones not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlens.lines.validity.analysis import (
    ROW_COLUMNS,
    ValidityOptions,
    baseline_models,
    dataset_centric_rhos,
    evidence,
    sweep_models,
    validity_frame,
)
from robustlens.lines.validity.causes import cause_table, planted_causes
from robustlens.lines.validity.section import SECTION_TITLE, render_validity
from robustlens.lines.validity.tables import (
    validity_export,
    validity_summary,
    validity_table,
)
from robustlens.measure import lines
from robustlens.report.context import ReportContext
from robustlens.report.exports import LINE_EXPORTS, _line_exports

N = 10
MODELS = [f"m{i}" for i in range(N)]
KINDS = ["none", "none", "noise", "none", "mixed", "none", "none", "mixed", "blur", "none"]
TEXRAND = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.25, 0.75]
SHIFTS = [
    "world/v2",
    "world/sketch",
    "world/rendition",
    "world/corrupt/fog/1",
    "world/corrupt/fog/3",
    "world/corrupt/fog/5",
]
ROLES = {
    "world/val": {"role": "id"},
    "world/v2": {"role": "v2"},
    "world/sketch": {"role": "sketch"},
    "world/rendition": {"role": "rendition"},
    "world/corrupt/fog/1": {"role": "corrupt", "tags": {"corruption": "fog", "severity": 1}},
    "world/corrupt/fog/3": {"role": "corrupt", "tags": {"corruption": "fog", "severity": 3}},
    "world/corrupt/fog/5": {"role": "corrupt", "tags": {"corruption": "fog", "severity": 5}},
    "world/cue_conflict": {"role": "cue_conflict"},
    "world/spurious": {"role": "spurious"},
    "world/adversarial": {"role": "adversarial"},
}
OPTS = ValidityOptions(n_boot=200)


def _planted(i: int) -> dict:
    return {
        "mark_rate": [0.0, 0.0, 0.25, 0.25, 0.5, 0.5, 0.8, 0.8, 1.0, 1.0][i],
        "texture_randomization": TEXRAND[i],
        "rotation_augmentation": 0.0,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": KINDS[i],
        "generated_fraction": 0.5 if i == 9 else 0.0,
        "epochs": 2 + i,
        "width": 16,
        "arch": "cnn",
    }


CONFIGS = {m: {"source": "zoo", "planted": _planted(i)} for i, m in enumerate(MODELS)}


def _scramble(values: np.ndarray) -> np.ndarray:
    """A fixed reordering that leaves no monotone relation (Spearman ~ 0 with the input)."""
    order = [3, 8, 0, 6, 9, 1, 5, 2, 7, 4]
    return np.asarray(values)[order]


def _results(random: bool = False) -> pd.DataFrame:
    """A zoo whose measures follow their causes exactly, or (``random``) do not at all."""
    causes = cause_table(CONFIGS)
    i = np.arange(N, dtype=float)
    skill = 0.4 + 0.05 * i  # ID accuracy grows with epochs
    corrupt_acc = 0.2 + 0.06 * i
    gray_acc = 0.9 - 0.07 * i
    rot_acc = 0.1 + 0.03 * ((i * 7) % N)
    tex = causes["texture_randomization"].to_numpy()
    rate = causes["mark_rate"].to_numpy()
    level = causes["corruption_level"].to_numpy()
    f = _scramble if random else (lambda v: np.asarray(v))
    rows = []

    def add(ds, measure, name, values):
        rows.extend((m, ds, measure, name, float(v)) for m, v in zip(MODELS, values, strict=True))

    add("*", "ground_truth", "corruption_accuracy", corrupt_acc)
    add("world/val", "ground_truth", "rotation_accuracy", rot_acc)
    add("world/val", "ground_truth", "gray_accuracy", gray_acc)
    add("world/cue_conflict", "ground_truth", "texture_reliance", 0.9 - 0.6 * tex)
    add("world/spurious", "ground_truth", "mark_reliance", 0.05 + 0.9 * rate)
    add("world/val", "clustering", "silhouette", f(corrupt_acc / 4))
    add("world/val", "clustering", "davies_bouldin", f(3 - corrupt_acc))
    add("world/val", "invariance", "ei_rotation", f(rot_acc))
    add("world/val", "invariance", "ei_gray", f(gray_acc))
    add("world/cue_conflict", "biases", "shape_bias", 0.1 + 0.6 * tex)
    add("world/val", "biases", "spectral_bias", f(0.6 - 0.1 * level - 0.001 * i))
    add("world/val", "biases", "cb_peak_sensitivity", f(0.5 - 0.1 * level))
    add("world/spurious", "spurious", "spurious_score", f(1 - 0.5 * rate))
    add("world/spurious", "spurious", "n_flagged", np.where(rate > 0, 2, 0))
    add("world/spurious", "spurious", "spufix_spurious_trigger_before", 0.05 + 0.9 * rate)
    add("world/spurious", "spurious", "spufix_spurious_trigger_after", 0.05 + 0.4 * rate)
    add("world/spurious", "spurious", "spufix_id_accuracy_before", skill)
    add("world/spurious", "spurious", "spufix_id_accuracy_after", skill - 0.002)
    add("world/val", "accuracy", "accuracy", skill)
    add("world/adversarial", "biases", "pgd_accuracy", 0.1 + 0.2 * tex)
    acc = np.stack([skill - 0.1 * (k + 1) + 0.01 * np.sin(i) for k in range(len(SHIFTS))], 1)
    ei = acc.copy()
    if random:  # across models and, per model, across its test sets
        ei = np.stack([np.roll(_scramble(acc[:, k]), k) for k in range(len(SHIFTS))], 1)
        ei = np.stack([row[np.roll([3, 0, 5, 1, 4, 2], j)] for j, row in enumerate(ei)])
    for k, ds in enumerate(SHIFTS):
        add(ds, "accuracy", "accuracy", acc[:, k])
        add(ds, "invariance", "ei_rotation", ei[:, k] + 0.1)
        add(ds, "invariance", "ei_gray", ei[:, k] / 2)
    for ds, drop in (("world/v2", 0.05), ("world/sketch", 0.3)):
        ood = skill - drop - 0.02 * np.cos(3 * i)
        add(ds, "robustness", "acc_id", skill)
        add(ds, "robustness", "acc_ood", ood + np.where(np.arange(N) == 9, 0.05, 0.0))
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])


def _by_check(frame: pd.DataFrame) -> dict[str, dict]:
    return {r["check"]: r for r in frame.to_dict("records")}


@pytest.fixture(scope="module")
def monotone() -> pd.DataFrame:
    return validity_frame(_results(), CONFIGS, ROLES, OPTS)


@pytest.fixture(scope="module")
def scrambled() -> pd.DataFrame:
    return validity_frame(_results(random=True), CONFIGS, ROLES, OPTS)


def test_the_frame_has_every_seed_and_the_columns(monotone):
    assert list(monotone.columns) == list(ROW_COLUMNS)
    assert list(dict.fromkeys(monotone["seed"])) == ["000", "001", "002", "003", "004"]
    assert set(monotone["recovered"]) <= {"yes", "no", "n/a"}


MONOTONE_CHECKS = [
    "silhouette vs corruption accuracy",
    "davies_bouldin vs corruption accuracy",
    "EI rotation vs accuracy under rotation (model-centric)",
    "EI grayscale vs accuracy under grayscale (model-centric)",
    "EI rotation vs OOD accuracy (model-centric)",
    "EI grayscale vs OOD accuracy (dataset-centric)",
    "spectral bias vs corruption augmentation",
    "critical-band peak noise sensitivity vs corruption augmentation",
    "spurious score vs measured mark reliance",
    "spurious score vs mark rate (planted cause)",
]


@pytest.mark.parametrize("check", MONOTONE_CHECKS)
def test_a_monotone_relation_is_recovered_and_a_scrambled_one_is_not(monotone, scrambled, check):
    good, bad = _by_check(monotone)[check], _by_check(scrambled)[check]
    assert good["recovered"] == "yes", good
    assert abs(good["value"]) >= 0.7 and good["p_value"] < 0.05 and good["n"] >= 3
    assert bad["recovered"] == "no", bad
    assert bad["note"]  # the reason is given


def test_correlation_rows_carry_a_bootstrap_interval_around_the_coefficient(monotone):
    row = _by_check(monotone)["silhouette vs corruption accuracy"]
    assert row["value"] == pytest.approx(1.0) and row["statistic"] == "Spearman rho"
    assert row["ci_low"] - 1e-9 <= row["value"] <= row["ci_high"] + 1e-9 and row["n"] == N
    db = _by_check(monotone)["davies_bouldin vs corruption accuracy"]
    assert db["value"] == pytest.approx(-1.0) and db["expected"] == "rho < 0"


def test_a_wrong_sign_is_not_recovered():
    res = _results()
    sel = (res["measure"] == "clustering") & (res["name"] == "silhouette")
    res.loc[sel, "value"] = -res.loc[sel, "value"]
    row = _by_check(validity_frame(res, CONFIGS, ROLES, OPTS))["silhouette vs corruption accuracy"]
    assert row["value"] == pytest.approx(-1.0)
    assert row["recovered"] == "no" and "wrong sign" in row["note"]


def test_shape_bias_rows_name_the_planted_cause_and_the_same_decision_count(monotone):
    rows = _by_check(monotone)
    cause = rows["shape bias vs texture randomisation (planted cause)"]
    assert cause["recovered"] == "yes" and cause["value"] == pytest.approx(1.0)
    same = rows["shape bias vs texture reliance (same decisions)"]
    assert same["value"] == pytest.approx(-1.0) and "same decision count" in same["note"]


def test_dimensions_report_their_spread(monotone):
    dims = monotone[monotone["check"].str.contains("dimension spreads")]
    assert len(dims) == 4
    by = dict(zip(dims["check"], dims["recovered"], strict=True))
    assert by["in distribution dimension spreads over the zoo"] == "yes"
    assert by["adversarial dimension spreads over the zoo"] == "yes"
    assert by["concepts dimension spreads over the zoo"] == "yes"  # sketch accuracy
    row = dims.iloc[0]
    assert row["statistic"] == "std over models" and "range" in row["note"]


def test_flagged_components_and_spufix(monotone):
    rows = _by_check(monotone)
    flagged = rows["no flagged component at mark rate 0"]
    assert flagged["recovered"] == "yes" and flagged["value"] == 1.0 and flagged["n"] == 2
    fix = rows["SpuFix lowers mark reliance on held-out images"]
    assert fix["recovered"] == "yes" and fix["value"] < 0 and fix["n"] == 8  # rate > 0
    res = _results()
    sel = res["name"] == "spufix_id_accuracy_after"
    res.loc[sel, "value"] -= 0.05  # five points of clean accuracy: too costly
    fix = _by_check(validity_frame(res, CONFIGS, ROLES, OPTS))[
        "SpuFix lowers mark reliance on held-out images"
    ]
    assert fix["recovered"] == "no" and "accuracy cost" in fix["note"]


def test_natural_shift_baselines_and_generated_model_er(monotone):
    rows = _by_check(monotone)
    v2 = rows["baseline fit on world/v2"]
    assert v2["statistic"] == "R²" and v2["value"] > 0.9 and v2["recovered"] == "yes"
    assert v2["n"] == 4  # no generated data, texture randomisation or corruption augmentation
    er = rows["ER of the generated-data models on world/v2"]
    assert er["recovered"] == "n/a" and er["n"] == 1 and er["value"] > 0
    assert np.isfinite(er["ci_low"]) and "interval" in er["note"]


def test_baseline_models_are_the_standard_ones():
    assert baseline_models(cause_table(CONFIGS)) == ["m0", "m1", "m3", "m5"]


def test_missing_measures_give_untestable_rows_with_the_reason():
    res = _results()
    res = res[res["measure"].isin(["ground_truth", "accuracy"])]
    frame = validity_frame(res, CONFIGS, ROLES, OPTS)
    assert set(frame["recovered"]) == {"n/a"} or set(frame["recovered"]) <= {"n/a", "yes", "no"}
    spur = _by_check(frame)["spurious score vs measured mark reliance"]
    assert spur["recovered"] == "n/a" and "spurious.spurious_score" in spur["note"]


def test_too_few_models_is_not_testable():
    res = _results()
    res = res[res["model"].isin(MODELS[:2])]
    row = _by_check(validity_frame(res, CONFIGS, ROLES, OPTS))["silhouette vs corruption accuracy"]
    assert row["recovered"] == "n/a" and "3 needed" in row["note"]


def test_dataset_centric_rhos_per_model():
    t = dataset_centric_rhos(_results(), "ei_rotation", ROLES)
    assert sorted(t.index) == sorted(MODELS) and (t["n"] == len(SHIFTS)).all()


def test_planted_key_wins_over_the_old_recipe():
    cfg = {"planted": _planted(3), "member": {"augment": "texrand", "mark_rate": 0.9}}
    assert planted_causes(cfg) == _planted(3)
    old = planted_causes({"member": {"augment": "standard", "generated": "/g"}})
    assert old["generated_fraction"] == 0.5 and old["grayscale_augmentation"] == 0.2
    assert (
        planted_causes({"member": {"augment": "none", "mark_rate": None}, "world_mark_rate": 0.3})[
            "mark_rate"
        ]
        == 0.3
    )


def test_tables_summary_section_and_export(monotone, tmp_path):
    full = validity_table(monotone, OPTS)
    assert len(full.rows) == len(monotone) and "recovered" in full.columns
    short = validity_summary(monotone)
    assert short is not None and short.columns == ["seed", "check", "value", "p", "n", "recovered"]
    assert "recovered" in short.caption
    ctx = ReportContext(
        results=_results(), artifacts={}, output_dir=tmp_path, datasets=ROLES, models=CONFIGS
    )
    assert validity_summary(ctx) is not None
    html = render_validity(ctx, OPTS)
    assert "t-validity" in html and "Planted causes" in html and "shift family" in html
    line = next(x for x in lines() if x.name == "validity")
    assert line.sections[0].title == SECTION_TITLE
    plan = {"models": CONFIGS, "datasets": ROLES}
    exported = validity_export(_results(), plan)
    assert list(exported.columns) == list(ROW_COLUMNS) and len(exported) == len(monotone)
    assert "validity.csv" in LINE_EXPORTS
    paths = _line_exports(_results(), plan, tmp_path)
    assert pd.read_csv(paths["validity.csv"])["seed"].astype(str).str.zfill(3).iloc[0] == "000"


def test_no_causes_and_no_ground_truth_means_no_section(tmp_path):
    res = _results()
    res = res[res["measure"] != "ground_truth"]
    ctx = ReportContext(results=res, artifacts={}, output_dir=tmp_path, datasets=ROLES)
    assert render_validity(ctx) is None and validity_summary(ctx) is None
    assert validity_export(res, {"models": {}, "datasets": ROLES}) is None


def test_evidence_line():
    row = {"statistic": "R²", "value": 0.2, "p_value": float("nan"), "ci_low": None, "n": 4}
    assert evidence(row) == "R² +0.20, n = 4"


# a zoo of one-factor sweeps: a base recipe per architecture, each cause moved alone on some
# architectures, and a smaller model with base causes (not in any sweep: other capacity)
BASE = {"mark_rate": 0.0, "texture_randomization": 0.0, "corruption_augmentation": "none"}
ARCH_LEVEL = {"cnn": 0.6, "resnet": 0.2, "mixer": 0.4}  # each architecture's own baseline
SWEEP_ZOO = {
    "cnn-base": ("cnn", {}),
    "resnet-base": ("resnet", {}),
    "mixer-base": ("mixer", {}),
    "mixer-mark0.25": ("mixer", {"mark_rate": 0.25}),
    "cnn-mark0.5": ("cnn", {"mark_rate": 0.5}),
    "resnet-mark1.0": ("resnet", {"mark_rate": 1.0}),
    "cnn-tex0.5": ("cnn", {"texture_randomization": 0.5}),
    "resnet-tex1.0": ("resnet", {"texture_randomization": 1.0}),
    "cnn-noise": ("cnn", {"corruption_augmentation": "noise"}),
    "cnn-small": ("cnn", {"width": 8}),
}


def _sweep_configs() -> dict:
    out = {}
    for name, (arch, moved) in SWEEP_ZOO.items():
        planted = {**_planted(0), **BASE, "arch": arch, "width": 16, "epochs": 4, **moved}
        planted["generated_fraction"] = 0.0
        out[name] = {"source": "zoo", "planted": planted}
    return out


def _sweep_results() -> pd.DataFrame:
    """A spurious score that falls with the mark rate within each architecture but sits at
    the architecture's own level, so that the zoo-wide ranking is confounded."""
    rows = []
    for name, cfg in _sweep_configs().items():
        p = cfg["planted"]
        score = ARCH_LEVEL[p["arch"]] - 0.15 * p["mark_rate"]
        rows.append((name, "world/spurious", "spurious", "spurious_score", score))
        shape = ARCH_LEVEL[p["arch"]] / 2 + 0.4 * p["texture_randomization"]
        rows.append((name, "world/cue_conflict", "biases", "shape_bias", shape))
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])


def test_a_sweep_holds_the_other_causes_and_the_capacity_at_the_base():
    causes = cause_table(_sweep_configs())
    assert sweep_models(causes, "mark_rate") == [
        "cnn-base",
        "resnet-base",
        "mixer-base",
        "mixer-mark0.25",
        "cnn-mark0.5",
        "resnet-mark1.0",
    ]
    assert sweep_models(causes, "corruption_level") == [
        "cnn-base",
        "resnet-base",
        "mixer-base",
        "cnn-noise",
    ]


def test_the_sweep_row_controls_what_the_zoo_wide_row_confounds():
    rows = _by_check(validity_frame(_sweep_results(), _sweep_configs(), ROLES, OPTS))
    zoo = rows["spurious score vs mark rate (planted cause)"]
    sweep = rows["spurious score vs mark rate (planted cause), one-factor sweep"]
    assert zoo["recovered"] == "no" and zoo["n"] == len(SWEEP_ZOO)
    assert sweep["n"] == 6 and "base recipe" in sweep["cause"]
    # within each architecture the score falls by 0.15 per unit of mark rate
    assert "cnn-mark0.5 -0.075" in sweep["note"] and "resnet-mark1.0 -0.150" in sweep["note"]
    assert "3 of 3 in the expected direction" in sweep["note"]
    tex = rows["shape bias vs texture randomisation (planted cause), one-factor sweep"]
    assert tex["n"] == 5 and "resnet-tex1.0 +0.400" in tex["note"]


def test_a_cause_the_zoo_does_not_sweep_says_so():
    configs = _sweep_configs()
    for cfg in configs.values():
        cfg["planted"]["corruption_augmentation"] = "none"
    res = _sweep_results()
    res = pd.concat(
        [res, res.assign(measure="biases", name="spectral_bias", dataset="world/val")]
    ).drop_duplicates()
    row = _by_check(validity_frame(res, configs, ROLES, OPTS))[
        "spectral bias vs corruption augmentation, one-factor sweep"
    ]
    assert row["recovered"] == "n/a" and "no one-factor sweep" in row["note"]
