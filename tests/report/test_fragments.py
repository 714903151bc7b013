"""The report's cache: every part of the page is drawn once per (code, inputs).

The store keeps fragments with their sha256 and refuses a changed one; a part is read back
while its code and inputs are unchanged, drawn again when either moves, never kept when it
reads a number that changes on every run; the report of a cached re-run draws nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

import robustlens.store as store_mod
from robustlens.config import parse_config
from robustlens.report import write_report
from robustlens.report.context import ReportContext, figure_html
from robustlens.report.fragments import FragmentCache, Part, code_digest
from robustlens.store import Store
from robustlens.study import run_study
from robustlens.tables import Table

CALLS: list[str] = []


def _ctx(tmp: Path, value: float = 0.5) -> ReportContext:
    results = pd.DataFrame(
        [
            ("m0", "world/val", "accuracy", "accuracy", value),
            ("m1", "world/val", "accuracy", "accuracy", 0.7),
        ],
        columns=["model", "dataset", "measure", "name", "value"],
    )
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    return ReportContext(
        results=results,
        artifacts={},
        output_dir=out,
        datasets={"world/val": {"role": "id", "tags": {}}},
        models={"m0": {}, "m1": {}},
        study={"name": "t", "stage_seconds": {"engine": time.time()}, "written": time.time()},
    )


def table_part(ctx: ReportContext) -> str:
    CALLS.append("table")
    return f"<p>{ctx.results['value'].sum():.3f} over {len(ctx.models)} models</p>"


def plot_part(ctx: ReportContext) -> str:
    CALLS.append("plot")
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot(ctx.results["value"].to_numpy())
    return figure_html(fig, "values")


def timing_part(ctx: ReportContext) -> str:
    CALLS.append("timing")
    return f"<p>{ctx.study.get('stage_seconds')}</p>"


def warning_part(ctx: ReportContext) -> str:
    CALLS.append("warning")
    warnings.warn("few models here", UserWarning, stacklevel=1)
    return "<p>warned</p>"


def empty_part(ctx: ReportContext) -> None:
    CALLS.append("empty")
    return None


PARTS = [
    Part("table", "Table", table_part),
    Part("plot", "Plot", plot_part),
    Part("empty", "Empty", empty_part),
]


def _draw(store: Store | None, ctx: ReportContext, parts=PARTS, parallel: bool = False):
    CALLS.clear()
    cache = FragmentCache(store, ctx, parallel=parallel)
    drawn = cache.draw_all(parts)
    return cache, drawn


def test_the_store_keeps_a_fragment_and_refuses_a_changed_one(tmp_path):
    store = Store(tmp_path / "store")
    assert store.get_fragment("k") is None
    store.put_fragment("k", "<p>ünïcode</p>")
    assert store.get_fragment("k") == "<p>ünïcode</p>"
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE fragments SET body=? WHERE key='k'", (b"<p>tampered</p>",))
    assert store.get_fragment("k") is None  # never served
    assert any("does not match its hash" in i for i in store.incidents)
    assert store.get_fragment("k") is None  # and forgotten
    readonly = Store(tmp_path / "store", readonly=True)
    readonly.put_fragment("r", "x")  # nothing is kept in a read-only store
    assert readonly.get_fragment("r") is None


def test_a_file_is_hashed_again_only_when_its_signature_moved(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    old = time.time() - 100
    os.utime(f, (old, old))
    hashed: list[str] = []
    real = store_mod.hashlib.file_digest

    def counting(fh, name):
        hashed.append(fh.name)
        return real(fh, name)

    monkeypatch.setattr(store_mod.hashlib, "file_digest", counting)
    first = store.file_digest(f)
    assert store.file_digest(f) == first and len(hashed) == 1  # the second from the record
    f.write_bytes(b"three")  # new size and time: hashed again
    assert store.file_digest(f) not in (first,) and len(hashed) == 2
    # just modified: the record is not trusted (another write may follow in the same tick)
    assert store.file_digest(f) and len(hashed) == 3


def test_a_part_is_read_back_until_its_inputs_change(tmp_path):
    store = Store(tmp_path / "store")
    ctx = _ctx(tmp_path)
    cache, first = _draw(store, ctx)
    assert (cache.drawn, cache.reused) == (3, 0) and sorted(CALLS) == ["empty", "plot", "table"]
    cache, again = _draw(store, ctx)
    assert (cache.drawn, cache.reused) == (0, 3) and CALLS == []
    assert [d.html for d in again] == [d.html for d in first]
    assert again[2].html is None  # "nothing to show" is kept too
    # new numbers: drawn again, with them
    ctx2 = _ctx(tmp_path, value=0.25)
    cache, changed = _draw(store, ctx2)
    assert cache.drawn == 3 and "0.950" in changed[0].html
    # a new file in the output directory (e.g. an artifact) is an input too
    (ctx.output_dir / "artifacts").mkdir()
    (ctx.output_dir / "artifacts" / "x.json").write_text("{}")
    assert _draw(store, ctx)[0].drawn == 3
    # the timings and the time of writing change on every run: they are not inputs
    ctx.study["stage_seconds"] = {"engine": 1.0}
    ctx.study["written"] = "later"
    assert _draw(store, ctx)[0].reused == 3


def test_a_part_is_drawn_again_when_its_code_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "fragpart"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("def render(ctx):\n    return '<p>v1</p>'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    module = importlib.import_module("fragpart")
    try:
        store, ctx = Store(tmp_path / "store"), _ctx(tmp_path)
        parts = [Part("p", "P", module.render)]
        assert _draw(store, ctx, parts)[1][0].html == "<p>v1</p>"
        assert _draw(store, ctx, parts)[0].reused == 1
        before = code_digest(module.render, store)
        (pkg / "__init__.py").write_text("def render(ctx):\n    return '<p>v2!</p>'\n")
        importlib.reload(module)
        assert code_digest(module.render, store) != before
        cache, drawn = _draw(store, ctx, [Part("p", "P", module.render)])
        assert cache.drawn == 1 and drawn[0].html == "<p>v2!</p>"
    finally:
        sys.modules.pop("fragpart", None)


def test_a_corrupted_fragment_is_refused_and_drawn_again(tmp_path):
    store, ctx = Store(tmp_path / "store"), _ctx(tmp_path)
    _, first = _draw(store, ctx)
    with sqlite3.connect(store.db_path) as con:
        con.execute('UPDATE fragments SET body=CAST(\'{"html": "<p>evil</p>"}\' AS BLOB)')
    cache, again = _draw(store, ctx)
    assert cache.drawn == 3 and "evil" not in "".join(d.html or "" for d in again)
    assert [d.html for d in again] == [d.html for d in first]
    assert len(store.incidents) == 3
    assert _draw(store, ctx)[0].reused == 3  # kept again, sound


def test_parts_that_cannot_be_kept_are_drawn_every_time(tmp_path):
    store, ctx = Store(tmp_path / "store"), _ctx(tmp_path)
    n = [0]

    def closure(ctx):  # its code is not all in a file: it may read anything
        n[0] += 1
        return f"<p>{n[0]}</p>"

    def failing(ctx):
        raise ValueError("boom")

    parts = [
        Part("timing", "Timing", timing_part),
        Part("closure", "Closure", closure),
        Part("failing", "Failing", failing),
    ]
    for _ in range(2):
        cache, drawn = _draw(store, ctx, parts)
        assert cache.drawn == 3 and sorted(CALLS) == ["timing"]
        assert drawn[2].error is not None and "boom" in drawn[2].error[0]
    assert n[0] == 2


def test_warnings_of_a_part_are_raised_again_when_it_is_reused(tmp_path):
    store, ctx = Store(tmp_path / "store"), _ctx(tmp_path)
    parts = [Part("w", "W", warning_part)]
    for expected_calls in (["warning"], []):
        with pytest.warns(UserWarning, match="few models here"):
            _draw(store, ctx, parts)
        assert expected_calls == CALLS


def test_missing_parts_are_drawn_in_worker_processes_alike(tmp_path):
    ctx = _ctx(tmp_path)
    _, serial = _draw(None, ctx)
    cache, forked = _draw(Store(tmp_path / "store"), ctx, parallel=True)
    assert cache.drawn == 3
    assert [d.html for d in forked] == [d.html for d in serial]


def test_a_table_reads_back_from_its_json_as_it_was_shown():
    table = Table(
        "Short",
        ["model", "n", "value", "flag"],
        [
            ["m0", 1200, 0.51234, True],
            ["m1", np.int64(3), np.float32(0.25), None],
            ["m2", 0, float("nan"), False],
            ["m3", np.float64(-1e-9), float("inf"), "+0.42* / +0.40"],
        ],
        digits={"value": 2},
        caption="a caption",
        first_column_bold=False,
    )
    back = Table.from_json(table.to_json())
    assert back.cells() == table.cells()
    assert back.cells()[1][1:3] == ["3.000", "0.25"]  # numpy numbers shown as before
    for field in ("title", "columns", "digits", "caption", "first_column_bold"):
        assert getattr(back, field) == getattr(table, field)
    assert back._numeric_columns() == table._numeric_columns()
    # a non-finite number of another type is kept as the text it is shown as
    odd = Table("Odd", ["v"], [[np.float32("nan")]])
    assert Table.from_json(odd.to_json()).cells() == odd.cells() == [["nan"]]


def summary_table(ctx: ReportContext) -> Table:
    CALLS.append("summary")
    rows = [[m, float(v)] for m, v in zip(ctx.results["model"], ctx.results["value"], strict=True)]
    return Table("Short", ["model", "value"], rows, caption=f"{len(rows)} models")


def no_summary(ctx: ReportContext) -> None:
    CALLS.append("none")
    return None


def failing_summary(ctx: ReportContext) -> Table:
    raise ValueError("no summary today")


def test_line_summaries_are_kept_like_parts_and_read_back(tmp_path, monkeypatch):
    from robustlens.report import page

    def with_store(ctx: ReportContext) -> ReportContext:
        ctx.study["store"] = str(tmp_path / "store")
        return ctx

    ctx = with_store(_ctx(tmp_path))
    monkeypatch.setattr(
        page, "lines", lambda: [SimpleNamespace(summaries=(summary_table, no_summary))]
    )
    CALLS.clear()
    first = page.line_summaries(ctx)
    assert CALLS == ["summary", "none"] and len(first) == 1
    assert first[0].cells() == [["m0", "0.500"], ["m1", "0.700"]]
    CALLS.clear()
    again = page.line_summaries(ctx)
    assert CALLS == []  # both read back, "nothing to show" too
    assert again[0].cells() == first[0].cells() and again[0].caption == "2 models"
    CALLS.clear()
    changed = page.line_summaries(with_store(_ctx(tmp_path, value=0.25)))
    assert CALLS == ["summary", "none"] and changed[0].cells()[0] == ["m0", "0.250"]
    CALLS.clear()
    assert page.line_summaries(ctx, cache=False)[0].cells() == first[0].cells()
    assert CALLS == ["summary", "none"]
    monkeypatch.setattr(page, "lines", lambda: [SimpleNamespace(summaries=(failing_summary,))])
    with pytest.raises(ValueError, match="no summary today"):
        page.line_summaries(ctx)


# ----------------------------------------------------------------------------- a real study
def test_the_report_of_a_cached_rerun_draws_nothing(
    tiny_world, tiny_zoo_dir, tmp_path, monkeypatch
):
    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    data = {
        "name": "cached report",
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": "all"}],
        "measures": ["accuracy"],
        "engine": {"num_workers": 0},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    cfg = parse_config(data)
    first_stats: dict[str, int] = {}
    page1 = write_report(run_study(cfg), strict=True, stats=first_stats).read_text()
    assert first_stats["drawn"] > 0 and first_stats["reused"] == 0
    exported = tmp_path / "out" / "results_long.csv"
    written = exported.stat().st_mtime_ns

    saved: list[Figure] = []
    real = Figure.savefig

    def counting(self, *args, **kwargs):
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", counting)
    stats: dict[str, int] = {}
    page2 = write_report(run_study(cfg), strict=True, stats=stats).read_text()
    assert stats == {"drawn": 0, "reused": first_stats["drawn"]}
    assert saved == []  # not one figure drawn
    assert exported.stat().st_mtime_ns == written  # the exports were left as they were
    # the sections are the same; the summary above them says what this run cost
    assert page2.split("<nav class='toc'>", 1)[1] == page1.split("<nav class='toc'>", 1)[1]


def test_exports_are_written_again_when_one_was_changed(tmp_path, monkeypatch):
    from robustlens.report import page

    calls: list[Path] = []
    real = page.export_results

    def counting(store, out_dir, models=None):
        calls.append(Path(out_dir))
        return real(store, out_dir, models)

    monkeypatch.setattr(page, "export_results", counting)
    store = Store(tmp_path / "store")
    rows = [
        {
            "model": m,
            "model_fp": m,
            "dataset": "world/val",
            "dataset_fp": "v",
            "measure": "accuracy",
            "name": "accuracy",
            "value": v,
        }
        for m, v in (("m0", 0.5), ("m1", 0.7))
    ]
    store.put_results(rows)
    out = tmp_path / "out"
    first = page._export(store, out, ["m0", "m1"], store)
    assert len(calls) == 1 and first["results_long.csv"].exists()
    assert page._export(store, out, ["m0", "m1"], store) == first and len(calls) == 1
    first["results_wide.csv"].write_text("changed by hand")
    page._export(store, out, ["m0", "m1"], store)
    assert len(calls) == 2 and "changed by hand" not in first["results_wide.csv"].read_text()
    store.put_results([{**rows[0], "value": 0.25}])  # new numbers: new files
    page._export(store, out, ["m0", "m1"], store)
    assert len(calls) == 3 and "0.25" in first["results_long.csv"].read_text()
