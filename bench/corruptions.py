"""ImageNet-C corruptions: robustlens (batched torch) vs the reference, images per second.

The same ``--n`` real 224-px photos (scikit-image's sample photos, short side resized to 256,
centre 224 crop, as ImageNet-C prepares val) go through each of the 19 corruptions at
``--severity``: robustlens's :func:`~robustlens.transforms.corruptions.corrupt` on one batch on
``--device``, and the reference (``imagecorruptions``, the PyPI package of ``make_imagenet_c.py``)
one image at a time on the CPU, as it is written (``--ref-n`` images: its glass blur takes
seconds per image). Three reference functions fail on current numpy / scikit-image (they pass
``multichannel=`` to ``skimage.filters.gaussian`` or use ``np.float_``); they are timed through
two thin compatibility shims (an ``np.float_`` alias and a ``gaussian`` wrapper renaming the
argument), which do not change their work. Without ``imagecorruptions`` installed only
robustlens is timed.

CPU threads: ``--threads`` (default 1) for torch and for the reference's OpenCV calls, so the
comparison is per core (numpy, PIL and scikit-image run on one thread anyway) and stays stable
on a shared machine, where more torch threads than free cores slow torch down many times.

Usage: python bench/corruptions.py [--n 16] [--ref-n 2] [--severity 3] [--device auto]
                                   [--threads 1]
Prints one line per corruption (images/s of each side and their ratio), and last the geometric
mean of the ratios as ``ratio: X.XX`` (robustlens images/s / reference images/s).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import sys
import time
import types

import numpy as np
import torch
from PIL import Image
from skimage import data

from robustlens.engine import resolve_device
from robustlens.transforms.corruptions import CORRUPTIONS, corrupt

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def photos(n: int) -> np.ndarray:
    """``n`` (224, 224, 3) uint8 photos, cycling through scikit-image's samples."""
    out = []
    for i in range(n):
        img = getattr(data, PHOTOS[i % len(PHOTOS)])()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        h, w = img.shape[:2]
        k = 256 / min(h, w)
        a = np.asarray(Image.fromarray(img).resize((round(w * k), round(h * k)), Image.BILINEAR))
        top, left = (a.shape[0] - 224) // 2, (a.shape[1] - 224) // 2
        out.append(a[top : top + 224, left : left + 224])
    return np.stack(out)


def load_reference():
    """``imagecorruptions``' corruption functions by name, or None when it is not installed."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None:
        return None
    shim = None
    if importlib.util.find_spec("pkg_resources") is None:  # setuptools >= 81 dropped it
        base = next(iter(spec.submodule_search_locations or []))
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, path: os.path.join(base, path)
        sys.modules["pkg_resources"] = shim
    try:
        import imagecorruptions  # optional dependency: the reference, timed when installed
    finally:
        if shim is not None:
            del sys.modules["pkg_resources"]
    return imagecorruptions


@contextlib.contextmanager
def compat(module):
    """Let the 3 reference functions written for older numpy / scikit-image run unchanged."""
    gaussian = module.corruptions.gaussian

    def gaussian_compat(image, *args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return gaussian(image, *args, **kwargs)

    had_float = "float_" in np.__dict__
    module.corruptions.gaussian = gaussian_compat
    if not had_float:
        np.float_ = np.float64
    try:
        yield
    finally:
        module.corruptions.gaussian = gaussian
        if not had_float:
            del np.float_


def timed(fn, budget: float = 1.5, max_repeats: int = 5) -> float:
    """Best wall time of ``fn()`` over repeats until ``budget`` seconds (at least one run)."""
    best, spent = math.inf, 0.0
    for _ in range(max_repeats):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="images for robustlens (one batch)")
    ap.add_argument("--ref-n", type=int, default=2, help="images for the reference")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch, OpenCV)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    imgs = photos(max(args.n, args.ref_n))
    x = torch.from_numpy(imgs[: args.n]).permute(0, 3, 1, 2).float().div(255).to(device)
    seeds = torch.arange(args.n)
    ref = load_reference()
    if ref is not None:
        ref.corruptions.cv2.setNumThreads(args.threads)
    print(
        f"{args.n} images of 224 px, severity {args.severity}, robustlens on {device}, "
        f"{args.threads} CPU thread(s)"
    )
    if ref is None:
        print("imagecorruptions is not installed: timing robustlens only (pip install it)")
    print(f"{'corruption':18s} {'robustlens img/s':>17s} {'reference img/s':>16s} {'ratio':>8s}")

    def ours(name: str) -> None:
        corrupt(x, name, args.severity, seeds)
        if cuda:
            torch.cuda.synchronize()

    ratios = []
    for name in CORRUPTIONS:
        ours(name)  # warm-up (caches, kernels, frost templates)
        ours_ips = args.n / timed(lambda name=name: ours(name))
        line = f"{name:18s} {ours_ips:17.1f}"
        if ref is not None:
            fn = ref.corruption_dict[name]
            pil = [Image.fromarray(im) for im in imgs[: args.ref_n]]
            with compat(ref):
                np.random.seed(0)
                secs = timed(lambda fn=fn, pil=pil: [np.uint8(fn(im, args.severity)) for im in pil])
            ref_ips = args.ref_n / secs
            ratios.append(ours_ips / ref_ips)
            line += f" {ref_ips:16.1f} {ratios[-1]:8.2f}"
        print(line, flush=True)
    if ratios:
        print(f"ratio: {math.exp(np.mean(np.log(ratios))):.2f}")


if __name__ == "__main__":
    main()
