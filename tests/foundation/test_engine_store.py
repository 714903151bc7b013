import copy
import dataclasses
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from robustlens.config import parse_config
from robustlens.data.base import ArrayDataset
from robustlens.data.imagefolder import ImageFolderDataset
from robustlens.engine import Engine, EngineJob, _prepared
from robustlens.errors import ClassMismatchError, StoreError, ValidationError
from robustlens.models.base import ModelAdapter, adapter_from_module
from robustlens.store import META_VIEW, ArrayKey, ShardWriter, Store, StoredArrays
from robustlens.study import run_study, write_per_sample
from robustlens.views import ViewContext, parse_view


def test_engine_counts_and_second_run_is_cached(tmp_path, tiny_world, tiny_models):
    store = Store(tmp_path / "s")
    ds = tiny_world.dataset("val")
    views = ("clean", "rot90", "gray")
    eng = Engine(store, batch_size=7, shard_size=20)
    r1 = eng.run(ds, [EngineJob(m, views) for m in tiny_models])
    assert r1.images_decoded == len(ds)  # once, whatever the number of models and views
    assert r1.forward_passes == len(ds) * len(views) * len(tiny_models)
    r2 = eng.run(ds, [EngineJob(m, views) for m in tiny_models])
    assert r2.forward_passes == 0 and r2.images_decoded == 0
    assert r2.shards_cached == r2.shards_total == 3
    a = StoredArrays(store, tiny_models[0].fingerprint(), ds.fingerprint())
    assert a.logits("rot90").shape == (len(ds), 4)
    assert a.features("clean").shape[0] == len(ds)
    np.testing.assert_array_equal(a.labels(), ds.labels())


