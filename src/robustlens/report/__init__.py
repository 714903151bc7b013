"""The study report (one static HTML file) and the CSV/Parquet exports.

``write_report(result_or_dir)`` renders the page from the store, the artifacts and the
per-sample files of a study; it never runs a model. ``export_results(store, out_dir)``
writes the per-model results as CSV and Parquet; ``read_per_sample(out_dir, model)`` reads
the per-sample outputs back.
"""

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
