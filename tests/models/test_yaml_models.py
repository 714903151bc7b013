"""timm and torchvision models from a YAML study file, checked against the libraries' own
pipelines on the same image files (real photos from scikit-image).

* ``weights:`` (a local safetensors or state-dict file) through the whole study path
  (``load_config`` -> ``run_study`` -> the store) gives the logits timm's
  ``resolve_data_config`` + ``create_transform`` pipeline, and torchvision's
  ``Resize(256)`` / ``CenterCrop(224)`` / ``Normalize`` preset, give on the same files.
* A timm pretrained tag (``arch: resnet50.a1_in1k``) sets the adapter's ``eval_transform``
  from the tag's ``pretrained_cfg``; decoding the files with it gives timm's input tensors
  and logits (every crop mode, interpolations, a crop percentage above 1).
* ``pretrained: true`` reads the Hugging Face cache only, and says what to do when the
  weights are not there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from torchvision import transforms as T

from robustlens.config import load_config
from robustlens.errors import CheckpointError, ConfigError, UntrustedCheckpointError
from robustlens.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter
from robustlens.models.pretrained import EvalTransform, hf_cache_dir, imagenet_wnids
from robustlens.models.sources import load_model
from robustlens.plan import resolve_datasets, resolve_models
from robustlens.store import StoredArrays
from robustlens.study import run_study


def _max_diff(logits: np.ndarray, expected: torch.Tensor) -> float:
    """Largest logit difference, relative to the logits' scale when that is above 1 (the
    study's engine runs channels-last; observed 4e-8 for timm, 2e-6 for torchvision)."""
    ref = expected.numpy()
    return float(np.abs(logits - ref).max() / max(1.0, float(np.abs(ref).max())))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wnid class folder of real photos: JPEG and PNG, several sizes and aspect ratios,
    one grayscale, one smaller than the crop."""
    root = tmp_path_factory.mktemp("photos")
    wnids = imagenet_wnids()
    tabby, espresso, shuttle = wnids[281], wnids[967], wnids[812]
    files = {
        f"{tabby}/chelsea.jpg": skimage.data.chelsea(),  # 451 x 300
        f"{tabby}/chelsea_small.png": np.asarray(
            Image.fromarray(skimage.data.chelsea()).resize((150, 100))  # below 224: upscaled
        ),
        f"{espresso}/coffee.png": skimage.data.coffee(),  # 600 x 400
        f"{shuttle}/astronaut.png": skimage.data.astronaut(),  # 512 x 512
        f"{shuttle}/camera.png": skimage.data.camera(),  # grayscale
        f"{shuttle}/rocket.jpg": np.asarray(
            Image.fromarray(skimage.data.rocket()).resize((300, 470))  # portrait
        ),
    }
    for rel, arr in files.items():
        (root / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / rel, quality=90)
    return root


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _study(tmp_path: Path, photos: Path, model: str) -> Path:
    """A study file: one model entry (YAML flow mapping) on the photo folder."""
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: yaml-models\n"
        "store: store\n"
        "output: out\n"
        "models:\n"
        f"  - {model}\n"
        "datasets:\n"
        f"  - {{layout: imagefolder, root: {photos}, name: photos, size: 224}}\n"
        "measures: [accuracy]\n"
        "engine: {device: cpu, batch_size: 4, num_workers: 0}\n"
    )
    return path


def _study_logits(study: Path) -> tuple[ModelAdapter, list[Path], np.ndarray]:
    """Run the study file; the model, the files in row order, and the stored logits."""
    cfg = load_config(study)
    result = run_study(cfg)
    model = resolve_models(cfg)[0].load()
    dataset = resolve_datasets(cfg, result.store)[0].dataset()
    # the fingerprint the study stored under (its dataset may be relabelled into the model's
    # class space, which changes the fingerprint, not the files or the row order)
    arrays = StoredArrays(result.store, model.fingerprint(), result.dataset_fps[dataset.name])
    paths = [dataset.path(int(i)) for i in arrays.index()]
    return model, paths, arrays.logits()


def _timm_reference(model: torch.nn.Module, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's own pipeline: input tensors and logits."""
    transform = create_transform(**resolve_data_config({}, model=model))
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return x, model.eval()(x)


def _save_timm(tmp_path: Path, arch: str, **kwargs) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    ref = timm.create_model(arch, pretrained=False, **kwargs).eval()
    path = tmp_path / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    return ref, path


# ----------------------------------------------------------------------------- weights: via YAML


