"""RobustBench's ImageNet leaderboards (Croce et al., NeurIPS 2021 D&B) in canonical form.

Reads ``model_info/imagenet/<threat>/<Name>.json`` (one file per leaderboard entry; numbers
as percentage strings such as ``"64.02"``) and, for the corruptions leaderboard,
``unaggregated_results.csv`` (accuracy per corruption and severity, as fractions). Reference:
F. Croce, M. Andriushchenko, V. Sehwag, E. Debenedetti, N. Flammarion, M. Chiang, P. Mittal,
M. Hein, "RobustBench: a standardized adversarial robustness benchmark", NeurIPS 2021
Datasets and Benchmarks (``github.com/RobustBench/robustbench``).

One row per leaderboard entry: ``model`` is the entry's name (the file's stem), ``type`` and
``threat`` its leaderboard (``Linf``, ``corruptions``; a model listed on two leaderboards,
such as ``Standard_R50``, has a row on each, told apart by ``threat``). Metadata columns:
``threat``, ``eps`` (the radius in pixel units of [0, 1], e.g. 4/255; NaN for corruptions),
``architecture``, ``additional_data``, ``paper``, ``venue``, ``link``,
``number_forward_passes``, ``unreliable``. Values (fractions in [0, 1]):

=========================  =====================================================================
published key              canonical column
=========================  =====================================================================
``clean_acc``              ``imagenet_val`` (RobustBench evaluates 5000 validation images)
``autoattack_acc``         ``imagenet_val|autoattack_accuracy``: AutoAttack (standard version)
                           at the entry's ``threat`` and ``eps``
``corruptions_acc``        ``imagenet_c`` (mean over 15 corruptions x 5 severities), carried
                           only for an entry without per-corruption values in
                           ``unaggregated_results.csv``; otherwise ``imagenet_c/<c>/<s>``
``corruptions_acc_3d``     ``imagenet_3dcc`` (mean over ImageNet-3DCC)
=========================  =====================================================================
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError
from robustlens.published._common import as_resource, canonical_frame, read_csv_text

__all__ = ["ROBUSTBENCH_KEYS", "parse_eps", "read_robustbench"]

#: keys every entry has (the ones robustlens reads are described in the module docstring)
ROBUSTBENCH_KEYS = (
    "clean_acc",
    "autoattack_acc",
    "eps",
    "architecture",
    "additional_data",
    "dataset",
    "name",
    "venue",
)
_EXPECTED = (
    "a folder of RobustBench model_info/imagenet/<threat>/<Name>.json files (a RobustBench "
    "checkout, its model_info or model_info/imagenet folder, or one <threat> folder), each "
    f"with the keys {', '.join(ROBUSTBENCH_KEYS)} (percentages as strings)"
)
#: every key robustlens reads or knows to leave alone (the others are listed as unmapped)
_READ = frozenset(ROBUSTBENCH_KEYS).union(
    ("corruptions_acc", "corruptions_acc_3d", "link", "number_forward_passes", "unreliable")
)
_UNAGGREGATED = "unaggregated_results.csv"


def parse_eps(eps: Any) -> float:
    """A RobustBench ``eps`` (``"4/255"``, ``"0.5"``, a number or ``None``) as a float.

    Example:
        >>> round(parse_eps("4/255") * 255, 6), parse_eps(None)
        (4.0, nan)
    """
    if eps is None or (isinstance(eps, str) and not eps.strip()):
        return float("nan")
    try:
        return float(Fraction(str(eps).strip())) if isinstance(eps, str) else float(eps)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValidationError(f"RobustBench eps: expected a number or 'a/b', got {eps!r}") from exc


def _percent(value: Any, key: str, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return float("nan")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{where}: {key} should be a percentage, got {value!r}") from exc
    if not 0.0 <= v <= 100.0:
        raise ValidationError(f"{where}: {key} should be a percentage in [0, 100], got {v}")
    return v / 100.0


def _json_files(folder: Any) -> list[Any]:
    return sorted(
        (f for f in folder.iterdir() if f.is_file() and str(f.name).endswith(".json")),
        key=lambda f: str(f.name),
    )


def _threat_folders(root: Any) -> list[Any]:
    """The ``<threat>`` folders under a checkout, ``model_info``, ``model_info/imagenet``, or
    ``root`` itself when it holds the JSON files."""
    for parts in (("model_info", "imagenet"), ("imagenet",), ()):
        folder = root
        for p in parts:
            folder = folder.joinpath(p)
        if not folder.is_dir():
            continue
        subs = sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: str(d.name))
        found = [d for d in subs if _json_files(d)]
        if found:
            return found
    return [root] if root.is_dir() and _json_files(root) else []


def _unaggregated(folder: Any) -> dict[str, dict[str, float]]:
    """``{model: {"imagenet_c/<c>/<s>": accuracy}}`` from ``unaggregated_results.csv``."""
    f = folder.joinpath(_UNAGGREGATED)
    if not f.is_file():
        return {}
    table = pd.read_csv(io.StringIO(read_csv_text(f)), header=[0, 1], index_col=0)
    out: dict[str, dict[str, float]] = {}
    for model, row in table.iterrows():
        out[str(model)] = {
            f"imagenet_c/{c}/{s}": float(v) for (c, s), v in row.items() if np.isfinite(v)
        }
    return out


def read_robustbench(folder: Any) -> pd.DataFrame:
    """RobustBench's ImageNet ``model_info`` entries as a canonical table (module docstring).

    Args:
        folder: a RobustBench checkout, its ``model_info`` or ``model_info/imagenet`` folder, or
            one ``<threat>`` folder (path or resource).

    Returns:
        DataFrame: ``model``, ``source`` (``"robustbench"``), ``type`` (the leaderboard), the
        metadata columns, then the accuracies; ``attrs`` holds ``format``, ``path`` and
        ``unmapped`` (keys not carried).

    Raises:
        ValidationError: no entry found, an entry that is not an ImageNet entry or lacks
            ``clean_acc`` (the message names the expected layout and keys), or a number that
            is not a percentage.
    """
    root = as_resource(folder)
    threats = _threat_folders(root) if root.is_dir() else []
    if not threats:
        raise ValidationError(f"{folder}: not RobustBench's model_info: expected {_EXPECTED}")
    models, types, rows, values = [], [], [], []
    unmapped: set[str] = set()
    for threat_dir in threats:
        threat = str(threat_dir.name)
        per_corruption = _unaggregated(threat_dir)
        for f in _json_files(threat_dir):
            where = f"{folder}/{threat}/{f.name}"
            try:
                entry = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{where}: not JSON ({exc})") from exc
            if not isinstance(entry, dict) or "clean_acc" not in entry:
                found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise ValidationError(
                    f"{where}: not a RobustBench entry: expected {_EXPECTED}; found: {found}"
                )
            if entry.get("dataset", "imagenet") != "imagenet":
                raise ValidationError(
                    f"{where}: a RobustBench entry for {entry.get('dataset')!r}; robustlens "
                    "reads the ImageNet leaderboards (model_info/imagenet)"
                )
            name = str(f.name)[: -len(".json")]
            unmapped.update(k for k in entry if k not in _READ)
            v: dict[str, float] = {"imagenet_val": _percent(entry["clean_acc"], "clean_acc", where)}
            if "autoattack_acc" in entry:
                v["imagenet_val|autoattack_accuracy"] = _percent(
                    entry["autoattack_acc"], "autoattack_acc", where
                )
            if name in per_corruption:
                v.update(per_corruption[name])
            elif "corruptions_acc" in entry:
                v["imagenet_c"] = _percent(entry["corruptions_acc"], "corruptions_acc", where)
            if "corruptions_acc_3d" in entry:
                v["imagenet_3dcc"] = _percent(
                    entry["corruptions_acc_3d"], "corruptions_acc_3d", where
                )
            models.append(name)
            types.append(threat)
            rows.append(
                {
                    "threat": threat,
                    "eps": parse_eps(entry.get("eps")),
                    "architecture": entry.get("architecture"),
                    "additional_data": bool(entry.get("additional_data", False)),
                    "paper": entry.get("name"),
                    "venue": entry.get("venue"),
                    "link": entry.get("link"),
                    "number_forward_passes": entry.get("number_forward_passes"),
                    "unreliable": entry.get("unreliable"),
                }
            )
            values.append(v)
    columns = sorted({k for v in values for k in v})
    frame = canonical_frame(
        models,
        "robustbench",
        types,
        {k: [r[k] for r in rows] for k in rows[0]},
        {c: [v.get(c, np.nan) for v in values] for c in columns},
    )
    frame.attrs.update(format="robustbench", path=str(folder), unmapped=sorted(unmapped))
    return frame
