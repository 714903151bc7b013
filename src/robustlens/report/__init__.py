"""The study report (one static HTML file) and the CSV/Parquet exports.

``write_report(result_or_dir)`` renders the page from the store, the artifacts and the
per-sample files of a study; it never runs a model. ``export_results(store, out_dir)``
writes the per-model results as CSV and Parquet; ``read_per_sample(out_dir, model)`` reads
the per-sample outputs back.

The names are loaded on first use (PEP 562): ``robustlens.report.page`` imports the page's
own sections and every research line, which a line that only needs
``robustlens.report.context`` (imported by its section at registration) must not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustlens.report.context import ReportContext, figure_html
    from robustlens.report.exports import (
        export_results,
        iter_per_sample,
        read_per_sample,
        wide_table,
    )
    from robustlens.report.page import (
        build_report_context,
        render_report,
        report_sections,
        write_report,
    )

__all__ = [
    "ReportContext",
    "build_report_context",
    "export_results",
    "figure_html",
    "iter_per_sample",
    "read_per_sample",
    "render_report",
    "report_sections",
    "wide_table",
    "write_report",
]

# public name -> the submodule that defines it
_SOURCES = {
    "ReportContext": "context",
    "figure_html": "context",
    "export_results": "exports",
    "iter_per_sample": "exports",
    "read_per_sample": "exports",
    "wide_table": "exports",
    "build_report_context": "page",
    "render_report": "page",
    "report_sections": "page",
    "write_report": "page",
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
