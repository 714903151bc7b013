"""Several correct labels per sample (ImageNet ReaL, the photos' hand labels), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustlens.config import parse_config
from robustlens.data.imagenet import imagenet_val
from robustlens.data.imagenet_info import imagenet_real_labels, imagenet_wnids
from robustlens.errors import ConfigError, ValidationError
from robustlens.metrics.classification import multi_label_accuracy
from robustlens.plan import resolve_datasets
from robustlens.store import Store

WNIDS = imagenet_wnids()


def _val_tree(root: Path) -> Path:
    # ILSVRC2012_val_00000002 is a wnid-970 image whose ReaL labels are [970, 795]
    for n, k in ((1, 65), (2, 970), (3, 230)):
        path = root / WNIDS[k] / f"ILSVRC2012_val_{n:08d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 10), (n * 40, 20, 90)).save(path, format="JPEG")
    return root


def test_multi_label_accuracy_by_hand():
    acc, hits = multi_label_accuracy(
        np.array([4, 2, 7, 0]), np.array([[4, 9, -1], [1, 3, -1], [-1, -1, -1], [0, -1, -1]])
    )
    # sample 2 has no label and is left out: 2 hits of 3 labelled samples
    assert acc == pytest.approx(2 / 3)
    assert hits.tolist() == [True, False, False, True]
    assert np.isnan(multi_label_accuracy(np.array([1]), np.array([[-1]]))[0])
    with pytest.raises(ValidationError, match=r"\(N, L\)"):
        multi_label_accuracy(np.array([1, 2]), np.array([1, 2]))


def test_real_labels_come_from_timm():
    real = imagenet_real_labels()
    assert len(real) == 50000
    assert real["ILSVRC2012_val_00000001.JPEG"] == []  # left out of ReaL accuracy
    assert real["ILSVRC2012_val_00000002.JPEG"] == [970, 795]
    assert sum(1 for v in real.values() if not v) == 3163


def test_acceptable_labels_by_file_name_or_relative_path(tmp_path):
    ds = imagenet_val(_val_tree(tmp_path / "val"), size=8)
    assert ds.acceptable_labels() is None
    fp = ds.fingerprint()
    ds.set_acceptable_labels(
        {
            "ILSVRC2012_val_00000002.JPEG": [970, 795],
            f"{WNIDS[65]}/ILSVRC2012_val_00000001.JPEG": [65],
        }
    )
    # dataset order is by folder: wnid 65, 230, 970; the 230 image has no key: empty row
    assert ds.labels().tolist() == [65, 230, 970]
    np.testing.assert_array_equal(ds.acceptable_labels(), [[65, -1], [-1, -1], [970, 795]])
    assert ds.fingerprint() != fp  # cached arrays of the old labels are not reused
    with pytest.raises(ValidationError, match="outside the 1000 classes"):
        ds.set_acceptable_labels({"ILSVRC2012_val_00000002.JPEG": [1000]})
    with pytest.raises(ValidationError, match="none of the 1 keys names a file"):
        ds.set_acceptable_labels({"elsewhere.JPEG": [1]})


def _config(tmp_path: Path, **entry) -> object:
    return parse_config(
        {
            "store": str(tmp_path / "store"),
            "output": str(tmp_path / "out"),
            "models": [{"source": "timm", "arch": "test_resnet", "name": "m"}],
            "datasets": [{"layout": "imagenet_val", "root": str(tmp_path / "val"), **entry}],
        }
    )


def test_study_reads_real_or_a_json_file_and_names_bad_input(tmp_path):
    _val_tree(tmp_path / "val")
    [spec] = resolve_datasets(_config(tmp_path, acceptable_labels="real"), Store(tmp_path / "s"))
    np.testing.assert_array_equal(spec.dataset().acceptable_labels()[2], [970, 795])

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"ILSVRC2012_val_00000003.JPEG": [230, 231]}))
    [spec] = resolve_datasets(
        _config(tmp_path, acceptable_labels=str(labels), corruptions=["contrast"], severities=[1]),
        Store(tmp_path / "s"),
    )[:1]
    np.testing.assert_array_equal(spec.dataset().acceptable_labels()[1], [230, 231])

    labels.write_text("[1, 2]")
    [spec] = resolve_datasets(
        _config(tmp_path, acceptable_labels=str(labels)), Store(tmp_path / "s")
    )
    with pytest.raises(ConfigError, match="JSON object of file name"):
        spec.dataset()
    with pytest.raises(ConfigError, match="applies to layout imagenet_val"):
        resolve_datasets(
            parse_config(
                {
                    "datasets": [
                        {
                            "layout": "imagefolder",
                            "root": str(tmp_path),
                            "acceptable_labels": "real",
                        }
                    ]
                }
            ),
            Store(tmp_path / "s"),
        )
