"""The ImageNet family of on-disk layouts, on tiny fixture trees in exactly those layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from robustlens.data.base import stable_id
from robustlens.data.imagenet import (
    cue_conflict,
    imagenet_a,
    imagenet_c,
    imagenet_cbar,
    imagenet_r,
    imagenet_sketch,
    imagenet_v2,
    imagenet_val,
    objectnet,
    spurious_imagenet,
    stylized_imagenet,
)
from robustlens.data.imagenet_info import (
    imagenet_a_indices,
    imagenet_r_indices,
    imagenet_wnids,
    load_category_mapping,
)
from robustlens.data.layouts import LayoutArgs, get_layout
from robustlens.errors import ClassMismatchError, ConfigError, DatasetLayoutError
from robustlens.roles import role_from_name

WNIDS = imagenet_wnids()
SHARED = Path(__file__).resolve().parents[2] / "../shared/imagenet"


def save(path: Path, color=(120, 60, 30), size=(12, 10), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def jpeg(path: Path, color=(120, 60, 30), size=(12, 10)) -> Path:
    return save(path, color, size, fmt="JPEG")


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


# -- ImageNet val ----------------------------------------------------------------------------


def test_val_wnid_folders_use_the_1000_classes(tmp_path: Path) -> None:
    for k in (0, 1, 999):
        jpeg(tmp_path / "val" / WNIDS[k] / f"ILSVRC2012_val_{k:08d}.JPEG")
    jpeg(tmp_path / "val" / WNIDS[1] / "ILSVRC2012_val_00000042.JPEG")
    ds = imagenet_val(tmp_path / "val", size=8)
    assert ds.name == "imagenet_val"
    assert ds.classes == WNIDS
    assert ds.labels().tolist() == [0, 1, 1, 999]
    assert ds.class_mapping(WNIDS).is_identity
    assert ds.load(3).image.shape == (8, 8, 3)
    with pytest.raises(ClassMismatchError, match="1000 classes") as info:
        ds.class_mapping([f"c{i}" for i in range(10)])
    assert "10" in str(info.value)


def test_val_folder_that_is_not_a_wnid_is_named(tmp_path: Path) -> None:
    jpeg(tmp_path / "val" / WNIDS[0] / "a.JPEG")
    jpeg(tmp_path / "val" / "n99999999" / "b.JPEG")
    jpeg(tmp_path / "val" / "stuff" / "c.JPEG")
    with pytest.raises(DatasetLayoutError, match=r"n99999999.*stuff|stuff.*n99999999") as info:
        imagenet_val(tmp_path / "val")
    assert "n01440764/" in str(info.value)


def test_val_flat_with_labels_txt(tmp_path: Path) -> None:
    root = tmp_path / "val"
    for n in (1, 2, 3):
        jpeg(root / f"ILSVRC2012_val_{n:08d}.JPEG")
    (root / "labels.txt").write_text(
        "# filename label\n"
        "ILSVRC2012_val_00000001.JPEG 65\n"
        f"ILSVRC2012_val_00000002.JPEG {WNIDS[970]}\n"
        "ILSVRC2012_val_00000003 0\n"  # a stem is accepted too
    )
    ds = imagenet_val(root, size=8)
    assert ds.labels().tolist() == [65, 970, 0]
    assert ds.classes == WNIDS
    assert "labels.txt" in ds.ignored
    assert ds.sample_ids()[0] == stable_id("ILSVRC2012_val_00000001.JPEG")


def test_val_flat_image_without_label_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "val"
    jpeg(root / "a.JPEG")
    jpeg(root / "b.JPEG")
    (root / "labels.txt").write_text("a.JPEG 3\n")
    with pytest.raises(DatasetLayoutError, match=r"b\.JPEG.*labels\.txt|labels\.txt.*b\.JPEG"):
        imagenet_val(root)
    (root / "labels.txt").write_text("a.JPEG 3\nb.JPEG n00000000\n")
    with pytest.raises(DatasetLayoutError, match=r"labels\.txt:2.*n00000000"):
        imagenet_val(root)


def test_val_flat_with_kaggle_solution_csv(tmp_path: Path) -> None:
    root = tmp_path / "val"
    jpeg(root / "ILSVRC2012_val_00000007.JPEG")
    (root / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000007,{WNIDS[5]} 1 2 3 4 {WNIDS[5]} 5 6 7 8\n"
    )
    assert imagenet_val(root).labels().tolist() == [5]


def test_val_flat_with_devkit_ground_truth_and_meta_mat(tmp_path: Path) -> None:
    root = tmp_path / "val"
    jpeg(root / "ILSVRC2012_val_00000001.JPEG")
    jpeg(root / "ILSVRC2012_val_00000002.JPEG")
    gt = tmp_path / "devkit" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    gt.parent.mkdir(parents=True)
    gt.write_text("2\n1\n")
    # devkit IDs are not the standard order: here ID 1 is WNIDS[7] and ID 2 is WNIDS[3]
    synsets = np.zeros(3, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    synsets[0] = (1, WNIDS[7], 0)
    synsets[1] = (2, WNIDS[3], 0)
    synsets[2] = (1001, "n00001740", 5)
    with pytest.raises(DatasetLayoutError, match=r"meta\.mat"):
        imagenet_val(root, labels_file=gt)
    savemat(gt.parent / "meta.mat", {"synsets": synsets})
    assert imagenet_val(root, labels_file=gt).labels().tolist() == [3, 7]


def test_val_missing_root_and_unknown_layout_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"root/<wnid>/<image>\.JPEG"):
        imagenet_val(tmp_path / "absent")
    jpeg(tmp_path / "val" / "x.JPEG")
    with pytest.raises(DatasetLayoutError, match=r"labels\.txt.*found no wnid folders"):
        imagenet_val(tmp_path / "val")


# -- ImageNet-C ------------------------------------------------------------------------------


@pytest.fixture
def c_root(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet-c"
    for corruption in ("gaussian_noise", "contrast"):
        for severity in (1, 3):
            for k in (0, 2):
                color = (40 * severity, 100 if corruption == "contrast" else 0, k)
                jpeg(root / corruption / str(severity) / WNIDS[k] / f"v{k}.JPEG", color, (12, 12))
    return root


def test_imagenet_c_one_dataset_per_corruption_and_severity(c_root: Path) -> None:
    sets = imagenet_c(c_root, size=8)
    assert [d.name for d in sets] == [
        "imagenet_c/contrast/1",
        "imagenet_c/contrast/3",
        "imagenet_c/gaussian_noise/1",
        "imagenet_c/gaussian_noise/3",
    ]
    for d in sets:
        assert d.classes == WNIDS and d.labels().tolist() == [0, 2]
    assert len({d.fingerprint() for d in sets}) == 4
    assert sets[0].sample_ids().tolist() == sets[3].sample_ids().tolist()  # same val images
    only = imagenet_c(c_root, corruption="gaussian_noise", severity=3, size=8)
    assert [d.name for d in only] == ["imagenet_c/gaussian_noise/3"]
    assert len(imagenet_c(c_root, corruption=["contrast"], severity=[1, 3])) == 2


def test_imagenet_c_crops_without_resizing_by_default(tmp_path: Path) -> None:
    arr = np.zeros((12, 12, 3), np.uint8)
    arr[2:10, 2:10] = [0, 200, 0]
    path = tmp_path / "c" / "blur" / "1" / WNIDS[0] / "a.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(arr).save(path)
    (ds,) = imagenet_c(tmp_path / "c", size=8)
    assert (ds.load(0).image == [0, 200, 0]).all()  # a pure centre crop of the stored image
    (resized,) = imagenet_c(tmp_path / "c", size=8, crop="center")
    assert not (resized.load(0).image == [0, 200, 0]).all()


def test_imagenet_c_errors_name_the_layout_and_what_was_found(c_root: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"fog.*contrast"):
        imagenet_c(c_root, corruption="fog")
    with pytest.raises(DatasetLayoutError, match=r"severity \[5\].*\[1, 3\]"):
        imagenet_c(c_root, severity=5)
    (c_root / "contrast" / "high").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"<severity 1-5>.*high"):
        imagenet_c(c_root, corruption="contrast")
    with pytest.raises(DatasetLayoutError, match=r"pass the parent"):
        imagenet_c(c_root / "gaussian_noise")


# -- ImageNet-C-bar --------------------------------------------------------------------------


@pytest.fixture
def cbar_root(tmp_path: Path) -> Path:
    """Severity folders as seed 002 names them (1..5) and as the release writes them (levels)."""
    root = tmp_path / "imagenet-c-bar"
    for corruption, severities in (
        ("cocentric_sine_waves", ("1", "3")),
        ("caustic_refraction", ("2.35", "9.15")),  # the release's "{:.2f}" level folders
    ):
        for sev in severities:
            for k in (0, 2):
                jpeg(root / corruption / sev / WNIDS[k] / f"v{k}.JPEG", (10 * k, 50, 90), (12, 12))
    return root


def test_imagenet_cbar_one_dataset_per_corruption_and_severity(cbar_root: Path) -> None:
    sets = imagenet_cbar(cbar_root, size=8)
    assert [d.name for d in sets] == [
        "imagenet_cbar/caustic_refraction/1",
        "imagenet_cbar/caustic_refraction/5",
        "imagenet_cbar/cocentric_sine_waves/1",
        "imagenet_cbar/cocentric_sine_waves/3",
    ]
    for d in sets:
        assert d.classes == WNIDS and d.labels().tolist() == [0, 2]
        assert d.class_mapping(WNIDS).is_identity
        assert d.load(0).image.shape == (8, 8, 3)
    only = imagenet_cbar(cbar_root, corruption="caustic_refraction", severity=5, size=8)
    assert [d.name for d in only] == ["imagenet_cbar/caustic_refraction/5"]
    # the registered layout: role corrupt_bar, corruption and severity tags
    layout = get_layout("imagenet_cbar")
    assert layout.role == "corrupt_bar" and layout.expands
    opened = layout.open(LayoutArgs(str(cbar_root), size=8))
    assert [tags for _, tags in opened][:2] == [
        {"corruption": "caustic_refraction", "severity": 1},
        {"corruption": "caustic_refraction", "severity": 5},
    ]
    assert {role_from_name(d.name) for d, _ in opened} == {"corrupt_bar"}


def test_imagenet_cbar_wrong_layouts_name_the_expected_one(c_root: Path, cbar_root: Path) -> None:
    # an ImageNet-C tree given as C-bar: the C-bar layout and the hint to use imagenet_c
    with pytest.raises(DatasetLayoutError, match=r"cocentric_sine_waves.*gaussian_noise") as info:
        imagenet_cbar(c_root)
    assert "<corruption>/<severity 1-5" in str(info.value)
    assert "layout 'imagenet_c'" in str(info.value)
    with pytest.raises(DatasetLayoutError, match=r"pass the parent"):
        imagenet_cbar(cbar_root / "caustic_refraction")
    with pytest.raises(DatasetLayoutError, match=r"severity \[2\].*\[1, 5\]"):
        imagenet_cbar(cbar_root, corruption="caustic_refraction", severity=2)
    with pytest.raises(DatasetLayoutError, match=r"\['sparkles'\] not found"):
        imagenet_cbar(cbar_root, corruption="sparkles")
    (cbar_root / "caustic_refraction" / "7.50").mkdir()  # not one of its levels
    with pytest.raises(DatasetLayoutError, match=r"2\.35, 3\.20, 4\.90, 6\.60, 9\.15.*7\.50"):
        imagenet_cbar(cbar_root)
    (cbar_root / "caustic_refraction" / "7.50").rmdir()
    (cbar_root / "caustic_refraction" / "1").mkdir()  # severity 1 twice: 1/ and 2.35/
    with pytest.raises(DatasetLayoutError, match=r"severity 1 is there twice"):
        imagenet_cbar(cbar_root)
    with pytest.raises(DatasetLayoutError, match=r"does not exist.*<corruption>"):
        imagenet_cbar(cbar_root / "absent")


# -- Stylized-ImageNet -----------------------------------------------------------------------


def test_stylized_imagenet_is_the_val_layout(tmp_path: Path) -> None:
    jpeg(tmp_path / "sin" / WNIDS[3] / "ILSVRC2012_val_00000001.JPEG")
    jpeg(tmp_path / "sin" / WNIDS[999] / "ILSVRC2012_val_00000002.JPEG")
    jpeg(tmp_path / "out" / "val" / WNIDS[3] / "a.JPEG")  # as Stylize-Datasets writes it
    ds = stylized_imagenet(tmp_path / "sin", size=8)
    assert ds.name == "stylized_imagenet" and ds.classes == WNIDS
    assert ds.labels().tolist() == [3, 999] and ds.class_mapping(WNIDS).is_identity
    assert stylized_imagenet(tmp_path / "out", size=8).labels().tolist() == [3]
    layout = get_layout("stylized_imagenet")
    assert layout.role == "stylized" and not layout.expands
    opened = layout.open(LayoutArgs(str(tmp_path / "sin"), size=8, name="stylized_imagenet"))
    assert len(opened) == 2 and role_from_name(opened.name) == "stylized"


def test_stylized_imagenet_wrong_layout_names_the_expected_one(tmp_path: Path) -> None:
    jpeg(tmp_path / "sin" / "airplane" / "a.png")  # a cue-conflict-like category folder
    with pytest.raises(DatasetLayoutError, match=r"root/<wnid>/<image>.*airplane"):
        stylized_imagenet(tmp_path / "sin")
    with pytest.raises(DatasetLayoutError, match=r"Stylized-ImageNet root .* does not exist"):
        stylized_imagenet(tmp_path / "absent")


# -- ImageNet-R / -A -------------------------------------------------------------------------


def test_imagenet_r_is_masked_onto_the_200_classes(tmp_path: Path) -> None:
    r_idx = imagenet_r_indices()
    for pos in (0, 5, 199):
        jpeg(tmp_path / "r" / WNIDS[r_idx[pos]] / f"art_{pos}.jpg")
    ds = imagenet_r(tmp_path / "r", size=8)
    assert len(ds.classes) == 200 and ds.classes[0] == WNIDS[r_idx[0]]
    assert ds.labels().tolist() == [0, 5, 199]
    mapping = ds.class_mapping(WNIDS)
    assert mapping.targets == tuple((i,) for i in r_idx)
    assert "200" in mapping.description

    # an image of R class 5: the model's top logit is an ImageNet class outside the 200
    outside = next(i for i in range(1000) if i not in set(r_idx))
    logits = np.zeros((1, 1000))
    logits[0, outside] = 9.0
    logits[0, r_idx[5]] = 5.0
    logits[0, r_idx[7]] = 4.0
    assert logits.argmax() == outside  # unmasked: wrong, and not even an R class
    assert mapping.dataset_scores(logits).argmax(axis=1).tolist() == [5]  # masked: correct


def test_imagenet_r_folder_not_among_the_200_is_named(tmp_path: Path) -> None:
    r_idx = set(imagenet_r_indices())
    jpeg(tmp_path / "r" / WNIDS[1] / "a.jpg")
    not_r = WNIDS[next(i for i in range(1000) if i not in r_idx)]
    jpeg(tmp_path / "r" / not_r / "b.jpg")
    with pytest.raises(DatasetLayoutError, match=rf"200 ImageNet-R wnid folders.*{not_r}"):
        imagenet_r(tmp_path / "r")
    with pytest.raises(DatasetLayoutError, match=r"does not exist.*200 ImageNet-R"):
        imagenet_r(tmp_path / "missing")


def test_imagenet_a_uses_its_own_200_classes(tmp_path: Path) -> None:
    a_idx = imagenet_a_indices()
    jpeg(tmp_path / "a" / WNIDS[a_idx[3]] / "x.jpg")
    ds = imagenet_a(tmp_path / "a")
    assert ds.labels().tolist() == [3]
    assert ds.class_mapping(WNIDS).targets[3] == (a_idx[3],)
    assert ds.class_mapping(ds.classes).is_identity  # a 200-class model
    with pytest.raises(ClassMismatchError, match="200 classes"):
        ds.class_mapping([f"c{i}" for i in range(10)])
    jpeg(tmp_path / "r" / WNIDS[1] / "y.jpg")  # index 1 is an R class, not an A class
    with pytest.raises(DatasetLayoutError, match=WNIDS[1]):
        imagenet_a(tmp_path / "r")


# -- Sketch, V2 ------------------------------------------------------------------------------


def test_imagenet_sketch_accepts_the_extra_sketch_level(tmp_path: Path) -> None:
    jpeg(tmp_path / "s" / "sketch" / WNIDS[42] / "a.JPEG")
    jpeg(tmp_path / "s2" / WNIDS[42] / "a.JPEG")
    for root in (tmp_path / "s", tmp_path / "s2"):
        ds = imagenet_sketch(root, size=8)
        assert ds.labels().tolist() == [42] and ds.classes == WNIDS
        assert ds.sample_ids().tolist() == [stable_id(f"{WNIDS[42]}/a.JPEG")]


def test_imagenet_v2_folder_index_maps_to_the_wnid(tmp_path: Path) -> None:
    for k in (0, 7, 999):
        jpeg(tmp_path / "v2" / str(k) / f"{k}abc.jpeg")
    ds = imagenet_v2(tmp_path / "v2", size=8)
    assert ds.classes == WNIDS
    assert ds.labels().tolist() == [0, 7, 999]  # folder "7" -> class 7, not position 1
    assert ds.classes[ds.labels()[1]] == WNIDS[7]
    assert ds.class_mapping(WNIDS).is_identity
    jpeg(tmp_path / "v2" / "1000" / "x.jpeg")
    with pytest.raises(DatasetLayoutError, match=r"0/ \.\. 999/.*1000"):
        imagenet_v2(tmp_path / "v2")


# -- ObjectNet -------------------------------------------------------------------------------

OBJECTNET_MAP = {"banana": [954], "alarm_clock": [409, 530], "chair": [423, 559, 765]}


def framed_png(path: Path, inner=(0, 0, 250), size=10) -> Path:
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:] = [255, 0, 0]
    arr[1:-1, 1:-1] = inner
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_objectnet_uses_mapped_folders_and_ignores_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "objectnet"
    framed_png(root / "images" / "alarm_clock" / "a.png")
    framed_png(root / "images" / "banana" / "b.png")
    framed_png(root / "images" / "tv_remote" / "c.png")  # not in the mapping
    mapping = write_json(tmp_path / "map.json", OBJECTNET_MAP)
    ds = objectnet(root, mapping, size=8, crop="none")
    assert ds.classes == ["alarm_clock", "banana", "chair"]
    assert ds.labels().tolist() == [0, 1]
    assert "tv_remote/" in ds.ignored
    assert (ds.load(0).image == [0, 0, 250]).all()  # the 1-pixel frame is gone
    assert ds.sample_ids()[0] == stable_id("alarm_clock/a.png")


def test_objectnet_mapping_counts_any_index_of_the_class(tmp_path: Path) -> None:
    framed_png(tmp_path / "on" / "alarm_clock" / "a.png")  # no images/ level: accepted
    ds = objectnet(tmp_path / "on", write_json(tmp_path / "map.json", OBJECTNET_MAP))
    m = ds.class_mapping(WNIDS)
    assert m.targets == ((409, 530), (954,), (423, 559, 765)) and m.reduce == "max"
    logits = np.zeros((3, 1000))
    logits[0, 530] = 3.0  # second index of alarm_clock
    logits[0, 0] = 10.0  # an ImageNet class outside the overlap: cannot be predicted
    logits[1, 765] = 2.0
    logits[1, 954] = 1.0
    logits[2, 409] = 1.0
    logits[2, 954] = 1.5
    pred = m.dataset_scores(logits).argmax(axis=1)
    # equals the argmax over the logits restricted to the union of mapped indices
    union = sorted(i for t in m.targets for i in t)
    restricted = [union[j] for j in logits[:, union].argmax(axis=1)]
    owner = {i: c for c, t in enumerate(m.targets) for i in t}
    assert pred.tolist() == [owner[i] for i in restricted] == [0, 2, 1]


def test_objectnet_errors(tmp_path: Path) -> None:
    framed_png(tmp_path / "on" / "images" / "tv_remote" / "c.png")
    mapping = write_json(tmp_path / "map.json", OBJECTNET_MAP)
    with pytest.raises(DatasetLayoutError, match=r"root/images/<folder>.*tv_remote"):
        objectnet(tmp_path / "on", mapping)
    overlapping = write_json(tmp_path / "bad.json", {"a": [1, 2], "b": [2]})
    with pytest.raises(ConfigError, match="index 2"):
        objectnet(tmp_path / "on", overlapping)


def test_objectnet_with_the_shared_113_class_mapping(tmp_path: Path) -> None:
    path = SHARED / "objectnet_folder_to_imagenet.json"
    if not path.is_file():
        pytest.skip(f"reference file {path} is absent")
    framed_png(tmp_path / "on" / "images" / "banana" / "b.png")
    framed_png(tmp_path / "on" / "images" / "not_in_imagenet" / "c.png")
    ds = objectnet(tmp_path / "on", path)
    assert len(ds.classes) == 113
    assert sum(len(t) for t in ds.class_mapping(WNIDS).targets) == 125
    assert ds.classes[ds.labels()[0]] == "banana"


# -- cue-conflict ----------------------------------------------------------------------------

CUE_MAP = {"airplane": [404], "bear": [294, 295, 296, 297], "cat": [281, 282, 283]}


@pytest.fixture
def cue_root(tmp_path: Path) -> Path:
    root = tmp_path / "cue-conflict"
    for name in (
        "airplane/airplane1-bear2.png",
        "airplane/airplane2-cat1.png",
        "bear/bear1-airplane3.png",
        "cat/cat1-cat2.png",
        "cat/1111_cc_hum_1_cat2-bear1.png",
    ):
        save(root / name, size=(16, 16))
    return root


def test_cue_conflict_labels_are_shapes_and_texture_labels_are_textures(cue_root: Path) -> None:
    ds = cue_conflict(cue_root, size=8)
    assert ds.classes == ["airplane", "bear", "cat"]
    assert ds.extra_label_names == ("texture_label",)
    paths = [e.path for e in ds.entries]
    assert paths[0] == "airplane/airplane1-bear2.png"
    assert ds.labels().tolist() == [0, 0, 1, 2, 2]
    # cat/1111_cc_hum_1_cat2-bear1.png sorts before cat/cat1-cat2.png
    assert paths[3] == "cat/1111_cc_hum_1_cat2-bear1.png"
    assert ds.extra_labels()["texture_label"].tolist() == [1, 2, 0, 1, 2]
    assert ds.load(2).extras == {"texture_label": 0}
    assert ds.class_mapping(["airplane", "bear", "cat"]).is_identity
    with pytest.raises(ClassMismatchError):
        ds.class_mapping(WNIDS)  # no mapping file: ImageNet models cannot be mapped


def test_cue_conflict_mapping_averages_probabilities(cue_root: Path, tmp_path: Path) -> None:
    ds = cue_conflict(cue_root, write_json(tmp_path / "cats.json", CUE_MAP), size=8)
    m = ds.class_mapping(WNIDS)
    assert m.reduce == "mean" and m.targets == ((404,), (294, 295, 296, 297), (281, 282, 283))
    logits = np.zeros((1, 1000))
    logits[0, 294] = 4.0  # one very confident bear class...
    logits[0, [281, 282, 283]] = 3.5  # ...but all cat classes fairly likely
    scores = m.dataset_scores(logits)
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert np.allclose(scores[0], [p[404], p[294:298].mean(), p[281:284].mean()])
    assert scores.argmax() == 2  # the mean differs from the max-logit rule (bear)
    assert logits[0, [404, 294, 295, 296, 297, 281, 282, 283]].argmax() == 1


def test_cue_conflict_errors_name_the_file(cue_root: Path, tmp_path: Path) -> None:
    save(cue_root / "bear" / "bear2-dog1.png")
    with pytest.raises(DatasetLayoutError, match=r"bear2-dog1\.png.*'dog'"):
        cue_conflict(cue_root)
    (cue_root / "bear" / "bear2-dog1.png").unlink()
    save(cue_root / "bear" / "cat3-bear1.png")
    with pytest.raises(DatasetLayoutError, match=r"cat3-bear1\.png.*folder 'bear'"):
        cue_conflict(cue_root)
    (cue_root / "bear" / "cat3-bear1.png").unlink()
    save(cue_root / "bear" / "photo.png")
    with pytest.raises(DatasetLayoutError, match=r"photo\.png.*<shape><i>-<texture><j>"):
        cue_conflict(cue_root)
    (cue_root / "bear" / "photo.png").unlink()
    small = write_json(tmp_path / "two.json", {"airplane": [404], "bear": [294]})
    with pytest.raises(DatasetLayoutError, match=r"cat"):
        cue_conflict(cue_root, small)


def test_cue_conflict_with_the_shared_16_category_mapping(cue_root: Path) -> None:
    path = SHARED / "cue_conflict_16_categories.json"
    if not path.is_file():
        pytest.skip(f"reference file {path} is absent")
    ds = cue_conflict(cue_root, path)
    assert len(ds.classes) == 16
    assert ds.classes[ds.labels()[0]] == "airplane"
    targets = ds.class_mapping(WNIDS).targets
    assert dict(zip(ds.classes, targets, strict=True))["bear"] == tuple(
        load_category_mapping(path)["bear"]
    )


# -- Spurious ImageNet -----------------------------------------------------------------------


def test_spurious_imagenet_class_index_from_folder_names(tmp_path: Path) -> None:
    root = tmp_path / "spurious_imagenet"
    jpeg(root / "images" / "spurious_class_309_comp_2" / "a.jpg")
    jpeg(root / "images" / "spurious_class_309_comp_2" / "b.jpg")
    jpeg(root / "images" / "class_12_comp_0" / "c.jpg")
    jpeg(root / "images" / "5_snorkel" / "d.jpg")
    ds = spurious_imagenet(root, size=8)
    assert ds.classes == [WNIDS[5], WNIDS[12], WNIDS[309]]
    assert ds.extra_label_names == ("spurious_label",)
    # folders are sorted by name: 5_snorkel, class_12_comp_0, spurious_class_309_comp_2
    assert ds.labels().tolist() == [0, 1, 2, 2]
    assert ds.extra_labels()["spurious_label"].tolist() == [5, 12, 309, 309]
    m = ds.class_mapping(WNIDS)
    assert m.targets == ((5,), (12,), (309,))
    logits = np.zeros((1, 1000))
    logits[0, 0] = 5.0
    logits[0, 309] = 1.0
    assert m.dataset_scores(logits).argmax() == 2


def test_spurious_imagenet_folder_without_index_is_named(tmp_path: Path) -> None:
    jpeg(tmp_path / "sp" / "class_3" / "a.jpg")
    jpeg(tmp_path / "sp" / "misc" / "b.jpg")
    with pytest.raises(DatasetLayoutError, match=r"class_<index>.*misc"):
        spurious_imagenet(tmp_path / "sp")
    (tmp_path / "sp" / "misc" / "b.jpg").unlink()
    (tmp_path / "sp" / "misc").rmdir()
    jpeg(tmp_path / "sp" / "class_1000" / "c.jpg")
    with pytest.raises(DatasetLayoutError, match=r"class_1000"):
        spurious_imagenet(tmp_path / "sp")
