"""The imagenet-testbed's per-model table (Taori et al., NeurIPS 2020) in canonical form.

Reads ``robustness_top1s.csv`` (one row per model, top-1 accuracies in percent, one column per
evaluation setting) and the model types of ``plotting/model_types.py``, which is read with
:mod:`ast` and never executed. Reference: R. Taori, A. Dave, V. Shankar, N. Carlini, B. Recht,
L. Schmidt, "Measuring Robustness to Natural Distribution Shifts in Image Classification",
NeurIPS 2020 (``github.com/modestyachts/imagenet-testbed``).

Canonical columns (accuracies as fractions in [0, 1]):

==========================================  ====================================================
testbed column                              canonical column
==========================================  ====================================================
``val``                                     ``imagenet_val``
``imagenetv2-matched-frequency-format-val`` ``imagenet_v2`` (the set the testbed plots)
``imagenetv2-threshold-0.7-format-val``     ``imagenet_v2_threshold0.7``
``imagenetv2-top-images-format-val``        ``imagenet_v2_top_images``
``imagenet-sketch``                         ``imagenet_sketch``
``imagenet-r``                              ``imagenet_r``
``val-on-imagenet-r-classes``               ``imagenet_val@imagenet_r`` (val on R's 200 classes)
``imagenet-a``                              ``imagenet_a``
``val-on-imagenet-a-classes``               ``imagenet_val@imagenet_a`` (val on A's 200 classes)
``objectnet-1.0-beta``                      ``objectnet``
``val-on-objectnet-classes``                ``imagenet_val@objectnet`` (val on ObjectNet's
                                            classes)
``stylized_imagenet``                       ``stylized_imagenet``
``greyscale``                               ``imagenet_greyscale`` (val in greyscale)
``imagenet-c.<c>.<s>_on-disk``              ``imagenet_c/<c>/<s>`` (the released ImageNet-C
                                            images, as robustlens's ``imagenet_c`` layout)
``imagenet-c.<c>.<s>_in-memory``            ``imagenet_val/corrupt/<c>/<s>`` (corruptions
                                            applied to val in memory, as robustlens's derived
                                            corruptions)
==========================================  ====================================================

``dataset@other`` is ``dataset`` restricted to the classes of ``other`` (the x-axis of the
testbed's ImageNet-R, -A and ObjectNet plots). The other columns (the V2 copies not in val's
format, the class-subsampled settings, ImageNet-Vid-Robust, YTBB-Robust and the testbed's own
PGD settings) have no robustlens dataset: they are listed in ``attrs["unmapped"]``.

``type`` is the model's :class:`ModelTypes` label in ``model_types.py`` (``Standard
training``, ``Trained with more data``, ``Lp adversarially robust``, ``Other robustness
intervention``, ...; ``None`` for a model the file does not list). The testbed's natural-shift
plots merge ``Lp adversarially robust`` and ``Other robustness intervention`` into
"Robustness intervention"; the standard models are the same in both.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from robustlens.errors import ValidationError
from robustlens.published._common import (
    as_resource,
    canonical_frame,
    percent_to_fraction,
    read_format_csv,
)

__all__ = [
    "STANDARD",
    "TESTBED_COLUMNS",
    "TESTBED_REQUIRED",
    "parse_model_types",
    "read_testbed",
]

#: the ``type`` of the testbed's standard-trained models (the baselines are fitted on them)
STANDARD = "Standard training"
#: columns a file must have to be read as ``robustness_top1s.csv``
TESTBED_REQUIRED = ("model", "val")
#: other columns a wrong file's message names
_ALSO_EXPECTED = (
    "imagenetv2-matched-frequency-format-val",
    "imagenet-sketch",
    "imagenet-r",
    "val-on-imagenet-r-classes",
    "objectnet-1.0-beta",
    "val-on-objectnet-classes",
    "imagenet-c.<corruption>.<severity>_on-disk",
)
#: the testbed's columns with a robustlens name (ImageNet-C columns are matched by pattern)
TESTBED_COLUMNS: dict[str, str] = {
    "val": "imagenet_val",
    "imagenetv2-matched-frequency-format-val": "imagenet_v2",
    "imagenetv2-threshold-0.7-format-val": "imagenet_v2_threshold0.7",
    "imagenetv2-top-images-format-val": "imagenet_v2_top_images",
    "imagenet-sketch": "imagenet_sketch",
    "imagenet-r": "imagenet_r",
    "val-on-imagenet-r-classes": "imagenet_val@imagenet_r",
    "imagenet-a": "imagenet_a",
    "val-on-imagenet-a-classes": "imagenet_val@imagenet_a",
    "objectnet-1.0-beta": "objectnet",
    "val-on-objectnet-classes": "imagenet_val@objectnet",
    "stylized_imagenet": "stylized_imagenet",
    "greyscale": "imagenet_greyscale",
}
_IMAGENET_C = re.compile(r"^imagenet-c\.([a-z_]+)\.([1-5])_(on-disk|in-memory)$")
_MAP_NAME = "model_types_map"
_ENUM_NAME = "ModelTypes"


def _imagenet_c_name(column: str) -> str | None:
    m = _IMAGENET_C.match(column)
    if m is None:
        return None
    corruption, severity, where = m.groups()
    if where == "on-disk":
        return f"imagenet_c/{corruption}/{severity}"
    return f"imagenet_val/corrupt/{corruption}/{severity}"


# ------------------------------------------------------------------------------ model_types.py
def _literal(node: ast.AST, what: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise ValidationError(
            f"model_types.py: {what} at line {getattr(node, 'lineno', '?')} is not a literal"
        ) from exc


def _enum_labels(tree: ast.Module) -> dict[str, str]:
    """``{member: label}`` of ``class ModelTypes(Enum)`` (the label is the tuple's first item)."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == _ENUM_NAME:
            out = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target = stmt.targets[0]
                    value = _literal(stmt.value, f"{_ENUM_NAME} member")
                    if isinstance(target, ast.Name) and isinstance(value, tuple) and value:
                        out[target.id] = str(value[0])
            return out
    raise ValidationError(f"model_types.py: no class {_ENUM_NAME} found")


def _member(node: ast.AST, labels: Mapping[str, str]) -> str:
    """The label of ``ModelTypes.X``."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == _ENUM_NAME
        and node.attr in labels
    ):
        return labels[node.attr]
    raise ValidationError(
        f"model_types.py: expected {_ENUM_NAME}.<member> at line {getattr(node, 'lineno', '?')}"
    )


def _format_key(node: ast.AST, env: Mapping[str, int]) -> str:
    """A dictionary key: a string literal or an f-string over the loop variable."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif (
                isinstance(v, ast.FormattedValue)
                and isinstance(v.value, ast.Name)
                and v.value.id in env
                and v.format_spec is None
                and v.conversion == -1
            ):
                parts.append(str(env[v.value.id]))
            else:
                break
        else:
            return "".join(parts)
    raise ValidationError(f"model_types.py: unsupported key at line {getattr(node, 'lineno', '?')}")


