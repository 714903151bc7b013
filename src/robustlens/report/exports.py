"""Exports of a study: per-model results as CSV and Parquet, per-sample outputs per model.

Files written by :func:`export_results` into ``out_dir``:

``results_long.csv`` / ``results_long.parquet``
    One row per (model, dataset, measure, name): columns ``model, model_fp, dataset,
    dataset_fp, measure, name, value`` (``value`` is NaN where a measure had no number).
``results_wide.csv`` / ``results_wide.parquet``
    One row per model: column ``model`` then one column per ``dataset|measure.name``
    (e.g. ``world/val|accuracy.accuracy``), sorted by name. Model-level numbers use the
    dataset name ``*`` (their ``dataset_fp`` is empty, which ``pandas.read_csv`` reads as NaN).
``datasets.csv``
    One row per dataset of the study (from its ``plan.json``): ``dataset, role,
    class_space, tags`` (``class_space``: the classes its predictions are an argmax over,
    e.g. ``1000 classes`` or ``200 classes: ImageNet-R mask``; ``tags`` as JSON).
Files research lines register with :func:`register_export` (e.g. ``validity.csv``)
    Written for a study with a plan, when the line has something to export.

Per-sample outputs are written by the study itself, one Parquet file per model, at
``out_dir/per_sample/{model}.parquet`` (a ``/`` in a model name becomes ``_``). Each file has
one row per (dataset, sample) with columns ``model, dataset, sample_id`` and the columns the
measures add: ``label, prediction, label_name, prediction_name, confidence, correct``
(accuracy; labels and predictions in the model's class indices, see
:class:`robustlens.lines.accuracy.measure.AccuracyMeasure`) and, depending on the
measures run, per-view agreement, effective invariance and so on. Read them with
:func:`read_per_sample` (one model, or all models concatenated) or stream them with
:func:`iter_per_sample` (one model at a time, so a zoo of hundreds of models never sits in
memory at once). Everything here is plain pandas/pyarrow::

    import pandas as pd
    wide = pd.read_parquet("robustlens-out/results_wide.parquet")
    one = pd.read_parquet("robustlens-out/per_sample/tiny-cnn.parquet")
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from robustlens.analysis.corruption_error import corruption_errors_by_group, mce_table
from robustlens.errors import RobustlensError
from robustlens.measure import lines
from robustlens.store import Store
from robustlens.study import read_plan, study_store

__all__ = [
    "LINE_EXPORTS",
    "export_results",
    "iter_per_sample",
    "per_sample_files",
    "per_sample_path",
    "read_per_sample",
    "register_export",
    "wide_table",
]

LONG_COLUMNS = ["model", "model_fp", "dataset", "dataset_fp", "measure", "name", "value"]


def _safe(model: str) -> str:
    return model.replace("/", "_")


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """Pivot long results to one row per model, one column per ``dataset|measure.name``.

    Args:
        long: long results with columns model, dataset, measure, name, value.

    Returns:
        DataFrame with a ``model`` column first, then the value columns sorted by name.

    Example:
        >>> long = pd.DataFrame({"model": ["a", "a", "b"], "dataset": ["val", "v2", "val"],
        ...                      "measure": "accuracy", "name": "accuracy",
        ...                      "value": [0.9, 0.8, 0.7]})
        >>> w = wide_table(long)
        >>> list(w.columns), w["val|accuracy.accuracy"].tolist()
        (['model', 'v2|accuracy.accuracy', 'val|accuracy.accuracy'], [0.9, 0.7])
    """
    if long.empty:
        return pd.DataFrame({"model": pd.Series([], dtype=object)})
    col = (
        long["dataset"].astype(str)
        + "|"
        + long["measure"].astype(str)
        + "."
        + long["name"].astype(str)
    )
    df = pd.DataFrame(
        {
            "model": long["model"].astype(str).to_numpy(),
            "column": col.to_numpy(),
            "value": pd.to_numeric(long["value"], errors="coerce").to_numpy(),
        }
    )
    wide = df.pivot_table(
        index="model", columns="column", values="value", aggfunc="first", dropna=False, sort=True
    )
    wide = wide.reindex(columns=sorted(wide.columns))
    wide.columns = [str(c) for c in wide.columns]
    wide.columns.name = None
    out = wide.reset_index()
    out["model"] = out["model"].astype(str)
    return out


def export_results(
    store: Store | str | Path, out_dir: str | Path, models: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write the study's results as long and wide CSV and Parquet files into ``out_dir``.

    Only one study's numbers are written: those of a :meth:`~robustlens.store.Store.scoped`
    store, or, when ``out_dir`` is the output directory of a study on this store, those of
    that study (its ``plan.json`` records the fingerprints of its models and datasets), so
    another study's rows for the same model names never appear.

    Args:
        store: a :class:`robustlens.store.Store` (or a path to one; read-only stores work).
        out_dir: directory for the files (created if missing).
        models: restrict to these models (default: every model of the study, or in the store).

    Returns:
        ``{"results_long.csv": path, ...}`` for the four files written.
    """
    if not isinstance(store, Store):
        store = Store(store)
    plan = read_plan(out_dir)
    if store.scope is None and plan and plan.get("store") == str(store.root):
        store = study_store(store, plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    long = store.results(models=list(models) if models is not None else None)
    long = long.reindex(columns=LONG_COLUMNS)
    for c in LONG_COLUMNS[:-1]:
        long[c] = long[c].astype(str)
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype("float64")
    wide = wide_table(long)
    paths: dict[str, Path] = {}
    for stem, df in (("results_long", long), ("results_wide", wide)):
        csv, parquet = out / f"{stem}.csv", out / f"{stem}.parquet"
        _atomic(csv, lambda p, df=df: df.to_csv(p, index=False))
        _atomic(parquet, lambda p, df=df: df.to_parquet(p, index=False))
        paths[csv.name], paths[parquet.name] = csv, parquet
    if plan:
        paths.update(_protocol_exports(long, plan, out))
        paths.update(_datasets_export(plan, out))
        paths.update(_line_exports(long, plan, out))
    return paths


#: exports research lines add: file name -> ``build(long results, plan) -> DataFrame | None``
LINE_EXPORTS: dict[str, Callable[[pd.DataFrame, Mapping[str, Any]], pd.DataFrame | None]] = {}


def register_export(
    filename: str, build: Callable[[pd.DataFrame, Mapping[str, Any]], pd.DataFrame | None]
) -> None:
    """Have :func:`export_results` write ``filename`` (a CSV) from ``build(long, plan)``.

    A research line calls this when it is imported (its ``__init__``); ``build`` gets the
    study's long results and its ``plan.json`` (models with their configs, datasets with
    their roles) and returns the table to write, or ``None`` when it has nothing to export.
    """
    LINE_EXPORTS[filename] = build


def _line_exports(long: pd.DataFrame, plan: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """The CSV files research lines registered with :func:`register_export`.

    A build that fails is left out with a warning naming it; the other exports are written.
    """
    lines()  # importing the lines registers their exports
    paths: dict[str, Path] = {}
    for filename, build in sorted(LINE_EXPORTS.items()):
        try:
            table = build(long, plan)
        except (RobustlensError, ValueError, KeyError) as exc:
            warnings.warn(f"export {filename} not written: {exc!r}", stacklevel=2)
            continue
        if table is None:
            continue
        path = out / filename
        _atomic(path, lambda p, t=table: t.to_csv(p, index=False))
        paths[path.name] = path
    return paths


def _datasets_export(plan: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """``datasets.csv``: each dataset's role, class space and tags (when the plan records
    class spaces)."""
    datasets = plan.get("datasets") or {}
    if not any("class_space" in (info or {}) for info in datasets.values()):
        return {}
    table = pd.DataFrame(
        [
            {
                "dataset": name,
                "role": (info or {}).get("role", ""),
                "class_space": (info or {}).get("class_space", ""),
                "tags": json.dumps((info or {}).get("tags") or {}, sort_keys=True),
            }
            for name, info in datasets.items()
        ],
        columns=["dataset", "role", "class_space", "tags"],
    )
    path = out / "datasets.csv"
    _atomic(path, lambda p: table.to_csv(p, index=False))
    return {path.name: path}


def _protocol_exports(long: pd.DataFrame, plan: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """``protocols.json`` (each measure's paper and parameters) and, for every corrupted set
    with ImageNet-C's 15 corruptions, ``mce.csv`` (mCE and relative mCE per model)."""
    paths: dict[str, Path] = {}
    protocols = plan.get("protocols") or {}
    if protocols:
        path = out / "protocols.json"
        _atomic(path, lambda p: p.write_text(json.dumps(protocols, indent=1)))
        paths[path.name] = path
    baseline = ((protocols.get("accuracy") or {}).get("parameters") or {}).get("mce_baseline")
    frames = []
    for group in corruption_errors_by_group(long, plan.get("datasets") or {}):
        table, _ = mce_table(group, baseline)
        if table is not None:
            frames.append(table.to_frame().assign(dataset=group.group))
    if frames:
        path = out / "mce.csv"
        mce = pd.concat(frames, ignore_index=True)
        _atomic(path, lambda p: mce.to_csv(p, index=False))
        paths[path.name] = path
    return paths


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def per_sample_path(out_dir: str | Path, model: str) -> Path:
    """Where the study writes the per-sample Parquet file of ``model``."""
    return Path(out_dir) / "per_sample" / f"{_safe(model)}.parquet"


def per_sample_files(out_dir: str | Path, models: Sequence[str] | None = None) -> dict[str, Path]:
    """``{model: path}`` of the per-sample files that exist (all, or those of ``models``)."""
    if models is not None:
        paths = {m: per_sample_path(out_dir, m) for m in models}
        return {m: p for m, p in paths.items() if p.exists()}
    root = Path(out_dir) / "per_sample"
    return {p.stem: p for p in sorted(root.glob("*.parquet"))} if root.exists() else {}


def _read(
    path: Path, columns: Sequence[str] | None, datasets: Sequence[str] | None
) -> pd.DataFrame:
    cols = None
    if columns is not None:
        have = set(pq.read_schema(path).names)
        cols = [c for c in dict.fromkeys(["model", "dataset", *columns]) if c in have]
    filters = [("dataset", "in", list(datasets))] if datasets is not None else None
    return pd.read_parquet(path, columns=cols, filters=filters)


def iter_per_sample(
    out_dir: str | Path,
    models: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield ``(model, per-sample DataFrame)`` one model at a time (bounded memory).

    Args:
        out_dir: the study's output directory.
        models: these models only (default: every file under ``out_dir/per_sample``).
        columns: read only these columns (``model`` and ``dataset`` are always read; names a
            file lacks are skipped).
        datasets: keep only rows of these datasets (filtered while reading).
    """
    for model, path in per_sample_files(out_dir, models).items():
        df = _read(path, columns, datasets)
        name = str(df["model"].iloc[0]) if "model" in df.columns and len(df) else model
        yield name, df


def read_per_sample(
    out_dir: str | Path,
    model: str | None = None,
    columns: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-sample outputs as a DataFrame: one model's, or every model's concatenated.

    Args:
        out_dir: the study's output directory (holding ``per_sample/``).
        model: a model name; None reads every model (mind the memory on a large zoo; use
            :func:`iter_per_sample` to stream).
        columns: read only these columns (``model`` and ``dataset`` always come along).
        datasets: keep only rows of these datasets.

    Raises:
        FileNotFoundError: no per-sample file for ``model`` (names the files that exist).
    """
    if model is not None:
        path = per_sample_path(out_dir, model)
        if not path.exists():
            have = sorted(per_sample_files(out_dir))
            raise FileNotFoundError(
                f"no per-sample file for model {model!r} at {path}; models with files: "
                f"{have or 'none (run the study first)'}"
            )
        return _read(path, columns, datasets)
    frames = [df for _, df in iter_per_sample(out_dir, columns=columns, datasets=datasets)]
    if not frames:
        return pd.DataFrame(columns=["model", "dataset", "sample_id"])
    return pd.concat(frames, ignore_index=True)
