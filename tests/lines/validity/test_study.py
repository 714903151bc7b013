"""The ground truth in a tiny study: from stored arrays, next to the other lines' numbers,
into the report's validity section and the ``validity.csv`` export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from robustlens.config import parse_config
from robustlens.lines.validity.section import SECTION_TITLE
from robustlens.report import read_per_sample, write_report
from robustlens.runner import print_line_summaries
from robustlens.study import run_study

SPLITS = ["val", "spurious", "cue_conflict", "corrupt/contrast/3", "corrupt/gaussian_noise/1"]


@pytest.fixture(scope="module")
def study(tiny_world, tiny_zoo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("validity")
    cfg = parse_config(
        {
            "store": str(root / "store"),
            "output": str(root / "out"),
            "world": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(tiny_world.config).items()
            },
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": SPLITS}],
            "measures": ["accuracy", "invariance", "ground_truth"],
            "engine": {"num_workers": 0},
        }
    )
    return run_study(cfg)


def _values(res: pd.DataFrame, measure: str, name: str) -> pd.Series:
    sel = res[(res["measure"] == measure) & (res["name"] == name)]
    return sel.set_index(["model", "dataset"])["value"]


def test_ground_truth_agrees_with_the_accuracy_measure(study):
    res = study.results()
    gt = _values(res, "ground_truth", "clean_accuracy")
    acc = _values(res, "accuracy", "accuracy")
    assert len(gt) == 3
    for (model, dataset), v in gt.items():
        assert v == pytest.approx(acc[(model, dataset)])
    corrupt = acc[acc.index.get_level_values("dataset").str.contains("/corrupt/")]
    mean = corrupt.groupby(level="model").mean()
    got = _values(res, "ground_truth", "corruption_accuracy").droplevel("dataset")
    assert got.sort_index().to_numpy() == pytest.approx(mean.sort_index().to_numpy())
    texture = _values(res, "ground_truth", "texture_reliance")
    assert len(texture) == 3 and np.isfinite(texture.to_numpy()).all()


def test_mark_reliance_is_the_share_of_spurious_images_predicted_as_their_mark(study, tiny_world):
    split = tiny_world.split("spurious")
    labels = np.asarray(split["labels"])
    marks = np.asarray(split.get("spurious_labels", labels))
    used = labels != marks if (labels != marks).any() else np.ones(len(labels), bool)
    got = _values(study.results(), "ground_truth", "mark_reliance")
    for model in study.models:
        ps = read_per_sample(study.output, model, datasets=["world/spurious"])
        pred = ps.sort_values("sample_id")["prediction"].to_numpy()
        assert got[(model, "world/spurious")] == pytest.approx(np.mean(pred[used] == marks[used]))


def test_the_report_has_the_section_and_the_export(study):
    page = write_report(study).read_text()
    assert SECTION_TITLE in page and "Planted causes and measured ground truth" in page
    exported = pd.read_csv(study.output / "validity.csv", dtype={"seed": str})
    assert {"000", "001", "002", "003", "004"} <= set(exported["seed"].str.zfill(3))
    ei = exported[exported["check"].str.startswith("EI grayscale vs accuracy under")].iloc[0]
    assert ei["n"] == 3  # three tiny models


def test_the_demo_summary_ends_with_the_validity_table(study, capsys):
    print_line_summaries(study)
    out = capsys.readouterr().out
    assert "Validity (short)" in out
    assert "EI grayscale vs accuracy under grayscale" in out