def _is_map_item(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Subscript)
        and isinstance(node.targets[0].value, ast.Name)
        and node.targets[0].value.id == _MAP_NAME
    )


def _assign_item(
    node: ast.Assign, out: dict[str, str], labels: Mapping[str, str], env: Mapping[str, int]
) -> None:
    target = node.targets[0]
    assert isinstance(target, ast.Subscript)
    out[_format_key(target.slice, env)] = _member(node.value, labels)


def _range(call: ast.AST) -> range:
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "range"
        and not call.keywords
        and 1 <= len(call.args) <= 3
    ):
        args = [_literal(a, "range argument") for a in call.args]
        if all(isinstance(a, int) for a in args):
            return range(*args)
    raise ValidationError(
        f"model_types.py: unsupported loop at line {getattr(call, 'lineno', '?')}: only "
        "'for i in range(...)' is read"
    )


def parse_model_types(source: str) -> dict[str, str]:
    """``{model: type label}`` from the text of the testbed's ``plotting/model_types.py``.

    The file is parsed with :mod:`ast`, never executed. Read: the labels of
    ``class ModelTypes(Enum)`` (first item of each member's tuple), the dictionary literal
    ``model_types_map = {...}``, item assignments ``model_types_map[key] = ModelTypes.X`` and
    ``for i in range(...):`` loops of them with f-string keys. Other statements (the
    ``NatModelTypes`` mapping) are ignored.

    Example:
        >>> src = '''
        ... from enum import Enum
        ... class ModelTypes(Enum):
        ...     STANDARD = ('Standard training', 'tab:blue')
        ...     LOW_ACCURACY_CNN = ('Low Accuracy CNN', 'tab:cyan')
        ... model_types_map = {'resnet50': ModelTypes.STANDARD}
        ... for i in range(2):
        ...     model_types_map[f"resnet18_{i}_epochs"] = ModelTypes.LOW_ACCURACY_CNN
        ... '''
        >>> parse_model_types(src)  # doctest: +NORMALIZE_WHITESPACE
        {'resnet50': 'Standard training', 'resnet18_0_epochs': 'Low Accuracy CNN',
         'resnet18_1_epochs': 'Low Accuracy CNN'}
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValidationError(f"model_types.py: not valid Python ({exc.msg})") from exc
    labels = _enum_labels(tree)
    out: dict[str, str] = {}
    found = False
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == _MAP_NAME
        ):
            if not isinstance(node.value, ast.Dict):
                raise ValidationError(f"model_types.py: {_MAP_NAME} is not a dictionary literal")
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                if k is None:
                    raise ValidationError(f"model_types.py: '**' in {_MAP_NAME} is not read")
                out[_format_key(k, {})] = _member(v, labels)
            found = True
        elif _is_map_item(node):
            assert isinstance(node, ast.Assign)
            _assign_item(node, out, labels, {})
        elif isinstance(node, ast.For) and any(_is_map_item(s) for s in node.body):
            if not isinstance(node.target, ast.Name) or node.orelse:
                raise ValidationError(f"model_types.py: unsupported loop at line {node.lineno}")
            for i in _range(node.iter):
                for stmt in node.body:
                    if not _is_map_item(stmt):
                        raise ValidationError(
                            f"model_types.py: unsupported statement in the loop at line "
                            f"{stmt.lineno}"
                        )
                    assert isinstance(stmt, ast.Assign)
                    _assign_item(stmt, out, labels, {node.target.id: i})
    if not found:
        raise ValidationError(f"model_types.py: no '{_MAP_NAME} = {{...}}' found")
    return out


# -------------------------------------------------------------------------------------- reader
def read_testbed(csv: Any, model_types: Any | None = None) -> Any:
    """The testbed's ``robustness_top1s.csv`` as a canonical table (see the module docstring).

    Args:
        csv: path (or resource) of ``robustness_top1s.csv`` (``.csv.gz`` is read too).
        model_types: path (or resource) of ``plotting/model_types.py``; ``None``: every
            ``type`` is ``None``.

    Returns:
        DataFrame: ``model``, ``source`` (``"testbed"``), ``type``, then one column per
        dataset; ``attrs`` holds ``format``, ``path``, ``unmapped`` (testbed columns without a
        robustlens name) and ``untyped`` (models ``model_types.py`` does not list).

    Raises:
        ValidationError: the file lacks ``model`` or ``val`` (the message names the expected
            columns), or a value is not a percentage.
    """
    raw = read_format_csv(
        csv, "the imagenet-testbed's robustness_top1s.csv", TESTBED_REQUIRED, _ALSO_EXPECTED
    )
    types: dict[str, str] = {}
    if model_types is not None:
        types = parse_model_types(as_resource(model_types).read_text(encoding="utf-8"))
    models = [str(m) for m in raw["model"]]
    values: dict[str, Any] = {}
    unmapped = []
    for column in raw.columns:
        if column == "model":
            continue
        name = TESTBED_COLUMNS.get(column) or _imagenet_c_name(column)
        if name is None:
            unmapped.append(column)
            continue
        values[name] = percent_to_fraction(raw[column], column, csv).to_numpy()
    frame = canonical_frame(models, "testbed", [types.get(m) for m in models], {}, values)
    frame.attrs.update(
        format="testbed",
        path=str(csv),
        unmapped=unmapped,
        untyped=[m for m in models if m not in types] if model_types is not None else [],
    )
    return frame
