"""One table, two renderers: the report section and ``robustlens spurious`` show the same
cells; the section reads files only (no datasets, no store)."""

from __future__ import annotations

import ast
import inspect
import io

import numpy as np
import pandas as pd
from rich.console import Console

import robustlens.lines.spurious.section as section_module
from robustlens.formatting import esc
from robustlens.lines.spurious.analysis import (
    score_vs_ground_truth,
    spufix_effect,
    spurious_table,
)
from robustlens.lines.spurious.commands import print_spurious
from robustlens.lines.spurious.section import spurious_section
from robustlens.lines.spurious.tables import correlation_table, model_table, spufix_table
from robustlens.report.context import ReportContext

COLUMNS = ["model", "dataset", "measure", "name", "value"]


def _results() -> pd.DataFrame:
    rows = []
    for i, (rate, score) in enumerate([(0.0, 0.97), (0.4, 0.9), (0.8, 0.71), (1.0, 0.52)]):
        vals = {
            "spurious_score": score,
            "spurious_reliance": 1 - score,
            "spurious_trigger_rate": 0.1 * i,
            "n_flagged": float(i),
            "n_classes_flagged": float(min(i, 2)),
            "spufix_id_accuracy_before": 0.9,
            "spufix_id_accuracy_after": 0.9 - 0.01 * i,
            "spufix_spurious_trigger_before": 0.1 * i,
            "spufix_spurious_trigger_after": 0.05 * i,
            "spufix_spurious_score_after": score + 0.02,
        }
        rows.append((f"m{i}", "*", "spurious", "train_mark_rate", rate))
        rows += [(f"m{i}", "world/spurious", "spurious", k, v) for k, v in vals.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_the_section_and_the_command_show_the_same_cells(tmp_path):
    results = _results()
    html = spurious_section(ReportContext(results, {}, tmp_path))
    assert html is not None
    rec = Console(record=True, width=250, file=io.StringIO())
    assert print_spurious(results, rec, n_boot=50) == "m3"
    text = " ".join(rec.export_text().split())  # titles and captions wrap
    corr = score_vs_ground_truth(results, n_boot=50)
    shared = [model_table(spurious_table(results)), correlation_table(corr)]
    for table in shared:
        assert esc(table.title) in html
        assert table.title in text
        for row in table.cells():
            assert f"<td class='num'>{esc(row[1])}</td>" in html
            for cell in row:
                assert cell in text
                assert esc(cell) in html
    flagged = model_table(spurious_table(results)).cells()
    assert [r[-2] for r in flagged] == ["3", "2", "1", "0"]  # counts without decimals
    assert spufix_table(spufix_effect(results)).title in html


def test_tables_keep_the_analysis_numbers():
    results = _results()
    wide = spurious_table(results)
    frame = model_table(wide).to_frame().set_index("model")
    np.testing.assert_allclose(frame["score"].astype(float), wide["spurious_score"])
    eff = spufix_effect(results)
    fix = spufix_table(eff).to_frame().set_index("model")
    np.testing.assert_allclose(fix["clean acc change"].astype(float), eff["id_acc_change"])


def test_the_section_module_opens_no_dataset_and_no_store():
    tree = ast.parse(inspect.getsource(section_module))
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not {
        m
        for m in imported
        if m and m.split(".")[:2] in (["robustlens", "plan"], ["robustlens", "store"])
    }
    assert "robustlens.lines.spurious.grids" not in imported
    assert "resolve_datasets" not in inspect.getsource(section_module)
