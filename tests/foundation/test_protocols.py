"""Every measure records its protocol (paper and parameters) with its results."""

from __future__ import annotations

import dataclasses
import json

from robustlens.config import parse_config
from robustlens.measure import available_measures, get_measure
from robustlens.report import write_report
from robustlens.study import read_plan, run_study


def test_every_registered_measure_names_its_paper_and_parameters():
    for name in available_measures():
        protocol = get_measure(name).protocol()
        assert protocol["measure"] == name
        assert protocol["paper"], f"measure {name!r} does not name the paper it follows"
        assert isinstance(protocol["parameters"], dict)


def test_a_study_records_the_protocols_it_ran_in_its_plan_and_report(
    tiny_world, tiny_zoo_dir, tmp_path
):
    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    cfg = parse_config(
        {
            "store": str(tmp_path / "store"),
            "output": str(tmp_path / "out"),
            "world": world,
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["val"]}],
            "measures": ["accuracy", "clustering"],
            "measure_options": {"clustering": {"max_samples": 40, "seed": 7}},
            "engine": {"num_workers": 0},
        }
    )
    result = run_study(cfg)
    params = result.protocols["clustering"]["parameters"]
    assert params["max_samples"] == 40 and params["seed"] == 7
    plan = read_plan(tmp_path / "out")
    assert plan["protocols"]["clustering"]["parameters"] == json.loads(json.dumps(params))
    assert "Ho, Pfreundt" in plan["protocols"]["clustering"]["paper"]
    page = write_report(result).read_text()
    assert "Measure protocols" in page and "max_samples=40" in page and "seed=7" in page


def test_published_tables_named_in_the_study_reach_the_report(tiny_world, tiny_zoo_dir, tmp_path):
    from robustlens.report import build_report_context

    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    cfg = parse_config(
        {
            "store": str(tmp_path / "store"),
            "output": str(tmp_path / "out"),
            "world": world,
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["val"]}],
            "published": ["testbed", {"source": "bvg"}],
            "engine": {"num_workers": 0},
        }
    )
    run_study(cfg)
    assert read_plan(tmp_path / "out")["published"] == [{"source": "testbed"}, {"source": "bvg"}]
    ctx = build_report_context(tmp_path / "out")
    assert ctx.study["published"] == [{"source": "testbed"}, {"source": "bvg"}]
