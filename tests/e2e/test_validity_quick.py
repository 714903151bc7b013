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

When the full demo's closing table changes which checks pass, update :data:`EXPECTED` with it.
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

#: check (prefix of the ``check`` column) -> (what must hold on the quick demo, why)
EXPECTED: dict[str, tuple[str, str]] = {
    # seed 003: the mark is stamped on every training image at rates 0..1; the effect on the
    # spurious split is large even after half the epochs
    "spurious score vs measured mark reliance": ("significant", "large planted effect"),
    "spurious score vs mark rate (planted cause)": ("significant", "large planted effect"),
    # seed 002: texture randomisation changes the cue-conflict decisions of every model
    "shape bias vs texture randomisation (planted cause)": ("significant", "large effect"),
    "shape bias vs texture reliance (same decisions)": ("significant", "same decision count"),
    # seed 001: accuracy under the view and EI share the view's predictions
    "EI rotation vs accuracy under rotation (model-centric)": ("significant", "same views"),
    "EI grayscale vs accuracy under grayscale (model-centric)": ("significant", "same views"),
    # dataset-centric: 40+ test sets per model, so each model's rho is well determined
    "EI rotation vs OOD accuracy (dataset-centric)": ("significant", "many test sets per model"),
    "EI grayscale vs OOD accuracy (dataset-centric)": ("significant", "many test sets per model"),
    # model-centric OOD and the clustering indicators: differences between models are a few
    # points of accuracy on the quick demo's 15 images per class and half the epochs, so the
    # rank correlation over ~20 models is too noisy for p < 0.05 there; the sign must hold
    "EI rotation vs OOD accuracy (model-centric)": ("sign", "small model differences"),
    "EI grayscale vs OOD accuracy (model-centric)": ("sign", "small model differences"),
    "silhouette vs corruption accuracy": ("sign", "small model differences"),
    "calinski_harabasz vs corruption accuracy": ("sign", "small model differences"),
    "davies_bouldin vs corruption accuracy": ("sign", "small model differences"),
    # corruption augmentation is one recipe in four; with 3 severities and half the epochs
    # the spectral and critical-band differences are within noise on the quick demo
    "spectral bias vs corruption augmentation": ("sign", "few augmented models, short training"),
    # the critical band is fitted for few quick models (low-contrast gray stimulus)
    "critical-band peak noise sensitivity vs corruption augmentation": (
        "sign",
        "few models with a critical-band fit on the quick demo",
    ),
    # seed 004: v2 is a fresh sample of the training distribution, so its line fits well
    "baseline fit on world/v2": ("significant", "same distribution as val"),
    "in distribution dimension spreads over the zoo": ("spread", "epochs and width vary"),
    "robustness dimension spreads over the zoo": ("spread", "augmentations vary"),
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
    rows = frame[frame["check"].astype(str).str.startswith(check)]
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
