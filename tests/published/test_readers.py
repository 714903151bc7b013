"""Readers of the published tables, on small fixtures in each exact published format.

The fixtures under ``data/`` are real rows copied with their numbers from the three
repositories (a subset of rows and of columns; every column keeps its published name):

* ``testbed/robustness_top1s.csv``: 8 models of github.com/modestyachts/imagenet-testbed
  (commit 0170eec); ``testbed/model_types.py.txt``: its ``plotting/model_types.py`` with the
  dictionary cut to 6 of those models (``densenet121`` left out on purpose), loops kept;
* ``bvg/raw-data/benchmark.csv``: 5 models of github.com/paulgavrikov/biases_vs_generalization
  (commit 9168ac8);
* ``robustbench/model_info/imagenet``: 5 entries of github.com/RobustBench/robustbench (commit
  78fcc9e), verbatim, and the first 10 columns of ``unaggregated_results.csv`` for one model.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from robustlens.errors import ValidationError
from robustlens.published import (
    detect_format,
    load_published,
    parse_model_types,
    read_bvg,
    read_robustbench,
    read_testbed,
    shipped_data,
)

DATA = Path(__file__).parent / "data"
TESTBED_CSV = DATA / "testbed" / "robustness_top1s.csv"
TESTBED_TYPES = DATA / "testbed" / "model_types.py.txt"
BVG_CSV = DATA / "bvg" / "raw-data" / "benchmark.csv"
RB = DATA / "robustbench"


def _accuracy_columns(frame):
    return [c for c in frame.columns if c.startswith(("imagenet", "objectnet", "stylized"))]


# ---------------------------------------------------------------------------------- testbed
def test_testbed_canonical_names_units_and_types():
    t = read_testbed(TESTBED_CSV, TESTBED_TYPES)
    assert list(t.columns[:3]) == ["model", "source", "type"]
    assert set(t["source"]) == {"testbed"}
    r = t.set_index("model")
    # percent -> fraction, published column -> robustlens name
    assert r.loc["resnet50", "imagenet_val"] == 76.1300048828125 / 100
    assert r.loc["resnet50", "imagenet_v2"] == 63.209999084472656 / 100  # format-val copy
    assert r.loc["resnet50", "imagenet_sketch"] == 24.091651916503906 / 100
    assert r.loc["resnet50", "imagenet_r"] == 36.173336029052734 / 100
    assert r.loc["resnet50", "imagenet_val@imagenet_r"] == 92.1199951171875 / 100
    assert r.loc["resnet50", "imagenet_a"] == 0.0
    assert r.loc["resnet50", "imagenet_val@imagenet_a"] == 91.86000061035156 / 100
    assert r.loc["resnet50", "objectnet"] == 35.75132332289079 / 100
    assert r.loc["resnet50", "imagenet_val@objectnet"] == 78.86400604248047 / 100
    assert r.loc["resnet50", "stylized_imagenet"] == 20.48200035095215 / 100
    assert r.loc["resnet50", "imagenet_greyscale"] == 64.72600555419922 / 100
    # ImageNet-C: the released images (on disk) vs corruptions applied in memory
    assert r.loc["resnet50", "imagenet_c/fog/3"] == 44.130001068115234 / 100
    assert r.loc["resnet50", "imagenet_val/corrupt/fog/3"] == 55.23400115966797 / 100
    assert math.isnan(r.loc["resnet18_50k_10_epochs", "imagenet_c/fog/3"])
    values = t[_accuracy_columns(t)].to_numpy(float)
    assert np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
    # model types: the dictionary, the range() loops, and a model the file does not list
    assert r.loc["resnet50", "type"] == "Standard training"
    assert r.loc["resnet50_aws_baseline", "type"] == "Standard training"
    assert r.loc["FixResNeXt101_32x48d", "type"] == "Trained with more data"
    assert r.loc["resnet50_augmix", "type"] == "Other robustness intervention"
    assert r.loc["resnet50_l2_eps3_robust", "type"] == "Lp adversarially robust"
    assert r.loc["resnet18_50k_10_epochs", "type"] == "Low Accuracy CNN"
    assert r.loc["densenet121", "type"] is None
    assert t.attrs["untyped"] == ["densenet121"]
    # columns without a robustlens dataset are named, not silently dropped
    assert set(t.attrs["unmapped"]) == {"imagenetv2-matched-frequency", "pgd.linf.eps0.5"}


def test_model_types_are_read_without_executing_the_file(tmp_path):
    marker = tmp_path / "executed"
    source = f"open({str(marker)!r}, 'w').write('ran')\n" + TESTBED_TYPES.read_text(
        encoding="utf-8"
    )
    types = parse_model_types(source)
    assert not marker.exists()
    assert types["alexnet"] == "Standard training"
    assert types["resnet18_100k_49_epochs"] == "Low Accuracy CNN"
    assert types["resnet101_9_epochs"] == "Low Accuracy CNN"
    assert len(types) == 6 + 100 + 50 + 10


def test_model_types_errors_are_clear():
    with pytest.raises(ValidationError, match="no class ModelTypes"):
        parse_model_types("model_types_map = {}")
    enum = "class ModelTypes:\n    STANDARD = ('Standard training', 'b')\n"
    with pytest.raises(ValidationError, match="no 'model_types_map"):
        parse_model_types(enum)
    with pytest.raises(ValidationError, match="expected ModelTypes"):
        parse_model_types(enum + "model_types_map = {'a': make()}\n")


def test_testbed_checkout_folder_and_shipped_types(tmp_path):
    (tmp_path / "plotting").mkdir()
    shutil.copy(TESTBED_CSV, tmp_path / "robustness_top1s.csv")
    shutil.copy(TESTBED_TYPES, tmp_path / "plotting" / "model_types.py")
    assert detect_format(tmp_path) == "testbed"
    t = load_published(tmp_path)
    assert t.attrs["format"] == "testbed"
    assert t.attrs["model_types"].endswith("model_types.py")
    assert t.set_index("model").loc["densenet121", "type"] is None
    # the CSV alone takes the shipped model types, which list densenet121
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(TESTBED_CSV, alone / "top1s.csv")
    t2 = load_published(alone / "top1s.csv", format="testbed")
    assert t2.attrs["model_types"] == "shipped"
    assert t2.set_index("model").loc["densenet121", "type"] == "Standard training"


# ------------------------------------------------------------------------------------ seed 002
def test_bvg_canonical_names_units_and_categories():
    b = read_bvg(BVG_CSV, shipped_data("bvg").joinpath("r50_categories.json"))
    assert list(b.columns[:3]) == ["model", "source", "type"]
    r = b.set_index("model")
    tv = r.loc["tv_resnet50"]
    assert tv["imagenet_val"] == 76.14599997314453 / 100
    assert tv["imagenet_v2"] == 63.13999987792969 / 100
    assert tv["imagenet_val|accuracy.accuracy_real"] == 86.50306748466258 / 100
    assert tv["imagenet_a"] == 0.02666666666666667 / 100
    assert tv["imagenet_r"] == 36.156666657511394 / 100
    assert tv["imagenet_sketch"] == 24.091650454415053 / 100
    assert tv["imagenet_c/fog/3"] == 46.241999990234376 / 100
    assert tv["imagenet_cbar/sparkles/2"] == 71.80799998046875 / 100
    assert tv["stylized_imagenet"] == 37.125 / 100
    assert tv["cue_conflict"] == 18.28125 / 100
    assert tv["imagenet_val|biases.pgd_accuracy"] == 18.390345268542198 / 100
    # biases, named as the biases measure names its values (shape bias is a fraction already)
    assert tv["biases.shape_bias"] == 0.21464646464646464
    lpp = np.mean(
        [
            0.17757991239252824,
            0.5303495918573137,
            0.7269456046568205,
            0.8298269114957338,
            0.8999553494447137,
        ]
    )  # LFC 0.1 .. 0.5
    hpp = np.mean(
        [
            0.0019173692649842651,
            0.0033619625468217255,
            0.005174270482217812,
            0.008982743679789297,
            0.014997504798712539,
        ]
    )  # HFC 0.1 .. 0.5
    assert tv["biases.low_freq_bias"] == pytest.approx(lpp, abs=1e-15)
    assert tv["biases.high_freq_bias"] == pytest.approx(hpp, abs=1e-15)
    assert tv["biases.spectral_bias"] == pytest.approx(hpp / (lpp + hpp), abs=1e-15)
    assert tv["biases.cb_bandwidth_octaves"] == 11295.346977268093
    assert tv["biases.cb_center_cpi"] == 4247.369056794454
    assert tv["biases.cb_peak_sensitivity"] == 0.9999878519006941
    assert tv["biases.cb_bandwidth_octaves_norm"] == 5.666261140196207
    # the published means are exactly the per-corruption columns' here: not carried twice
    assert "imagenet_c" not in b.columns and "imagenet_cbar" not in b.columns
    # categories of the 48 ResNet-50s; None outside them
    assert tv["type"] == "baseline"
    assert r.loc["resnet50_trained_on_SIN", "type"] == "stylized"
    assert r.loc["robust_resnet50_linf_eps4.0", "type"] == "adversarial_training"
    assert r.loc["resnet50.a1_in1k", "type"] == "training_recipes"
    assert r.loc["resnet50_lpmix", "type"] is None
    assert math.isnan(r.loc["resnet50_lpmix", "imagenet_val|accuracy.accuracy_real"])
    values = b[_accuracy_columns(b)].to_numpy(float)
    assert np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
    assert {"top1_acc/sketch", "top1_acc/PGD-40/high", "metric/bandpass/LFC/0.6"} <= set(
        b.attrs["unmapped"]
    )


def test_bvg_means_are_carried_where_no_corruption_column_is(tmp_path):
    lines = BVG_CSV.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    drop = {header.index("top1_acc/fog_3"), header.index("top1_acc/sparkles_2")}
    text = "\n".join(
        ",".join(v for i, v in enumerate(line.split(",")) if i not in drop) for line in lines
    )
    (tmp_path / "benchmark.csv").write_text(text + "\n", encoding="utf-8")
    b = load_published(tmp_path / "benchmark.csv").set_index("model")
    assert b.loc["tv_resnet50", "imagenet_c"] == 41.12162105140525 / 100
    assert b.loc["tv_resnet50", "imagenet_cbar"] == 39.702319998841084 / 100
    assert b.loc["tv_resnet50", "type"] == "baseline"  # the shipped categories


def test_bvg_checkout_folder(tmp_path):
    (tmp_path / "raw-data").mkdir()
    shutil.copy(BVG_CSV, tmp_path / "raw-data" / "benchmark.csv")
    (tmp_path / "raw-data" / "r50_categories.json").write_text('{"mine": ["tv_resnet50"]}')
    assert detect_format(tmp_path) == "bvg"
    b = load_published(tmp_path).set_index("model")
    assert b.loc["tv_resnet50", "type"] == "mine"
    assert b.loc["resnet50_trained_on_SIN", "type"] is None


# --------------------------------------------------------------------------------- RobustBench
def test_robustbench_entries_in_canonical_form():
    t = read_robustbench(RB)
    assert list(t.columns[:3]) == ["model", "source", "type"]
    assert sorted(zip(t["threat"], t["model"], strict=True)) == [
        ("Linf", "Bai2024MixedNUTS"),
        ("Linf", "Salman2020Do_R50"),
        ("Linf", "Standard_R50"),
        ("corruptions", "Geirhos2018_SIN"),
        ("corruptions", "Standard_R50"),
    ]
    linf = t[t["threat"] == "Linf"].set_index("model")
    salman = linf.loc["Salman2020Do_R50"]
    assert salman["imagenet_val"] == pytest.approx(0.6402, abs=1e-15)
    assert salman["imagenet_val|autoattack_accuracy"] == pytest.approx(0.3496, abs=1e-15)
    assert salman["eps"] == pytest.approx(4 / 255, abs=1e-15)
    assert salman["architecture"] == "ResNet-50"
    assert not salman["additional_data"]
    assert linf.loc["Bai2024MixedNUTS", "additional_data"]
    assert linf.loc["Standard_R50", "imagenet_val|autoattack_accuracy"] == 0.0
    corr = t[t["threat"] == "corruptions"].set_index("model")
    assert corr.loc["Standard_R50", "imagenet_val"] == pytest.approx(0.7672, abs=1e-15)
    assert corr.loc["Standard_R50", "imagenet_c/shot_noise/1"] == 0.5828
    assert corr.loc["Standard_R50", "imagenet_c/motion_blur/5"] == 0.1452
    assert math.isnan(corr.loc["Standard_R50", "imagenet_c"])  # per corruption instead
    assert corr.loc["Geirhos2018_SIN", "imagenet_c"] == pytest.approx(0.3992, abs=1e-15)
    assert corr.loc["Geirhos2018_SIN", "imagenet_3dcc"] == pytest.approx(0.4046, abs=1e-15)
    assert math.isnan(corr.loc["Geirhos2018_SIN", "eps"])
    assert "footnote" in t.attrs["unmapped"]
    for source in (RB / "model_info", RB / "model_info" / "imagenet"):
        assert len(load_published(source, format="robustbench")) == 5
    one = load_published(RB / "model_info" / "imagenet" / "Linf", format="robustbench")
    assert set(one["threat"]) == {"Linf"} and len(one) == 3
    assert detect_format(RB) == "robustbench"


def test_robustbench_wrong_format_names_the_expected_keys(tmp_path):
    with pytest.raises(ValidationError, match=r"model_info/imagenet/<threat>/<Name>\.json"):
        read_robustbench(tmp_path)
    (tmp_path / "Linf").mkdir()
    (tmp_path / "Linf" / "x.json").write_text('{"name": "x", "acc": "1"}')
    with pytest.raises(ValidationError, match="clean_acc, autoattack_acc, eps"):
        read_robustbench(tmp_path)
    (tmp_path / "Linf" / "x.json").write_text('{"dataset": "cifar10", "clean_acc": "90"}')
    with pytest.raises(ValidationError, match="cifar10"):
        read_robustbench(tmp_path)
    (tmp_path / "Linf" / "x.json").write_text('{"dataset": "imagenet", "clean_acc": "190"}')
    with pytest.raises(ValidationError, match=r"percentage in \[0, 100\]"):
        read_robustbench(tmp_path)


# ------------------------------------------------------------------------ formats and errors
def test_a_file_in_the_wrong_format_names_the_expected_columns():
    with pytest.raises(ValidationError, match="expected the columns model, val, imagenetv2"):
        load_published(BVG_CSV, format="testbed")
    with pytest.raises(ValidationError, match="expected the columns model, top1_acc/imagenet"):
        load_published(TESTBED_CSV, format="bvg")


def test_an_unknown_file_names_both_formats(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("name,acc\nx,1\n")
    with pytest.raises(ValidationError, match=r"model, val, \(testbed\).*top1_acc/imagenet"):
        load_published(p)


def test_source_and_format_errors(tmp_path):
    with pytest.raises(ValidationError, match="neither a shipped table"):
        load_published("imagenet-testbed")
    with pytest.raises(ValidationError, match="format: expected one of testbed, bvg"):
        load_published(TESTBED_CSV, format="csv")
    with pytest.raises(ValidationError, match="format='bvg' disagrees"):
        load_published("testbed", format="bvg")
    with pytest.raises(ValidationError, match="a shipped table's name"):
        load_published(3)
    bad = tmp_path / "top1s.csv"
    bad.write_text("model,val\nm,101\n")
    with pytest.raises(ValidationError, match=r"'val' should hold percentages"):
        load_published(bad)
