"""Unlabelled data: the ``unlabeled`` layout, measures that skip it, and ``robustlens estimate``.

The tiny world's ``corrupt/contrast/3`` split is exported as a folder of images and added to a
tiny study as an unlabelled dataset; the labelled shifts (v2, gaussian noise at two
severities, sketch, rendition) calibrate the predictors.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import typer
import yaml
from pydantic import ValidationError as PydanticValidationError
from typer.testing import CliRunner

from robustlens.config import parse_config
from robustlens.data.imagefolder import NO_LABEL, UnlabeledFolderDataset
from robustlens.errors import DatasetLayoutError
from robustlens.lines.estimate.commands import register
from robustlens.lines.estimate.section import render_estimate
from robustlens.measure import DatasetInfo, available_measures, get_measure
from robustlens.report import write_report
from robustlens.report.page import build_report_context
from robustlens.roles import NEEDS_LABELS, ROLES, UNLABELED, role_from_name, unlabeled_skips
from robustlens.store import Store
from robustlens.study import per_sample_path, read_plan

ENV = {"COLUMNS": "200"}  # rich wraps tables to the terminal width
SPLITS = ["val", "v2", "sketch", "rendition"]
SPLITS += ["corrupt/gaussian_noise/1", "corrupt/gaussian_noise/3"]
HELD_OUT = "corrupt/contrast/3"
#: measures that read an unlabelled dataset (label-free); every other one must skip it
LABEL_FREE = {"invariance", "label_free", "agreement"}
#: the values a label-free measure may give on an unlabelled dataset
LABEL_FREE_VALUES = {
    "avg_confidence",
    "nuclear_norm",
    "doc",
    "atc_maxconf",
    "atc_negentropy",
    "ei_rotation",
    "ei_gray",
    "agreement_rotation",
    "agreement_gray",
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "n_samples",
    "n_clusters",
}


def _app() -> typer.Typer:
    """The line's command on its own app (``robustlens estimate`` is this, found through the
    line's entry point)."""
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:  # keeps ``estimate`` a subcommand
        pass

    return app


def _info(role: str, name: str = "deploy") -> DatasetInfo:
    return DatasetInfo(name, "fp", role, (), {"image_size": 32})


# ----------------------------------------------------------------------------- the layout
def test_any_folder_tree_of_images_without_labels(tmp_path):
    from PIL import Image

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for p in ("x.png", "a/y.jpg", "a/b/z.png", ".hidden/h.png"):
        Image.new("RGB", (12, 9), "red").save(tmp_path / p)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    ds = UnlabeledFolderDataset(tmp_path, size=8, name="deploy")
    assert [e.path for e in ds.entries] == ["a/b/z.png", "a/y.jpg", "x.png"]
    assert ds.classes == [] and ds.labels().tolist() == [NO_LABEL] * 3
    assert ds.load(2).image.shape == (8, 8, 3) and ds.load(2).label == NO_LABEL
    assert ("a/empty.png", "zero-byte file") in ds.skipped
    assert "notes.txt" in ds.ignored and ".hidden/" in ds.ignored
    mapping = ds.class_mapping([f"c{i}" for i in range(5)])
    assert mapping.is_identity and mapping.n_classes == 5
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetLayoutError, match="no images found"):
        UnlabeledFolderDataset(tmp_path / "nothing", size=8)


def test_the_role_and_the_layout():
    assert UNLABELED in ROLES and role_from_name("unlabeled") == UNLABELED
    base = {"layout": "unlabeled", "root": "/data/deploy"}
    cfg = parse_config({"datasets": [base], "models": []})
    assert cfg.datasets[0].layout == "unlabeled"
    for extra, msg in (
        ({"role": "corrupt"}, "has no labels, so its role cannot be 'corrupt'"),
        ({"corruptions": ["fog"]}, "corruptions does not apply"),
        ({"acceptable_labels": "x.json"}, "acceptable_labels does not apply"),
    ):
        with pytest.raises((PydanticValidationError, ValueError), match=msg):
            parse_config({"datasets": [{**base, **extra}], "models": []})
    parse_config({"datasets": [{**base, "role": "unlabeled"}], "models": []})


def test_no_measure_but_the_label_free_ones_reads_an_unlabelled_dataset():
    for name in available_measures():
        requests = get_measure(name).requests(_info(UNLABELED))
        if name in LABEL_FREE:
            assert requests, name
        else:
            assert requests == {}, f"measure {name!r} reads an unlabelled dataset"
    assert get_measure("clustering", datasets="all").requests(_info(UNLABELED))
    assert get_measure("accuracy").requests(_info("other"))


def test_skips_are_listed_with_their_reason():
    measures = [get_measure("accuracy"), get_measure("invariance"), get_measure("clustering")]
    infos = {"world/val": _info("id", "world/val"), "deploy": _info(UNLABELED)}
    skips = unlabeled_skips(measures, infos)
    assert [(s["measure"], s["dataset"]) for s in skips] == [
        ("accuracy", "deploy"),
        ("clustering", "deploy"),
    ]
    assert skips[0]["reason"] == NEEDS_LABELS
    assert "clustering.datasets: all" in skips[1]["reason"]


