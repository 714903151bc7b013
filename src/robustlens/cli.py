"""The ``robustlens`` command line (typer + rich).

Start-up is kept short: this module, the runner and the core commands import only typer,
rich and the light core modules; what a command runs (the study, torch, the report) is
imported by the command itself when it runs ("lazy:" imports). The research lines' commands
are listed from an index and imported when one of them runs
(:mod:`robustlens.commands.lazy`), so ``robustlens --help`` imports no line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from robustlens.commands import pretrained, report, rerun
from robustlens.commands import store as store_commands
from robustlens.commands.lazy import LazyGroup
from robustlens.console import StageProgress, capturing_tables, console, fail, stdout_console
from robustlens.errors import RobustlensError
from robustlens.runner import (
    ConfigOpt,
    RequiredStudyArg,
    StoreOpt,
    StudyArg,
    exit_code_of,
    load_study_config,
    print_line_summaries,
    run_study_command,
    study_path,
    world_of,
    write_report_command,
)

if TYPE_CHECKING:
    from rich.console import Console

    from robustlens.config import GeneratedSection
    from robustlens.models.zoo import ZooMember
    from robustlens.study import StudyResult

app = typer.Typer(
    name="robustlens",
    help="Audit image classifiers: robustness, invariance and bias measures, their "
    "correlations across models, per-sample outputs and an HTML report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=LazyGroup,
)
zoo_app = typer.Typer(help="Train and list the synthetic model zoo.", no_args_is_help=True)
world_app = typer.Typer(help="Build and export the synthetic world.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
app.add_typer(world_app, name="world")


# ------------------------------------------------------------------------------ world
@world_app.command("build")
def world_build(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Generate every split of the study's synthetic world (its `world` section; cached in the
    store, instant when cached)."""
    try:
        cfg = load_study_config(study_path(study, config), store=str(store) if store else None)
        world = world_of(cfg)
        names = world.split_names()
        with StageProgress("world", total=len(names), unit="splits") as p:
            for _ in world.build_all():
                p.advance()
        console.print(f"world {world.fingerprint()}: {len(names)} splits, classes {world.classes}")
    except RobustlensError as exc:
        fail(exc)


@world_app.command("export")
def world_export(
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Directory for the ImageFolder trees.")
    ],
    study: StudyArg = None,
    config: ConfigOpt = None,
    split: Annotated[
        list[str] | None, typer.Option(help="Splits to export (default: all).")
    ] = None,
    limit_per_class: Annotated[
        int | None, typer.Option(help="At most this many per class.")
    ] = None,
) -> None:
    """Export the study's world splits as PNG ImageFolder trees (OUT/split/class/*.png)."""
    try:
        world = world_of(load_study_config(study_path(study, config)))
        world.export_imagefolder(out, split or None, limit_per_class)
        console.print(f"exported to {out}")
    except RobustlensError as exc:
        fail(exc)


# ------------------------------------------------------------------------------ zoo
@zoo_app.command("train")
def zoo_train(
    study: StudyArg = None,
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option(help="Zoo directory (default: the config's).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel training processes.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain members that already exist.")] = False,
) -> None:
    """Train the study's synthetic zoo (its `zoo` section; resumable: finished members are
    kept)."""
    from robustlens.models.zoo import default_zoo, train_zoo  # lazy: imports torch

    try:
        cfg = load_study_config(study_path(study, config))
        zoo = cfg.zoo
        if zoo is None:
            raise RobustlensError("the config has no 'zoo' section")
        members = default_zoo(zoo.epochs_scale) if zoo.members == "default" else list(zoo.members)
        world = world_of(cfg)
        out_dir = out or Path(zoo.dir)
        if zoo.generated is not None:
            members += _generated_twins(world, members, zoo.generated, out_dir)
        todo = [m for m in members if force or not (out_dir / f"{m.name}.safetensors").exists()]
        with StageProgress("zoo", total=len(todo), unit="members") as p:

            def done(name: str, dt: float) -> None:
                p.advance()
                console.print(f"  trained {name} in {dt:.1f}s")

            train_zoo(
                world, members, out_dir, workers=workers or zoo.workers, on_done=done, force=force
            )
        console.print(f"zoo: {len(members)} members in {out_dir}")
    except RobustlensError as exc:
        fail(exc)


