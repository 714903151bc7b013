"""``robustlens estimate``: how will my models do on this unlabelled data?

Runs the study's models and datasets with the measures ``accuracy``, ``invariance``,
``label_free``, ``clustering`` (on every dataset: ``datasets: all`` unless the study sets it)
and ``agreement`` (cached in the store: a second run computes nothing), then prints, for each
unlabelled dataset (layout ``unlabeled``), every model's estimated accuracy from the label-free
predictor most reliable on the study's labelled shifts, with its expected error and interval;
``--all`` adds every predictor's estimate. Last, how reliable each predictor was.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from robustlens.config import StudyConfig
from robustlens.console import console, fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.lines.estimate.analysis import TOP1, Estimates, estimate_study
from robustlens.lines.estimate.tables import (
    estimate_table,
    predictor_estimates_table,
    reliability_table,
)
from robustlens.measure import DatasetInfo, get_measure
from robustlens.report.exports import iter_per_sample
from robustlens.roles import unlabeled_skips
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    load_study_config,
    print_faults,
    print_results,
    study_path,
    write_csv_tables,
)
from robustlens.study import StudyResult, run_study

__all__ = ["MEASURES", "estimate_cmd", "register"]

MEASURES = ["accuracy", "invariance", "label_free", "clustering", "agreement"]


def study_config(path: Path | None, store: Path | None) -> StudyConfig:
    """The study with the estimate line's measures; clustering on every dataset unless the
    study file chose otherwise (its indicators are predictors only where they are computed)."""
    cfg = load_study_config(path, store=str(store) if store else None, measures=MEASURES)
    clustering = dict(cfg.measure_options.get("clustering") or {})
    clustering.setdefault("datasets", "all")
    cfg.measure_options["clustering"] = clustering
    return cfg


def _run(cfg: StudyConfig) -> StudyResult:
    """Run the study with progress and print what it measured and left out (as
    :func:`robustlens.runner.run_study_command` does for a study file)."""
    t0 = time.perf_counter()
    result = run_study(cfg, progress=True, log=lambda s: console.print(f"  {s}"))
    print_results(result.store, result.models, result.datasets)
    print_faults(result)
    console.print(
        f"{len(result.models)} models x {len(result.datasets)} datasets in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return result


def _skips(cfg: StudyConfig, result: StudyResult) -> list[dict[str, str]]:
    """Which measures of the run skip which unlabelled datasets, and why."""
    measures = [get_measure(n, **cfg.measure_options.get(n, {})) for n in cfg.measures]
    infos = {
        d: DatasetInfo(
            d,
            result.dataset_fps.get(d, ""),
            str(info.get("role", "other")),
            (),
            dict(info.get("tags") or {}),
        )
        for d, info in result.dataset_roles.items()
    }
    return unlabeled_skips(measures, infos)


def print_estimates(est: Estimates, show_all: bool = False) -> None:
    """The estimate tables on stdout."""
    out = stdout_console()
    if not est.unlabeled:
        out.print(
            "no unlabelled dataset in the study: add a folder of images with "
            "`layout: unlabeled` to estimate the models' accuracy on it"
        )
    for d in est.unlabeled:
        out.print(estimate_table(est, d).to_rich())
        if show_all and not est.estimates.empty:
            out.print(predictor_estimates_table(est, d).to_rich())
    out.print(reliability_table(est).to_rich())
    if est.recommended:
        mae = est.reliability.loc[est.reliability["predictor"] == est.recommended, "loo_mae"]
        out.print(
            f"recommended predictor: {est.recommended} (expected error {mae.mean():.3f} on the "
            "labelled shifts)"
        )
    else:
        out.print("recommended predictor: none (no predictor could be calibrated)")


def estimate_cmd(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    alpha: Annotated[
        float, typer.Option(help="Intervals are at level 1 - alpha (jackknife+).")
    ] = 0.1,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also print every predictor's estimate.")
    ] = False,
    csv: Annotated[
        Path | None,
        typer.Option(help="Directory to write estimates.csv and reliability.csv."),
    ] = None,
) -> None:
    """Estimate each model's accuracy on the study's unlabelled datasets (layout: unlabeled)."""
    result = None
    try:
        cfg = study_config(study_path(study, config), store)
        result = _run(cfg)
        for s in _skips(cfg, result):
            console.print(
                f"  [yellow]{s['measure']}[/] skips {s['dataset']}: {s['reason']}",
                highlight=False,
            )
        per_sample = iter_per_sample(result.output, result.models, ["sample_id", TOP1])
        est = estimate_study(result.results(), result.dataset_roles, per_sample, alpha=alpha)
        print_estimates(est, show_all)
        if csv is not None:
            write_csv_tables(
                csv,
                {
                    "estimates.csv": (est.estimates, False),
                    "reliability.csv": (est.reliability, False),
                },
            )
    except RobustlensError as exc:
        fail(exc)
    exit_for(result)


def register(app: typer.Typer) -> None:
    """Add ``robustlens estimate`` to the CLI."""
    app.command("estimate")(estimate_cmd)