# ----------------------------------------------------------------------------- a tiny study
@pytest.fixture(scope="module")
def deploy_folder(tiny_world, tmp_path_factory):
    """The held-out split as a folder of images in class folders (which mean nothing here)."""
    root = tmp_path_factory.mktemp("deploy")
    tiny_world.export_imagefolder(root, [HELD_OUT])
    (root / HELD_OUT / "README.txt").write_text("deployment images")
    return root / HELD_OUT


@pytest.fixture(scope="module")
def study_yaml(tiny_world, tiny_zoo_dir, deploy_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate")
    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    data = {
        "store": str(root / "store"),
        "output": str(root / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [
            {"world": SPLITS},
            {"layout": "unlabeled", "root": str(deploy_folder), "name": "deploy", "size": 32},
        ],
        "measures": ["accuracy"],
        "engine": {"num_workers": 0},
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def estimate_run(study_yaml, tmp_path_factory):
    csv = tmp_path_factory.mktemp("estimate_csv")
    res = CliRunner().invoke(
        _app(), ["estimate", str(study_yaml), "--all", "--csv", str(csv)], env=ENV
    )
    return res, csv


def test_estimate_command_prints_the_estimates(estimate_run, tiny_models):
    res, csv = estimate_run
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "How will each model do on deploy?" in text
    assert "Estimated accuracy on deploy, by predictor" in text
    assert "Which label-free predictor to trust" in text
    assert "recommended predictor:" in text
    assert f"accuracy skips deploy: {NEEDS_LABELS}" in text
    for m in tiny_models:
        assert m.name in text
    est = pd.read_csv(csv / "estimates.csv")
    assert set(est["dataset"]) == {"deploy"}
    assert est["estimate"].between(0, 1).all()
    assert (est["low"] <= est["estimate"]).all() and (est["estimate"] <= est["high"]).all()
    found = set(est["predictor"])
    for p in ("avg confidence", "ATC (max conf, as is)", "EI rotation", "agreement", "silhouette"):
        assert p in found, p


def test_label_needing_measures_compute_nothing_on_unlabelled_data(estimate_run, study_yaml):
    res, _ = estimate_run
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(study_yaml.read_text())
    plan = read_plan(cfg["output"])
    assert plan["datasets"]["deploy"]["role"] == UNLABELED
    df = Store(cfg["store"]).results()
    deploy = df[df["dataset"] == "deploy"]
    assert not deploy.empty
    assert set(deploy["name"]) <= LABEL_FREE_VALUES, set(deploy["name"]) - LABEL_FREE_VALUES
    assert {"invariance", "label_free", "clustering"} <= set(deploy["measure"])
    assert "accuracy" not in set(deploy["measure"])
    # the per-sample rows of the unlabelled set: predictions for agreement, no label column
    model = df["model"].iloc[0]
    ps = pd.read_parquet(per_sample_path(cfg["output"], model))
    rows = ps[ps["dataset"] == "deploy"]
    assert len(rows) > 0 and rows["top1"].notna().all()
    assert "label" not in rows.columns or rows["label"].isna().all()


def test_the_plan_records_why_measures_skip_unlabelled_data(estimate_run, study_yaml):
    res, _ = estimate_run
    assert res.exit_code == 0, res.output
    plan = read_plan(yaml.safe_load(study_yaml.read_text())["output"])
    if "label_skips" not in plan:
        pytest.skip("study.py does not record label_skips in plan.json yet (lead's change)")
    assert {"measure": "accuracy", "dataset": "deploy", "reason": NEEDS_LABELS} in plan[
        "label_skips"
    ]


def test_report_section_shows_the_estimates(estimate_run, study_yaml):
    res, _ = estimate_run
    assert res.exit_code == 0, res.output
    ctx = build_report_context(yaml.safe_load(study_yaml.read_text())["output"])
    html = render_estimate(ctx)
    assert html is not None
    for text in ("How will each model do on deploy?", "Recommended predictor", "jackknife+"):
        assert text in html, text
    assert json.dumps(ctx.datasets["deploy"]["role"]) == '"unlabeled"'


def test_every_report_section_renders_with_unlabelled_data(estimate_run, study_yaml):
    res, _ = estimate_run
    assert res.exit_code == 0, res.output
    page = write_report(yaml.safe_load(study_yaml.read_text())["output"], export=False)
    html = page.read_text()
    assert "How will my model do on this data?" in html
    assert "data-section-error" not in html


def test_no_section_without_unlabelled_data(estimate_run, study_yaml):
    ctx = build_report_context(yaml.safe_load(study_yaml.read_text())["output"])
    ctx.datasets = {d: v for d, v in ctx.datasets.items() if v.get("role") != UNLABELED}
    assert render_estimate(ctx) is None
