"""``robustlens store verify`` and ``robustlens store gc``: check a result store and tidy it.

``verify`` hashes every array the store's index uses and compares it with its name (the
sha256 it was written under); a missing, truncated or overwritten array is listed with the
entries that use it (model, dataset, view, shard). With ``--repair`` each bad array is moved to
``quarantine/`` (never deleted) and the entries that use it are removed; given a study file,
the study is then run to recompute them, otherwise the next study on the store does.

``gc`` deletes the arrays no entry uses (left behind by interrupted runs, a repair, or entries
replaced since), keeping files younger than the grace period, which a running study may be
about to index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from robustlens.console import StageProgress, console, fail
from robustlens.errors import RobustlensError, StoreError
from robustlens.runner import load_study_config, run_study_command

if TYPE_CHECKING:
    from robustlens.config import StudyConfig
    from robustlens.store import Store

#: ``robustlens.store.GC_GRACE_S``, written out: the store imports pandas, which ``--help``
#: does not need (a test checks that the two agree)
GC_GRACE_S = 3600.0

#: STORE_OR_STUDY: a store directory, or a study file (its ``store``)
Target = Annotated[
    Path,
    typer.Argument(
        metavar="STORE_OR_STUDY",
        help="A store directory, or a study YAML (its `store`).",
        show_default=False,
    ),
]


def _open(target: Path) -> tuple[Store, StudyConfig | None]:
    """The store a command names, and the study config when it names a study file."""
    from robustlens.store import Store  # lazy: imports pandas (keeps --help fast)

    if target.is_file():
        cfg = load_study_config(target)
        return Store(cfg.store), cfg
    if not (target / "store.sqlite").exists():
        raise StoreError(
            f"{target} is neither a store directory (no store.sqlite in it) nor a study file"
        )
    return Store(target), None


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def register(app: typer.Typer) -> None:
    """Add ``robustlens store verify`` and ``robustlens store gc`` to the CLI."""
    store_app = typer.Typer(help="Check and tidy a result store.", no_args_is_help=True)
    app.add_typer(store_app, name="store")

    @store_app.command("verify")
    def verify_cmd(
        target: Target,
        repair: Annotated[
            bool,
            typer.Option(
                help="Quarantine every bad array and remove its entries; with a study file, "
                "run the study to recompute them."
            ),
        ] = False,
    ) -> None:
        """Check every stored array against its hash; list the bad ones with the entries
        that use them (exit code 1 when some are bad and not repaired)."""
        try:
            store, cfg = _open(target)
            with StageProgress("verify", unit="arrays") as p:
                report = store.verify(repair=repair, progress=lambda i, n: p.update(i, total=n))
            console.print(
                f"store {store.root}: {report.checked} arrays ({_mb(report.nbytes)}) checked "
                f"in {report.seconds:.1f}s; {len(report.problems)} bad"
                + (
                    f", {report.unreferenced} unreferenced (`robustlens store gc` drops them)"
                    if report.unreferenced
                    else ""
                ),
                highlight=False,
            )
            for problem in report.problems:
                console.print(f"  bad: {problem.line()}", markup=False, highlight=False)
            if not report.problems:
                return
            if not repair:
                console.print(
                    "run `robustlens store verify --repair` to quarantine them (give the study "
                    "file to recompute them at once)",
                    highlight=False,
                )
                raise typer.Exit(1)
            console.print(
                f"quarantined {len(report.problems)} array(s) in {store.root / 'quarantine'} "
                f"and removed {report.entries_removed} entries",
                highlight=False,
            )
            if cfg is None:
                console.print(
                    "the next study on this store recomputes them (or run this command with "
                    "the study file)",
                    highlight=False,
                )
                return
            console.print("recomputing them with the study ...")
            run_study_command(target, None)
            again = store.verify()
            if again.problems:
                raise StoreError(
                    f"{len(again.problems)} array(s) are still bad after the repair: "
                    + "; ".join(p.line() for p in again.problems[:3])
                )
            console.print(f"repaired: {again.checked} arrays checked, all good")
        except RobustlensError as exc:
            fail(exc)

    @store_app.command("gc")
    def gc_cmd(
        target: Target,
        dry_run: Annotated[bool, typer.Option(help="Only count what would go.")] = False,
        grace: Annotated[
            float,
            typer.Option(help="Keep files changed less than this many seconds ago."),
        ] = GC_GRACE_S,
        quarantine: Annotated[
            bool, typer.Option(help="Also delete the quarantined arrays.")
        ] = False,
    ) -> None:
        """Delete the arrays no entry of the store uses (and leftovers of interrupted
        writes)."""
        try:
            store, _ = _open(target)
            report = store.gc(dry_run=dry_run, grace_s=grace, quarantine=quarantine)
            verb = "would drop" if dry_run else "dropped"
            console.print(
                f"store {store.root}: {verb} {report.objects} unreferenced array(s) "
                f"({_mb(report.nbytes)}), {report.temp_files} leftover temporary file(s)"
                + (f", {report.quarantined} quarantined file(s)" if quarantine else ""),
                highlight=False,
            )
        except RobustlensError as exc:
            fail(exc)
