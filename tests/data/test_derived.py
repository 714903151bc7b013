import numpy as np

from robustlens.data.derived import CorruptedDataset


def test_corrupted_dataset_is_deterministic_and_keeps_labels(tiny_world):
    base = tiny_world.dataset("v2")
    a = CorruptedDataset(base, "gaussian_noise", 3)
    b = CorruptedDataset(base, "gaussian_noise", 3)
    s0, s1 = a.load(0), b.load(0)
    np.testing.assert_array_equal(s0.image, s1.image)
    assert not np.array_equal(s0.image, base.load(0).image)
    assert s0.label == base.load(0).label and s0.image.dtype == np.uint8
    assert a.fingerprint() != CorruptedDataset(base, "gaussian_noise", 4).fingerprint()
    assert a.fingerprint() != base.fingerprint()
    np.testing.assert_array_equal(a.labels(), base.labels())
