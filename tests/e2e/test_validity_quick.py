"""End to end: the validity table of the quick demo (slow: minutes).

Uses the quick demo's output when ``ROBUSTLENS_QUICK_DEMO_DIR`` names a finished quick-demo
work directory (e.g. the one ``test_demo_quick.py`` ran in), else runs ``robustlens demo
--quick`` itself. The table is read from the export ``report/validity.csv`` (written when the
demo runs the ``ground_truth`` measure), else computed from the study's output directory.

What is asserted, per check (:data:`EXPECTED`):

* ``"significant"``: the check keeps its expected sign and ``p < 0.05`` on the quick demo
  (for a baseline fit: the slope's p); these are the checks that pass on the full demo and
  whose planted effect is large enough to stay significant with the quick zoo;
* ``"sign"``: only the expected sign, with the reason the quick demo is too small for
  significance there;
* ``"spread"``: a generalization dimension still spans at least ten points of accuracy.

When the world or the zoo changes which checks pass, move the check between :data:`EXPECTED`
and :data:`NOT_RECOVERED`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.lines.validity.tables import validity_of
from robustlens.report.page import build_report_context

pytestmark = pytest.mark.slow

#: check (prefix of the ``check`` column) -> (what must hold on the quick demo, why). These are
#: the checks the quick demo of the current world passes (its validity table, computed from a
#: quick-demo store: rho and p in the comments); the rest are in :data:`NOT_RECOVERED`.
EXPECTED: dict[str, tuple[str, str]] = {
    # seed 001: accuracy under the view and EI share the view's predictions (+0.84, +0.98)
    "EI rotation vs accuracy under rotation (model-centric)": ("significant", "same views"),
    "EI grayscale vs accuracy under grayscale (model-centric)": ("significant", "same views"),
    # dataset-centric: 40+ test sets per model (gray +0.28, p 0.001; rotation +0.30, p 0.04,
    # too close to 0.05 to require significance on a re-trained zoo)
    "EI grayscale vs OOD accuracy (dataset-centric)": ("significant", "many test sets per model"),
    "EI rotation vs OOD accuracy (dataset-centric)": ("sign", "p near 0.05 on the quick zoo"),
    # seed 002: texture randomisation changes the cue-conflict decisions (+0.58, p 0.007; the
    # cause takes 3 values, which caps |rho| below the 0.7 of "recovered"); texture reliance is
    # the same decision count (-1.00)
    "shape bias vs texture randomisation (planted cause)": ("significant", "large effect"),
    "shape bias vs texture reliance (same decisions)": ("significant", "same decision count"),
    # corruption augmentation lowers spectral bias (-0.59, p 0.006)
    "spectral bias vs corruption augmentation": ("significant", "noise augmentation"),
    # seed 004: v2 is a fresh sample of the training distribution (R² 0.997)
    "baseline fit on world/v2": ("significant", "same distribution as val"),
    "in distribution dimension spreads over the zoo": ("spread", "epochs and width vary"),
    "robustness dimension spreads over the zoo": ("spread", "augmentations vary"),
    "adversarial dimension spreads over the zoo": ("spread", "architectures differ"),
}
#: checks the current world does not pass, with the evidence (quick demo); not asserted, so
#: that this test fails when a passing check breaks, not because of a known failure
NOT_RECOVERED: dict[str, str] = {
    "spurious score vs measured mark reliance": "rho -0.07, p 0.77: the score misses the mark",
    "spurious score vs mark rate (planted cause)": "rho +0.02, p 0.92",
    "SpuFix lowers mark reliance on held-out images": "median change 0.000, p 0.16",
    "vs corruption accuracy": "every clustering indicator: rho -0.02 to +0.24, p >= 0.32",
    "EI rotation vs OOD accuracy (model-centric)": "rho +0.06, p 0.80",
    "EI grayscale vs OOD accuracy (model-centric)": "rho -0.36, p 0.11 (wrong sign)",
    "critical-band peak noise sensitivity": "no model of the zoo has a critical-band fit",
    "concepts dimension spreads over the zoo": "range 0.087: sketch/rendition near chance",
    "baseline fit on world/sketch": "R² 0.45",
    "baseline fit on world/rendition": "R² 0.20",
    "baseline fit on world/natural": "R² 0.09",
}
_SIGN = {"rho > 0": 1, "rho < 0": -1, "median rho > 0": 1}
_MIN_SPREAD = 0.10


def _finished(workdir: Path) -> bool:
    return (workdir / "report" / "plan.json").exists()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> Path:
    given = os.environ.get("ROBUSTLENS_QUICK_DEMO_DIR")
    if given and _finished(Path(given)):
        return Path(given)
    workdir = tmp_path_factory.mktemp("quick-demo")
    res = CliRunner().invoke(app, ["demo", "--workdir", str(workdir), "--quick"])
    assert res.exit_code == 0, res.output
    return workdir


@pytest.fixture(scope="module")
def validity(quick_demo: Path) -> pd.DataFrame:
    exported = quick_demo / "report" / "validity.csv"
    if exported.exists():
        return pd.read_csv(exported, dtype={"seed": str}, keep_default_na=False, na_values=[""])
    ctx = build_report_context(quick_demo / "report")
    frame = validity_of(ctx)
    assert frame is not None, "the quick demo has neither planted causes nor ground truth"
    return frame


def _row(frame: pd.DataFrame, check: str) -> pd.Series:
    checks = frame["check"].astype(str)
    rows = frame[checks == check]
    if rows.empty:
        rows = frame[checks.str.startswith(check)]
    assert len(rows) == 1, f"check {check!r}: {len(rows)} rows in {frame['check'].tolist()}"
    return rows.iloc[0]


def test_every_line_has_checks_in_the_quick_demo(validity):
    assert {"000", "001", "002", "003", "004"} <= set(validity["seed"].astype(str).str.zfill(3))


@pytest.mark.parametrize("check", sorted(EXPECTED))
def test_quick_demo_keeps_sign_and_significance(validity, check):
    kind, why = EXPECTED[check]
    row = _row(validity, check)
    value, p = float(row["value"]), float(row["p_value"])
    assert math.isfinite(value), f"{check}: no value ({row['note']})"
    if kind == "spread":
        assert row["recovered"] == "yes", f"{check}: {row['note']} ({why})"
        return
    if row["statistic"] == "R²":  # a baseline: its slope must be significant
        assert p < 0.05, f"{check}: R² {value:.2f}, slope p {p:.3f} ({why})"
        return
    sign = _SIGN[str(row["expected"])]
    assert value * sign > 0, f"{check}: {value:+.2f} has the wrong sign ({why})"
    if kind == "significant":
        assert p < 0.05, f"{check}: {value:+.2f}, p = {p:.3f} ({why})"
