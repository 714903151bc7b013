"""Every measure records its protocol (paper and parameters) with its results."""

from __future__ import annotations

import dataclasses
import json

from robustlens.config import parse_config
from robustlens.measure import available_measures, get_measure
from robustlens.report import build_report_context, write_report
from robustlens.study import read_plan, run_study


def _tiny_study(world, zoo_dir, root, **extra):
    """The tiny zoo on the tiny world's val split, with ``extra`` study-file keys."""
    return parse_config(
        {
            "store": str(root / "store"),
            "output": str(root / "out"),
            "world": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(world.config).items()
            },
            "models": [{"source": "zoo", "path": str(zoo_dir)}],
            "datasets": [{"world": ["val"]}],
            "engine": {"num_workers": 0},
            **extra,
        }
    )


def test_every_registered_measure_names_its_paper_and_parameters():
    for name in available_measures():
        protocol = get_measure(name).protocol()
        assert protocol["measure"] == name
        assert protocol["paper"], f"measure {name!r} does not name the paper it follows"
        assert isinstance(protocol["parameters"], dict)


def test_a_study_records_the_protocols_it_ran_in_its_plan_and_report(
    tiny_world, tiny_zoo_dir, tmp_path
):
    cfg = _tiny_study(
        tiny_world,
        tiny_zoo_dir,
        tmp_path,
        measures=["accuracy", "clustering"],
        measure_options={"clustering": {"max_samples": 40, "seed": 7}},
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
    cfg = _tiny_study(tiny_world, tiny_zoo_dir, tmp_path, published=["testbed", {"source": "bvg"}])
    run_study(cfg)
    assert read_plan(tmp_path / "out")["published"] == [{"source": "testbed"}, {"source": "bvg"}]
    ctx = build_report_context(tmp_path / "out")
    assert ctx.study["published"] == [{"source": "testbed"}, {"source": "bvg"}]
