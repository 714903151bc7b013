"""Seed 002's benchmark table (Gavrikov and Keuper, CVPR 2024) in canonical form.

Reads ``raw-data/benchmark.csv`` (one row per model; top-1 accuracies in percent, shape bias
as a fraction, band-pass accuracies as ratios to the clean accuracy, critical-band parameters)
and ``raw-data/r50_categories.json`` (``{category: [model, ...]}``, the paper's 48
ResNet-50s). Reference: P. Gavrikov and J. Keuper, "Can Biases in ImageNet Models Explain
Generalization?", CVPR 2024 (``github.com/paulgavrikov/biases_vs_generalization``; the
derived columns follow its ``code/plots.ipynb``).

Canonical columns (accuracies as fractions in [0, 1]):

==================================  ==========================================================
published column                    canonical column
==================================  ==========================================================
``top1_acc/imagenet``               ``imagenet_val``
``top1_acc/imagenet-real``          ``imagenet_val|accuracy.accuracy_real`` (ReaL labels, the
                                    ``accuracy_real`` value of the ``accuracy`` measure)
``top1_acc/imagenet-v2``            ``imagenet_v2``
``top1_acc/imagenet-sketch``        ``imagenet_sketch``
``top1_acc/imagenet-r``             ``imagenet_r``
``top1_acc/imagenet-a``             ``imagenet_a``
``top1_acc/<c>_<s>``                ``imagenet_c/<c>/<s>`` (19 corruptions: the 15 standard
                                    ones and 4 extra) or ``imagenet_cbar/<c>/<s>`` (the 10
                                    ImageNet-C-bar corruptions)
``top1_acc/imagenet-c``, ``-cbar``  ``imagenet_c``, ``imagenet_cbar``: the published means,
                                    carried only for a model without any per-corruption value
                                    (elsewhere they are exactly the mean of those columns)
``top1_acc/stylized``               ``stylized_imagenet`` (model-vs-human's Stylized-ImageNet
                                    set, as the paper's Concepts dimension uses it)
``top1_acc/cue-conflict``           ``cue_conflict``
``top1_acc/PGD-40/low``             ``imagenet_val|biases.pgd_accuracy`` (PGD-40, L-inf
                                    0.5/255: the ``biases`` measure's default)
``shape-bias``                      ``biases.shape_bias``
``metric/bandpass/LFC/0.1..0.5``    ``biases.low_freq_bias`` = their mean (LPP)
``metric/bandpass/HFC/0.1..0.5``    ``biases.high_freq_bias`` = their mean (HPP);
                                    ``biases.spectral_bias`` = ``HPP / (LPP + HPP)``
``metric/criticalband/bw|cf|pns``   ``biases.cb_bandwidth_octaves``, ``biases.cb_center_cpi``,
                                    ``biases.cb_peak_sensitivity`` (the reference's absolute
                                    criterion, as the ``biases`` measure computes them)
``metric/criticalband/*_norm``      ``biases.cb_bandwidth_octaves_norm``, ... : the authors'
                                    normalised variant, which ``plots.ipynb`` plots; the
                                    ``biases`` measure does not compute it
==================================  ==========================================================

The other columns (model-vs-human's other sets, PGD-40 at the high budget, effective
receptive fields, filter quality, weight resets, the band-pass curve at each cutoff) are
listed in ``attrs["unmapped"]``. ``type`` is the model's category in ``r50_categories.json``
(``baseline``, ``training_recipes``, ``augmentation``, ``stylized``, ``freezing``,
``adversarial_training``, ``contrastive``), ``None`` for the file's 22 other models.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.generalization import CBAR_CORRUPTIONS
from robustlens.errors import ValidationError
from robustlens.metrics.spectral import BIAS_CUTOFFS
from robustlens.published._common import (
    as_resource,
    canonical_frame,
    percent_to_fraction,
    read_format_csv,
)

__all__ = ["BVG_COLUMNS", "BVG_REQUIRED", "parse_categories", "read_bvg"]

#: accuracy columns (percent) with a robustlens name
BVG_COLUMNS: dict[str, str] = {
    "top1_acc/imagenet": "imagenet_val",
    "top1_acc/imagenet-real": "imagenet_val|accuracy.accuracy_real",
    "top1_acc/imagenet-v2": "imagenet_v2",
    "top1_acc/imagenet-sketch": "imagenet_sketch",
    "top1_acc/imagenet-r": "imagenet_r",
    "top1_acc/imagenet-a": "imagenet_a",
    "top1_acc/stylized": "stylized_imagenet",
    "top1_acc/cue-conflict": "cue_conflict",
    "top1_acc/PGD-40/low": "imagenet_val|biases.pgd_accuracy",
}
#: columns a file must have to be read as ``benchmark.csv``
BVG_REQUIRED = ("model", "top1_acc/imagenet")
#: other columns a wrong file's message names
_ALSO_EXPECTED = (
    "top1_acc/imagenet-v2",
    "top1_acc/imagenet-real",
    "top1_acc/imagenet-c",
    "top1_acc/imagenet-cbar",
    "top1_acc/stylized",
    "shape-bias",
    "top1_acc/PGD-40/low",
    "metric/bandpass/LFC/<c>",
    "metric/bandpass/HFC/<c>",
    "metric/criticalband/bw|cf|pns",
)
_CORRUPTION = re.compile(r"^top1_acc/([a-z_]+)_([1-5])$")
_MEANS = {"top1_acc/imagenet-c": "imagenet_c", "top1_acc/imagenet-cbar": "imagenet_cbar"}
_CRITICAL_BAND = {
    "bw": "cb_bandwidth_octaves",
    "cf": "cb_center_cpi",
    "pns": "cb_peak_sensitivity",
}


def parse_categories(text: str, path: Any = "r50_categories.json") -> dict[str, str]:
    """``{model: category}`` from the text of ``r50_categories.json``.

    Example:
        >>> parse_categories('{"baseline": ["tv_resnet50"], "stylized": ["a", "b"]}')
        {'tv_resnet50': 'baseline', 'a': 'stylized', 'b': 'stylized'}
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValidationError(f"{path}: expected {{category: [model, ...]}}")
    out: dict[str, str] = {}
    for category, models in data.items():
        for m in models:
            out[str(m)] = str(category)
    return out


