"""``robustlens spurious [CONFIG]``: neural PCA, spurious score and SpuFix for every model.

Runs the study with the ``accuracy`` and ``spurious`` measures (engine outputs come from the
store when cached), then prints the per-model table, how well the spurious score ranks the
models by their ground-truth training mark rate (Spearman), SpuFix's effect on the most
spurious model, and writes the neural-PCA image grids under ``output/spurious/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from robustlens.console import stdout_console
from robustlens.errors import RobustlensError

MEASURES = ["accuracy", "spurious"]


def spurious_config(cfg: Any) -> Any:
    """The study config with measures accuracy + spurious; the world's mark rate as default.

    A ``measure_options.spurious.default_mark_rate`` given in the config wins over the
    world's ``mark_rate``.
    """
    options = {k: dict(v) for k, v in cfg.measure_options.items()}
    spur = options.setdefault("spurious", {})
    if cfg.world is not None:
        spur.setdefault("default_mark_rate", cfg.world.mark_rate)
    return cfg.model_copy(update={"measures": list(MEASURES), "measure_options": options})


def _num(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if f != f else f"{f:.{digits}f}"


def print_spurious(results: Any, console: Console, n_boot: int = 1000) -> str | None:
    """Print the per-model table, the Spearman vs ground truth and SpuFix's effect.

    Returns:
        The most spurious model (lowest spurious score), or None without results.
    """
    from robustlens.lines.spurious.analysis import (
        most_spurious_model,
        score_vs_ground_truth,
        spufix_effect,
        spurious_table,
    )

    table = spurious_table(results)
    if table.empty:
        console.print("no spurious results: the study needs datasets with roles id and spurious")
        return None
    t = Table(title="spurious features (score: AP, high = less spurious)")
    t.add_column("model", style="bold")
    cols = [
        c
        for c in (
            "train_mark_rate",
            "spurious_score",
            "spurious_reliance",
            "spurious_trigger_rate",
            "n_flagged",
        )
        if c in table.columns
    ]
    for c in cols:
        t.add_column(c.replace("spurious_", "").replace("_", " "), justify="right")
    for model, row in table.iterrows():
        t.add_row(str(model), *[_num(row[c], 0 if c == "n_flagged" else 3) for c in cols])
    console.print(t)

    corr = score_vs_ground_truth(results, n_boot=n_boot)
    if len(corr):
        c = Table(title="score vs ground truth (training mark rate), Spearman across models")
        for name in ("metric", "rho", "p", "95% CI", "n"):
            c.add_column(name, justify="right" if name != "metric" else "left")
        for _, r in corr.iterrows():
            c.add_row(
                r["metric"],
                _num(r["coefficient"]),
                _num(r["p_value"], 4),
                f"[{_num(r['ci_low'], 2)}, {_num(r['ci_high'], 2)}]",
                str(int(r["n"])),
            )
        console.print(c)
    else:
        console.print("no ground-truth mark rate (not zoo models): no rank correlation")

    worst = most_spurious_model(results)
    if worst is not None:
        e = spufix_effect(results).loc[worst]
        console.print(
            f"SpuFix on the most spurious model [bold]{worst}[/] (score "
            f"{_num(e['spurious_score'])}, {int(e['n_flagged'])} component(s) flagged): "
            f"clean accuracy {_num(e['id_acc_before'])} -> {_num(e['id_acc_after'])}, "
            f"spurious trigger rate {_num(e['trigger_before'])} -> {_num(e['trigger_after'])}, "
            f"spurious score -> {_num(e['score_after'])}"
        )
    return worst


def register(app: typer.Typer) -> None:
    """Add the ``spurious`` command to the CLI."""

    @app.command("spurious")
    def spurious_cmd(
        config: Annotated[
            Path | None, typer.Argument(help="Study YAML (default: the demo study).")
        ] = None,
        store: Annotated[Path | None, typer.Option(help="Override the store directory.")] = None,
        grids: Annotated[bool, typer.Option(help="Write the neural-PCA image grids.")] = True,
        max_classes: Annotated[int, typer.Option(help="Classes shown in the grids.")] = 4,
        n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CI.")] = 1000,
    ) -> None:
        """Neural PCA, spurious score and SpuFix per model (Neuhaus et al., ICCV 2023)."""
        from robustlens.runner import console as err
        from robustlens.runner import fail, load_study_config
        from robustlens.study import run_study

        out = stdout_console()
        try:
            cfg = spurious_config(load_study_config(config, store=str(store) if store else None))
            result = run_study(cfg, progress=True, log=lambda s: err.print(f"  {s}"))
            err.print(
                f"{result.forward_passes} forward passes, {result.images_decoded} images decoded"
            )
            worst = print_spurious(result.results(), out, n_boot=n_boot)
            if grids and worst is not None:
                from robustlens.lines.spurious.section import render_component_grids

                paths = render_component_grids(
                    result, cfg=cfg, model=worst, max_classes=max_classes
                )
                if paths:
                    out.print(f"{len(paths)} component grid(s) in {paths[0].parent}")
        except RobustlensError as exc:
            fail(exc)
