"""Exports: results as long/wide CSV and Parquet, per-sample Parquet files, all read by pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlens.report import export_results, iter_per_sample, read_per_sample, wide_table
from robustlens.store import Store

MODELS = ["net-a", "net/b"]
DATASETS = ["world/val", "world/sketch"]


@pytest.fixture()
def store(tmp_path) -> Store:
    st = Store(tmp_path / "store")
    rows = []
    for i, m in enumerate(MODELS):
        for j, d in enumerate(DATASETS):
            for name, v in (("accuracy", 0.9 - 0.1 * i - 0.3 * j), ("ece", 0.05 * (i + 1))):
                rows.append(
                    {
                        "model": m,
                        "model_fp": f"fp{i}",
                        "dataset": d,
                        "dataset_fp": f"d{j}",
                        "measure": "accuracy",
                        "name": name,
                        "value": v,
                    }
                )
    rows.append(
        {
            "model": "net-a",
            "model_fp": "fp0",
            "dataset": "*",
            "dataset_fp": "",
            "measure": "spurious",
            "name": "spurious_score",
            "value": float("nan"),
        }
    )
    rows.append(
        {
            "model": "other",
            "model_fp": "fpx",
            "dataset": "world/val",
            "dataset_fp": "d0",
            "measure": "accuracy",
            "name": "accuracy",
            "value": 0.5,
        }
    )
    st.put_results(rows)
    return st


def test_exports_round_trip_through_pandas(store, tmp_path):
    out = tmp_path / "out"
    paths = export_results(store, out, models=MODELS)
    assert sorted(paths) == [
        "results_long.csv",
        "results_long.parquet",
        "results_wide.csv",
        "results_wide.parquet",
    ]
    long_csv = pd.read_csv(paths["results_long.csv"])
    long_pq = pd.read_parquet(paths["results_long.parquet"])
    assert list(long_pq.columns) == [
        "model",
        "model_fp",
        "dataset",
        "dataset_fp",
        "measure",
        "name",
        "value",
    ]
    assert len(long_csv) == len(long_pq) == 9  # 2 models x 2 datasets x 2 names + 1 NaN row
    assert set(long_pq["model"]) == set(MODELS)  # "other" is filtered out
    key = (
        (long_pq["model"] == "net/b")
        & (long_pq["dataset"] == "world/sketch")
        & (long_pq["name"] == "accuracy")
    )
    assert long_pq.loc[key, "value"].item() == pytest.approx(0.5)
    assert long_pq["value"].isna().sum() == 1  # a missing value stays NaN, not 0
    # an empty string (the dataset fingerprint of a model-level "*" row) reads back as NaN
    pd.testing.assert_frame_equal(long_csv.fillna({"dataset_fp": ""}), long_pq, check_dtype=False)

    wide_csv = pd.read_csv(paths["results_wide.csv"])
    wide_pq = pd.read_parquet(paths["results_wide.parquet"])
    assert wide_pq["model"].tolist() == ["net-a", "net/b"]
    assert "world/val|accuracy.ece" in wide_pq.columns
    assert "*|spurious.spurious_score" in wide_pq.columns
    row = wide_pq.set_index("model").loc["net-a"]
    assert row["world/sketch|accuracy.accuracy"] == pytest.approx(0.6)
    assert np.isnan(row["*|spurious.spurious_score"])
    pd.testing.assert_frame_equal(wide_csv, wide_pq, check_dtype=False)


def test_export_all_models_by_default(store, tmp_path):
    paths = export_results(store.root, tmp_path / "o")  # a path to the store works too
    assert set(pd.read_parquet(paths["results_wide.parquet"])["model"]) == {*MODELS, "other"}


def test_wide_table_of_empty_results_has_a_model_column():
    assert list(
        wide_table(pd.DataFrame(columns=["model", "dataset", "measure", "name", "value"])).columns
    ) == ["model"]


def _write_per_sample(out, model: str, n: int) -> None:
    df = pd.DataFrame(
        {
            "model": model,
            "dataset": ["world/val"] * n + ["world/sketch"] * n,
            "sample_id": np.arange(2 * n),
            "prediction": np.arange(2 * n) % 3,
            "confidence": np.linspace(0.3, 0.9, 2 * n),
            "correct": np.arange(2 * n) % 2 == 0,
        }
    )
    path = out / "per_sample"
    path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path / f"{model.replace('/', '_')}.parquet", index=False)


def test_read_per_sample_one_model_all_models_and_filters(tmp_path):
    _write_per_sample(tmp_path, "net-a", 4)
    _write_per_sample(tmp_path, "net/b", 3)
    one = read_per_sample(tmp_path, "net/b")
    assert len(one) == 6 and set(one["model"]) == {"net/b"}
    assert one["correct"].dtype == bool
    both = read_per_sample(tmp_path)
    assert len(both) == 14 and set(both["model"]) == {"net-a", "net/b"}
    sub = read_per_sample(tmp_path, "net-a", columns=["confidence", "nope"], datasets=["world/val"])
    assert list(sub.columns) == ["model", "dataset", "confidence"]
    assert len(sub) == 4 and set(sub["dataset"]) == {"world/val"}
    streamed = list(iter_per_sample(tmp_path, columns=["correct"]))
    assert [m for m, _ in streamed] == ["net-a", "net/b"]  # the model column gives the name
    assert all(list(df.columns) == ["model", "dataset", "correct"] for _, df in streamed)


def test_read_per_sample_of_unknown_model_names_the_files(tmp_path):
    _write_per_sample(tmp_path, "net-a", 2)
    with pytest.raises(FileNotFoundError, match=r"no per-sample file for model 'zz'.*net-a"):
        read_per_sample(tmp_path, "zz")
    assert read_per_sample(tmp_path / "empty").empty
