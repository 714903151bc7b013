"""``robustlens clustering``: clustering indicators of clean features vs robustness.

Runs the study's models with the measures ``accuracy`` and ``clustering`` (cached in the
store; the indicators are computed from stored features, with no extra forward pass), then
prints the indicators per model next to their accuracies, the correlation of each indicator
with mean corruption accuracy and sketch / rendition accuracy across models, and the strongest
label-free indicator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustlens.console import fail, stdout_console
from robustlens.errors import RobustlensError, ValidationError
from robustlens.lines.clustering.analysis import (
    CORRUPT_MEAN,
    indicator_correlations,
    indicator_table,
    strongest_label_free_indicator,
)
from robustlens.lines.clustering.tables import (
    correlations_table,
    indicators_table,
    strongest_detail,
)
from robustlens.roles import dataset_roles
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    run_study_command,
    study_path,
    write_csv_tables,
)

MEASURES = ["accuracy", "clustering"]


def clustering_cmd(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    method: Annotated[str, typer.Option(help="spearman, pearson or kendall.")] = "spearman",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    csv: Annotated[
        Path | None,
        typer.Option(help="Directory to write indicators.csv and indicator_correlations.csv."),
    ] = None,
) -> None:
    """Clustering indicators (silhouette, Davies-Bouldin, NMI ...) vs corruption accuracy."""
    try:
        result = run_study_command(study_path(study, config), store, measures=MEASURES)
        if result is None:
            return
        out = stdout_console()
        roles = dataset_roles(result.datasets, result.dataset_roles)
        df = result.results()
        table = indicator_table(df, roles=roles)
        out.print(indicators_table(table).to_rich())
        corr = indicator_correlations(df, roles=roles, method=method, alpha=alpha, n_boot=n_boot)
        out.print(correlations_table(corr, alpha).to_rich())
        targets = list(dict.fromkeys(corr["target"]))
        target = CORRUPT_MEAN if CORRUPT_MEAN in targets else targets[0]
        try:
            best = strongest_label_free_indicator(corr, target=target)
        except ValidationError as exc:
            out.print(
                f"strongest label-free indicator: none ({exc}; correlations need at least 3 models)"
            )
        else:
            out.print(
                f"strongest label-free indicator of {target} accuracy: {best['indicator']} "
                f"({strongest_detail(best, method)})"
            )
        if csv is not None:
            write_csv_tables(
                csv,
                {"indicators.csv": (table, True), "indicator_correlations.csv": (corr, False)},
            )
    except RobustlensError as exc:
        fail(exc)
    exit_for(result)


def register(app: typer.Typer) -> None:
    """Add ``robustlens clustering`` to the CLI."""
    app.command("clustering")(clustering_cmd)