def test_timm_weights_from_yaml_give_timms_logits(tmp_path, photos):
    """resnet18.tv_in1k's cfg (224, crop 0.875, bilinear) is the study's dataset decode, so
    the whole study path is compared with timm's pipeline."""
    ref, weights = _save_timm(tmp_path, "resnet18.tv_in1k")
    study = _study(
        tmp_path, photos, f"{{source: timm, arch: resnet18.tv_in1k, weights: {weights}}}"
    )
    model, paths, logits = _study_logits(study)
    assert model.weights_source == "file" and model.classes == imagenet_wnids()
    assert model.eval_transform == EvalTransform(224, 256, "center", "bilinear", 0.875)
    assert len(paths) == 6
    _, expected = _timm_reference(ref, paths)
    diff = _max_diff(logits, expected)
    assert diff < 1e-5, diff


def test_torchvision_state_dict_from_yaml_gives_torchvisions_logits(tmp_path, photos):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).eval()
    weights = tmp_path / "weights" / "resnet18.pth"
    weights.parent.mkdir()
    torch.save(ref.state_dict(), weights)
    # a path relative to the study file
    study = _study(
        tmp_path, photos, "{source: torchvision, arch: resnet18, weights: weights/resnet18.pth}"
    )
    model, paths, logits = _study_logits(study)
    assert model.weights_path == str(weights)
    assert model.eval_transform == EvalTransform(224, 256, "center", "bilinear", 0.875)
    # ResNet18_Weights.IMAGENET1K_V1.transforms(), built here without downloading anything
    preset = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    x = torch.stack([preset(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        expected = ref(x)
        # and the adapter's own decode gives the preset's tensors
        pixels = model.eval_transform.pixels(paths)
        assert torch.allclose(model.preprocess(pixels), x, atol=1e-6)
    diff = _max_diff(logits, expected)
    assert diff < 1e-5, diff


def test_pickled_weights_from_yaml_need_trust_pickle(tmp_path, photos):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=3).eval()
    torch.save(ref, tmp_path / "whole.pt")  # a pickled nn.Module, not a state dict
    entry = "{source: torchvision, arch: resnet18, num_classes: 3, weights: whole.pt%s}"
    cfg = load_config(_study(tmp_path, photos, entry % ""))
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        resolve_models(cfg)[0].load()
    cfg = load_config(_study(tmp_path, photos, entry % ", trust_pickle: true"))
    model = resolve_models(cfg)[0].load()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(model.preprocess(x)), atol=1e-5)


def test_yaml_study_decodes_with_the_models_eval_transform(tmp_path, photos):
    """test_resnet's cfg (160 px, crop 0.95: resize 168) is not the entry's 224: the study
    decodes the folder at the model's transform, not at the dataset's size."""
    ref, weights = _save_timm(tmp_path, "test_resnet")
    study = _study(tmp_path, photos, f"{{source: timm, arch: test_resnet, weights: {weights}}}")
    _, paths, logits = _study_logits(study)
    _, expected = _timm_reference(ref, paths)
    assert _max_diff(logits, expected) < 1e-5


# ----------------------------------------------------------------------------- pretrained tags


@pytest.mark.parametrize(
    ("arch", "overlay"),
    [
        ("resnet50.a1_in1k", None),  # the README's model: 224, crop 0.95, bicubic
        ("test_resnet", None),  # 160, crop 0.95, bilinear, mean/std 0.5
        ("test_vit", None),  # 160, crop 0.95, bicubic
        ("test_resnet", {"crop_mode": "squash", "crop_pct": 0.9, "interpolation": "lanczos"}),
        ("test_resnet", {"crop_mode": "border", "crop_pct": 1.0, "interpolation": "bicubic"}),
        ("test_resnet", {"crop_pct": 1.15, "interpolation": "nearest"}),  # pads: resize < size
    ],
)
def test_eval_transform_equals_timms_pipeline(tmp_path, photos, arch, overlay):
    kwargs = {"pretrained_cfg_overlay": overlay} if overlay else {}
    ref, weights = _save_timm(tmp_path, arch, **kwargs)
    entry = f"{{source: timm, arch: {arch}, weights: {weights}}}"
    if overlay:
        entry = entry[:-1] + f", model_kwargs: {{pretrained_cfg_overlay: {overlay}}}}}"
    model = resolve_models(load_config(_study(tmp_path, photos, entry)))[0].load()
    cfg = resolve_data_config({}, model=ref)
    t = model.eval_transform
    assert (t.size, t.crop_pct, t.crop_mode, t.interpolation) == (
        cfg["input_size"][-1],
        cfg["crop_pct"],
        cfg["crop_mode"],
        cfg["interpolation"],
    )
    assert model.config["eval_transform"] == t.describe()
    paths = _files(photos)
    x_timm, logits_timm = _timm_reference(ref, paths)
    pixels = t.pixels(paths)
    with torch.no_grad():
        x = model.preprocess(pixels)
        logits = model(pixels)
    assert x.shape == x_timm.shape
    assert (x - x_timm).abs().max() < 1e-6
    assert (logits - logits_timm).abs().max() < 1e-5


def test_pretrained_tag_sets_the_preprocessing():
    model = load_model({"source": "timm", "arch": "resnet50.a1_in1k", "num_classes": 3})
    assert model.eval_transform.describe() == {
        "size": 224,
        "resize": 235,  # floor(224 / 0.95)
        "crop_mode": "center",
        "interpolation": "bicubic",
        "crop_pct": 0.95,
    }
    assert model.input_size == 224 and model.name == "resnet50.a1_in1k"
    bigger = load_model({"source": "timm", "arch": "resnet18.a1_in1k", "input_size": 288})
    assert (bigger.input_size, bigger.eval_transform.resize) == (288, 303)


def test_unknown_tag_and_hub_names_are_config_errors():
    with pytest.raises(
        ConfigError, match=r"no pretrained tag 'nope' for 'resnet18'; known: .*a1_in1k"
    ):
        load_model({"source": "timm", "arch": "resnet18.nope"})
    with pytest.raises(ConfigError, match="never downloads"):
        load_model({"source": "timm", "arch": "hf-hub:timm/resnet18.a1_in1k"})


# ----------------------------------------------------------------------------- pretrained: true


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    """HF_HOME and TORCH_HOME pointing at empty folders; returns HF_HOME."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf"


def test_pretrained_not_in_cache_names_tag_cache_and_fix(tmp_path, photos, empty_caches):
    study = _study(
        tmp_path, photos, "{source: timm, arch: test_resnet.r160_in1k, pretrained: true}"
    )
    with pytest.raises(CheckpointError) as info:
        run_study(load_config(study))
    msg = str(info.value)
    assert "'test_resnet.r160_in1k'" in msg
    assert str(empty_caches / "hub") in msg and str(hf_cache_dir()) in msg
    assert "timm/test_resnet.r160_in1k" in msg and "model.safetensors" in msg
    assert "weights: /path/to/test_resnet.r160_in1k.safetensors" in msg
    assert "never downloads" in msg
    # the default tag of an untagged name is named too; the torch hub cache is looked in
    with pytest.raises(CheckpointError, match=r"'resnet50\.a1_in1k'.*torch hub cache"):
        load_model({"source": "timm", "arch": "resnet50", "pretrained": True})


def test_pretrained_reads_the_hugging_face_cache(tmp_path, photos, empty_caches):
    ref, weights = _save_timm(tmp_path, "test_resnet.r160_in1k")
    repo = empty_caches / "hub" / "models--timm--test_resnet.r160_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(weights.read_bytes())
    study = _study(
        tmp_path, photos, "{source: timm, arch: test_resnet.r160_in1k, pretrained: true}"
    )
    model = resolve_models(load_config(study))[0].load()
    assert model.weights_source == "cache"
    assert model.weights_path == str(snapshot / "model.safetensors")
    assert "state_dict" not in model.backbone.model.pretrained_cfg
    paths = _files(photos)
    _, expected = _timm_reference(ref, paths)
    with torch.no_grad():
        assert (model(model.eval_transform.pixels(paths)) - expected).abs().max() < 1e-5
    # another head size: timm's pretrained loading keeps the backbone, starts a new head
    three = load_model(
        {"source": "timm", "arch": "test_resnet.r160_in1k", "pretrained": True, "num_classes": 3}
    )
    assert three.n_classes == 3
    assert torch.equal(three.backbone.model.conv1[0].weight, ref.conv1[0].weight)


def test_pretrained_and_weights_together_is_a_config_error(tmp_path, photos):
    study = _study(
        tmp_path, photos, "{source: timm, arch: test_resnet, pretrained: true, weights: w.pt}"
    )
    with pytest.raises(ConfigError, match=r"models\.0 \(source timm\): .*not both"):
        load_config(study)
