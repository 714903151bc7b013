"""``robustlens generate`` and ``robustlens robustness`` (seed 004: generated data, ER)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from robustlens.console import stdout_console
from robustlens.errors import ConfigError, RobustlensError


def _fmt(v: float, digits: int = 3, sign: bool = False) -> str:
    """A number for a table cell; NaN as a dash and no ``-0.000``."""
    if v is None or v != v:
        return "–"
    v = round(float(v), digits) + 0.0
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def generate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Study YAML whose 'world' section defines the world (default: demo).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="ImageFolder to write (out/{class}/{i}.png).")] = Path(
        "generated"
    ),
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the world generator is saved (default: OUT-generator); reused when it was "
            "trained on the same world with the same steps and seed."
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Generator training steps (default 240: <= 4 min on 2 CPU cores, blob shapes; "
            "1200 give clean shapes)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Generator training batch size.")] = 64,
    n_per_class: Annotated[int, typer.Option(help="Images per class.")] = 100,
    sample_steps: Annotated[int, typer.Option(help="DDIM (or Stable Diffusion) steps.")] = 25,
    guidance: Annotated[
        float | None,
        typer.Option(
            help="Classifier-free guidance weight (default: 3 for the world generator, 7.5 for "
            "Stable Diffusion)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of training and sampling.")] = 0,
    retrain: Annotated[bool, typer.Option(help="Retrain the world generator.")] = False,
    stable_diffusion: Annotated[
        Path | None,
        typer.Option(
            "--stable-diffusion", help="Local Stable Diffusion pipeline directory (ImageNet path)."
        ),
    ] = None,
    classes_file: Annotated[
        Path | None,
        typer.Option(
            help="With --stable-diffusion: one class per line ('wnid', 'wnid name' or 'name')."
        ),
    ] = None,
    prompt: Annotated[str, typer.Option(help="Prompt template with {} for the class name.")] = (
        "a photo of a {}"
    ),
) -> None:
    """Generate class-conditional training images into an ImageFolder.

    Synthetic world: train a small class-conditional diffusion model on the world's train
    split (cached in --model-dir) and sample it. ImageNet: render class-name prompts with a
    local Stable Diffusion pipeline (--stable-diffusion DIR --classes-file F).
    """
    from robustlens.runner import console, fail, load_study_config, world_of

    try:
        t0 = time.perf_counter()
        if stable_diffusion is not None:
            from robustlens.generate import generate_with_stable_diffusion, read_classes_file

            if classes_file is None:
                raise ConfigError("--stable-diffusion needs --classes-file (one class per line)")
            names, folders = read_classes_file(classes_file)
            generate_with_stable_diffusion(
                stable_diffusion,
                names,
                out,
                n_per_class,
                prompt_template=prompt,
                steps=sample_steps,
                seed=seed,
                guidance_scale=7.5 if guidance is None else guidance,
                folder_names=folders,
            )
            console.print(
                f"{len(names) * n_per_class} images of {len(names)} classes in {out} "
                f"({time.perf_counter() - t0:.1f}s)"
            )
            return
        from robustlens.generate import (
            DEFAULT_TRAIN_STEPS,
            GENERATOR_META,
            sample_world_generator,
            train_world_generator,
        )

        world = world_of(load_study_config(config))
        steps = steps or DEFAULT_TRAIN_STEPS
        model_dir = model_dir or out.with_name(out.name + "-generator")
        meta_path = model_dir / GENERATOR_META
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        same = meta is not None and (meta["world"], meta["steps"], meta["seed"]) == (
            world.fingerprint(),
            steps,
            seed,
        )
        if same and not retrain:
            console.print(f"reusing the world generator in {model_dir}")
        else:
            console.print(f"training the world generator ({steps} steps) -> {model_dir}")
            train_world_generator(world, model_dir, steps=steps, batch_size=batch_size, seed=seed)
            meta = json.loads(meta_path.read_text())
            console.print(
                f"  {meta['train_seconds']:.1f}s ({meta['seconds_per_step']:.2f} s/step),"
                f" final loss {meta['final_loss']:.4f}, {meta['n_params']:,} parameters"
            )
        ts = time.perf_counter()
        sample_world_generator(
            model_dir,
            out,
            n_per_class,
            steps=sample_steps,
            seed=seed,
            guidance_scale=3.0 if guidance is None else guidance,
        )
        n = n_per_class * len(world.classes)
        console.print(
            f"{n} images of {len(world.classes)} classes in {out} "
            f"(sampling {time.perf_counter() - ts:.1f}s); train on them with a zoo "
            f"member's 'generated: {out.resolve()}'"
        )
    except RobustlensError as exc:
        fail(exc)


def robustness(
    config: Annotated[Path | None, typer.Argument(help="Study YAML (default: the demo).")] = None,
    store: Annotated[Path | None, typer.Option(help="Override the store directory.")] = None,
    transform: Annotated[str, typer.Option(help="Axis transform: logit or probit.")] = "logit",
    baseline_models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated models to fit the baseline on (default: the zoo's standard "
            "models: no generated data, augment none or standard)."
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the per-model ER table as CSV.")] = None,
) -> None:
    """Effective robustness on natural shifts: baseline fit (and R^2), ER per model, pairs."""
    from robustlens.lines.robustness.analysis import (
        er_pairs_table,
        matched_pairs,
        models_config_from_artifacts,
        zoo_effective_robustness,
    )
    from robustlens.runner import fail, run_study_command

    result = run_study_command(config, store, measures=["accuracy", "robustness"])
    if result is None:
        return
    try:
        models_config = {
            **models_config_from_artifacts(result.artifacts),
            **(getattr(result, "model_configs", None) or {}),
        }
        chosen = [m.strip() for m in baseline_models.split(",")] if baseline_models else None
        table, baselines = zoo_effective_robustness(
            result.store.results(models=result.models, measures=["robustness"]),
            models_config,
            transform=transform,
            baseline_models=chosen,
        )
    except RobustlensError as exc:
        fail(exc)
        return
    console = stdout_console()
    shifts = sorted(table["shift"].unique())
    fits = Table(title=f"baselines ({transform} axes, fitted over standard models)")
    for col in ("shift", "slope", "intercept", "R^2", "n"):
        fits.add_column(col, justify="left" if col == "shift" else "right")
    for s in shifts:
        b = baselines.get(s)
        if b is None:
            fits.add_row(s, "–", "–", "–", "fewer than 2 standard models or equal accuracies")
        else:
            fits.add_row(s, f"{b.slope:.3f}", f"{b.intercept:.3f}", f"{b.r2:.3f}", str(b.n))
    console.print(fits)
    er = Table(title="effective robustness (acc_ood - baseline at acc_id)")
    er.add_column("model", style="bold")
    er.add_column("kind")
    for s in shifts:
        er.add_column(s.replace("world/", ""), justify="right")
    wide = table.pivot_table(
        index="model", columns="shift", values="er", aggfunc="first", dropna=False
    )
    flags = table.groupby("model")[["generated", "in_baseline"]].first()
    for model in wide.index:
        kind = (
            "generated"
            if flags.loc[model, "generated"]
            else "baseline"
            if flags.loc[model, "in_baseline"]
            else ""
        )
        er.add_row(
            str(model),
            kind,
            *(_fmt(wide.loc[model].get(s, float("nan")), sign=True) for s in shifts),
        )
    console.print(er)
    res = result.store.results(models=result.models, measures=["robustness"])
    shipped = res[res["name"] == f"er_shipped_{transform}"]
    if not shipped.empty:
        t = Table(title=f"ER against the shipped ImageNet baselines ({transform})")
        for col in ("model", "dataset", "ER"):
            t.add_column(col)
        for _, r in shipped.iterrows():
            t.add_row(r["model"], r["dataset"], f"{r['value']:+.4f}")
        console.print(t)
    pairs = er_pairs_table(table, matched_pairs(models_config))
    if not pairs.empty:
        t = Table(title="generated-data models vs their real-only twins")
        for col in (
            "shift",
            "generated",
            "real",
            "acc_ood gen",
            "acc_ood real",
            "ER gen",
            "ER real",
            "delta ER",
        ):
            t.add_column(col, justify="right")
        for _, r in pairs.iterrows():
            t.add_row(
                r["shift"].replace("world/", ""),
                r["generated"],
                r["real"],
                _fmt(r["acc_ood_gen"]),
                _fmt(r["acc_ood_real"]),
                _fmt(r["er_gen"], sign=True),
                _fmt(r["er_real"], sign=True),
                _fmt(r["delta_er"], sign=True),
            )
        console.print(t)
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        console.print(f"ER table written to {csv}")


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``robustness`` to the ``robustlens`` CLI."""
    app.command("generate")(generate)
    app.command("robustness")(robustness)
