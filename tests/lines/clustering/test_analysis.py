"""Tests of the clustering-indicator analysis (seed 000) on hand-made results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from robustlens.errors import ValidationError
from robustlens.lines.clustering.analysis import (
    indicator_correlations,
    indicator_table,
    strongest_label_free_indicator,
)

MODELS = ["m1", "m2", "m3", "m4", "m5"]
CORRUPT = {
    "world/corrupt/blur/1": [0.7, 0.5, 0.6, 0.3, 0.8],
    "world/corrupt/blur/5": [0.3, 0.3, 0.2, 0.1, 0.6],
}
# mean corruption accuracy: 0.5, 0.4, 0.4, 0.2, 0.7 (m2 and m3 tie)
INDICATORS = {
    "silhouette": [0.4, 0.1, 0.3, 0.2, 0.5],  # ranks 4 1 3 2 5 vs corrupt 4 2.5 2.5 1 5
    "davies_bouldin": [1.0, 1.5, 1.5, 2.0, 0.5],  # lower is better: exactly reversed
    "calinski_harabasz": [10.0, 20.0, 30.0, 40.0, 50.0],
    "nmi": [0.6, 0.5, 0.5, 0.3, 0.9],  # label-based: perfect, but never "label-free"
}
SKETCH = [0.2, 0.3, 0.1, 0.4, 0.5]


def _frame() -> pd.DataFrame:
    rows = []
    for name, vals in INDICATORS.items():
        rows += [(m, "world/val", "clustering", name, v) for m, v in zip(MODELS, vals, strict=True)]
    rows += [(m, "world/val", "clustering", "n_samples", 100.0) for m in MODELS]
    rows += [(m, "world/val", "accuracy", "accuracy", 0.9) for m in MODELS]
    for ds, vals in CORRUPT.items():
        rows += [(m, ds, "accuracy", "accuracy", v) for m, v in zip(MODELS, vals, strict=True)]
    rows += [
        (m, "world/sketch", "accuracy", "accuracy", v) for m, v in zip(MODELS, SKETCH, strict=True)
    ]
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])


def test_indicator_table_columns():
    t = indicator_table(_frame())
    assert t.index.tolist() == MODELS
    assert list(t.columns) == [
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "nmi",
        "n_samples",
        "id",
        "corrupt (mean)",
        "sketch",
    ]
    np.testing.assert_allclose(t["corrupt (mean)"], [0.5, 0.4, 0.4, 0.2, 0.7])


def test_indicator_correlations_known_spearman():
    t = indicator_correlations(_frame(), n_boot=100)
    assert set(t["target"]) == {"corrupt (mean)", "sketch"}  # no rendition in the results

    def coef(ind: str, target: str = "corrupt (mean)") -> float:
        return t[(t["indicator"] == ind) & (t["target"] == target)]["coefficient"].item()

    # silhouette ranks 4 1 3 2 5 vs 4 2.5 2.5 1 5 (ties averaged): Pearson of the ranks
    expected = pearsonr([4, 1, 3, 2, 5], [4, 2.5, 2.5, 1, 5]).statistic
    assert coef("silhouette") == pytest.approx(expected)
    assert coef("davies_bouldin") == pytest.approx(-1.0)
    assert coef("nmi") == pytest.approx(1.0)
    assert coef("calinski_harabasz", "sketch") == pytest.approx(0.7)  # 1 - 6 * 6 / 120
    lf = t.set_index("indicator")["label_free"].to_dict()
    assert lf["silhouette"] and lf["davies_bouldin"] and not lf["nmi"]


def test_strongest_label_free_indicator_ignores_label_based_scores():
    corr = indicator_correlations(_frame(), n_boot=0)
    best = strongest_label_free_indicator(corr)
    assert best["indicator"] == "davies_bouldin"  # |-1| beats silhouette; nmi uses labels
    assert best["coefficient"] == pytest.approx(-1.0)
    assert best["expected_sign"] and best["significant"] and best["n"] == 5
    # a results frame works too (correlations are computed first)
    assert strongest_label_free_indicator(_frame(), n_boot=0)["indicator"] == "davies_bouldin"
    sk = strongest_label_free_indicator(corr, target="sketch")
    assert sk["indicator"] == "calinski_harabasz"
    with pytest.raises(ValidationError, match="rendition"):
        strongest_label_free_indicator(corr, target="rendition")


def test_errors_name_the_missing_piece():
    df = _frame()
    with pytest.raises(ValidationError, match="'clustering' measure"):
        indicator_table(df[df["measure"] != "clustering"])
    renamed = df.assign(dataset=df["dataset"].replace({"world/val": "clean_photos"}))
    with pytest.raises(ValidationError, match="role 'id'"):
        indicator_table(renamed)
    t = indicator_table(renamed, source_dataset="clean_photos")
    assert t["silhouette"].tolist() == INDICATORS["silhouette"]
    only_id = df[~df["dataset"].str.contains("corrupt|sketch")]
    with pytest.raises(ValidationError, match="no accuracy on any of the targets"):
        indicator_correlations(only_id)