def _generated_twins(
    world, members: list[ZooMember], section: GeneratedSection, zoo_dir: Path
) -> list[ZooMember]:
    """Train the world generator and sample its images once (both cached), return the twins."""
    # lazy: the generator imports torch (and diffusers where installed)
    from robustlens.generate import (
        generated_zoo_members,
        sample_world_generator,
        train_world_generator,
    )

    root = zoo_dir / section.dir
    gen_dir, img_dir = root / "generator", root / "images"
    by_name = {m.name: m for m in members}
    missing = [t for t in section.twins if t not in by_name]
    if missing:
        raise RobustlensError(
            f"zoo.generated.twins names {missing}, which are not zoo members; "
            f"members are: {', '.join(by_name)}"
        )
    done_marker = img_dir / f".complete-{section.n_per_class}-{section.sample_steps}"
    if not done_marker.exists():
        t0 = time.perf_counter()
        if not (gen_dir / "generator.json").exists():
            with StageProgress("generator", total=1.0) as p:
                train_world_generator(world, gen_dir, steps=section.train_steps, progress=p.update)
            console.print(f"  trained the world generator in {time.perf_counter() - t0:.1f}s")
        t1 = time.perf_counter()
        with StageProgress("sampling", total=1.0) as p:
            sample_world_generator(
                gen_dir,
                img_dir,
                section.n_per_class,
                steps=section.sample_steps,
                progress=p.update,
            )
        done_marker.write_text("ok")
        console.print(
            f"  sampled {section.n_per_class} images per class in {time.perf_counter() - t1:.1f}s"
        )
    return generated_zoo_members(
        [by_name[t] for t in section.twins], img_dir.resolve(), ratio=section.ratio
    )


@zoo_app.command("list")
def zoo_list(zoo_dir: Annotated[Path, typer.Argument(help="Zoo directory.")]) -> None:
    """List zoo members and their recipes."""
    from rich.table import Table  # lazy: only this command draws a rich table here

    table = Table("name", "arch", "width", "augment", "epochs", "mark_rate", "train s")
    for p in sorted(zoo_dir.glob("*.json")):
        meta = json.loads(p.read_text())
        m = meta["member"]
        table.add_row(
            m["name"],
            m["arch"],
            str(m["width"]),
            m["augment"],
            str(m["epochs"]),
            str(m["mark_rate"]),
            str(meta.get("train_seconds")),
        )
    stdout_console().print(table)


def _print_replayed(record: dict) -> None:
    """Print what a run record holds (:func:`rerun.replay`): the summary, then why no run."""
    stdout_console().out(record["summary"], end="", highlight=False)
    console.print(
        f"nothing changed since the run of {record['finished']} (study file, code, inputs "
        f"and outputs checked): {record['shape']}, every number as computed then; "
        "--full runs it again",
        highlight=False,
    )
    if record.get("report"):
        console.print(f"[bold green]report:[/] {record['report']}")


def _record(
    path: Path,
    result: StudyResult | None,
    printed: list[Console],
    *,
    started: float,
    **options: Any,
) -> None:
    """Keep the run record of a run that computed everything (:func:`rerun.record_run`), with
    the tables it printed (``printed``, from :func:`capturing_tables`) as its summary."""
    if result is not None and not exit_code_of(result):
        summary = "".join(c.export_text(styles=False) for c in printed)
        rerun.record_run(path, result, summary, started=started, **options)


