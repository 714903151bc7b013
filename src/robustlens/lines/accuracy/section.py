"""The accuracy line's report section: ImageNet-C's mCE and relative mCE per model."""

from __future__ import annotations

from robustlens.analysis.corruption_error import corruption_errors_by_group, mce_table
from robustlens.formatting import esc
from robustlens.report.context import ReportContext

__all__ = ["render_corruption_error"]


def render_corruption_error(ctx: ReportContext) -> str | None:
    """mCE tables of every corrupted set, or a note naming what a set lacks."""
    groups = corruption_errors_by_group(ctx.results, ctx.datasets)
    if not groups:
        return None
    protocol = (ctx.study.get("protocols") or {}).get("accuracy") or {}
    baseline = (protocol.get("parameters") or {}).get("mce_baseline")
    parts = []
    for group in groups:
        table, note = mce_table(group, baseline)
        parts.append(table.to_html() if table is not None else f"<p class='note'>{esc(note)}</p>")
    return "".join(parts)
