"""``robustlens spurious [STUDY]``: neural PCA, spurious score and SpuFix for every model.

Runs the study with the ``accuracy`` and ``spurious`` measures (engine outputs come from the
store when cached), then prints the per-model table, how well the spurious score ranks the
models by their ground-truth training mark rate (Spearman), SpuFix's effect on the most
spurious model, and writes the neural-PCA image grids under ``output/spurious/``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from robustlens.config import StudyConfig
from robustlens.console import console, fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.formatting import number
from robustlens.lines.spurious.analysis import (
    most_spurious_model,
    score_vs_ground_truth,
    spufix_effect,
    spurious_table,
)
from robustlens.lines.spurious.grids import render_component_grids
from robustlens.lines.spurious.tables import correlation_table, model_table
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    load_study_config,
    print_faults,
    study_path,
)
from robustlens.study import run_study

MEASURES = ["accuracy", "spurious"]


def spurious_config(cfg: StudyConfig) -> StudyConfig:
    """The study config with measures accuracy + spurious; the world's mark rate as default.

    A ``measure_options.spurious.default_mark_rate`` given in the config wins over the
    world's ``mark_rate``.
    """
    options = {k: dict(v) for k, v in cfg.measure_options.items()}
    spur = options.setdefault("spurious", {})
    if cfg.world is not None:
        spur.setdefault("default_mark_rate", cfg.world.mark_rate)
    return cfg.model_copy(update={"measures": list(MEASURES), "measure_options": options})


def print_spurious(results: Any, out: Console | None = None, n_boot: int = 1000) -> str | None:
    """Print the per-model table, the Spearman vs ground truth and SpuFix's effect.

    Args:
        results: long results DataFrame or a StudyResult.
        out: where the tables go (default: :func:`robustlens.console.stdout_console`).
        n_boot: bootstrap resamples of the correlation's CI.

    Returns:
        The most spurious model (lowest spurious score), or None without results.
    """
    out = out or stdout_console()
    table = spurious_table(results)
    if table.empty:
        out.print("no spurious results: the study needs datasets with roles id and spurious")
        return None
    out.print(model_table(table).to_rich())
    corr = score_vs_ground_truth(results, n_boot=n_boot)
    if len(corr):
        out.print(correlation_table(corr).to_rich())
    else:
        out.print("no ground-truth mark rate (not zoo models): no rank correlation")

    worst = most_spurious_model(results)
    if worst is not None:
        e = spufix_effect(results).loc[worst]
        out.print(
            f"SpuFix on the most spurious model [bold]{worst}[/] (score "
            f"{number(e['spurious_score'])}, {number(e['n_flagged'], 0)} component(s) "
            f"flagged; before -> after on {number(e['n_evaluation'], 0)} held-out "
            f"spurious-only images): clean accuracy {number(e['id_acc_before'])} -> "
            f"{number(e['id_acc_after'])}, spurious trigger rate {number(e['trigger_before'])}"
            f" -> {number(e['trigger_after'])}, spurious score {number(e['score_before'])} -> "
            f"{number(e['score_after'])}"
        )
    return worst


def register(app: typer.Typer) -> None:
    """Add the ``spurious`` command to the CLI."""

    @app.command("spurious")
    def spurious_cmd(
        study: StudyArg = None,
        config: ConfigOpt = None,
        store: StoreOpt = None,
        grids: Annotated[bool, typer.Option(help="Write the neural-PCA image grids.")] = True,
        max_classes: Annotated[int, typer.Option(help="Classes shown in the grids.")] = 4,
        n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CI.")] = 1000,
    ) -> None:
        """Neural PCA, spurious score and SpuFix per model (Neuhaus et al., ICCV 2023)."""
        out = stdout_console()
        try:
            cfg = spurious_config(
                load_study_config(study_path(study, config), store=str(store) if store else None)
            )
            result = run_study(cfg, progress=True, log=lambda s: console.print(f"  {s}"))
            print_faults(result)
            console.print(
                f"{result.forward_passes} forward passes, {result.images_decoded} images decoded"
            )
            worst = print_spurious(result.results(), out, n_boot=n_boot)
            if grids and worst is not None:
                paths = render_component_grids(
                    result, cfg=cfg, model=worst, max_classes=max_classes
                )
                if paths:
                    out.print(f"{len(paths)} component grid(s) in {paths[0].parent}")
        except RobustlensError as exc:
            fail(exc)
        exit_for(result)
