"""``robustlens biases``: seed 002's bias table, generalization table and Spearman matrix."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from robustlens.console import stdout_console
from robustlens.errors import RobustlensError

BIAS_COLUMNS = (
    "shape_bias",
    "low_freq_bias",
    "high_freq_bias",
    "cb_bandwidth_octaves",
    "cb_center_cpi",
    "cb_peak_sensitivity",
    "cb_fit_ok",
    "pgd_accuracy",
)


def model_augments(cfg: Any) -> dict[str, str]:
    """Training augmentation of every zoo model of the study (from the zoo's JSON configs)."""
    from robustlens.models.zoo import zoo_members_in

    paths: list[Path] = []
    for m in cfg.models:
        if m.source == "zoo":
            zoo_dir = m.path or (cfg.zoo.dir if cfg.zoo else None)
            paths += list(zoo_members_in(zoo_dir)) if zoo_dir else []
        elif m.source == "zoo_checkpoint" and m.path:
            paths.append(Path(m.path))
    out = {}
    for p in paths:
        meta = Path(p).with_suffix(".json")
        if meta.exists():
            member = json.loads(meta.read_text()).get("member", {})
            out[member.get("name", Path(p).stem)] = str(member.get("augment", ""))
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    return f"{v:.{digits}f}"


def _cb_failures(artifacts: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(model, dataset, reason) of every failed critical-band fit."""
    out = []
    for model, by_measure in sorted(artifacts.items()):
        for ds, art in (by_measure.get("biases", {}).get("critical_band", {}) or {}).items():
            if not art.get("ok"):
                out.append((model, ds, str(art.get("reason"))))
    return out


def print_bias_report(
    results: Any,
    roles: dict[str, str],
    augments: dict[str, str] | None = None,
    artifacts: dict[str, dict[str, Any]] | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    console: Any = None,
) -> dict[str, Any]:
    """Print the bias table, the generalization table and the bias x dimension matrix.

    Returns the three tables (``biases``, ``generalization``, ``matrix``) for reuse.
    """
    from rich.table import Table

    from robustlens.analysis.generalization import (
        BIASES,
        DIMENSIONS,
        bias_generalization_matrix,
        bias_table,
        generalization_table,
    )

    console = console or stdout_console()
    augments = augments or {}
    bt = bias_table(results, BIAS_COLUMNS)
    gt = generalization_table(results, roles)
    mt = bias_generalization_matrix(results, roles, alpha=alpha, n_boot=n_boot)

    t = Table(title="biases (seed 002)")
    t.add_column("model", style="bold")
    t.add_column("augment")
    for c in BIAS_COLUMNS:
        t.add_column(c, justify="right")
    for model, row in bt.iterrows():
        style = "magenta" if augments.get(str(model)) == "texrand" else None
        t.add_row(
            str(model),
            augments.get(str(model), ""),
            *[_fmt(row[c]) for c in BIAS_COLUMNS],
            style=style,
        )
    console.print(t)

    if augments and bt["shape_bias"].notna().any():
        tex = [m for m in bt.index if augments.get(str(m)) == "texrand"]
        rest = [m for m in bt.index if m not in tex]
        sb = bt["shape_bias"]
        console.print(
            f"shape bias: texture-randomized {_fmt(sb[tex].mean())} (n={len(tex)}) vs "
            f"others {_fmt(sb[rest].mean())} (n={len(rest)})"
        )
    failures = _cb_failures(artifacts or {})
    if failures:
        console.print(f"critical-band fit failed for {len(failures)} model/dataset pair(s):")
        for model, ds, reason in failures[:10]:
            console.print(f"  {model} on {ds}: {reason}")

    t = Table(title="generalization dimensions (seed 002)")
    t.add_column("model", style="bold")
    for d in DIMENSIONS:
        t.add_column(d, justify="right")
    for model, row in gt.iterrows():
        t.add_row(str(model), *[_fmt(row[d]) for d in DIMENSIONS])
    console.print(t)
    comps = gt.attrs.get("components", {})
    for d in DIMENSIONS:
        console.print(f"  {d}: {len(comps.get(d, []))} component value(s)")

    method = mt["method"].iloc[0] if len(mt) else "spearman"
    t = Table(
        title=f"{method} correlation, bias x dimension (coefficient, p, n)",
        caption=f"bold: p < {alpha}; in the heatmap, cells with p >= {alpha} are shown as 0",
    )
    t.add_column("bias", style="bold")
    for d in DIMENSIONS:
        t.add_column(d, justify="right")
    for b in BIASES:
        cells = []
        for d in DIMENSIONS:
            r = mt[(mt["x"] == b) & (mt["y"] == d)].iloc[0]
            text = f"{_fmt(r['coefficient'], 2)} (p={_fmt(r['p_value'], 3)}, n={int(r['n'])})"
            cells.append(f"[bold]{text}[/]" if r["significant"] else text)
        t.add_row(b, *cells)
    console.print(t)
    return {"biases": bt, "generalization": gt, "matrix": mt}


def register(app: typer.Typer) -> None:
    """Add ``robustlens biases`` to the CLI."""

    @app.command("biases")
    def biases_cmd(
        config: Annotated[
            Path | None, typer.Argument(help="Study YAML (default: the demo study).")
        ] = None,
        store: Annotated[Path | None, typer.Option(help="Result store directory.")] = None,
        alpha: Annotated[float, typer.Option(help="Significance level of the matrix.")] = 0.05,
        n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
        csv: Annotated[
            Path | None, typer.Option(help="Also write the three tables as CSV into this folder.")
        ] = None,
    ) -> None:
        """Shape, spectral and critical-band biases, PGD, and their correlation with the four
        generalization dimensions (seed 002). Runs the ``accuracy`` and ``biases`` measures
        (cached in the store: a second run is instant)."""
        from robustlens.runner import console, fail, load_study_config
        from robustlens.study import resolve_datasets, run_study

        try:
            cfg = load_study_config(
                config, store=str(store) if store else None, measures=["accuracy", "biases"]
            )
            result = run_study(cfg, progress=True, log=lambda s: console.print(f"  {s}"))
            roles = {d.name: d.role for d in resolve_datasets(cfg, result.store)}
            tables = print_bias_report(
                result.store.results(models=result.models, datasets=result.datasets),
                roles,
                model_augments(cfg),
                result.artifacts,
                alpha,
                n_boot,
            )
            if csv is not None:
                csv.mkdir(parents=True, exist_ok=True)
                tables["biases"].to_csv(csv / "biases.csv")
                tables["generalization"].to_csv(csv / "generalization.csv")
                tables["matrix"].to_csv(csv / "bias_generalization.csv", index=False)
                console.print(f"tables written to {csv}")
        except RobustlensError as exc:
            fail(exc)
