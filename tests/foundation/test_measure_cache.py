"""Measure runs are cached in the store: a re-run computes nothing, a change recomputes."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from robustlens.config import parse_config
from robustlens.lines.clustering.measure import ClusteringMeasure
from robustlens.lines.invariance.measure import InvarianceMeasure
from robustlens.study import per_sample_path, run_study

SPLITS = ["val", "v2", "sketch"]


@pytest.fixture()
def counted(monkeypatch):
    """Count compute() calls of two measures without changing what they return."""
    calls: list[str] = []
    for cls in (InvarianceMeasure, ClusteringMeasure):
        original = cls.compute

        def wrapped(self, *args, _original=original, **kwargs):
            calls.append(self.name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "compute", wrapped)
    return calls


def _config(root, tiny_world, tiny_zoo_dir, **clustering):
    return parse_config(
        {
            "store": str(root / "store"),
            "output": str(root / "out"),
            "world": dataclasses.asdict(tiny_world.config),
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": SPLITS}],
            "measures": ["invariance", "clustering"],
            "measure_options": {"clustering": clustering} if clustering else {},
        }
    )


def test_rerun_computes_no_measure_and_gives_identical_results(
    tmp_path, tiny_world, tiny_zoo_dir, counted
):
    cfg = _config(tmp_path, tiny_world, tiny_zoo_dir)
    first = run_study(cfg)
    n_models = len(first.models)
    assert sorted(counted) == sorted(["invariance", "clustering"] * n_models)
    before = first.results()
    per_sample = pd.read_parquet(per_sample_path(cfg.output, first.models[0]))

    counted.clear()
    again = run_study(cfg)
    assert counted == []
    assert again.forward_passes == 0
    pd.testing.assert_frame_equal(again.results(), before)
    pd.testing.assert_frame_equal(
        pd.read_parquet(per_sample_path(cfg.output, first.models[0])), per_sample
    )
    # artifacts come back from their files, as the report reads them
    assert set(again.artifacts[first.models[0]]) == {"clustering"}


def test_a_missing_output_file_recomputes_only_what_wrote_it(
    tmp_path, tiny_world, tiny_zoo_dir, counted
):
    cfg = _config(tmp_path, tiny_world, tiny_zoo_dir)
    first = run_study(cfg)
    model = first.models[0]
    path = per_sample_path(cfg.output, model)
    per_sample = pd.read_parquet(path)
    path.unlink()
    counted.clear()
    run_study(cfg)
    # invariance wrote the per-sample columns (clustering writes numbers and a projection),
    # so it alone runs again, for this model alone
    assert counted == ["invariance"]
    pd.testing.assert_frame_equal(pd.read_parquet(path), per_sample)


def test_other_options_or_dropped_results_recompute(tmp_path, tiny_world, tiny_zoo_dir, counted):
    run_study(_config(tmp_path, tiny_world, tiny_zoo_dir))
    counted.clear()
    result = run_study(_config(tmp_path, tiny_world, tiny_zoo_dir, seed=1))
    assert counted == ["clustering"] * len(result.models)

    counted.clear()
    with result.store._transaction() as con:
        con.execute(
            "DELETE FROM results WHERE measure='invariance' AND model=?", (result.models[0],)
        )
    run_study(_config(tmp_path, tiny_world, tiny_zoo_dir, seed=1))
    assert counted == ["invariance"]


def test_a_run_killed_before_it_is_recorded_computes_again(
    tmp_path, tiny_world, tiny_zoo_dir, counted, monkeypatch
):
    from robustlens.store import Store

    cfg = _config(tmp_path, tiny_world, tiny_zoo_dir)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Store, "put_measure_run", killed)
        with pytest.raises(KeyboardInterrupt):
            run_study(cfg)
    counted.clear()
    result = run_study(cfg)
    assert sorted(counted) == sorted(["invariance", "clustering"] * len(result.models))


def test_options_that_cannot_be_written_down_are_never_cached():
    measure = ClusteringMeasure()
    assert measure.options() == {
        "datasets": "id",
        "max_samples": 2000,
        "min_per_class": 5,
        "n_init": 3,
        "seed": 0,
    }
    measure.seed = object()  # e.g. a user's generator: no stable identity across runs
    assert measure.options() is None
