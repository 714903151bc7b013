"""Scale: Ray throughput with 1 vs 2 workers, and peak memory of a study with 4 vs 16 models.

Models are zoo architectures with random weights saved as real checkpoints (timing and memory
do not depend on the weights). Each measurement uses a fresh store.

- throughput: forward passes per second of a study over several world splits on a local Ray
  cluster started with 1 and then 2 CPUs;
- memory: peak resident memory of a study subprocess with 4 and 16 models (models are loaded
  ``models_per_pass`` at a time and results stream to the store, so it should not grow).

Usage: python bench/scale.py
Prints the headline last: ``ratio: X.XX`` = throughput(2 workers) / throughput(1 worker).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

SPLITS = ["val", "v2", "sketch", "rendition", "corrupt/gaussian_noise/3", "corrupt/contrast/3"]


def make_zoo(root: Path, n: int) -> Path:
    from safetensors.torch import save_file

    from robustlens.data.synthetic import SHAPES
    from robustlens.models.zoo import ZooMember, build_adapter

    root.mkdir(parents=True, exist_ok=True)
    archs = [("cnn", 16), ("resnet", 8), ("mixer", 32), ("cnn", 24)]
    for i in range(n):
        arch, width = archs[i % len(archs)]
        member = ZooMember(f"rand-{i:02d}-{arch}{width}", arch, width, seed=i)
        model = build_adapter(member, list(SHAPES))
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(root / f"{member.name}.safetensors"),
        )
        meta = {"member": asdict(member), "classes": list(SHAPES), "image_size": 32}
        (root / f"{member.name}.json").write_text(json.dumps(meta))
    return root


def config(tmp: Path, zoo: Path, executor: str, store: str) -> dict:
    return {
        "store": store,
        "output": str(tmp / f"out-{executor}"),
        "world": {"corruptions": ["gaussian_noise", "contrast"], "severities": [3]},
        "models": [{"source": "zoo", "path": str(zoo)}],
        "datasets": [{"world": SPLITS}],
        "measures": ["accuracy"],
        "executor": executor,
        "engine": {"batch_size": 256, "shard_size": 1024, "models_per_pass": 4},
    }


MEMORY_CHILD = """
import json, resource, sys
from robustlens.config import parse_config
from robustlens.study import run_study
res = run_study(parse_config(json.loads(sys.argv[1])))
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "forward_passes": res.forward_passes}))
"""


def main() -> None:
    import ray

    from robustlens.config import parse_config
    from robustlens.data.synthetic import SyntheticWorld
    from robustlens.store import Store
    from robustlens.study import run_study

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        world_store = str(tmp / "world-store")
        # build the world once so that neither measurement pays for it
        cfg0 = parse_config(config(tmp, tmp, "local", world_store))
        world = SyntheticWorld(cfg0.world, Store(world_store))
        for s in SPLITS:
            world.split(s)

        zoo4 = make_zoo(tmp / "zoo4", 4)
        zoo16 = make_zoo(tmp / "zoo16", 16)

        rates = {}
        for n_workers in (1, 2):
            ray.init(num_cpus=n_workers, include_dashboard=False, log_to_driver=False)
            store = str(tmp / f"store-ray{n_workers}")
            import shutil

            shutil.copytree(world_store, store, dirs_exist_ok=True)  # same cached world
            cfg = parse_config(config(tmp, zoo4, "ray", store))
            t0 = time.perf_counter()
            res = run_study(cfg)
            dt = time.perf_counter() - t0
            ray.shutdown()
            rates[n_workers] = res.forward_passes / dt
            print(
                f"ray {n_workers} worker(s): {res.forward_passes} forward passes in {dt:.1f}s "
                f"= {rates[n_workers]:.0f} images/s"
            )

        peaks = {}
        for n, zoo in ((4, zoo4), (16, zoo16)):
            store = str(tmp / f"store-mem{n}")
            import shutil

            shutil.copytree(world_store, store, dirs_exist_ok=True)
            out = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, json.dumps(config(tmp, zoo, "local", store))],
                check=True,
                capture_output=True,
                text=True,
            )
            info = json.loads(out.stdout.strip().splitlines()[-1])
            peaks[n] = info["peak_kib"] / 1024
            print(
                f"{n} models: peak RSS {peaks[n]:.0f} MiB ({info['forward_passes']} forward passes)"
            )
        print(f"memory ratio (16 models / 4 models): {peaks[16] / peaks[4]:.2f}")
    print(f"ratio: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
