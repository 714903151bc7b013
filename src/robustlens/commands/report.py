"""``robustlens report`` and ``robustlens export``: re-render the report and write the exports
of a study from its store and output directory, without running any model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustlens.errors import RobustlensError

ConfigArg = Annotated[Path | None, typer.Argument(help="Study YAML (default: the demo study).")]
StoreOpt = Annotated[Path | None, typer.Option(help="Override the store directory.")]


def _study_models(cfg) -> list[str] | None:
    from robustlens.plan import resolve_models

    try:
        return [m.name for m in resolve_models(cfg)]
    except RobustlensError:
        return None  # e.g. the zoo directory is gone: fall back to what the store holds


def register(app: typer.Typer) -> None:
    """Add ``robustlens report`` and ``robustlens export`` to the CLI."""

    @app.command("report")
    def report_cmd(
        config: ConfigArg = None,
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
        runs; run `robustlens study CONFIG` first)."""
        from robustlens.report import write_report
        from robustlens.runner import console, fail, load_study_config
        from robustlens.store import Store

        try:
            cfg = load_study_config(config, store=str(store) if store else None)
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
                from robustlens.report.browser import screenshot as shoot

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
        config: ConfigArg = None,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Directory (default: the study output).")
        ] = None,
        store: StoreOpt = None,
    ) -> None:
        """Write per-model results as CSV and Parquet (long and wide); per-sample outputs are
        already at OUTPUT/per_sample/<model>.parquet."""
        from robustlens.report import export_results
        from robustlens.runner import console, fail, load_study_config
        from robustlens.store import Store

        try:
            cfg = load_study_config(config, store=str(store) if store else None)
            st = Store(cfg.store)
            models = _study_models(cfg)
            if st.results(models=models).empty:
                raise RobustlensError(
                    f"store {st.root} holds no results for this study; run "
                    "`robustlens study CONFIG` first"
                )
            paths = export_results(st, out or Path(cfg.output), models=models)
            for p in paths.values():
                console.print(f"  {p}")
            ps = Path(cfg.output) / "per_sample"
            n = len(list(ps.glob("*.parquet"))) if ps.exists() else 0
            console.print(f"per-sample outputs: {n} files in {ps}")
        except RobustlensError as exc:
            fail(exc)
