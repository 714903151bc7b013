"""The Ray executor gives the same store keys and numbers as the local executor."""

from dataclasses import asdict

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from robustlens.config import parse_config  # noqa: E402
from robustlens.store import StoredArrays  # noqa: E402
from robustlens.study import run_study  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def _cfg(tmp, world, zoo_dir, executor):
    w = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(world.config).items()}
    return parse_config(
        {
            "store": str(tmp / f"store-{executor}"),
            "output": str(tmp / f"out-{executor}"),
            "world": w,
            "models": [{"source": "zoo", "path": str(zoo_dir)}],
            "datasets": [{"world": ["val", "sketch", "corrupt/contrast/3"]}],
            "measures": ["accuracy"],
            "executor": executor,
            "engine": {"shard_size": 16, "batch_size": 8},
        }
    )


def test_ray_equals_local_bit_for_bit(tmp_path, tiny_world, tiny_zoo_dir, local_ray):
    local = run_study(_cfg(tmp_path, tiny_world, tiny_zoo_dir, "local"))
    remote = run_study(_cfg(tmp_path, tiny_world, tiny_zoo_dir, "ray"))
    assert remote.forward_passes == local.forward_passes > 0
    a = local.results().sort_values(["model", "dataset", "name"]).reset_index(drop=True)
    b = remote.results().sort_values(["model", "dataset", "name"]).reset_index(drop=True)
    assert a[["model_fp", "dataset_fp", "name"]].equals(b[["model_fp", "dataset_fp", "name"]])
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    row = a.iloc[0]
    la = StoredArrays(local.store, row.model_fp, row.dataset_fp).logits()
    lb = StoredArrays(remote.store, row.model_fp, row.dataset_fp).logits()
    np.testing.assert_array_equal(la, lb)
    again = run_study(_cfg(tmp_path, tiny_world, tiny_zoo_dir, "ray"))
    assert again.forward_passes == 0  # answered from the store, nothing sent to workers
