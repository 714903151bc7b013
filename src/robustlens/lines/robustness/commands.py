"""``robustlens generate`` and ``robustlens robustness`` (seed 004: generated data, ER)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from robustlens.console import console, fail, stdout_console
from robustlens.errors import CheckpointError, ConfigError, RobustlensError
from robustlens.formatting import duration, number
from robustlens.generate import (
    DEFAULT_TRAIN_STEPS,
    generate_with_stable_diffusion,
    load_generator_meta,
    read_classes_file,
    sample_world_generator,
    train_world_generator,
)
from robustlens.lines.robustness.analysis import (
    er_pairs_table,
    matched_pairs,
    models_config_from_artifacts,
    zoo_effective_robustness,
)
from robustlens.lines.robustness.tables import er_table, pairs_table, shipped_er_table
from robustlens.runner import (
    ConfigOpt,
    StoreOpt,
    StudyArg,
    exit_for,
    load_study_config,
    run_study_command,
    study_path,
    world_of,
)


def generate(
    study: StudyArg = None,
    config: ConfigOpt = None,
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

    Synthetic world (the study's `world` section): train a small class-conditional diffusion
    model on the world's train split (cached in --model-dir) and sample it. ImageNet: render
    class-name prompts with a local Stable Diffusion pipeline (--stable-diffusion DIR
    --classes-file F).
    """
    try:
        t0 = time.perf_counter()
        path = study_path(study, config)
        if stable_diffusion is not None:
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
                f"({duration(time.perf_counter() - t0)})"
            )
            return
        world = world_of(load_study_config(path))
        steps = steps or DEFAULT_TRAIN_STEPS
        model_dir = model_dir or out.with_name(out.name + "-generator")
        if _trained_on(model_dir, world, steps, seed) and not retrain:
            console.print(f"reusing the world generator in {model_dir}")
        else:
            console.print(f"training the world generator ({steps} steps) -> {model_dir}")
            train_world_generator(world, model_dir, steps=steps, batch_size=batch_size, seed=seed)
            meta = load_generator_meta(model_dir)
            console.print(
                f"  {duration(meta['train_seconds'])} ({number(meta['seconds_per_step'], 2)} "
                f"s/step), final loss {number(meta['final_loss'], 4)}, "
                f"{meta['n_params']:,} parameters"
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
            f"(sampling {duration(time.perf_counter() - ts)}); train on them with a zoo "
            f"member's 'generated: {out.resolve()}'"
        )
    except RobustlensError as exc:
        fail(exc)


def _trained_on(model_dir: Path, world: Any, steps: int, seed: int) -> bool:
    """Whether ``model_dir`` holds a world generator trained on ``world`` with these settings."""
    try:
        meta = load_generator_meta(model_dir)
    except CheckpointError:
        return False
    return (meta["world"], meta["steps"], meta["seed"]) == (world.fingerprint(), steps, seed)


def robustness(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
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
    try:
        path = study_path(study, config)
    except RobustlensError as exc:
        fail(exc)
    result = run_study_command(path, store, measures=["accuracy", "robustness"])
    if result is None:
        return
    try:
        results = result.store.results(models=result.models, measures=["robustness"])
        models_config = models_config_from_artifacts(result.artifacts, result.model_configs)
        chosen = [m.strip() for m in baseline_models.split(",")] if baseline_models else None
        table, baselines = zoo_effective_robustness(
            results, models_config, transform=transform, baseline_models=chosen
        )
    except RobustlensError as exc:
        fail(exc)
        return
    out = stdout_console()
    out.print(er_table(table, baselines, transform).to_rich())
    shipped = shipped_er_table(results, transform)
    if shipped.rows:
        out.print(shipped.to_rich())
    pairs = er_pairs_table(table, matched_pairs(models_config))
    if not pairs.empty:
        out.print(pairs_table(pairs).to_rich())
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        out.print(f"ER table written to {csv}")
    exit_for(result)


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``robustness`` to the ``robustlens`` CLI."""
    app.command("generate")(generate)
    app.command("robustness")(robustness)