@app.command("eval")
def eval_cmd(
    study: StudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Accuracy and ECE of every model on every dataset of the study (cached in the store)."""
    try:
        result = run_study_command(study_path(study, config), store, measures=["accuracy"])
    except RobustlensError as exc:
        fail(exc)
    if exit_code_of(result):
        raise typer.Exit(exit_code_of(result))


@app.command("study")
def study_cmd(
    study: RequiredStudyArg = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    executor: Annotated[str | None, typer.Option(help="local (default) or ray.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Run the study even when nothing changed since its last run (arrays still "
            "come from the store).",
        ),
    ] = False,
) -> None:
    """Run a study: every measure for every model on every dataset, in one pass per dataset.

    A re-run in which nothing changed (the study file, the code, the files it reads and the
    outputs it wrote, all checked) prints the last run's summary without running
    (:mod:`robustlens.commands.rerun`); ``--full`` runs anyway.

    Exit code 0, or 1 when some model failed (non-finite outputs): its measures are listed as
    failed, everything else is computed, stored and reported; 2 on an error, 130 when
    interrupted.
    """
    try:
        path = study_path(study, config, required=True)
    except RobustlensError as exc:
        fail(exc)
    assert path is not None  # required=True
    options = {"store": store, "executor": executor, "address": address, "report": report}
    if not full and (record := rerun.replay(path, **options)) is not None:
        _print_replayed(record)
        return
    started = time.time()
    with capturing_tables() as printed:
        result = run_study_command(path, store, executor=executor, address=address)
    page = write_report_command(result) if report and result is not None else None
    _record(path, result, printed, started=started, report_path=page, **options)
    if exit_code_of(result):
        raise typer.Exit(exit_code_of(result))


@app.command("demo")
def demo_cmd(
    workdir: Annotated[Path, typer.Option(help="Where the store, zoo and report go.")] = Path(
        "robustlens-demo"
    ),
    workers: Annotated[int, typer.Option(help="Parallel zoo-training processes.")] = 2,
    quick: Annotated[bool, typer.Option(help="A smaller world and zoo (a few minutes).")] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Run every stage even when nothing changed since the last demo here (the "
            "world, the zoo and every array still come from the store).",
        ),
    ] = False,
) -> None:
    """The demo study: synthetic world -> trained zoo -> every measure -> report.

    Run again in the same directory, it reads everything back from the store; when nothing
    changed since its last run (its study file, the code, the zoo and the report, all
    checked) it prints that run's summary without running (:mod:`robustlens.commands.rerun`).
    """
    cfg_path = workdir / "demo-study.yaml"
    command = "demo --quick" if quick else "demo"
    # before any heavy import: the record holds when the code that writes the study file is
    # unchanged (checked), so the file is what this run would write
    if not full and (record := rerun.replay(cfg_path, command=command)) is not None:
        _print_replayed(record)
        return

    import yaml  # lazy: only the demo writes a study file

    from robustlens.config import parse_config  # lazy: imports the model registry
    from robustlens.demo import demo_config_dict  # lazy: imports the measure registry

    try:
        workdir.mkdir(parents=True, exist_ok=True)
        data = demo_config_dict(quick=quick)
        parse_config(data, "demo", base_dir=workdir.resolve())  # fail before any work
        cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
        stages: dict[str, float] = {}
        t = time.perf_counter()
        world_build(study=cfg_path)
        stages["world"] = time.perf_counter() - t
        t = time.perf_counter()
        zoo_train(study=cfg_path, workers=workers)
        stages["zoo"] = time.perf_counter() - t
        t = time.perf_counter()
        started = time.time()
        with capturing_tables() as printed:
            result = run_study_command(cfg_path, None)
            stages["study"] = time.perf_counter() - t
            page = None
            if result is not None:
                t = time.perf_counter()
                page = write_report_command(result)
                stages["report"] = time.perf_counter() - t
            console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
            if result is not None:
                # the summary ends with the lines' short tables: the validity table last
                print_line_summaries(result)
        _record(cfg_path, result, printed, started=started, report_path=page, command=command)
    except RobustlensError as exc:
        fail(exc)
    if exit_code_of(result):
        raise typer.Exit(exit_code_of(result))


@app.command("views")
def views_cmd() -> None:
    """List the registered views and measures."""
    from robustlens.measure import available_measures  # lazy: imports every line
    from robustlens.views import available_views  # lazy: imports torch

    console.print("views: " + ", ".join(available_views().values()))
    console.print("measures: " + ", ".join(available_measures()))


def _register_commands() -> None:
    """The core commands; every research line's come through the group (:class:`LazyGroup`,
    from the line registry)."""
    for module in (report, pretrained, store_commands):
        module.register(app)


_register_commands()

if __name__ == "__main__":
    app()