def _cutoff_columns(raw: pd.DataFrame, kind: str) -> list[str]:
    want = {round(c, 6) for c in BIAS_CUTOFFS}
    prefix = f"metric/bandpass/{kind}/"
    return [
        c for c in raw.columns if c.startswith(prefix) and round(float(c[len(prefix) :]), 6) in want
    ]


def read_bvg(csv: Any, categories: Any | None = None) -> pd.DataFrame:
    """Seed 002's ``benchmark.csv`` as a canonical table (see the module docstring).

    Args:
        csv: path (or resource) of ``benchmark.csv`` (``.csv.gz`` is read too).
        categories: path (or resource) of ``r50_categories.json``; ``None``: every ``type``
            is ``None``.

    Returns:
        DataFrame: ``model``, ``source`` (``"bvg"``), ``type`` (the category), then one column
        per dataset and one per bias; ``attrs`` holds ``format``, ``path`` and ``unmapped``.

    Raises:
        ValidationError: the file lacks ``model`` or ``top1_acc/imagenet`` (the message names
            the expected columns), or an accuracy is not a percentage.
    """
    raw = read_format_csv(csv, "seed 002's raw-data/benchmark.csv", BVG_REQUIRED, _ALSO_EXPECTED)
    cats: dict[str, str] = {}
    if categories is not None:
        res = as_resource(categories)
        cats = parse_categories(res.read_text(encoding="utf-8"), categories)
    models = [str(m) for m in raw["model"]]
    values: dict[str, Any] = {}
    used: set[str] = {"model"}
    for column, name in BVG_COLUMNS.items():
        if column in raw.columns:
            values[name] = percent_to_fraction(raw[column], column, csv).to_numpy()
            used.add(column)
    per_corruption: dict[str, list[str]] = {"imagenet_c": [], "imagenet_cbar": []}
    for column in raw.columns:
        m = _CORRUPTION.match(column)
        if m is None:
            continue
        corruption, severity = m.groups()
        group = "imagenet_cbar" if corruption in CBAR_CORRUPTIONS else "imagenet_c"
        name = f"{group}/{corruption}/{severity}"
        values[name] = percent_to_fraction(raw[column], column, csv).to_numpy()
        per_corruption[group].append(name)
        used.add(column)
    for column, group in _MEANS.items():
        if column not in raw.columns:
            continue
        used.add(column)
        mean = percent_to_fraction(raw[column], column, csv).to_numpy()
        cols = per_corruption[group]
        has_parts = (
            np.isfinite(np.column_stack([values[c] for c in cols])).any(axis=1)
            if cols
            else np.zeros(len(models), bool)
        )
        if (~has_parts & np.isfinite(mean)).any():
            values[group] = np.where(has_parts, np.nan, mean)
    if "shape-bias" in raw.columns:
        values["biases.shape_bias"] = pd.to_numeric(raw["shape-bias"], errors="coerce")
        used.add("shape-bias")
    lfc, hfc = _cutoff_columns(raw, "LFC"), _cutoff_columns(raw, "HFC")
    if lfc and hfc:
        lpp = raw[lfc].apply(pd.to_numeric, errors="coerce").mean(axis=1)
        hpp = raw[hfc].apply(pd.to_numeric, errors="coerce").mean(axis=1)
        values["biases.low_freq_bias"] = lpp.to_numpy()
        values["biases.high_freq_bias"] = hpp.to_numpy()
        values["biases.spectral_bias"] = (hpp / (lpp + hpp)).to_numpy()
        used.update(lfc, hfc)
    for short, name in _CRITICAL_BAND.items():
        for suffix in ("", "_norm"):
            column = f"metric/criticalband/{short}{suffix}"
            if column in raw.columns:
                values[f"biases.{name}{suffix}"] = pd.to_numeric(raw[column], errors="coerce")
                used.add(column)
    frame = canonical_frame(models, "bvg", [cats.get(m) for m in models], {}, values)
    frame.attrs.update(
        format="bvg", path=str(csv), unmapped=[c for c in raw.columns if c not in used]
    )
    return frame
