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
* ``"spread"``: a generalization dimension still spans at least ten points of accuracy;
* ``"stated"``: nothing beyond the row's presence, with the reason the quick demo cannot show
  it (the check is recovered on the full demo).

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

#: check (its ``check`` name, else a prefix) -> (what must hold on the quick demo, why). These
#: are the checks the full demo recovers (its validity table, from an empty directory: value
#: and p in the comments, full demo / quick demo); the rest are in :data:`NOT_RECOVERED`.
EXPECTED: dict[str, tuple[str, str]] = {
    # seed 001: accuracy under the view and EI share the view's predictions
    # (+0.90 / +0.77, p < 0.001 / 0.001; +0.91 / +0.96)
    "EI rotation vs accuracy under rotation (model-centric)": ("significant", "same views"),
    "EI grayscale vs accuracy under grayscale (model-centric)": ("significant", "same views"),
    # seed 002: over the sweep, +0.82 (p 0.04, 7 models) / +0.78 (p 0.20): the quick zoo's
    # sweep has 5 models (3 bases, 2 levels), too few for p < 0.05 with the bases tied
    "shape bias vs texture randomisation (planted cause), one-factor sweep": (
        "sign",
        "5 models in the quick sweep",
    ),
    # the same decision count (-1.00 / -1.00)
    "shape bias vs texture reliance (same decisions)": ("significant", "same decision count"),
    "in distribution dimension spreads over the zoo": ("spread", "epochs and width vary"),
    "robustness dimension spreads over the zoo": ("spread", "corruption augmentation varies"),
    "concepts dimension spreads over the zoo": ("spread", "texture randomisation varies"),
    "adversarial dimension spreads over the zoo": ("spread", "architectures differ"),
    # seed 003: -0.84 / -0.86, p < 0.001 / < 0.001
    "spurious score vs measured mark reliance": ("significant", "mark reliance spreads"),
    # over the sweep, -0.96 (p 0.002, 7 models) / -0.89 (p 0.10, 5 models: too few)
    "spurious score vs mark rate (planted cause), one-factor sweep": (
        "sign",
        "5 models in the quick sweep",
    ),
    # seed 004: R² 0.95 / 0.94 (v2), 0.89 / 0.97 (natural), slope p < 0.001
    "baseline fit on world/v2": ("significant", "same distribution as val"),
    "baseline fit on world/natural": ("significant", "val-like images a reference misses"),
    # R² 0.53 (p 0.005) / 0.00 (p 0.94): the quick zoo's standard models, trained half as
    # long, are at chance on rendition (0.07-0.14 on 120 images), so there is no line to fit
    "baseline fit on world/rendition": ("stated", "at chance on the quick zoo"),
}
#: checks the full demo does not recover, with the evidence (full demo; the closing note and
#: the report's validity section say why); not asserted, so that this test fails when a
#: recovered check breaks, not because of a known failure
NOT_RECOVERED: dict[str, str] = {
    "vs corruption accuracy": "every clustering indicator: rho -0.55 to +0.15",
    "EI rotation vs OOD accuracy (model-centric)": "rho -0.22, p 0.34",
    "EI grayscale vs OOD accuracy (model-centric)": "rho +0.46, p 0.03 (|rho| < 0.7)",
    "EI rotation vs OOD accuracy (dataset-centric)": "median rho +0.24",
    "EI grayscale vs OOD accuracy (dataset-centric)": "median rho +0.18",
    "shape bias vs texture randomisation (planted cause)": "zoo-wide +0.59: ties cap 0.67",
    "spectral bias vs corruption augmentation": "-0.39 zoo-wide, -0.34 over the sweep",
    "critical-band peak noise sensitivity": "peak sensitivity 1.0 for every fitted model",
    "spurious score vs mark rate (planted cause)": "zoo-wide -0.51: ties cap 0.67",
    "no flagged component at mark rate 0": "17 of 18 models",
    "SpuFix lowers mark reliance on held-out images": "median change 0.000",
    "baseline fit on world/sketch": "R² 0.37",
    "ER of the generated-data models": "reported, no planted direction",
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
    if kind == "stated":  # recovered on the full demo; too small a test on the quick one
        return
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


def test_every_check_is_expected_or_listed_as_not_recovered(validity):
    keys = [*EXPECTED, *NOT_RECOVERED]
    unlisted = [c for c in validity["check"].astype(str) if not any(k in c for k in keys)]
    assert not unlisted, f"classify these checks in EXPECTED or NOT_RECOVERED: {unlisted}"
