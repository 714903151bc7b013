"""Engine overhead: engine wall time / bare torch forward time for the same images and views.

Runs the zoo ResNet (random weights: timing does not depend on them) over the synthetic world's
val split with the views clean, rot90, rot180, rot270 and gray, through the engine into a fresh
store, and compares with a bare ``torch.no_grad`` forward of the same pre-built view tensors at
the same batch size. Then re-runs the engine on the warm store (answered from the store).

Usage: python bench/engine_overhead.py [--n-per-class 100] [--batch-size 256]
Prints the headline last, as ``ratio: X.XX`` (target <= 1.3).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.engine import Engine, EngineJob
from robustlens.models.zoo import ZooMember, build_adapter
from robustlens.store import Store
from robustlens.views import ViewContext, parse_view

VIEWS = ("clean", "rot90", "rot180", "rot270", "gray")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-class", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        world = SyntheticWorld(WorldConfig(n_val_per_class=args.n_per_class), store)
        ds = world.dataset("val")
        model = build_adapter(ZooMember("bench-resnet", "resnet", 16), world.classes)
        n = len(ds)

        # bare forward: the same view tensors, built beforehand, same batch size
        x_all = torch.from_numpy(ds.images[:].copy()).permute(0, 3, 1, 2).float() / 255
        ids = torch.arange(n)
        batches = []
        for v in VIEWS:
            view = parse_view(v)
            for b in range(0, n, args.batch_size):
                xb = x_all[b : b + args.batch_size]
                xv = view(xb, ViewContext(ids[b : b + args.batch_size]))
                # the engine feeds decoded HWC images, i.e. channels-last tensors; so does this
                batches.append(xv.contiguous(memory_format=torch.channels_last))

        def bare_forward() -> float:
            t = time.perf_counter()
            with torch.no_grad():
                for xb in batches:
                    model.forward_with_features(xb)
            return time.perf_counter() - t

        bare_forward()  # warm-up
        # interleave the two measurements so that background load hits both alike
        bare = engine_t = float("inf")
        for r in range(args.repeats):
            bare = min(bare, bare_forward())
            eng = Engine(Store(f"{tmp}/engine{r}"), batch_size=args.batch_size, shard_size=4096)
            t = time.perf_counter()
            rep = eng.run(ds, [EngineJob(model, VIEWS)])
            engine_t = min(engine_t, time.perf_counter() - t)
        assert rep.forward_passes == n * len(VIEWS)

        t = time.perf_counter()
        cached = eng.run(ds, [EngineJob(model, VIEWS)])
        cached_t = time.perf_counter() - t
        assert cached.forward_passes == 0

    print(f"images: {n}, views: {len(VIEWS)}, forward passes: {rep.forward_passes}")
    print(f"bare forward: {bare:.3f}s  engine: {engine_t:.3f}s  cached re-run: {cached_t:.4f}s")
    print(f"cached speed-up: {engine_t / cached_t:.1f}x (target >= 20x)")
    print(f"ratio: {engine_t / bare:.2f}")


if __name__ == "__main__":
    main()
