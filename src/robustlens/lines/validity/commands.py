"""``robustlens validity``: does each research line's measure recover its planted cause?

Runs the study with its own measures and ``ground_truth`` (answered from the store where they
ran before; the ground truth reads views the invariance line already requests), then prints
the validity table (:func:`~robustlens.lines.validity.analysis.validity_frame`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustlens.console import fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.lines.validity.analysis import GT, ValidityOptions, validity_frame
from robustlens.lines.validity.tables import validity_table
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    load_study_config,
    run_study_command,
    study_path,
    write_csv_tables,
)


def validity_cmd(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    csv: Annotated[
        Path | None, typer.Option(help="Directory to write validity.csv.", show_default=False)
    ] = None,
) -> None:
    """Validity: each line's measure vs the cause the synthetic world planted."""
    result = None
    try:
        path = study_path(study, config)
        measures = list(dict.fromkeys([*load_study_config(path).measures, GT]))
        result = run_study_command(path, store, measures=measures)
        if result is None:
            return
        options = ValidityOptions(n_boot=n_boot)
        frame = validity_frame(
            result.results(), result.model_configs, result.dataset_roles, options
        )
        stdout_console().print(validity_table(frame, options).to_rich())
        if csv is not None:
            write_csv_tables(csv, {"validity.csv": (frame, False)})
    except RobustlensError as exc:
        fail(exc)
    exit_for(result)


def register(app: typer.Typer) -> None:
    """Add ``robustlens validity`` to the CLI."""
    app.command("validity")(validity_cmd)
