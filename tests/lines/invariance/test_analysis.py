"""Tests of the model-centric / dataset-centric analysis and label-free OOD predictors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from robustlens.errors import ValidationError
from robustlens.lines.invariance.analysis import (
    CORRUPT_MEAN,
    agreement_matrix,
    agreement_scores,
    best_id_model,
    dataset_centric,
    model_centric,
    ood_predictor_mae,
)
from robustlens.roles import role_from_name

MODELS = ["m1", "m2", "m3", "m4", "m5"]
C1, C3 = "world/corrupt/noise/1", "world/corrupt/noise/3"
# accuracy per dataset and model
ACC = {
    "world/val": [0.90, 0.80, 0.85, 0.70, 0.95],
    C1: [0.60, 0.50, 0.55, 0.40, 0.70],
    C3: [0.30, 0.45, 0.20, 0.10, 0.50],
    "world/sketch": [0.10, 0.30, 0.20, 0.40, 0.50],
    "world/v2": [0.80, 0.70, 0.75, 0.60, 0.85],
}
# rotation EI: on sketch its ranks are 1 2 3 4 5 vs accuracy ranks 1 3 2 4 5 -> rho = 0.9
EI = {
    "world/val": [0.5, 0.4, 0.45, 0.3, 0.55],
    C1: [0.1, 0.9, 0.0, 0.3, 0.5],  # per-set ranks disagree with accuracy ...
    C3: [0.7, 0.1, 0.6, 0.0, 0.9],  # ... but the means over corruptions rank like accuracy
    "world/sketch": [0.1, 0.2, 0.3, 0.4, 0.5],
    "world/v2": [0.4, 0.3, 0.35, 0.2, 0.45],
}
SILHOUETTE = [0.3, 0.2, 0.25, 0.1, 0.4]  # model-level: on world/val only


def _frame() -> pd.DataFrame:
    rows = []
    for ds, accs in ACC.items():
        for m, a, e in zip(MODELS, accs, EI[ds], strict=True):
            rows.append((m, ds, "accuracy", "accuracy", a))
            rows.append((m, ds, "invariance", "ei_rotation", e))
            rows.append((m, ds, "label_free", "atc_maxconf", a + 0.1))  # biased but exact rank
    for m, s in zip(MODELS, SILHOUETTE, strict=True):
        rows.append((m, "world/val", "clustering", "silhouette", s))
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])


def _row(t: pd.DataFrame, dataset: str, predictor: str, method: str = "spearman") -> pd.Series:
    sel = t[(t["dataset"] == dataset) & (t["predictor"] == predictor) & (t["method"] == method)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_role_from_names():
    assert role_from_name("world/val") == "id"
    assert role_from_name("world/corrupt/noise/1") == "corrupt"
    assert role_from_name("imagenet_c/fog/5") == "corrupt"
    assert role_from_name("imagenet_sketch") == "sketch"
    assert role_from_name("imagenet_a") == "natural"
    assert role_from_name("holiday_photos") == "other"


def test_model_centric_known_spearman_and_corrupt_summary():
    t = model_centric(
        _frame(), predictors=("invariance.ei_rotation", "label_free.atc_maxconf"), n_boot=200
    )
    sketch = _row(t, "world/sketch", "invariance.ei_rotation")
    assert sketch["coefficient"] == pytest.approx(0.9)
    assert sketch["n"] == 5 and sketch["role"] == "sketch"
    assert sketch["ci_low"] <= sketch["ci_high"]
    # the corrupt summary correlates per-model means: those rank exactly like accuracy
    mean = _row(t, CORRUPT_MEAN, "invariance.ei_rotation")
    ei_mean = (np.array(EI[C1]) + np.array(EI[C3])) / 2
    acc_mean = (np.array(ACC[C1]) + np.array(ACC[C3])) / 2
    assert np.argsort(ei_mean).tolist() == np.argsort(acc_mean).tolist()
    assert mean["coefficient"] == pytest.approx(1.0) and mean["significant"]
    assert _row(t, C1, "invariance.ei_rotation")["coefficient"] < 0.9  # per-set rows kept
    assert _row(t, "world/v2", "label_free.atc_maxconf", "pearson")["coefficient"] == (
        pytest.approx(1.0)
    )
    assert t["dataset"].iloc[0] == CORRUPT_MEAN  # summary first
    assert "world/val" not in set(t["dataset"])  # id is not a shift
    summary_only = model_centric(_frame(), n_boot=0, each_corrupt=False)
    assert C1 not in set(summary_only["dataset"]) and CORRUPT_MEAN in set(summary_only["dataset"])


def test_model_centric_skips_absent_predictors_and_broadcasts_model_level_ones():
    t = model_centric(
        _frame(),
        predictors=("invariance.ei_rotation", "invariance.ei_gray", "clustering.silhouette"),
        n_boot=0,
    )
    assert set(t["predictor"]) == {"invariance.ei_rotation", "clustering.silhouette"}
    # silhouette exists on the id set only: its values serve every shifted set
    v2 = _row(t, "world/v2", "clustering.silhouette")
    assert v2["coefficient"] == pytest.approx(1.0)  # silhouette ranks like v2 accuracy
    with pytest.raises(ValidationError, match="none of the predictors"):
        model_centric(_frame(), predictors=("invariance.ei_gray",))
    no_acc = _frame()[lambda d: d["measure"] != "accuracy"]
    with pytest.raises(ValidationError, match="'accuracy' measure"):
        model_centric(no_acc)


def test_model_centric_roles_override_the_names():
    df = _frame()
    df.loc[df["dataset"] == "world/sketch", "dataset"] = "my_drawings"
    assert "my_drawings" not in set(model_centric(df, n_boot=0)["dataset"])
    t = model_centric(df, roles={"my_drawings": "sketch"}, n_boot=0)
    assert _row(t, "my_drawings", "invariance.ei_rotation")["coefficient"] == pytest.approx(0.9)


def test_dataset_centric_across_shifted_sets_of_one_model():
    df = _frame()
    t = dataset_centric(df, "m2", n_boot=0)
    assert set(t["predictor"]) == {"invariance.ei_rotation", "label_free.atc_maxconf"}
    atc = t[(t["predictor"] == "label_free.atc_maxconf") & (t["method"] == "spearman")].iloc[0]
    assert atc["coefficient"] == pytest.approx(1.0) and atc["n"] == 4  # 2 corrupt, sketch, v2
    ei = t[(t["predictor"] == "invariance.ei_rotation") & (t["method"] == "spearman")].iloc[0]
    # m2 over (C1, C3, sketch, v2): EI 0.9, 0.1, 0.2, 0.3 vs acc .50, .45, .30, .70
    shifted = [C1, C3, "world/sketch", "world/v2"]
    expected = spearmanr([EI[d][1] for d in shifted], [ACC[d][1] for d in shifted]).statistic
    assert expected == pytest.approx(0.6)  # ranks 4 1 2 3 vs 3 2 1 4: 1 - 6 * 4 / 60
    assert ei["coefficient"] == pytest.approx(expected)
    with pytest.raises(ValidationError, match="no results"):
        dataset_centric(df, "nobody")


def test_best_id_model():
    assert best_id_model(_frame()) == "m5"


def test_ood_predictor_mae_regression_and_direct():
    df = _frame()
    # a score exactly linear in accuracy on every set: leave-one-model-out recovers it
    lin = df[df["name"] == "accuracy"].assign(
        measure="invariance", name="ei_gray", value=lambda d: 0.5 * d["value"] + 0.2
    )
    table = ood_predictor_mae(
        pd.concat([df, lin]),
        regression=("invariance.ei_gray", "invariance.ei_rotation"),
        direct=("label_free.atc_maxconf",),
    )
    assert table["mae"].is_monotonic_increasing
    first = table.iloc[0]
    assert (first["predictor"], first["kind"]) == ("invariance.ei_gray", "regression")
    assert first["mae"] == pytest.approx(0.0, abs=1e-9)
    atc = table[table["predictor"] == "label_free.atc_maxconf"].iloc[0]
    assert atc["kind"] == "direct" and atc["mae"] == pytest.approx(0.1)
    assert atc["n"] == 5 * 4 and atc["n_datasets"] == 4
    assert {"mae_v2", "mae_corrupt", "mae_sketch"} <= set(table.columns)
    assert atc["mae_sketch"] == pytest.approx(0.1)


def test_ood_predictor_mae_uses_model_level_indicators():
    table = ood_predictor_mae(_frame(), regression=("clustering.silhouette",), direct=())
    assert table["predictor"].tolist() == ["clustering.silhouette"]
    assert table["n"].iloc[0] == 20 and np.isfinite(table["mae"].iloc[0])


def _write_per_sample(tmp_path, model: str, ids, preds, dataset="world/sketch"):
    d = tmp_path / "per_sample"
    d.mkdir(exist_ok=True)
    df = pd.DataFrame(
        {
            "model": model,
            "dataset": dataset,
            "sample_id": ids,
            "prediction": np.asarray(preds, dtype=np.int64),
        }
    )
    other = df.assign(dataset="world/val", prediction=0)
    pd.concat([df, other]).to_parquet(d / f"{model}.parquet", index=False)
    return d


def test_agreement_matrix_aligns_samples_by_id(tmp_path):
    _write_per_sample(tmp_path, "a", [1, 2, 3, 4], [0, 1, 2, 3])
    _write_per_sample(tmp_path, "b", [4, 3, 2, 1], [3, 2, 0, 0])  # same order as a: 0 0 2 3
    d = _write_per_sample(tmp_path, "c", [1, 2, 3, 4], [1, 1, 1, 1])
    mat = agreement_matrix(d, "world/sketch")
    assert mat.index.tolist() == ["a", "b", "c"]
    assert mat.loc["a", "b"] == pytest.approx(0.75) and mat.loc["b", "a"] == mat.loc["a", "b"]
    assert mat.loc["a", "c"] == pytest.approx(0.25)
    assert mat.loc["b", "c"] == pytest.approx(0.0)
    assert np.diag(mat.to_numpy()).tolist() == [1.0, 1.0, 1.0]
    scores = agreement_scores(d, ["world/sketch"])
    a = scores[scores["model"] == "a"]["value"].item()
    assert a == pytest.approx((0.75 + 0.25) / 2)
    assert set(scores["measure"]) == {"agreement"}


def test_agreement_matrix_errors(tmp_path):
    with pytest.raises(ValidationError, match="no per-sample parquet files"):
        agreement_matrix(tmp_path, "world/sketch")
    d = tmp_path / "per_sample"
    d.mkdir()
    pd.DataFrame({"model": ["a"], "dataset": ["x"], "sample_id": [1], "ei_gray": [0.5]}).to_parquet(
        d / "a.parquet"
    )
    with pytest.raises(ValidationError, match="'accuracy' measure"):
        agreement_matrix(d, "x")
