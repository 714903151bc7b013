"""``robustlens biases``: seed 002's bias table, generalization table and Spearman matrix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from robustlens.analysis.generalization import (
    bias_generalization_matrix,
    bias_table,
    generalization_table,
)
from robustlens.console import console, fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.lines.biases.tables import (
    BIAS_COLUMNS,
    augment,
    bias_models_table,
    correlation_matrix_table,
    critical_band_failures,
    generalization_dimensions_table,
    missing_rows,
    shape_bias_comparison,
)
from robustlens.roles import dataset_roles
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    load_study_config,
    print_faults,
    study_path,
    write_csv_tables,
)
from robustlens.study import run_study

__all__ = ["print_bias_report", "register"]


def print_bias_report(
    results: pd.DataFrame,
    roles: Mapping[str, Any],
    augments: Mapping[str, str] | None = None,
    artifacts: Mapping[str, Mapping[str, Any]] | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    out: Console | None = None,
) -> dict[str, pd.DataFrame]:
    """Print the bias table, the generalization table and the bias x dimension matrix.

    The generalization table's caption names the components each dimension lacks (seed 002's
    dimensions are computed from the datasets present; see
    :func:`robustlens.analysis.generalization.dimensions`).

    Args:
        results: the study's long results frame.
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`).
        augments: ``{model: training augmentation}``; texture-randomized rows are magenta.
        artifacts: ``{model: {measure: artifacts}}``, for the failed critical-band fits.
        alpha: significance level of the matrix.
        n_boot: bootstrap resamples for the confidence intervals.
        out: where to print (default: standard output).

    Returns:
        The three tables (``biases``, ``generalization``, ``matrix``) for reuse.
    """
    out = out or stdout_console()
    augments = augments or {}
    bt = bias_table(results, BIAS_COLUMNS)
    gt = generalization_table(results, roles)
    mt = bias_generalization_matrix(results, roles, alpha=alpha, n_boot=n_boot)

    table = bias_models_table(bt, augments).to_rich()
    for row, model in zip(table.rows, bt.index, strict=True):
        if augments.get(str(model)) == "texrand":
            row.style = "magenta"
    out.print(table)
    if augments and bt["shape_bias"].notna().any():
        out.print(f"shape bias: {shape_bias_comparison(bt['shape_bias'], augments)}")
    failures = critical_band_failures(artifacts or {})
    if failures:
        out.print(f"critical-band fit failed for {len(failures)} model/dataset pair(s):")
        for model, ds, reason in failures[:10]:
            out.print(f"  {model} on {ds}: {reason}")
    out.print(generalization_dimensions_table(gt).to_rich())
    out.print(correlation_matrix_table(mt, alpha).to_rich())
    return {"biases": bt, "generalization": gt, "matrix": mt}


def register(app: typer.Typer) -> None:
    """Add ``robustlens biases`` to the CLI."""

    @app.command("biases")
    def biases_cmd(
        study: StudyArg = None,
        config: ConfigOpt = None,
        store: StoreOpt = None,
        alpha: Annotated[float, typer.Option(help="Significance level of the matrix.")] = 0.05,
        n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
        csv: Annotated[
            Path | None,
            typer.Option(
                help="Also write the three tables (and the dimensions' missing components) "
                "as CSV into this folder."
            ),
        ] = None,
    ) -> None:
        """Shape, spectral and critical-band biases, PGD, and their correlation with the four
        generalization dimensions (seed 002). Runs the ``accuracy`` and ``biases`` measures
        (cached in the store: a second run is instant)."""
        try:
            cfg = load_study_config(
                study_path(study, config),
                store=str(store) if store else None,
                measures=["accuracy", "biases"],
            )
            result = run_study(cfg, progress=True, log=lambda s: console.print(f"  {s}"))
            print_faults(result)
            tables = print_bias_report(
                result.store.results(models=result.models, datasets=result.datasets),
                dataset_roles(result.datasets, result.dataset_roles),
                {m: augment(c) for m, c in result.model_configs.items()},
                result.artifacts,
                alpha,
                n_boot,
            )
            if csv is not None:
                write_csv_tables(
                    csv,
                    {
                        "biases.csv": (tables["biases"], True),
                        "generalization.csv": (tables["generalization"], True),
                        "generalization_missing.csv": (
                            missing_rows(tables["generalization"]),
                            False,
                        ),
                        "bias_generalization.csv": (tables["matrix"], False),
                    },
                )
        except RobustlensError as exc:
            fail(exc)
        exit_for(result)
