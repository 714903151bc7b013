"""The engine's real-image path: each model decodes with its own eval transform.

* Two timm models with different eval transforms on one folder of real photos get the logits
  timm's own ``resolve_data_config`` + ``create_transform`` pipeline gives on the same files;
  a third model whose transform gives the same pixels (another mean/std) shares a pass.
* Models whose transforms give the same pixels share one decode pass (decodes counted),
  including a model without a transform when the dataset's own decode is the same.
* The DataLoader path stores identical arrays with 0 and 2 workers (several shards, a batch
  size that does not divide them, a corrupt file).
* A protocol crop (``crop: crop``) keeps its decode for every model; the synthetic world
  (in-memory arrays) is one pass as before.
* On CUDA only: JPEGs decoded on the device give (nearly) the CPU pixels.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from torch import nn

from robustlens.data.imagefolder import EvalTransform, FileListDataset, ImageFolderDataset
from robustlens.engine import Engine, EngineJob, _CudaDecoder, decode_groups
from robustlens.models.base import ModelAdapter, adapter_from_module
from robustlens.models.pretrained import imagenet_wnids
from robustlens.models.sources import load_model
from robustlens.store import Store, StoredArrays

WNIDS = imagenet_wnids()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos in wnid class folders: JPEG and PNG, landscape, portrait, square, grey,
    one smaller than every crop."""
    root = tmp_path_factory.mktemp("photos")
    chelsea, coffee, rocket = skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()
    files = {
        f"{WNIDS[281]}/chelsea.jpg": chelsea,
        f"{WNIDS[281]}/chelsea_small.jpg": np.asarray(Image.fromarray(chelsea).resize((120, 90))),
        f"{WNIDS[967]}/coffee.png": coffee,
        f"{WNIDS[967]}/coffee_crop.jpg": coffee[50:350, 100:500],
        f"{WNIDS[812]}/rocket.jpg": np.asarray(Image.fromarray(rocket).resize((300, 470))),
        f"{WNIDS[812]}/astronaut.jpg": skimage.data.astronaut(),
        f"{WNIDS[812]}/camera.png": skimage.data.camera(),
    }
    for rel, arr in files.items():
        (root / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / rel, quality=90)
    return root


def _timm_pair(tmp_path: Path, arch: str, seed: int) -> tuple[nn.Module, ModelAdapter]:
    """timm's own model and the adapter robustlens loads from its saved weights."""
    torch.manual_seed(seed)
    ref = timm.create_model(arch, pretrained=False).eval()
    path = tmp_path / f"{arch}-{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    model = load_model({"source": "timm", "arch": arch, "weights": str(path), "name": path.stem})
    return ref, model


def _timm_logits(ref: nn.Module, paths: list[Path]) -> np.ndarray:
    transform = create_transform(**resolve_data_config({}, model=ref))
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return ref(x).numpy()


def _stored(store: Store, model: ModelAdapter, ds: FileListDataset) -> tuple[list, np.ndarray]:
    arrays = StoredArrays(store, model.fingerprint(), ds.fingerprint())
    return [ds.path(int(i)) for i in arrays.index()], arrays.logits()


def test_each_model_gets_its_own_timm_pipeline(tmp_path, photos):
    ds = ImageFolderDataset(photos, size=224)  # the dataset's own size is nobody's here
    resnet = _timm_pair(tmp_path, "test_resnet", 0)  # 160 px, resize 168, bilinear, mean 0.5
    vit = _timm_pair(tmp_path, "test_vit", 1)  # 160 px, resize 168, bicubic
    effnet = _timm_pair(tmp_path, "test_efficientnet_ln", 2)  # as test_vit, ImageNet mean
    models = [resnet[1], vit[1], effnet[1]]
    assert vit[1].eval_transform != effnet[1].eval_transform  # mean and std differ ...
    assert vit[1].eval_transform.decode_key() == effnet[1].eval_transform.decode_key()
    store = Store(tmp_path / "store")
    report = Engine(store, batch_size=3, num_workers=0, device="cpu").run(
        ds, [EngineJob(m) for m in models]
    )
    assert report.decode_passes == 2  # ... but not the pixels: one pass for both
    assert report.images_decoded == 2 * len(ds)
    assert report.forward_passes == 3 * len(ds)
    for ref, model in (resnet, vit, effnet):
        paths, logits = _stored(store, model, ds)
        assert len(paths) == len(ds)
        expected = _timm_logits(ref, paths)
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(logits - expected).max() / scale < 1e-5, model.name


