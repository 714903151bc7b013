"""The command line's face of the study runner: load a study file, run it with progress,
print the summary, write the report, and turn every robustlens error into one clear message.

Research lines' commands and the core commands share these, so every command that works on
a study takes it, runs it and fails the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from robustlens.console import console, fail, stdout_console
from robustlens.errors import ConfigError, RobustlensError
from robustlens.formatting import number, short

if TYPE_CHECKING:
    import pandas as pd

    from robustlens.config import StudyConfig
    from robustlens.study import StudyResult

# Every command imports this module, and `robustlens --help` imports every command: the
# study, the report and the data layer below them (torch, pandas, matplotlib) are imported
# by the functions that use them, on first use ("lazy:" imports).

__all__ = [
    "SHOWN_SKIPS",
    "ConfigOpt",
    "RequiredStudyArg",
    "StoreOpt",
    "StudyArg",
    "console",
    "exit_code_of",
    "exit_for",
    "fail",
    "load_study_config",
    "print_class_spaces",
    "print_faults",
    "print_results",
    "run_study_command",
    "study_path",
    "world_of",
    "write_csv_tables",
    "write_report_command",
]


# ------------------------------------------------------------------------------ the study file
# Every command that works on a study takes it the same way: as the optional positional
# argument STUDY or as -c/--config (either; both only when they name the same file).
#: the study file as a positional argument (a command without one runs the demo study)
def _study_argument(help_text: str) -> Any:
    return Annotated[
        Path | None, typer.Argument(metavar="STUDY", help=help_text, show_default=False)
    ]


StudyArg = _study_argument("Study YAML (or give it as -c/--config). Default: the demo study.")
#: the same, for a command that has no default study
RequiredStudyArg = _study_argument("Study YAML (or give it as -c/--config).")
#: the study file as an option: the same file as STUDY
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="STUDY",
        help="Study YAML (the same as the STUDY argument).",
        show_default=False,
    ),
]

#: the result store (cache) directory, overriding the study's ``store``
StoreOpt = Annotated[
    Path | None,
    typer.Option(help="Result store directory (default: the study's `store`).", show_default=False),
]


def study_path(study: Path | None, config: Path | None, required: bool = False) -> Path | None:
    """The study file a command was given, as ``STUDY`` or as ``-c/--config``.

    Args:
        study: the positional ``STUDY`` argument.
        config: the ``-c/--config`` option.
        required: the command has no default study (otherwise ``None`` means the demo study).

    Raises:
        ConfigError: both are given and name different files, or neither is given and
            ``required``.

    >>> study_path(Path("a.yaml"), None), study_path(None, Path("a.yaml"))
    (PosixPath('a.yaml'), PosixPath('a.yaml'))
    >>> study_path(None, None) is None
    True
    >>> study_path(Path("a.yaml"), Path("b.yaml"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    robustlens.errors.ConfigError: two different study files: STUDY a.yaml and -c/--config b.yaml...
    """
    if study is not None and config is not None:
        if study.expanduser().resolve() != config.expanduser().resolve():
            raise ConfigError(
                f"two different study files: STUDY {study} and -c/--config {config}; "
                "give one (as STUDY or as -c/--config)"
            )
        return study
    path = study if study is not None else config
    if path is None and required:
        raise ConfigError("no study file: give it as STUDY or as -c/--config STUDY")
    return path


def load_study_config(config: Path | None, **overrides: Any) -> StudyConfig:
    """The study file at ``config`` (the demo study when ``None``) with ``overrides`` set.

    Overrides replace top-level keys before the file is validated; a ``store`` given on the
    command line is relative to the working directory, not to the file. Overriding
    ``measures`` keeps only the ``measure_options`` of those measures (a command that runs
    some measures of a study ignores the options of the others).
    """
    # lazy: the config and demo modules import the model and data registries
    from robustlens.config import parse_config, read_config_data
    from robustlens.demo import demo_config_path  # lazy: see above

    path = config or demo_config_path()
    data = read_config_data(path)
    update = {k: v for k, v in overrides.items() if v is not None}
    if "store" in update:
        update["store"] = str(Path(update["store"]).expanduser().absolute())
    if "measures" in update and isinstance(data, dict):
        options = data.get("measure_options") or {}
        update["measure_options"] = {k: v for k, v in options.items() if k in update["measures"]}
    if isinstance(data, dict):
        data = {**data, **update}
    base = path.parent.resolve() if config else Path.cwd()
    return parse_config(data, str(path), base_dir=base)


def world_of(cfg: StudyConfig) -> Any:
    """The synthetic world of a study (built on first use, cached in its store)."""
    from robustlens.plan import world_from_config  # lazy: imports the data layer (torch)
    from robustlens.store import Store  # lazy: imports pandas

    return world_from_config(cfg, Store(cfg.store))


def role_from_name(name: str) -> str:
    """:func:`robustlens.roles.role_from_name` (imported on first use)."""
    from robustlens.roles import role_from_name as role  # lazy: roles imports the data layer

    return role(name)


def class_space_table(datasets: Mapping[str, Mapping[str, Any]]) -> Any:
    """:func:`robustlens.report.overview.class_space_table` (imported on first use)."""
    # lazy: the report imports matplotlib, scipy and the study
    from robustlens.report.overview import class_space_table as table

    return table(datasets)


# ------------------------------------------------------------------------------ eval / study
def print_results(
    store, models, datasets, measure: str = "accuracy", name: str = "accuracy", max_cols: int = 12
) -> None:
    df = store.results(models=models, measures=[measure])
    df = df[df["name"] == name]
    if df.empty:
        return
    wide = df.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")
    cols = [c for c in datasets if c in wide.columns]
    corrupt = [c for c in cols if role_from_name(c) == "corrupt"]
    shown = [c for c in cols if c not in corrupt][:max_cols]

    def col_width(h: str) -> int:
        return max(len(h), 5) + 3  # cell padding and border

    mean_header = ["corrupt (mean)"] if corrupt else []
    model_width = max(len(str(m)) for m in wide.index) + 4
    out = stdout_console()
    hidden = 0
    if out.is_terminal:
        # Model names and numbers are never cut: drop the datasets that do not fit instead.
        room = out.width - model_width - sum(col_width(h) for h in mean_header)
        fitting = []
        for c in shown:
            room -= col_width(short(c))
            if room < 0:
                break
            fitting.append(c)
        hidden = len(shown) - len(fitting)
        shown = fitting
    headers = [short(c) for c in shown] + mean_header
    if not out.is_terminal:
        # a log gets the whole table, however wide
        out = stdout_console(max(model_width + sum(col_width(h) for h in headers) + 1, 80))
    caption = f"{hidden} more datasets in the report (terminal too narrow)" if hidden else None
    table = Table(title=f"{measure}.{name}", caption=caption)
    table.add_column("model", style="bold", no_wrap=True)
    for h in headers:
        table.add_column(h, justify="right", no_wrap=True, min_width=5)
    for model, row in wide.iterrows():
        cells = [number(row[c]) for c in shown]
        if corrupt:
            cells.append(number(row[corrupt].mean()))
        table.add_row(str(model), *cells)
    out.print(table)


def print_class_spaces(result: StudyResult) -> None:
    """The class space each dataset was scored in ("1000 classes", "200 classes: ImageNet-R
    mask", "3 classes: restricted to the dataset's classes (restrict_classes: true)"), the
    table the report shows."""
    spaces = result.class_spaces()
    table = class_space_table(
        {d: {"class_space": spaces[d]} for d in result.datasets if d in spaces}
    )
    if table is not None:
        stdout_console().print(table.to_rich())


#: skipped files printed per dataset (the rest are counted; all are in plan.json and the report)
SHOWN_SKIPS = 5


def print_faults(result: StudyResult) -> None:
    """Say what the study left out, on every run (cached ones too): each dataset's skipped
    files (the first few with their reasons, then a count), the measures not computed for a
    failed model, and the damaged arrays that were recomputed."""
    where = Path(result.output) / "plan.json"
    for dataset, items in result.skipped.items():
        if not items:
            continue
        console.print(
            f"  [yellow]{dataset}: {len(items)} file(s) skipped[/] (left out of every number):",
            highlight=False,
        )
        for item, reason in items[:SHOWN_SKIPS]:
            console.print(f"    {item}: {reason}", markup=False, highlight=False)
        if len(items) > SHOWN_SKIPS:
            console.print(
                f"    ... and {len(items) - SHOWN_SKIPS} more (all in {where} and the report)",
                markup=False,
                highlight=False,
            )
    for f in result.failures:
        also = " (its other datasets were computed)" if f.get("other_datasets_computed") else ""
        console.print(
            f"  [bold red]failed:[/] {f['measure']} of {f['model']} on "
            f"{', '.join(f['datasets'])}{also}: {f['reason']}",
            highlight=False,
        )
    if result.incidents:
        console.print(
            f"  [yellow]store:[/] {len(result.incidents)} damaged array(s) were quarantined and "
            "recomputed (see above)",
            highlight=False,
        )


def run_study_command(
    config: Path | None,
    store: Path | None,
    measures: list[str] | None = None,
    executor: str | None = None,
    address: str | None = None,
) -> StudyResult | None:
    """Run a study file with progress, print its results, what it left out and its cost.

    Errors exit with code 2 (an interrupted study with 130). A study in which some model
    failed still returns its result (the caller decides the exit code, see
    :func:`exit_code_of`).
    """
    try:
        cfg = load_study_config(
            config,
            store=str(store) if store else None,
            measures=measures,
            executor=executor,
            ray_address=address,
        )
        t0 = time.perf_counter()
        from robustlens.study import run_study  # lazy: the study imports torch

        result = run_study(cfg, progress=True, log=lambda s: console.print(f"  {s}"))
        print_results(result.store, result.models, result.datasets)
        # only where some dataset lists several correct labels per image
        print_results(result.store, result.models, result.datasets, name="accuracy_real")
        print_class_spaces(result)
        print_faults(result)
        # one report per dataset and chunk of models: count each dataset's images once
        n_img = max(1, sum({r.dataset: r.images for r in result.engine_reports}.values()))
        cost = (
            f"{result.forward_passes} forward passes ({result.forward_passes / n_img:.1f} per "
            f"image, {result.forward_passes / n_img / len(result.models):.2f} per image and "
            "model, views included)"
            if result.forward_passes
            else "no forward pass: every array was read from the store"
        )
        console.print(
            f"{len(result.models)} models x {len(result.datasets)} datasets in "
            f"{time.perf_counter() - t0:.1f}s: {result.images_decoded} images decoded, {cost}"
        )
        if result.forward_passes:
            console.print(f"  {forward_share(result)}", highlight=False)
        return result
    except RobustlensError as exc:
        fail(exc)


def forward_share(result: StudyResult) -> str:
    """How much of the engine's time the models' forward passes took, in words: what is left
    is the engine's own cost (decoding, views, bookkeeping, the store)."""
    engine = result.stage_seconds.get("engine", 0.0)
    workers = (
        " (summed over its workers)"
        if result.config is not None and result.config.executor != "local"
        else ""
    )
    return (
        f"forward passes took {result.forward_seconds:.2f}s{workers} of the engine's "
        f"{engine:.2f}s; measures {result.stage_seconds.get('measures', 0.0):.2f}s"
    )


def write_csv_tables(folder: Path, tables: Mapping[str, tuple[pd.DataFrame, bool]]) -> None:
    """Write ``{file name: (table, with its index)}`` as CSV into ``folder`` and say where."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (table, index) in tables.items():
        table.to_csv(folder / name, index=index)
    console.print(f"tables written to {folder}")


def exit_for(result: StudyResult | None) -> None:
    """Exit with :func:`exit_code_of` when it is not 0 (a model failed)."""
    if exit_code_of(result):
        raise typer.Exit(exit_code_of(result))


def exit_code_of(result: StudyResult | None) -> int:
    """0 for a study that computed everything, 1 when some model failed (its measures are
    listed as failed; every other number was computed and stored)."""
    return 1 if result is not None and result.failures else 0


def write_report_command(result: StudyResult) -> Path:
    """Write the study's HTML report and say where it is; errors exit with code 2.

    Nothing is swallowed: a section that fails shows as an error box in the page (and a
    warning), any other error stops the command.
    """
    from robustlens.report import write_report  # lazy: imports matplotlib and the study

    try:
        path = write_report(result)
    except RobustlensError as exc:
        fail(exc)
    console.print(f"[bold green]report:[/] {path}")
    return path


def print_line_summaries(result: StudyResult) -> None:
    """Print the research lines' short tables (``Line.summaries``, e.g. the validity table)."""
    from robustlens.report.page import (  # lazy: imports the report and every line
        build_report_context,
        line_summaries,
    )

    out = stdout_console()
    for table in line_summaries(build_report_context(result)):
        out.print(table.to_rich())
