"""The CUDA path (AMP bf16, channels_last, pinned memory): runs only where a GPU exists."""

import numpy as np
import pytest
import torch

from robustlens.engine import Engine, EngineJob
from robustlens.store import Store, StoredArrays

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_cuda_engine_matches_cpu_predictions(tmp_path, tiny_world, tiny_models):
    ds = tiny_world.dataset("val")
    m = tiny_models[0]
    cpu, gpu = Store(tmp_path / "cpu"), Store(tmp_path / "gpu")
    Engine(cpu, device="cpu").run(ds, [EngineJob(m, ("clean", "rot90"))])
    eng = Engine(gpu, device="cuda")
    assert eng.amp and eng.channels_last
    eng.run(ds, [EngineJob(m, ("clean", "rot90"))])
    for view in ("clean", "rot90"):
        a = StoredArrays(cpu, m.fingerprint(), ds.fingerprint()).logits(view)
        b = StoredArrays(gpu, m.fingerprint(), ds.fingerprint()).logits(view)
        assert (a.argmax(1) == b.argmax(1)).mean() > 0.95  # bf16 may flip near-ties
        np.testing.assert_allclose(a, b, atol=0.1 * np.abs(a).max())
