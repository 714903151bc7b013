"""mCE of a study: errors gathered from per-dataset accuracies, AlexNet or a named baseline."""

from __future__ import annotations

import pandas as pd
import pytest

from robustlens.analysis.corruption_error import corruption_errors_by_group, mce_table
from robustlens.lines.accuracy.section import render_corruption_error
from robustlens.metrics.corruption_error import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS
from robustlens.report.context import ReportContext
from robustlens.transforms.corruptions import IMAGENET_C_CORRUPTIONS


def _study(errors_by_model, clean_by_model, prefix="imagenet_c", layout="imagenet_c", skip=()):
    rows, info = [], {"imagenet_val": {"role": "id", "tags": {"layout": "imagenet_val"}}}
    for m, errs in errors_by_model.items():
        rows.append((m, "imagenet_val", "accuracy", "accuracy", 1 - clean_by_model[m]))
        for c in IMAGENET_C_CORRUPTIONS:
            if c in skip:
                continue
            for s in range(1, 6):
                d = f"{prefix}/{c}/{s}"
                info[d] = {
                    "role": "corrupt",
                    "tags": {"corruption": c, "severity": s, "layout": layout},
                }
                rows.append((m, d, "accuracy", "accuracy", 1 - errs[c][s - 1]))
    res = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
    return res, info


def test_a_model_with_alexnets_errors_scores_100():
    res, info = _study({"alexnet-like": ALEXNET_ERRORS}, {"alexnet-like": ALEXNET_CLEAN_ERROR})
    [group] = corruption_errors_by_group(res, info)
    assert group.group == "imagenet_c" and group.clean_dataset == "imagenet_val"
    table, note = mce_table(group)
    assert "AlexNet" in note
    [[model, m_ce, rel, clean]] = table.rows
    assert model == "alexnet-like"
    assert m_ce == pytest.approx(100.0) and rel == pytest.approx(100.0)
    assert clean == pytest.approx(100 * ALEXNET_CLEAN_ERROR)


def test_a_named_baseline_model_normalises_the_others():
    half = {c: [e / 2 for e in v] for c, v in ALEXNET_ERRORS.items()}
    res, info = _study(
        {"base": ALEXNET_ERRORS, "better": half},
        {"base": 0.4, "better": 0.2},
        prefix="world/corrupt",
        layout="",
    )
    info["world/val"] = info.pop("imagenet_val")
    res["dataset"] = res["dataset"].replace("imagenet_val", "world/val")
    [group] = corruption_errors_by_group(res, info)
    assert not group.imagenet
    assert mce_table(group)[0] is None  # a world set has no published baseline
    table, _ = mce_table(group, baseline_model="base")
    by_model = {r[0]: r for r in table.rows}
    assert by_model["base"][1] == pytest.approx(100.0)
    assert by_model["better"][1] == pytest.approx(50.0)  # every error halved: CE_c = 1/2
    # relative: sum_s (E/2 - 0.2) / sum_s (E - 0.4) = 1/2 for every corruption
    assert by_model["better"][2] == pytest.approx(50.0)


def test_a_set_without_all_15_corruptions_names_the_missing_ones():
    res, info = _study({"m": ALEXNET_ERRORS}, {"m": 0.4}, skip=("frost", "glass_blur"))
    [group] = corruption_errors_by_group(res, info)
    table, note = mce_table(group)
    assert table is None and "frost" in note and "glass_blur" in note
    ctx = ReportContext(results=res, artifacts={}, output_dir=".", datasets=info)
    assert "missing" in render_corruption_error(ctx)


def test_exports_write_mce_and_protocols_for_a_study_with_the_15_corruptions(tmp_path):
    from robustlens.report.exports import _protocol_exports

    res, info = _study({"alexnet-like": ALEXNET_ERRORS}, {"alexnet-like": ALEXNET_CLEAN_ERROR})
    plan = {"datasets": info, "protocols": {"accuracy": {"paper": "x", "parameters": {}}}}
    paths = _protocol_exports(res, plan, tmp_path)
    assert set(paths) == {"protocols.json", "mce.csv"}
    mce = pd.read_csv(paths["mce.csv"])
    assert mce.loc[0, "mCE"] == pytest.approx(100.0) and mce.loc[0, "dataset"] == "imagenet_c"