def _tiny(name: str, transform: EvalTransform | None, seed: int) -> ModelAdapter:
    """A small CNN over the wnids of the photo folder's three classes."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    net.append(nn.Linear(4, 3))
    classes = [WNIDS[281], WNIDS[812], WNIDS[967]]  # sorted like the folders
    return adapter_from_module(name, net, classes, eval_transform=transform)


BILINEAR_168 = EvalTransform(160, 168, "center", "bilinear", 0.95)
BICUBIC_168 = EvalTransform(160, 168, "center", "bicubic", 0.95, mean=(0.5,) * 3)


def test_models_with_the_same_pixels_share_one_decode(tmp_path, photos):
    ds = ImageFolderDataset(photos, size=224)
    own = EvalTransform(224, 256, "center", "bilinear", 0.875)  # = the dataset's own decode
    models = [
        _tiny("none", None, 0),  # the dataset's own decode
        _tiny("own", own, 1),
        _tiny("a", BICUBIC_168, 2),
        _tiny("b", BICUBIC_168, 3),
        _tiny("c", BILINEAR_168, 4),
    ]
    jobs = [EngineJob(m, ("clean", "rot90")) for m in models]
    groups = decode_groups(ds, jobs)
    assert [g.jobs for g in groups] == [[0, 1], [2, 3], [4]]
    assert groups[0].dataset is ds  # the dataset's own decode: the dataset itself
    store = Store(tmp_path / "store")
    report = Engine(store, batch_size=4, num_workers=0, device="cpu").run(ds, jobs)
    n = len(ds)
    assert (report.decode_passes, report.images_decoded) == (3, 3 * n)
    assert report.forward_passes == 5 * 2 * n
    # the arrays are those of each model's own decode
    for m in models:
        paths, logits = _stored(store, m, ds)
        t = m.eval_transform or own
        with torch.no_grad():
            expected = m(t.pixels(paths)).numpy()
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # cached for the first models: a new model decodes in its own pass only
    more = _tiny("d", EvalTransform(128, 146, "squash", "bilinear", 0.875), 5)
    again = Engine(store, batch_size=4, num_workers=0, device="cpu").run(
        ds, [*jobs, EngineJob(more, ("clean", "rot90"))]
    )
    assert (again.decode_passes, again.images_decoded, again.forward_passes) == (1, n, 2 * n)
    assert again.shards_computed == 1
    # and a third run decodes nothing
    third = Engine(store, batch_size=4, num_workers=0, device="cpu").run(
        ds, [*jobs, EngineJob(more, ("clean", "rot90"))]
    )
    assert (third.decode_passes, third.images_decoded, third.shards_cached) == (0, 0, 1)


def test_transform_is_in_the_fingerprints(photos):
    ds = ImageFolderDataset(photos, size=224)
    assert ds.with_transform(None) is ds
    small = ds.with_transform(BILINEAR_168)
    assert small.fingerprint() != ds.fingerprint()
    assert small.load(0).image.shape == (160, 160, 3)
    assert ds.with_transform(BILINEAR_168).fingerprint() == small.fingerprint()
    a, b = _tiny("m", BILINEAR_168, 0), _tiny("m", BICUBIC_168, 0)
    assert a.fingerprint() != b.fingerprint()
    plain = _tiny("m", None, 0)
    before = plain.fingerprint()
    plain.eval_transform = BILINEAR_168  # setting a transform later changes it too
    assert plain.fingerprint() != before and plain.fingerprint() == a.fingerprint()


def test_a_protocol_crop_keeps_its_decode_for_every_model(tmp_path, photos):
    ds = ImageFolderDataset(photos, size=96, crop="crop")  # e.g. ImageNet-C: crop only
    assert ds.with_transform(BILINEAR_168) is ds
    jobs = [EngineJob(_tiny("a", BILINEAR_168, 0)), EngineJob(_tiny("b", BICUBIC_168, 1))]
    assert len(decode_groups(ds, jobs)) == 1
    report = Engine(Store(tmp_path), batch_size=4, num_workers=0, device="cpu").run(ds, jobs)
    assert (report.decode_passes, report.images_decoded) == (1, len(ds))


def test_in_memory_datasets_are_one_pass(tiny_world):
    ds = tiny_world.dataset("val")  # the synthetic world's arrays: sliced as they are
    jobs = [EngineJob(_tiny("a", BILINEAR_168, 0)), EngineJob(_tiny("b", None, 1))]
    groups = decode_groups(ds, jobs)
    assert [g.jobs for g in groups] == [[0, 1]] and groups[0].dataset is ds


def _arrays(store: Store, models: list[ModelAdapter], ds: FileListDataset) -> dict:
    out = {}
    for m in models:
        a = StoredArrays(store, m.fingerprint(), ds.fingerprint())
        out[m.name] = {
            "index": a.index(),
            "labels": a.labels(),
            "ids": a.sample_ids(),
            **{v: a.logits(v) for v in ("clean", "gray")},
            "features": a.features("clean"),
        }
    return out


@pytest.mark.parametrize("workers", [2])
def test_workers_give_the_arrays_of_the_main_process(tmp_path, photos, workers):
    folder = tmp_path / "photos"
    for p in photos.rglob("*.*"):
        (folder / p.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / p.parent.name / p.name).write_bytes(p.read_bytes())
        (folder / p.parent.name / f"copy_{p.name}").write_bytes(p.read_bytes())
    truncated = (photos / WNIDS[281] / "chelsea.jpg").read_bytes()[:900]
    (folder / WNIDS[281] / "broken.jpg").write_bytes(truncated)
    models = [_tiny("own", None, 0), _tiny("small", BICUBIC_168, 1)]
    results, reports = [], []
    for w in (0, workers):
        ds = ImageFolderDataset(folder, size=96)
        store = Store(tmp_path / f"store{w}")
        eng = Engine(store, batch_size=3, shard_size=5, num_workers=w, device="cpu")
        assert eng.num_workers == w
        jobs = [EngineJob(m, ("clean", "gray")) for m in models]
        reports.append(eng.run(ds, jobs))
        results.append(_arrays(store, models, ds))
    a, b = results
    assert a.keys() == b.keys()
    for name in a:
        for k in a[name]:
            assert np.array_equal(a[name][k], b[name][k]), (name, k)
    n = len(ImageFolderDataset(folder, size=96))
    assert len(a["own"]["index"]) == n - 1  # the broken file is skipped in both
    for r in reports:
        assert (r.decode_passes, r.images_decoded, r.shards_computed) == (2, 2 * (n - 1), 3)
        assert [item for item, _ in r.skipped] == [f"{WNIDS[281]}/broken.jpg"]


def test_files_are_decoded_by_two_workers_by_default(tmp_path):
    assert Engine(Store(tmp_path), device="cpu").num_workers == min(2, os.cpu_count() or 1)


DEVICES = [
    "cpu",  # the same code, forced on the CPU: decode_jpeg and the resize run there
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_jpegs_decoded_on_the_device_match_the_cpu_decode(tmp_path, photos, device, monkeypatch):
    jpegs = sorted(photos.rglob("*.jpg"))
    data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in jpegs]
    for t in (
        BILINEAR_168,
        BICUBIC_168,
        EvalTransform(224, 256),
        EvalTransform(160, 150, "border", "bicubic", mean=(0.5,) * 3),  # pads with the mean
        EvalTransform(160, 160, "squash", "bilinear", 1.0),
    ):
        decoded = _CudaDecoder(t, torch.device(device))(data).cpu().numpy().astype(np.int16)
        cpu = np.stack([t.load(p) for p in jpegs]).astype(np.int16)
        assert decoded.shape == cpu.shape
        diff = np.abs(decoded - cpu)
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4, (t, diff.mean())
    # through the engine: PNGs decoded by the workers, JPEGs on the device, in dataset order;
    # a truncated JPEG is skipped as PIL skips it, one the device refuses is decoded by PIL
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    chelsea = (photos / WNIDS[281] / "chelsea.jpg").read_bytes()
    (folder / WNIDS[281] / "broken.jpg").write_bytes(chelsea[:900])
    real = _CudaDecoder.__call__

    def refuses_chelsea(self, jpegs):
        if any(bytes(j.numpy()) == chelsea for j in jpegs):
            raise RuntimeError("refused")
        return real(self, jpegs)

    monkeypatch.setattr(_CudaDecoder, "__call__", refuses_chelsea)
    ds = ImageFolderDataset(folder, size=224)
    models = [_tiny("own", None, 0), _tiny("small", BICUBIC_168, 1)]
    jobs = [EngineJob(m, ("clean", "rot90")) for m in models]
    stores = [Store(tmp_path / "pil"), Store(tmp_path / "device")]
    Engine(stores[0], batch_size=3, num_workers=0, device=device, amp=False).run(ds, jobs)
    eng = Engine(stores[1], batch_size=3, num_workers=2, device=device, amp=False)
    eng.gpu_decode = True  # on CUDA the option; forced here so that the CPU runs it too
    report = eng.run(ds, jobs)
    assert (report.decode_passes, report.images_decoded) == (2, 2 * (len(ds) - 1))
    assert [item for item, _ in report.skipped] == [f"{WNIDS[281]}/broken.jpg"]
    row = [str(p.relative_to(folder)) for p in map(ds.path, range(len(ds)))].index(
        f"{WNIDS[281]}/chelsea.jpg"
    )
    for m in models:
        a = StoredArrays(stores[0], m.fingerprint(), ds.fingerprint())
        b = StoredArrays(stores[1], m.fingerprint(), ds.fingerprint())
        assert np.array_equal(a.index(), b.index()) and np.array_equal(a.labels(), b.labels())
        k = int(np.flatnonzero(a.index() == row)[0])  # decoded by PIL in both runs
        np.testing.assert_allclose(a.logits()[k], b.logits()[k], rtol=1e-5, atol=1e-5)
        for v in ("clean", "rot90"):
            scale = np.abs(a.logits(v)).max()
            np.testing.assert_allclose(a.logits(v), b.logits(v), atol=0.05 * scale)


def test_device_decode_is_off_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    assert not Engine(Store(tmp_path), device="cpu", gpu_decode=True).gpu_decode
