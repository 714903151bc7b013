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
from typing import Annotated, Any

import typer

from robustlens.console import stdout_console

MEASURES = ["accuracy", "invariance", "label_free"]


def study_roles(
    result: Any, config: Path | None = None, store: Path | None = None
) -> dict[str, str]:
    """``{dataset: role}`` as the study resolved them (roles set in the YAML included)."""
    recorded = getattr(result, "dataset_roles", None)
    if recorded:
        return {d: str(info["role"]) for d, info in recorded.items()}
    from robustlens.plan import resolve_datasets
    from robustlens.runner import load_study_config
    from robustlens.store import Store

    cfg = load_study_config(config, store=str(store) if store else None)
    return {d.name: d.role for d in resolve_datasets(cfg, Store(cfg.store))}


def _fmt(value: Any, significant: Any = False, digits: int = 2) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if v != v:  # NaN
        return "n/a"
    return f"{v:+.{digits}f}{'*' if bool(significant) else ''}"


def print_model_centric(table, console) -> None:
    """Rows: predictors; columns: shift families; cell: Spearman rho / Pearson r (* p < alpha)."""
    from rich.table import Table

    from robustlens.lines.invariance.analysis import predictor_label

    if table.empty:
        console.print("model-centric: no shifted dataset with accuracy and predictors")
        return
    families = list(
        dict.fromkeys(
            d for d in table["dataset"] if "/corrupt/" not in d and not d.startswith("imagenet_c/")
        )
    )
    n = int(table["n"].max())
    t = Table(
        title=f"model-centric: correlation with accuracy across {n} models "
        "(Spearman ρ / Pearson r, * p < 0.05)"
    )
    t.add_column("predictor", style="bold")
    for f in families:
        t.add_column(f.replace("world/", ""), justify="right")
    for p in dict.fromkeys(table["predictor"]):
        cells = []
        for f in families:
            rows = table[(table["predictor"] == p) & (table["dataset"] == f)]
            by = {r["method"]: r for _, r in rows.iterrows()}
            cells.append(
                " / ".join(
                    _fmt(by[m]["coefficient"], by[m]["significant"])
                    for m in ("spearman", "pearson")
                    if m in by
                )
            )
        t.add_row(predictor_label(p), *cells)
    console.print(t)


def print_dataset_centric(table, model: str, console) -> None:
    from rich.table import Table

    from robustlens.lines.invariance.analysis import predictor_label

    if table.empty:
        console.print(f"dataset-centric: no shifted datasets for {model}")
        return
    n = int(table["n"].max())
    t = Table(
        title=f"dataset-centric: {model}, correlation with accuracy across {n} shifted datasets"
    )
    for c in ("predictor", "Spearman ρ", "p", "95% CI", "Pearson r", "p"):
        t.add_column(c, justify="left" if c == "predictor" else "right")
    for p in dict.fromkeys(table["predictor"]):
        rows = table[table["predictor"] == p]
        by = {r["method"]: r for _, r in rows.iterrows()}
        s, r = by.get("spearman"), by.get("pearson")
        t.add_row(
            predictor_label(p),
            _fmt(s["coefficient"], s["significant"]) if s is not None else "-",
            f"{s['p_value']:.3f}" if s is not None else "-",
            f"[{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]" if s is not None else "-",
            _fmt(r["coefficient"], r["significant"]) if r is not None else "-",
            f"{r['p_value']:.3f}" if r is not None else "-",
        )
    console.print(t)


def print_mae(table, console) -> None:
    from rich.table import Table

    from robustlens.lines.invariance.analysis import predictor_label

    if table.empty:
        console.print("OOD-accuracy predictors: not enough models for leave-one-model-out")
        return
    role_cols = [c for c in table.columns if c.startswith("mae_")]
    t = Table(
        title="label-free OOD-accuracy predictors: leave-one-model-out MAE, pooled over "
        "shifted datasets (lower is better)"
    )
    for c in ("predictor", "kind", "MAE", *(c[4:] for c in role_cols), "pairs"):
        t.add_column(c, justify="left" if c in ("predictor", "kind") else "right")
    for _, row in table.iterrows():
        t.add_row(
            predictor_label(row["predictor"]),
            row["kind"],
            f"{row['mae']:.3f}",
            *(f"{row[c]:.3f}" if row[c] == row[c] else "-" for c in role_cols),
            str(int(row["n"])),
        )
    console.print(t)


def invariance_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="Study YAML (default: the demo study).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Override the store directory.")] = None,
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
    from robustlens.errors import RobustlensError
    from robustlens.lines.invariance.analysis import (
        best_id_model,
        dataset_centric,
        model_centric,
        ood_predictor_mae,
        predictor_label,
    )
    from robustlens.runner import fail, run_study_command

    result = run_study_command(config, store, measures=MEASURES)
    if result is None:
        return
    out = stdout_console()
    try:
        roles = study_roles(result, config, store)
        df = result.results()
        mc = model_centric(df, roles=roles, alpha=alpha, n_boot=n_boot)
        print_model_centric(mc, out)
        chosen = model or best_id_model(df, roles=roles)
        if chosen not in result.models:
            raise RobustlensError(
                f"--model {chosen!r} is not in the study; models: {', '.join(result.models)}"
            )
        dc = dataset_centric(df, chosen, roles=roles, alpha=alpha, n_boot=n_boot)
        print_dataset_centric(dc, chosen, out)
        mae = ood_predictor_mae(df, roles=roles)
        print_mae(mae, out)
        if not mae.empty:
            best = mae.iloc[0]
            out.print(
                f"lowest MAE: {predictor_label(best['predictor'])} ({best['kind']}), "
                f"MAE {best['mae']:.3f} over {int(best['n'])} (model, shifted set) pairs"
            )
        if csv is not None:
            csv.mkdir(parents=True, exist_ok=True)
            mc.to_csv(csv / "model_centric.csv", index=False)
            dc.to_csv(csv / "dataset_centric.csv", index=False)
            mae.to_csv(csv / "ood_mae.csv", index=False)
            out.print(f"tables written to {csv}")
    except RobustlensError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    """Add ``robustlens invariance`` to the CLI."""
    app.command("invariance")(invariance_cmd)