class _Slow(torch.nn.Module):
    """Waits ``seconds`` in each forward pass, then passes its input on."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def test_the_report_tells_the_time_in_forward_passes_from_the_engines_own(
    tmp_path, tiny_world, tiny_models, monkeypatch
):
    ds, views = tiny_world.dataset("val"), ("clean", "gray")
    slow = copy.deepcopy(tiny_models[0])
    slow.backbone = torch.nn.Sequential(_Slow(0.02), slow.backbone)
    slow.config = {**slow.config, "slow": True}
    real_parse = parse_view

    def slow_gray(spec):  # a view is the engine's cost, not the model's
        view = real_parse(spec)
        if spec != "gray":
            return view
        return dataclasses.replace(view, fn=lambda x, ctx: time.sleep(0.03) or view(x, ctx))

    monkeypatch.setattr("robustlens.engine.parse_view", slow_gray)
    eng = Engine(Store(tmp_path / "s"), batch_size=8)
    r = eng.run(ds, [EngineJob(slow, views), EngineJob(tiny_models[1], views)])
    batches = math.ceil(len(ds) / 8)
    assert r.forward_passes == 2 * len(views) * len(ds)
    # every forward pass of the slow model is in; the slow view, computed once per batch for
    # both models, is not
    assert r.forward_seconds >= 0.02 * batches * len(views)
    assert r.seconds - r.forward_seconds >= 0.03 * batches
    again = eng.run(ds, [EngineJob(slow, views)])
    assert again.forward_passes == 0 and again.forward_seconds == 0.0


def test_engine_matches_direct_forward(tmp_path, tiny_world, tiny_models):
    store = Store(tmp_path / "s")
    ds = tiny_world.dataset("sketch")
    m = tiny_models[0]
    Engine(store, batch_size=5, shard_size=8).run(ds, [EngineJob(m, ("clean", "rot180"))])
    x = torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = m(torch.rot90(x, 2, dims=(-2, -1))).numpy()
    got = StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits("rot180")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_channels_last_is_the_default_and_the_study_can_turn_it_off(
    tmp_path, tiny_world, tiny_models, tiny_zoo_dir, monkeypatch
):
    assert Engine(Store(tmp_path / "d")).channels_last  # on CPU too: faster convolutions
    ds = tiny_world.dataset("val")
    m = tiny_models[0]
    logits = []
    for cl in (True, False):
        store = Store(tmp_path / f"cl{cl}")
        Engine(store, batch_size=16, channels_last=cl).run(ds, [EngineJob(m, ("rot90",))])
        logits.append(StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits("rot90"))
    np.testing.assert_allclose(logits[0], logits[1], rtol=1e-4, atol=1e-4)

    seen = []
    init = Engine.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((self.channels_last, self.amp, self.fold_batchnorm))

    monkeypatch.setattr(Engine, "__init__", spy)
    cfg = parse_config(
        {
            "store": str(tmp_path / "study"),
            "output": str(tmp_path / "out"),
            "world": dataclasses.asdict(tiny_world.config),
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": ["val"]}],
            "engine": {"channels_last": False, "amp": False, "fold_batchnorm": False},
        }
    )
    run_study(cfg)
    assert seen == [(False, False, False)]


def _count_batchnorm_calls(monkeypatch) -> dict:
    calls = {"n": 0}
    forward = torch.nn.BatchNorm2d.forward

    def counted(self, x):
        calls["n"] += 1
        return forward(self, x)

    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", counted)
    return calls


def test_the_engine_runs_batchnorm_folded_with_the_models_own_outputs(
    tmp_path, tiny_world, tiny_models, monkeypatch
):
    """On by default: a BatchNorm runs only in the check of a run's first batch, and the
    logits are the model's own up to float rounding."""
    calls = _count_batchnorm_calls(monkeypatch)
    ds, views = tiny_world.dataset("val"), ("clean", "rot90", "gray")
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for t in tiny_models for m in t.modules())
    assert n_bn > 0
    logits, counted = {}, {}
    for fold in (True, False):
        store = Store(tmp_path / f"fold{fold}")
        calls["n"] = 0
        Engine(store, batch_size=8, fold_batchnorm=fold).run(
            ds, [EngineJob(m, views) for m in tiny_models]
        )
        counted[fold] = calls["n"]
        logits[fold] = [
            StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits(v)
            for m in tiny_models
            for v in views
        ]
    assert counted[True] == n_bn  # each BatchNorm once: the check on the first batch
    assert counted[False] == n_bn * math.ceil(len(ds) / 8) * len(views)
    for a, b in zip(logits[True], logits[False], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_a_folded_copy_that_computes_something_else_is_dropped_with_a_warning(
    tmp_path, tiny_world, tiny_models, monkeypatch
):
    from robustlens.models.folding import BatchNormFolding

    refresh = BatchNormFolding.refresh

    def stale(self):  # as a trace that kept a flag the forward reads at its old value
        module = refresh(self)
        return lambda x: -module(x)

    monkeypatch.setattr(BatchNormFolding, "refresh", stale)
    ds, m = tiny_world.dataset("val"), copy.deepcopy(tiny_models[0])
    store = Store(tmp_path / "s")
    eng = Engine(store, batch_size=8)
    with pytest.warns(RuntimeWarning, match="runs unfolded"):
        eng.run(ds, [EngineJob(m, ("clean",))])
    x = torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = m(x).numpy()
    got = StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits("clean")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


class _Flagged(torch.nn.Module):
    """Conv, BatchNorm, and a sign its forward reads from a plain attribute: a trace keeps
    the value the attribute had when it was made."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.negate = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x)).mean(dim=(2, 3))
        return -y if self.negate else y


def test_a_flag_changed_between_runs_is_traced_again(tmp_path, tiny_world):
    """A trace keeps the flag's value: the engine sees the attribute rebound and traces the
    backbone again, so the second run computes the negated features."""
    ds = tiny_world.dataset("val")
    torch.manual_seed(0)
    m = ModelAdapter("flagged", _Flagged(), torch.nn.Linear(6, len(ds.classes)), ds.classes)
    with torch.no_grad():
        m.backbone.bn.running_var.uniform_(0.5, 2)
    store = Store(tmp_path / "s")
    eng = Engine(store, batch_size=8)
    x = torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).float() / 255
    foldings, results = [], []
    for negate in (False, True):
        m.backbone.negate = negate
        m.config = {"negate": negate}  # a new fingerprint: the engine computes again
        m._fingerprint = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the check never had to catch it
            eng.run(ds, [EngineJob(m, ("clean",))])
        foldings.append(eng._foldings[m.backbone].folding)
        with torch.no_grad():
            ref = m(x).numpy()
        got = StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits("clean")
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        results.append(got)
    assert foldings[0] is not foldings[1]
    assert not np.allclose(results[0], results[1], atol=1e-3)


def test_a_model_with_non_finite_features_is_failed_not_blamed_on_the_folding(
    tmp_path, tiny_world, tiny_models
):
    """A negative running variance makes one channel NaN in the model and in its folded
    copy alike: the copy computes what the model does, and the model is failed as any model
    with NaN logits is, without a warning that the folding is wrong."""
    ds, m = tiny_world.dataset("val"), copy.deepcopy(tiny_models[0])
    bn = next(b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_var[0] = -2.0
    m._fingerprint = None
    eng = Engine(Store(tmp_path / "s"), batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = eng.run(ds, [EngineJob(m, ("clean",))])
    assert report.failed[m.name]["samples"] == len(ds)
    assert eng._foldings[m.backbone] is not None


def test_the_engine_does_not_keep_a_dropped_model_alive(tmp_path, tiny_world, tiny_models):
    import gc

    eng = Engine(Store(tmp_path / "s"), batch_size=8)
    m = copy.deepcopy(tiny_models[0])
    eng.run(tiny_world.dataset("val"), [EngineJob(m, ("clean",))])
    assert eng._foldings.get(m.backbone) is not None
    del m
    gc.collect()
    assert len(eng._foldings) == 0


def test_weights_changed_in_place_are_never_run_stale(tmp_path, tiny_world, tiny_models):
    """The engine keeps a model's folded copy between runs, and recomputes its weights from
    the model's on each run: a BatchNorm's statistics changed through ``.data`` (which no
    version counter sees) give the new model's logits."""
    ds, m = tiny_world.dataset("val"), copy.deepcopy(tiny_models[0])
    store = Store(tmp_path / "s")
    eng = Engine(store, batch_size=8)
    x = torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).float() / 255
    results = []
    for _ in range(2):
        eng.run(ds, [EngineJob(m, ("clean",))])
        folding = eng._foldings[m.backbone].folding
        with torch.no_grad():
            ref = m(x).numpy()
        got = StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits("clean")
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        results.append(got)
        bn = next(b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
        bn.running_var.data.mul_(9.0)
        bn.running_mean.data.add_(0.5)
        m._fingerprint = None  # new weights: a new key, so the engine computes again
    assert len(eng._foldings) == 1 and eng._foldings[m.backbone].folding is folding  # refreshed
    assert not np.allclose(results[0], results[1], atol=1e-3)


@pytest.mark.parametrize("view", ["rot90", "rot180", "rot270", "gray"])
def test_views_keep_their_inputs_memory_layout_and_values(view):
    """The engine feeds channels-last batches: a view returns them channels-last (no second
    copy before the forward pass), and the same numbers as from a standard-layout batch."""
    x = torch.rand(3, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    ctx = ViewContext(torch.arange(3))
    standard = parse_view(view)(x, ctx)
    last = parse_view(view)(x.contiguous(memory_format=torch.channels_last), ctx)
    assert standard.is_contiguous()
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert torch.equal(standard, last)


def test_views_of_a_batch_share_what_they_compute_alike(monkeypatch):
    """Every band-noise view of a batch makes its stimulus once, every frequency filter its
    spectrum once (``ViewContext.shared``), and each gives what it gives on its own."""
    import robustlens.views.registry as registry

    calls = {"stimulus": 0, "spectrum": 0}
    for name, attr in (("stimulus", "critical_band_stimulus"), ("spectrum", "centred_spectrum")):
        fn = getattr(registry, attr)

        def counted(x, fn=fn, name=name):
            calls[name] += 1
            return fn(x)

        monkeypatch.setattr(registry, attr, counted)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    specs = [
        "bandnoise:4:0.04",
        "bandnoise:5:0.16",
        "bandnoise:4:0.0",
        "lowpass:0.3",
        "highpass:0.6",
    ]
    memo: dict = {}
    together = [parse_view(v)(x, ViewContext(torch.arange(4), memo=memo)) for v in specs]
    assert calls == {"stimulus": 1, "spectrum": 1}
    alone = [parse_view(v)(x, ViewContext(torch.arange(4))) for v in specs]
    assert calls == {"stimulus": 4, "spectrum": 3}
    for a, b in zip(together, alone, strict=True):
        assert torch.equal(a, b)
    # other pixels under the same context never get the first pixels' stimulus
    y = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ctx = ViewContext(torch.arange(4), memo=memo)
    assert torch.equal(
        parse_view(specs[0])(y, ctx), parse_view(specs[0])(y, ViewContext(torch.arange(4)))
    )
    assert calls["stimulus"] == 6
    # one result is held at a time: the spectrum replaced the stimulus
    parse_view("lowpass:0.5")(y, ctx)
    assert list(memo) == ["spectrum"]


def test_stored_arrays_read_the_index_once_and_see_what_the_store_has(
    tmp_path, tiny_world, tiny_models
):
    """What a measure reads (``has``, ``logits``, the labels, ``acceptable_labels``) agrees
    with the store's own key-by-key answers; an array with a shard missing is not there."""
    store = Store(tmp_path / "s")
    ds, m = tiny_world.dataset("val"), tiny_models[0]
    Engine(store, batch_size=16, shard_size=16).run(ds, [EngineJob(m, ("clean", "gray"))])
    arrays = StoredArrays(store, m.fingerprint(), ds.fingerprint())
    for view in ("clean", "gray", "rot90"):
        key = ArrayKey(m.fingerprint(), ds.fingerprint(), view)
        assert arrays.has(view) == store.has(key, "logits") == (view != "rot90")
        if view != "rot90":
            np.testing.assert_array_equal(arrays.logits(view), store.load(key, "logits"))
    meta = ArrayKey("", ds.fingerprint(), META_VIEW)
    np.testing.assert_array_equal(arrays.labels(), store.load(meta, "labels"))
    assert (arrays.acceptable_labels() is None) == (not store.has(meta, "acceptable"))
    with pytest.raises(KeyError, match="rot90"):
        arrays.logits("rot90")
    # one shard of the gray view gone: the index leaves it out, as has() does
    key = ArrayKey(m.fingerprint(), ds.fingerprint(), "gray")
    with sqlite3.connect(store.root / "store.sqlite") as con:
        con.execute(
            "DELETE FROM shards WHERE model_fp=? AND dataset_fp=? AND view=? AND shard=1",
            key.row[:3],
        )
    assert not store.has(key, "logits")
    assert ("gray", "logits") not in store.complete_arrays(m.fingerprint(), ds.fingerprint())
    assert not StoredArrays(store, m.fingerprint(), ds.fingerprint()).has("gray")


def test_shard_results_do_not_depend_on_batch_size(tmp_path, tiny_world, tiny_models):
    ds = tiny_world.dataset("val")
    m = tiny_models[1]
    out = []
    for bs in (4, 48):
        store = Store(tmp_path / f"s{bs}")
        Engine(store, batch_size=bs, shard_size=16).run(
            ds, [EngineJob(m, ("corrupt:gaussian_noise:3",))]
        )
        out.append(
            StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits(
                "corrupt:gaussian_noise:3"
            )
        )
    np.testing.assert_allclose(out[0], out[1], rtol=1e-4, atol=1e-4)  # per-sample seeded noise


def test_class_count_mismatch_names_both_counts(tmp_path, tiny_world):
    m = adapter_from_module(
        "ten",
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)),
        [f"c{i}" for i in range(10)],
        input_size=32,
    )
    with pytest.raises(ClassMismatchError, match=r"4 classes.*10"):
        Engine(Store(tmp_path / "s")).run(tiny_world.dataset("val"), [EngineJob(m)])


