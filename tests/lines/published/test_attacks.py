"""Robust accuracies as the biases measure records them, read by the published line: PGD-40
(seed 002's Adversarial dimension) and AutoAttack (RobustBench's leaderboard) side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robustlens.lines.biases.measure import BiasesMeasure
from robustlens.lines.published.analysis import bias_points, robust_points, user_datasets
from robustlens.published import load_published
from robustlens.report.context import ReportContext


def _context(aa_steps=None) -> ReportContext:
    measure = BiasesMeasure(attack=["pgd", "autoattack"], aa_steps=aa_steps)
    protocol = measure.attack_protocol()
    rows = [
        ("m", "imagenet_val", "accuracy", "accuracy", 0.76),
        ("m", "imagenet_v2", "accuracy", "accuracy", 0.64),
        ("m", "val_adv", "biases", "pgd_accuracy", 0.30),
        ("m", "val_adv", "biases", "clean_accuracy", 0.76),
        ("m", "val_adv", "biases", "autoattack_accuracy", 0.45),
        ("m", "val_adv", "biases", "autoattack_clean_accuracy", 0.70),
    ]
    results = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
    datasets = {
        "imagenet_val": {"role": "id", "tags": {"layout": "imagenet_val"}},
        "imagenet_v2": {"role": "v2", "tags": {"layout": "imagenet_v2"}},
        "val_adv": {"role": "adversarial", "tags": {"layout": "imagenet_val"}},
    }
    artifacts = {
        "m": {
            "biases": {
                "pgd": {"val_adv": {**protocol["pgd"], "clean_accuracy": 0.76}},
                "autoattack": {"val_adv": {**protocol["autoattack"], "clean_accuracy": 0.70}},
            }
        }
    }
    study = {"published": ["bvg", "robustbench"]}
    return ReportContext(results, artifacts, Path("."), datasets, {"m": {}}, study)


def test_pgd_stays_seed002s_adversarial_dimension_next_to_autoattack():
    bp = bias_points(_context(), load_published("bvg"))
    assert bp.user.loc["m", "adversarial"] == pytest.approx(0.30)  # PGD-40, not AutoAttack
    assert not any("adversarial: m" in n for n in bp.notes)


def test_autoattack_is_placed_on_robustbench_with_its_own_clean_accuracy():
    rp = robust_points(_context(), load_published("robustbench"))
    user = rp.user.set_index("model").loc["m"]
    assert user["attack"] == "autoattack" and user["eps"] == pytest.approx(4 / 255)
    assert (user["clean"], user["robust"]) == (pytest.approx(0.70), pytest.approx(0.45))
    assert any("APGD/FAB steps" in n for n in rp.notes)  # torchattacks' 10 steps are named
    assert not any("PGD is a weaker attack" in n for n in rp.notes)
    full = robust_points(_context(aa_steps=100), load_published("robustbench"))
    assert not any("APGD/FAB steps" in n for n in full.notes)  # the reference budget


def test_an_attacked_copy_of_val_is_not_the_studys_val():
    assert user_datasets(_context(), "imagenet_val") == ["imagenet_val"]
