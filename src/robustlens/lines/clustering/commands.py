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

from robustlens.console import stdout_console

MEASURES = ["accuracy", "clustering"]


def print_indicator_table(table, console) -> None:
    from rich.table import Table

    from robustlens.lines.clustering.analysis import INDICATOR_LABELS

    t = Table(
        title="clustering indicators of clean id features (k-means, k = classes) and accuracies"
    )
    t.add_column("model", style="bold")
    for c in table.columns:
        t.add_column(INDICATOR_LABELS.get(c, c), justify="right")
    for model, row in table.iterrows():
        cells = []
        for c in table.columns:
            v = row[c]
            if v != v:
                cells.append("-")
            elif c == "n_samples":
                cells.append(str(int(v)))
            elif c == "calinski_harabasz":
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:.3f}")
        t.add_row(str(model), *cells)
    console.print(t)


def print_correlations(table, console) -> None:
    from rich.table import Table

    from robustlens.lines.clustering.analysis import INDICATOR_LABELS

    targets = list(dict.fromkeys(table["target"]))
    n = int(table["n"].max()) if len(table) else 0
    method = str(table["method"].iloc[0]) if len(table) else "spearman"
    t = Table(
        title=f"{method} correlation of each indicator with accuracy across {n} models "
        "(* p < 0.05; [95% bootstrap CI])"
    )
    t.add_column("indicator", style="bold")
    t.add_column("label-free")
    for target in targets:
        t.add_column(target, justify="right")
    for ind in dict.fromkeys(table["indicator"]):
        rows = table[table["indicator"] == ind]
        cells = []
        for target in targets:
            r = rows[rows["target"] == target]
            if r.empty or r["coefficient"].iloc[0] != r["coefficient"].iloc[0]:
                cells.append("n/a")
                continue
            r = r.iloc[0]
            star = "*" if r["significant"] else ""
            ci = f" [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if r["ci_low"] == r["ci_low"] else ""
            cells.append(f"{r['coefficient']:+.2f}{star}{ci}")
        t.add_row(
            INDICATOR_LABELS.get(ind, ind), "yes" if rows["label_free"].iloc[0] else "no", *cells
        )
    console.print(t)


def clustering_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="Study YAML (default: the demo study).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Override the store directory.")] = None,
    method: Annotated[str, typer.Option(help="spearman, pearson or kendall.")] = "spearman",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    csv: Annotated[
        Path | None,
        typer.Option(help="Directory to write indicators.csv and indicator_correlations.csv."),
    ] = None,
) -> None:
    """Clustering indicators (silhouette, Davies-Bouldin, NMI ...) vs corruption accuracy."""
    from robustlens.errors import RobustlensError, ValidationError
    from robustlens.lines.clustering.analysis import (
        indicator_correlations,
        indicator_table,
        strongest_label_free_indicator,
    )
    from robustlens.lines.invariance.commands import study_roles
    from robustlens.runner import fail, run_study_command

    result = run_study_command(config, store, measures=MEASURES)
    if result is None:
        return
    out = stdout_console()
    try:
        roles = study_roles(result, config, store)
        df = result.results()
        table = indicator_table(df, roles=roles)
        print_indicator_table(table, out)
        corr = indicator_correlations(df, roles=roles, method=method, alpha=alpha, n_boot=n_boot)
        print_correlations(corr, out)
        targets = list(dict.fromkeys(corr["target"]))
        target = "corrupt (mean)" if "corrupt (mean)" in targets else targets[0]
        try:
            best = strongest_label_free_indicator(corr, target=target)
        except ValidationError as exc:
            out.print(
                f"strongest label-free indicator: none ({exc}; correlations need at least 3 models)"
            )
        else:
            sig = "significant" if best["significant"] else "not significant"
            out.print(
                f"strongest label-free indicator of {target} accuracy: {best['indicator']} "
                f"({method} {best['coefficient']:+.2f}, p = {best['p_value']:.3f}, {sig}, "
                f"n = {best['n']} models"
                + ("" if best["expected_sign"] else "; sign opposite to the expected direction")
                + ")"
            )
        if csv is not None:
            csv.mkdir(parents=True, exist_ok=True)
            table.to_csv(csv / "indicators.csv")
            corr.to_csv(csv / "indicator_correlations.csv", index=False)
            out.print(f"tables written to {csv}")
    except RobustlensError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    """Add ``robustlens clustering`` to the CLI."""
    app.command("clustering")(clustering_cmd)