def test_unknown_view_fails_before_work(tmp_path, tiny_world, tiny_models):
    store = Store(tmp_path / "s")
    with pytest.raises(ValidationError, match="unknown view 'rot45'"):
        Engine(store).run(tiny_world.dataset("val"), [EngineJob(tiny_models[0], ("rot45",))])
    assert store.stats()["shards"] == 0


def test_corrupt_images_are_skipped_and_listed(tmp_path, tiny_models):
    root = tmp_path / "folder"
    classes = tiny_models[0].classes
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png"
            )
    good = (root / classes[0] / "0.png").read_bytes()
    (root / classes[1] / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / classes[2] / "garbage.png").write_bytes(b"not an image at all" * 10)
    ds = ImageFolderDataset(root, size=32, crop="none")
    store = Store(tmp_path / "s")
    rep = Engine(store, batch_size=4, num_workers=0).run(ds, [EngineJob(tiny_models[0])])
    names = sorted(item for item, _ in rep.skipped)
    assert any("truncated.png" in n for n in names) and any("garbage.png" in n for n in names)
    assert rep.images_decoded == 12
    a = StoredArrays(store, tiny_models[0].fingerprint(), ds.fingerprint())
    assert a.logits().shape[0] == len(a.labels()) == 12


def test_read_only_store_is_a_clear_error(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(root, 0o500)
    try:
        if os.access(root, os.W_OK):  # running as root: permissions do not bind
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(StoreError, match=r"not writable|read-only"):
            Store(root / "store")
    finally:
        os.chmod(root, 0o700)


def test_concurrent_writers_do_not_corrupt(tmp_path):
    root = tmp_path / "s"
    Store(root)
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from robustlens.store import Store, ArrayKey
        st = Store({str(root)!r})
        w = int(sys.argv[1])
        for i in range(25):
            key = ArrayKey("m%d" % (i % 5), "d", "clean")
            st.put_shard(key, i % 3, 3, {{"logits": np.full((4, 2), i % 5, np.float32)}})
            st.put_results([{{"model": "m", "model_fp": "m", "dataset": "d", "dataset_fp": "d",
                             "measure": "x", "name": "w%d_%d" % (w, i), "value": float(i)}}])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    st = Store(root)
    assert len(st.results()) == 75
    for m in range(5):
        arr = st.load(ArrayKey(f"m{m}", "d", "clean"), "logits")
        assert arr.shape == (12, 2) and np.all(arr == m)
    con = sqlite3.connect(root / "store.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_array_dataset_validates_inputs():
    with pytest.raises(ValueError, match="uint8"):
        ArrayDataset("x", np.zeros((2, 4, 4, 3), np.float32), np.zeros(2), ["a"], "fp")
    with pytest.raises(ValueError, match=r"\(2\).*\(3\)"):
        ArrayDataset("x", np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3), ["a"], "fp")


def test_cached_view_without_features_is_recomputed_for_features(tmp_path, tiny_world, tiny_models):
    store = Store(tmp_path / "s")
    ds = tiny_world.dataset("v2")
    m = tiny_models[0]
    eng = Engine(store, batch_size=16, shard_size=16)
    eng.run(ds, [EngineJob(m, ("clean",), frozenset())])
    a = StoredArrays(store, m.fingerprint(), ds.fingerprint())
    with pytest.raises(KeyError):
        a.features("clean")
    logits_before = a.logits("clean")
    rep = eng.run(ds, [EngineJob(m, ("clean",), frozenset({"clean"}))])
    assert rep.forward_passes == len(ds)
    assert a.features("clean").shape[0] == len(ds)
    np.testing.assert_array_equal(a.logits("clean"), logits_before)


def test_per_sample_columns_of_earlier_runs_are_kept(tmp_path):
    write_per_sample(tmp_path, "m", {"d1": {"sample_id": np.arange(3), "ei": np.ones(3)}})
    write_per_sample(
        tmp_path,
        "m",
        {
            "d1": {"sample_id": np.arange(3), "correct": np.zeros(3, bool)},
            "d2": {"sample_id": np.arange(2)},
        },
    )
    df = pd.read_parquet(tmp_path / "per_sample" / "m.parquet")
    assert set(df.columns) == {"model", "dataset", "sample_id", "ei", "correct"}
    assert len(df) == 5 and df.loc[df.dataset == "d1", "ei"].tolist() == [1.0, 1.0, 1.0]


def test_results_of_retrained_model_replace_the_old_ones(tmp_path):
    store = Store(tmp_path / "s")
    row = {"model": "m", "dataset": "d", "dataset_fp": "d1", "measure": "a", "name": "acc"}
    store.put_results([{**row, "model_fp": "old", "value": 0.1}])
    store.drop_stale_results("m", "new", {"d": "d1"})
    store.put_results([{**row, "model_fp": "new", "value": 0.9}])
    df = store.results(models=["m"])
    assert df["value"].tolist() == [0.9] and df["model_fp"].tolist() == ["new"]


def test_two_datasets_with_the_same_files_keep_separate_results(tmp_path):
    store = Store(tmp_path / "s")
    base = {"model": "m", "model_fp": "f", "dataset_fp": "same", "measure": "a", "name": "acc"}
    store.put_results(
        [
            {**base, "dataset": "photos", "value": 0.5},
            {**base, "dataset": "photos-adversarial", "value": 0.25},
        ]
    )
    df = store.results().set_index("dataset")
    assert df.loc["photos", "value"] == 0.5 and df.loc["photos-adversarial", "value"] == 0.25


# ----------------------------------------------------------------------------- faults
class _NaNFor(torch.nn.Module):
    """NaN features for the samples whose first pixel is bright."""

    def forward(self, x):
        bad = x[:, 0, 0, 0] > 0.5
        x = torch.flatten(x, 1).clone()
        x[bad] = float("nan")
        return x


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_a_model_with_nan_logits_fails_alone_and_nothing_of_it_is_stored(
    tmp_path, tiny_world, tiny_models, background
):
    ds = tiny_world.dataset("val")
    classes = tiny_models[0].classes
    bad = adapter_from_module(
        "nan-model",
        torch.nn.Sequential(_NaNFor(), torch.nn.Linear(3072, len(classes))),
        classes,
        input_size=32,
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    n_bad = int((np.asarray(ds.images)[:, 0, 0, 0] / 255 > 0.5).sum())
    assert 0 < n_bad < len(ds)
    store = Store(tmp_path / "s")
    eng = Engine(store, batch_size=8, shard_size=16, background_writes=background)
    jobs = [EngineJob(tiny_models[0], ("clean", "gray")), EngineJob(bad, ("clean",))]
    with eng.deferred_writes():  # as a study runs it: writes may still be queued after run
        rep = eng.run(ds, jobs)
        # the bad model's shards written before its first NaN are dropped, none left queued
        assert (
            store.completed_shards(ArrayKey(bad.fingerprint(), ds.fingerprint(), "clean")) == set()
        )
    assert list(rep.failed) == ["nan-model"]
    failure = rep.failed["nan-model"]
    assert failure["samples"] == n_bad and failure["of"] == len(ds)
    assert failure["views"] == ["clean"]
    assert f"on {n_bad} of {len(ds)} samples of world/val" in failure["reason"]
    assert "1 model(s) failed" in rep.summary()
    # the healthy model is computed and stored, the faulty one not at all (not cached)
    ok = StoredArrays(store, tiny_models[0].fingerprint(), ds.fingerprint())
    assert ok.logits("gray").shape == (len(ds), 4)
    assert store.completed_shards(ArrayKey(bad.fingerprint(), ds.fingerprint(), "clean")) == set()
    again = eng.run(ds, jobs)
    assert again.failed and again.forward_passes == len(ds)  # only the faulty model runs


def test_huge_finite_logits_are_kept(tmp_path, tiny_world):
    """Logits whose sum overflows to infinity are finite one by one: the model is fine."""
    ds = tiny_world.dataset("val")
    classes = tiny_world.classes
    head = torch.nn.Linear(3072, len(classes))
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(3e38)  # float32's largest is 3.4e38: four of them sum to inf
    huge = adapter_from_module(
        "huge", torch.nn.Sequential(torch.nn.Flatten(), head), classes, input_size=32
    )
    store = Store(tmp_path / "s")
    rep = Engine(store, batch_size=8, shard_size=16).run(ds, [EngineJob(huge)])
    assert not rep.failed
    logits = StoredArrays(store, huge.fingerprint(), ds.fingerprint()).logits()
    with np.errstate(over="ignore"):
        assert np.isinf(logits.sum(axis=1, dtype=np.float32)).all()
    np.testing.assert_array_equal(logits, np.full((len(ds), len(classes)), 3e38, np.float32))


def test_unknown_or_absent_devices_are_config_errors(tmp_path, monkeypatch):
    from robustlens.errors import ConfigError

    store = Store(tmp_path / "s")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        Engine(store, device="tpu")
    with pytest.raises(ConfigError, match="unknown device 'cuda:x'"):
        Engine(store, device="cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        Engine(store, device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"1 CUDA GPU\(s\) \(cuda:0 to cuda:0\)"):
        Engine(store, device="cuda:3")
    assert Engine(store, device="cpu").device.type == "cpu"


def test_a_model_without_class_names_needs_a_mapping_for_fewer_classes(tmp_path):
    root = tmp_path / "three"
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        Image.new("RGB", (32, 32), (60 * c, 0, 0)).save(root / f"class_{c}" / "a.png")
    ds = ImageFolderDataset(root, size=32, crop="none")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 5))
    five = adapter_from_module("five", net, [f"class_{i}" for i in range(5)], input_size=32)
    store = Store(tmp_path / "s")
    with pytest.raises(ClassMismatchError, match=r"5 outputs but dataset 'three' has 3 classes"):
        Engine(store).run(ds, [EngineJob(five)])
    assert store.stats()["shards"] == 0
    # named outputs: the dataset's classes say which outputs to use
    named = adapter_from_module("named", net, ["x", "class_2", "class_0", "class_1", "y"])
    rep = Engine(store, num_workers=0).run(ds, [EngineJob(named)])
    assert rep.forward_passes == 3
    assert ds.class_mapping(named.classes).targets == ((2,), (3,), (1,))


def test_shard_writer_commits_in_order_and_raises_the_first_error(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    writer = ShardWriter(store)
    key = ArrayKey("m", "d", "clean")
    for s in range(3):
        writer.put(key, s, 3, {"logits": np.full((2, 2), s, np.float32)})
    writer.flush()
    np.testing.assert_array_equal(store.load(key, "logits")[:, 0], [0, 0, 1, 1, 2, 2])

    real = Store.put_shard

    def disk_full_at_shard_1(self, key, shard, *args):
        if shard == 1:
            raise StoreError("disk is full")
        return real(self, key, shard, *args)

    monkeypatch.setattr(Store, "put_shard", disk_full_at_shard_1)
    gray = ArrayKey("m", "d", "gray")
    with pytest.raises(StoreError, match="disk is full"):
        for s in range(3):
            writer.put(gray, s, 3, {"logits": np.zeros((2, 2), np.float32)})
        writer.flush()
    done = store.completed_shards(gray)
    assert 0 in done and 1 not in done  # shards before the failure are kept
    writer.close()  # the error was raised once; nothing is left to raise


def test_shard_writer_bounds_what_it_holds(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    real = Store.put_shard

    def slow(self, *args):
        time.sleep(0.2)
        return real(self, *args)

    monkeypatch.setattr(Store, "put_shard", slow)
    writer = ShardWriter(store, max_bytes=0)  # every put waits until one shard is queued
    key = ArrayKey("m", "d", "clean")
    for s in range(3):
        writer.put(key, s, 3, {"logits": np.zeros((2, 2), np.float32)})
    assert {0, 1} <= store.completed_shards(key)
    writer.close()
    assert store.completed_shards(key) == {0, 1, 2}


def test_the_callers_writer_commits_what_it_finished_within_the_interval_together(
    tmp_path, monkeypatch
):
    store = Store(tmp_path / "s")
    commits: list[int] = []
    real = Store.put_shards

    def counted(self, shards):
        commits.append(len(shards))
        return real(self, shards)

    monkeypatch.setattr(Store, "put_shards", counted)
    key = ArrayKey("m", "d", "clean")
    writer = ShardWriter(store, background=False, commit_interval_s=60)
    for s in range(3):
        writer.put(key, s, 3, {"logits": np.full((2, 2), s, np.float32)})
    assert commits == [] and store.completed_shards(key) == set()  # waiting, in memory
    writer.flush()
    assert commits == [3] and store.completed_shards(key) == {0, 1, 2}
    np.testing.assert_array_equal(store.load(key, "logits")[:, 0], [0, 0, 1, 1, 2, 2])
    # a shard finished once the interval has passed since the last commit goes at once,
    # with the ones waiting before it
    gray = ArrayKey("m", "d", "gray")
    quick = ShardWriter(store, background=False, commit_interval_s=0.05)
    quick.put(gray, 0, 2, {"logits": np.zeros((2, 2), np.float32)})
    time.sleep(0.1)
    quick.put(gray, 1, 2, {"logits": np.ones((2, 2), np.float32)})
    assert store.completed_shards(gray) == {0, 1} and sum(commits[1:]) == 2
    # with no interval every shard is its own commit
    at_once = ShardWriter(store, background=False, commit_interval_s=0)
    at_once.put(ArrayKey("m", "d", "rot90"), 0, 1, {"logits": np.zeros((2, 2), np.float32)})
    assert store.completed_shards(ArrayKey("m", "d", "rot90")) == {0}


def test_shards_committed_together_keep_those_before_a_full_disk(tmp_path, disk_full_after):
    store = Store(tmp_path / "s")
    key = ArrayKey("m", "d", "clean")
    shards = [
        (key, s, 3, {"logits": np.full((2, 2), s, np.float32), "index": np.arange(2) + 2 * s})
        for s in range(3)
    ]
    free_disk = disk_full_after(3)  # room for 3 arrays: shard 0 fits, shard 1 does not
    with pytest.raises(StoreError, match=r"disk is full.*rerun to resume"):
        store.put_shards(shards)
    assert store.completed_shards(key) == {0}
    free_disk()
    store.put_shards(shards[1:])
    np.testing.assert_array_equal(store.load(key, "index"), np.arange(6))


def test_a_model_already_prepared_is_not_moved_again(tmp_path, tiny_world, tiny_models):
    model = copy.deepcopy(tiny_models[0]).train()
    model.to(memory_format=torch.contiguous_format)
    engine = Engine(Store(tmp_path / "s"), batch_size=16)
    engine.run(tiny_world.dataset("val"), [EngineJob(model)])
    assert not model.training
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    moved = []
    real = torch.nn.Module.to
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or real(self, *a, **k)
        )
        engine.run(tiny_world.dataset("sketch"), [EngineJob(model)])
        assert moved == []
        model.train()  # changed since: prepared again
        engine.run(tiny_world.dataset("v2"), [EngineJob(model)])
        assert moved and not model.training


def _stored_logits(store, model, ds, views):
    arrays = StoredArrays(store, model.fingerprint(), ds.fingerprint())
    return {v: arrays.logits(v) for v in views}


def test_models_that_preprocess_alike_normalize_a_view_once_with_the_same_numbers(
    tmp_path, tiny_world, tiny_models, monkeypatch
):
    ds, views = tiny_world.dataset("val"), ("clean", "gray", "rot90")
    assert len({m.preprocess_key() for m in tiny_models}) == 1  # same size, mean and std
    alone = Store(tmp_path / "alone")
    for m in tiny_models:
        Engine(alone, batch_size=16).run(ds, [EngineJob(m, views)])
    calls = []
    real = ModelAdapter.preprocess
    monkeypatch.setattr(ModelAdapter, "preprocess", lambda s, x: calls.append(s) or real(s, x))
    together = Store(tmp_path / "together")
    Engine(together, batch_size=16).run(ds, [EngineJob(m, views) for m in tiny_models])
    assert len(calls) == math.ceil(len(ds) / 16) * len(views)  # not once per model too
    for m in tiny_models:
        alone_logits = _stored_logits(alone, m, ds, views)
        for v, logits in _stored_logits(together, m, ds, views).items():
            assert np.array_equal(logits, alone_logits[v]), (m.name, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("size", [(5, 16, 16), (2, 7, 9), (1, 1, 1)])
def test_preprocess_gives_the_same_floats_in_either_layout_and_keeps_the_layout(
    tiny_models, dtype, size
):
    model = copy.deepcopy(tiny_models[0])
    model.input_size = None  # the normalization alone
    # ImageNet's statistics: a std whose reciprocal is not exact, unlike the zoo's 0.25
    model.mean.copy_(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    model.std.copy_(torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    b, h, w = size
    pixels = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(h)).to(dtype)
    # the textbook formula, broadcast over a batch in the standard layout
    reference = (pixels - model.mean.to(dtype)) / model.std.to(dtype)
    standard = model.preprocess(pixels)
    last = model.preprocess(pixels.contiguous(memory_format=torch.channels_last))
    assert torch.equal(standard, reference) and torch.equal(last, reference)
    assert last.is_contiguous(memory_format=torch.channels_last)
    assert standard.is_contiguous()
    grad = pixels.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    model.preprocess(grad).sum().backward()  # still differentiable (the attacks need it)
    assert torch.allclose(grad.grad, (1 / model.std.to(dtype)).expand_as(grad))


class _WritesIntoItsInput(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(0.5)


def test_a_model_that_writes_into_its_input_does_not_change_the_next_models(
    tmp_path, tiny_world, tiny_models
):
    ds, views = tiny_world.dataset("val"), ("clean", "gray")
    scribbler = copy.deepcopy(tiny_models[0])
    scribbler.backbone = torch.nn.Sequential(_WritesIntoItsInput(), scribbler.backbone)
    scribbler.config = {**scribbler.config, "writes_into_its_input": True}
    assert scribbler.preprocess_key() == tiny_models[1].preprocess_key()
    alone = Store(tmp_path / "alone")
    Engine(alone, batch_size=16).run(ds, [EngineJob(tiny_models[1], views)])
    after = Store(tmp_path / "after")
    Engine(after, batch_size=16).run(
        ds, [EngineJob(scribbler, views), EngineJob(tiny_models[1], views)]
    )
    alone_logits = _stored_logits(alone, tiny_models[1], ds, views)
    for v, logits in _stored_logits(after, tiny_models[1], ds, views).items():
        assert np.array_equal(logits, alone_logits[v]), v


def test_prepared_looks_at_every_nested_module_and_tensor(tiny_models):
    cpu = torch.device("cpu")
    ready = copy.deepcopy(tiny_models[0]).eval().to(memory_format=torch.channels_last)
    assert _prepared(ready, cpu, channels_last=True)
    *_, leaf_name = (n for n, _ in ready.named_modules())
    conv_name = next(n for n, p in ready.named_parameters() if p.dim() == 4)

    def nested_training(m):
        m.get_submodule(leaf_name).train()

    def nested_weight_standard_layout(m):
        weight = m.get_parameter(conv_name)
        weight.data = weight.data.contiguous()

    def nested_buffer_elsewhere(m):
        m.get_submodule(leaf_name).register_buffer("elsewhere", torch.zeros(2, device="meta"))

    def unset_parameter(m):
        m.get_submodule(leaf_name).register_parameter("unset", None)

    def changed(change):
        m = copy.deepcopy(ready)
        change(m)
        return m

    for change in (nested_training, nested_weight_standard_layout, nested_buffer_elsewhere):
        assert not _prepared(changed(change), cpu, channels_last=True), change.__name__
    # the layout matters only when channels-last is asked for; an unset parameter is no tensor
    assert _prepared(changed(nested_weight_standard_layout), cpu, channels_last=False)
    assert _prepared(changed(unset_parameter), cpu, channels_last=True)


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_deferred_writes_commit_everything_once_and_compute_nothing_twice(
    tmp_path, tiny_world, tiny_models, background
):
    views = ("clean", "gray")
    jobs = [EngineJob(m, views) for m in tiny_models[:2]]
    splits = ("val", "sketch", "v2")
    ref = Store(tmp_path / "ref")
    for split in splits:
        Engine(ref, batch_size=8, shard_size=16).run(tiny_world.dataset(split), jobs)

    assert not Engine(Store(tmp_path / "d"), device="cpu").background_writes  # CPU default
    store = Store(tmp_path / "s")
    engine = Engine(store, batch_size=8, shard_size=16, background_writes=background)
    with engine.deferred_writes():
        first = [engine.run(tiny_world.dataset(split), jobs) for split in splits]
        again = engine.run(tiny_world.dataset("val"), jobs)  # its shards may still be queued
    for r, split in zip(first, splits, strict=True):
        assert r.forward_passes == len(tiny_world.dataset(split)) * 4  # 2 models x 2 views
    assert again.forward_passes == 0 and again.shards_cached == again.shards_total
    for split in splits:
        ds = tiny_world.dataset(split)
        for m in tiny_models[:2]:
            for v in views:
                np.testing.assert_array_equal(
                    StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits(v),
                    StoredArrays(ref, m.fingerprint(), ds.fingerprint()).logits(v),
                )


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_a_write_error_in_deferred_writes_is_raised_and_finished_shards_stay(
    tmp_path, tiny_world, tiny_models, disk_full_after, background
):
    store = Store(tmp_path / "s")
    engine = Engine(store, batch_size=8, shard_size=16, background_writes=background)
    # built before the disk fills: a split built on first use writes to the world's store,
    # and would spend the room counted for shards (or not, after another test built it)
    datasets = [tiny_world.dataset(split) for split in ("val", "sketch", "v2")]
    free_disk = disk_full_after(10)  # shard 0 of val (8 arrays) fits, shard 1 does not
    with pytest.raises(StoreError, match="disk is full"), engine.deferred_writes():
        for ds in datasets:
            engine.run(ds, [EngineJob(tiny_models[0], ("clean", "gray"))])
    free_disk()
    kept = store.stats()["shards"]
    assert kept >= 1
    rep = engine.run(datasets[0], [EngineJob(tiny_models[0], ("clean", "gray"))])
    assert rep.shards_cached >= 1
