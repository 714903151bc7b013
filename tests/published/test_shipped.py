"""The shipped tables: licences and citations next to them, and the published results they give.

* the testbed's logit (and probit) baselines for ImageNet-V2, -Sketch, -R and ObjectNet,
  refitted from the shipped table exactly as the testbed's plotting scripts fit them, equal
  the shipped ``IMAGENET_BASELINES`` to 4 decimals;
* seed 002's headline: over its 48 ResNet-50s, shape bias correlates negatively with
  in-distribution accuracy (Spearman about -0.76 against the ID dimension, the paper's
  Fig. 1; -0.78 against ImageNet top-1 alone), significantly.
"""

from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest

from robustlens.analysis.correlation import correlate
from robustlens.analysis.generalization import dimensions
from robustlens.metrics.effective_robustness import IMAGENET_BASELINES
from robustlens.published import (
    SOURCES,
    TESTBED_SHIFTS,
    load_published,
    published_baseline,
    shift_points,
    shipped_data,
)

LICENCES = {
    "testbed": "MIT License",
    "bvg": "Attribution-ShareAlike 4.0 International",
    "robustbench": "MIT license",
}


@pytest.mark.parametrize("name", SOURCES)
def test_each_table_ships_with_its_licence_and_citation(name):
    folder = shipped_data(name)
    assert LICENCES[name] in folder.joinpath("LICENSE").read_text(encoding="utf-8")
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert "Citation" in readme and "@" in readme and "commit" in readme


@pytest.mark.parametrize(
    ("name", "file"), [("testbed", "robustness_top1s.csv.gz"), ("bvg", "benchmark.csv.gz")]
)
def test_compressed_tables_are_the_published_files(name, file):
    folder = shipped_data(name)
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    with folder.joinpath(file).open("rb") as fh:
        digest = hashlib.sha256(gzip.decompress(fh.read())).hexdigest()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{file}`"))
    assert re.search(r"`([0-9a-f]{64})`", row).group(1) == digest


@pytest.mark.parametrize("name", SOURCES)
def test_shipped_tables_are_canonical(name):
    t = load_published(name)
    assert list(t.columns[:3]) == ["model", "source", "type"]
    assert set(t["source"]) == {name}
    acc = [c for c in t.columns if c.startswith(("imagenet", "objectnet", "stylized", "cue"))]
    values = t[acc].to_numpy(float)
    assert np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
    assert load_published(name) is not load_published(name)  # a fresh copy each call


def test_shipped_table_sizes():
    testbed, bvg, rb = (load_published(n) for n in SOURCES)
    assert len(testbed) == 338 and testbed["model"].is_unique
    assert testbed.attrs["untyped"] == []  # model_types.py types every model
    assert len(bvg) == 70 and bvg["type"].notna().sum() == 48
    assert (rb["threat"] == "Linf").sum() == 30 and (rb["threat"] == "corruptions").sum() == 12


@pytest.mark.parametrize("shift", list(TESTBED_SHIFTS))
@pytest.mark.parametrize("transform", ["logit", "probit"])
def test_testbed_baselines_are_reproduced_from_the_shipped_table(shift, transform):
    b = published_baseline(load_published("testbed"), shift, transform)
    shipped = IMAGENET_BASELINES[(shift, transform)]
    assert round(b.slope, 4) == shipped.slope
    assert round(b.intercept, 4) == shipped.intercept
    assert b.n == (80 if shift == "imagenet_r" else 85)


def test_the_fit_follows_the_testbed_rules():
    t = load_published("testbed")
    pts = shift_points(t, "imagenet_r").set_index("model")
    assert not pts.loc["resnet50_aws_baseline", "in_fit"]  # 'aws' models are left out
    assert pts.loc["resnet50", "in_fit"]
    assert not pts.loc["resnet50_augmix", "in_fit"] and pts.loc["resnet50_augmix", "shown"]
    assert (pts.loc[pts["shown"], "acc_id"] >= 0.75).all()
    assert not pts.loc[pts.index.str.contains("subsample"), "shown"].any()


def test_seed_002_headline_shape_bias_against_id_accuracy():
    b = load_published("bvg")
    r50 = b[b["type"].notna()].set_index("model")
    assert len(r50) == 48
    dims = dimensions(r50)
    assert dims.attrs["missing"]["in_distribution"] == []
    r = correlate(r50["biases.shape_bias"], dims["in_distribution"], "spearman", n_boot=0)
    assert r.n == 48 and round(r.coefficient, 2) == -0.76 and r.significant
    assert r.p_value < 1e-9
    top1 = correlate(r50["biases.shape_bias"], r50["imagenet_val"], "spearman", n_boot=0)
    assert round(top1.coefficient, 2) == -0.78 and top1.significant
