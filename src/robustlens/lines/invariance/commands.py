"""``robustlens invariance``: effective invariance and label-free OOD-accuracy prediction.

Runs the study's models and datasets with the measures ``accuracy``, ``invariance`` and
``label_free`` (cached in the store: a second run computes nothing), then prints

1. the model-centric table: across models, Spearman and Pearson correlation of each label-free
   measure with true accuracy per shift family (corruptions averaged, v2, sketch, rendition);
2. the dataset-centric table for one model (``--model``, default: the best model on the ``id``
   set) across every shifted dataset;
3. the leave-one-model-out MAE of each label-free predictor of OOD accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from robustlens.console import fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.lines.invariance.analysis import (
    best_id_model,
    dataset_centric,
    model_centric,
    ood_predictor_mae,
)
from robustlens.lines.invariance.tables import (
    dataset_centric_table,
    lowest_mae,
    mae_table,
    model_centric_table,
)
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    run_study_command,
    study_path,
    write_csv_tables,
)
from robustlens.tables import Table

MEASURES = ["accuracy", "invariance", "label_free"]


def _show(out: Console, table: Table | None, empty: str) -> None:
    """Print ``table``, or the line ``empty`` when there is none."""
    out.print(table.to_rich() if table is not None else empty)


def invariance_cmd(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model for the dataset-centric table (default: best accuracy on the id set)."
        ),
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    csv: Annotated[
        Path | None,
        typer.Option(
            help="Directory to write model_centric.csv, dataset_centric.csv, ood_mae.csv."
        ),
    ] = None,
) -> None:
    """Effective invariance (rotation, grayscale) and label-free OOD-accuracy predictors."""
    try:
        result = run_study_command(study_path(study, config), store, measures=MEASURES)
        if result is None:
            return
        out = stdout_console()
        roles = result.dataset_roles  # as the study resolved them (roles set in the YAML included)
        df = result.results()
        mc = model_centric(df, roles=roles, alpha=alpha, n_boot=n_boot)
        _show(
            out,
            model_centric_table(mc, alpha=alpha),
            "model-centric: no shifted dataset with accuracy and predictors",
        )
        chosen = model or best_id_model(df, roles=roles)
        if chosen not in result.models:
            raise RobustlensError(
                f"--model {chosen!r} is not in the study; models: {', '.join(result.models)}"
            )
        dc = dataset_centric(df, chosen, roles=roles, alpha=alpha, n_boot=n_boot)
        _show(
            out,
            dataset_centric_table(dc, chosen),
            f"dataset-centric: no shifted datasets for {chosen}",
        )
        mae = ood_predictor_mae(df, roles=roles)
        _show(
            out,
            mae_table(mae),
            "OOD-accuracy predictors: not enough models for leave-one-model-out",
        )
        if not mae.empty:
            out.print(f"lowest MAE: {lowest_mae(mae)}")
        if csv is not None:
            write_csv_tables(
                csv,
                {
                    "model_centric.csv": (mc, False),
                    "dataset_centric.csv": (dc, False),
                    "ood_mae.csv": (mae, False),
                },
            )
    except RobustlensError as exc:
        fail(exc)
    exit_for(result)


def register(app: typer.Typer) -> None:
    """Add ``robustlens invariance`` to the CLI."""
    app.command("invariance")(invariance_cmd)
