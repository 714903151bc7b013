"""The ``ground_truth`` measure: mark and texture reliance, view and corruption accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import typer

from robustlens.data.base import ClassMapping
from robustlens.errors import ValidationError
from robustlens.lines.validity.commands import register
from robustlens.lines.validity.measure import GroundTruthMeasure
from robustlens.measure import DatasetInfo, ModelInfo, available_measures, get_measure
from robustlens.testing import InMemoryArrays

K = 4
CLASSES = tuple("abcd")


def _onehot(pred) -> np.ndarray:
    return np.eye(K)[np.asarray(pred)] * 5.0


def _info(name: str, role: str, **tags) -> DatasetInfo:
    return DatasetInfo(name, f"fp-{name}", role, CLASSES, tags)


def _compute(datasets: dict[str, tuple[DatasetInfo, InMemoryArrays]]):
    m = GroundTruthMeasure()
    model = ModelInfo("m", "fp-m", CLASSES, {})
    infos = {n: info for n, (info, _) in datasets.items()}
    arrays = {n: a for n, (_, a) in datasets.items()}
    maps = {n: ClassMapping.identity(K) for n in datasets}
    return m.compute(model, infos, arrays, maps)


# images of class c carrying class k's mark (k != c), as the redesigned world's spurious split
OBJECT = np.array([0, 1, 2, 3, 0, 1, 2, 3])
MARK = (OBJECT + 1) % K


def test_it_is_registered_with_the_views_of_each_role():
    assert "ground_truth" in available_measures()
    m = get_measure("ground_truth")
    assert m.requests(_info("sp", "spurious")) == {"clean": False}
    assert m.requests(_info("cc", "cue_conflict")) == {"clean": False}
    assert m.requests(_info("c", "corrupt")) == {"clean": False}
    assert set(m.requests(_info("val", "id"))) == {"clean", "rot90", "rot180", "rot270", "gray"}
    assert m.requests(_info("tr", "train")) == {} and m.requests(_info("s", "sketch")) == {}


@pytest.mark.parametrize(("predict", "expected"), [(MARK, 1.0), (OBJECT, 0.0)])
def test_mark_reliance_is_one_when_the_mark_decides_and_zero_when_ignored(predict, expected):
    arrays = InMemoryArrays(OBJECT, {"clean": _onehot(predict)}, {"spurious_label": MARK})
    out = _compute({"world/spurious": (_info("world/spurious", "spurious"), arrays)})
    assert out.values[("world/spurious", "mark_reliance")] == pytest.approx(expected)
    assert out.values[("world/spurious", "mark_reliance_n")] == len(OBJECT)
    assert out.per_sample["world/spurious"]["mark_hit"].sum() == expected * len(OBJECT)


def test_mark_reliance_leaves_out_images_of_the_marks_class_and_counts_all_without_objects():
    labels = np.array([0, 1, 2, 3])
    marks = np.array([1, 1, 3, 3])  # rows 1 and 3: the object is the mark's class
    arrays = InMemoryArrays(labels, {"clean": _onehot(marks)}, {"spurious_label": marks})
    out = _compute({"sp": (_info("sp", "spurious"), arrays)})
    assert out.values[("sp", "mark_reliance")] == 1.0 and out.values[("sp", "mark_reliance_n")] == 2
    # the current world: no object, the label is the mark's class; half predicted as the mark
    pred = np.array([0, 2, 2, 0])
    arrays = InMemoryArrays(labels, {"clean": _onehot(pred)}, {"spurious_label": labels})
    out = _compute({"sp": (_info("sp", "spurious"), arrays)})
    assert out.values[("sp", "mark_reliance")] == 0.5 and out.values[("sp", "mark_reliance_n")] == 4


def test_texture_reliance_counts_texture_decisions_among_shape_or_texture_ones():
    shape = np.array([0, 1, 2, 3, 0])
    texture = np.array([1, 2, 3, 0, 0])  # the last image is left out (shape == texture)
    pred = np.array([1, 2, 2, 1, 0])  # texture, texture, shape, neither, (left out)
    arrays = InMemoryArrays(shape, {"clean": _onehot(pred)}, {"texture_label": texture})
    out = _compute({"cc": (_info("cc", "cue_conflict"), arrays)})
    assert out.values[("cc", "texture_reliance")] == pytest.approx(2 / 3)
    assert out.values[("cc", "texture_decisions_n")] == 3
    with pytest.raises(ValidationError, match="texture_label"):
        _compute({"cc": (_info("cc", "cue_conflict"), InMemoryArrays(shape, {"clean": pred}))})


def test_view_accuracies_and_the_mean_corruption_accuracy():
    y = np.array([0, 1, 2, 3])
    wrong = (y + 1) % K
    half = np.array([0, 1, 3, 0])
    val = InMemoryArrays(
        y,
        {
            "clean": _onehot(y),
            "rot90": _onehot(y),
            "rot180": _onehot(half),
            "rot270": _onehot(wrong),
            "gray": _onehot(half),
        },
    )
    data = {"world/val": (_info("world/val", "id"), val)}
    for name, pred in (("world/corrupt/fog/1", y), ("world/corrupt/fog/3", half)):
        data[name] = (_info(name, "corrupt"), InMemoryArrays(y, {"clean": _onehot(pred)}))
    out = _compute(data)
    assert out.values[("world/val", "clean_accuracy")] == 1.0
    assert out.values[("world/val", "rotation_accuracy")] == pytest.approx((1 + 0.5 + 0) / 3)
    assert out.values[("world/val", "gray_accuracy")] == 0.5
    assert out.values[("*", "corruption_accuracy")] == pytest.approx(0.75)
    assert out.values[("*", "corruption_datasets_n")] == 2


def test_the_protocol_names_what_it_validates_and_the_command_registers():
    protocol = get_measure("ground_truth").protocol()
    assert protocol["paper"] and protocol["parameters"] == {}
    app = typer.Typer()
    register(app)
    assert [c.name for c in app.registered_commands] == ["validity"]
