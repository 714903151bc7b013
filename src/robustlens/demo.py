"""The demo study: the synthetic world, the default zoo, every measure."""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from robustlens.measure import available_measures
from robustlens.models.zoo import quick_zoo

DEMO_MEASURES = [
    "accuracy",
    "invariance",
    "label_free",
    "clustering",
    "biases",
    "spurious",
    "robustness",
    # the validity line's measured ground truth of the world's planted causes (its views are
    # the invariance line's: no extra forward pass)
    "ground_truth",
]


def demo_config_dict(quick: bool = False) -> dict[str, Any]:
    """The demo study as a config dict (paths relative to the demo's working directory)."""
    have = set(available_measures())
    # sized for about 15 minutes on 2 CPU cores (measured stage by stage: generator and zoo
    # training take two thirds). Every image is seen by every model under its views, so the
    # study costs models x images x views: 200 val images (each with ~44 views),
    # 9 corruptions x 5 severities x 100 images, 200 images for each concept and natural
    # shift, 3000 training images; 5 C-bar corruptions x 5 severities x 20 images (their mean
    # is one component of seed 002's robustness dimension)
    world: dict[str, Any] = {
        "seed": 0,
        "n_val_per_class": 20,
        "n_shift_per_class": 20,
        "n_corrupt_per_class": 10,
        # texture says the class in 80 % of the photos (so the shape is worth learning), and
        # half of the world's photos carry the mark; each model trains at its own mark rate
        "texture_correlation": 0.8,
        "mark_rate": 0.5,
        "corruptions": [
            "gaussian_noise",
            "shot_noise",
            "impulse_noise",
            "defocus_blur",
            "motion_blur",
            "contrast",
            "fog",
            "jpeg_compression",
            "pixelate",
        ],
        # cheap to build at 32 px (caustic_refraction works at 224 px and is the slowest)
        "cbar_corruptions": [
            "brownish_noise",
            "checkerboard_cutout",
            "perlin_noise",
            "single_frequency_greyscale",
            "sparkles",
        ],
        "n_cbar_per_class": 2,
        "stylized": True,
        "natural": True,
    }
    zoo: dict[str, Any] = {"dir": "zoo", "members": "default", "workers": 2}
    # the [gen] extra (diffusers) adds generated twins; without it, a zoo without them
    if importlib.util.find_spec("diffusers") is not None:
        # generated images are reused (ratio 1:1 against 300 real per class): sampling is the
        # costly step on a CPU (two passes per DDIM step with guidance)
        zoo["generated"] = {"train_steps": 100, "n_per_class": 30, "sample_steps": 12}
    if quick:
        # the same 300 training images per class (shorter training needs them to learn shapes
        # at all), smaller test sets, three severities
        world.update(
            n_val_per_class=20, n_shift_per_class=12, n_corrupt_per_class=6, severities=[1, 3, 5]
        )
        # fewer members than the full zoo (half the epochs), still three levels of every
        # planted cause
        zoo["members"] = [_member_dict(m) for m in quick_zoo(epochs_scale=0.5)]
        if "generated" in zoo:
            zoo["generated"] = {"train_steps": 60, "n_per_class": 30, "sample_steps": 10}
    measures = [m for m in DEMO_MEASURES if m in have]
    # seed 002's PGD (eps 0.5/255, 40 steps) barely moves 32-px models and costs 40 passes
    # per image; the demo uses a stronger, shorter attack. Real studies keep the default.
    options = {"biases": {"pgd_eps": 2.0 / 255, "pgd_steps": 10}}
    return {
        "name": "demo",
        "store": "store",
        "output": "report",
        "world": world,
        "zoo": zoo,
        "models": [{"source": "zoo", "path": "zoo"}],
        "datasets": [{"world": "all"}],
        "measures": measures,
        "measure_options": {k: v for k, v in options.items() if k in measures},
        "engine": {"batch_size": 500, "shard_size": 4096},
    }


def _member_dict(member: Any) -> dict[str, Any]:
    """A zoo recipe as plain YAML-safe data (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(member).items()}


def demo_config_path(quick: bool = False) -> Path:
    """Write the demo config to a temporary file and return its path."""
    path = Path(tempfile.mkdtemp(prefix="robustlens-")) / "demo-study.yaml"
    path.write_text(yaml.safe_dump(demo_config_dict(quick), sort_keys=False))
    return path
