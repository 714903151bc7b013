"""``robustlens report`` and ``robustlens export``: re-render the report and write the exports
of a study from its store and output directory, without running any model.

Both read the study's saved plan (``plan.json`` in its output directory) for its models;
neither resolves the study file's models or datasets again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from robustlens.console import console, fail
from robustlens.errors import RobustlensError
from robustlens.runner import ConfigOpt, StoreOpt, StudyArg, load_study_config, study_path

if TYPE_CHECKING:
    from robustlens.config import StudyConfig


def _study_models(cfg: StudyConfig) -> list[str] | None:
    """The models the study ran (from its saved plan); ``None``: whatever the store holds."""
    from robustlens.study import read_plan  # lazy: the study imports torch (keeps --help fast)

    plan = read_plan(cfg.output)
    return list(plan["models"]) if plan and plan.get("models") is not None else None


def register(app: typer.Typer) -> None:
    """Add ``robustlens report`` and ``robustlens export`` to the CLI."""

    @app.command("report")
    def report_cmd(
        study: StudyArg = None,
        config: ConfigOpt = None,
        out: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="HTML file (default: OUTPUT/report.html)."),
        ] = None,
        store: StoreOpt = None,
        screenshot: Annotated[
            Path | None,
            typer.Option(help="Also open the report in headless Chromium and save a PNG here."),
        ] = None,
    ) -> None:
        """Re-render the HTML report of a study from its store and output directory (no model
        runs; run `robustlens study STUDY` first)."""
        # lazy: the report and the store import matplotlib and pandas (keeps --help fast)
        from robustlens.report import write_report
        from robustlens.report.browser import screenshot as shoot  # lazy: see above
        from robustlens.store import Store  # lazy: see above

        try:
            path = study_path(study, config)
            cfg = load_study_config(path, store=str(store) if store else None)
            path = write_report(
                Path(cfg.output),
                out,
                store=Store(cfg.store),
                config=cfg,
                models=_study_models(cfg),
                strict=True,
            )
            console.print(f"[bold green]report:[/] {path}")
            if screenshot is not None:
                try:
                    info = shoot(path, screenshot)
                except FileNotFoundError as exc:
                    raise RobustlensError(str(exc)) from None
                console.print(
                    f"screenshot: {info['png']} ({info['plots']}/{info['plots_total']} plots "
                    f"rendered, {len(info['errors'])} script errors)"
                )
        except RobustlensError as exc:
            fail(exc)

    @app.command("export")
    def export_cmd(
        study: StudyArg = None,
        config: ConfigOpt = None,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Directory (default: the study output).")
        ] = None,
        store: StoreOpt = None,
    ) -> None:
        """Write per-model results as CSV and Parquet (long and wide); per-sample outputs are
        already at OUTPUT/per_sample/<model>.parquet."""
        # lazy: the report and the study import pandas and torch (keeps --help fast)
        from robustlens.report import export_results
        from robustlens.study import read_plan, study_store  # lazy: see above

        try:
            path = study_path(study, config)
            cfg = load_study_config(path, store=str(store) if store else None)
            st = study_store(cfg.store, read_plan(cfg.output))
            models = _study_models(cfg)
            if st.results(models=models).empty:
                raise RobustlensError(
                    f"store {st.root} holds no results for this study; run "
                    "`robustlens study STUDY` first"
                )
            paths = export_results(st, out or Path(cfg.output), models=models)
            for p in paths.values():
                console.print(f"  {p}")
            ps = Path(cfg.output) / "per_sample"
            n = len(list(ps.glob("*.parquet"))) if ps.exists() else 0
            console.print(f"per-sample outputs: {n} files in {ps}")
        except RobustlensError as exc:
            fail(exc)
