"""The synthetic world: the embedded default dataset, generated deterministically from a seed.

K classes are defined by object *shape*. In training, each class is also correlated with a
*texture* (pattern + colour pair, at ``texture_correlation``) and with a small *spurious mark*
(a class-specific 6x6 logo: a frame in the class's own hue around a black-and-white code,
stamped in the bottom-right corner, at ``mark_rate``), so that a model can take shortcuts a
robustness audit should reveal. The training photos vary as photographs do: backgrounds of
varied brightness and clutter, half of the objects with a dark contour where they meet the
background, and the scene's lighting (contrast between :data:`LIGHT_CONTRAST` and 1). The
concept shifts change the medium and keep the shapes (as ImageNet-Sketch and -R do); no
training image is drawn in those media. Every split and shift has known ground truth:

=================  ========================================================================
split              content
=================  ========================================================================
train              training images (marks applied at ``mark_rate``; object masks and each
                   photo's lighting kept for texture-randomization augmentation)
val                fresh images from the training distribution
v2                 a second fresh sample of the same distribution (like ImageNet-V2)
corrupt/T/S        the first ``n_corrupt_per_class * K`` images of ``val`` (default
                   ``n_shift_per_class``) under corruption T at severity S (1..5)
sketch             pencil drawings: outlines of the shape on paper of varied tone, half of
                   them shaded inside with graphite; gray, no texture, no mark
cue_conflict       the shape of class i filled with the texture of class j != i
                   (``label`` = shape, ``texture_label`` = j)
spurious           the mark of class k on a ``val``-like photo of an object of another class
                   (``label`` = k, also stored as ``spurious_label``; the object's class is
                   ``object_label``): a model that follows the mark predicts k
rendition          the shapes in other media (like ImageNet-R), :data:`RENDITION_STYLES`:
                   cartoons (flat fill, dark outline), flat graphics, paintings (smooth
                   two-colour blends) and shaded toys, in colours tied to no class
                   (``style_labels``)
adversarial        the first ``n_shift_per_class * K`` images of ``val``, for costly views
                   such as PGD
cbar/T/S           the first ``n_cbar_per_class * K`` images of ``val`` (default
                   ``n_shift_per_class``) under ImageNet-C-bar corruption T at severity S
                   (``cbar_corruptions`` at ``severities``; :mod:`robustlens.transforms.cbar`)
stylized           the shape of each class filled with a *style*: a texture family and
                   colours never tied to any class in training (``stylized``; like
                   Stylized-ImageNet), on the usual background, no mark
natural            fresh images from the ``val`` distribution that a held-out reference
                   classifier gets wrong (``natural``; built as ImageNet-A was)
=================  ========================================================================

The last three kinds are off by default (options ``cbar_corruptions``, ``stylized``,
``natural``): they only add splits, so a world without them has the splits, pixels and
fingerprint it had before they existed; turning one on changes the fingerprint (these options
and ``n_cbar_per_class`` enter it only when set, as does ``n_corrupt_per_class``, the size of
the ``corrupt`` splits when it differs from ``n_shift_per_class``). The C-bar splits, like the
``corrupt`` ones, sit on the ``val`` images (so accuracy drops are paired with the clean
ones); each corruption's per-image seeds come from its name, shared by its severities.

``natural`` follows Hendrycks et al. 2021 ("Natural Adversarial Examples"): ImageNet-A keeps
the images of a fresh collection that a fixed ResNet-50 misclassifies. Here the fixed model is
the nearest-class-mean classifier in pixel space fitted on ``train`` (each class's mean
image; exact integer arithmetic, ties to the lower class): no zoo member, not trained by
gradient descent, and cheap to fit inside the world build. Candidates are drawn like ``val``
(same texture correlation and marks) from the split's own seed, in rounds of
``4 * n_shift_per_class`` per class, and the first ``n_shift_per_class`` misclassified images
of each class are kept (at most 50 rounds; a class that runs out keeps fewer). The reference
model's predictions are stored as ``reference_predictions``.

Images are real RGB ``uint8`` arrays (32 px by default), rendered with 2x supersampling,
built once and cached in the store, and exportable as an ImageFolder tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustlens.data.base import ArrayDataset
from robustlens.transforms.cbar import CBAR_CORRUPTIONS, cbar_corrupt
from robustlens.transforms.corruptions import corrupt

#: the corrupted splits of a world whose config names none. Fixed here rather than taken
#: from the corruption registry, which grows: a world's splits (and fingerprint) must not
#: change when robustlens learns a new corruption.
DEFAULT_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "motion_blur",
    "contrast",
    "brightness",
    "fog",
    "jpeg_compression",
    "pixelate",
)

GENERATOR_VERSION = "3"

SHAPES = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "bar",
    "star",
    "crescent",
    "tee",
    "hexagon",
)
TEXTURES = (
    "hstripes",
    "vstripes",
    "diagonal",
    "checker",
    "dots",
    "waves",
    "rings",
    "grain",
    "antidiag",
    "grid",
)
# colour pairs per texture (RGB in [0, 1]); saturated so texture is an easy shortcut
_PALETTE = np.array(
    [
        [[0.9, 0.2, 0.2], [1.0, 0.8, 0.2]],
        [[0.2, 0.4, 0.95], [0.7, 0.95, 1.0]],
        [[0.1, 0.7, 0.2], [0.9, 1.0, 0.4]],
        [[0.55, 0.1, 0.7], [1.0, 0.6, 0.9]],
        [[0.95, 0.5, 0.05], [0.25, 0.1, 0.05]],
        [[0.05, 0.55, 0.55], [0.6, 1.0, 0.85]],
        [[0.8, 0.8, 0.1], [0.15, 0.15, 0.5]],
        [[0.35, 0.35, 0.35], [0.95, 0.95, 0.95]],
        [[0.95, 0.3, 0.6], [0.3, 0.05, 0.2]],
        [[0.1, 0.25, 0.1], [0.6, 0.85, 0.3]],
    ],
    dtype=np.float32,
)
MARK_SIZE = 6
#: lowest contrast of a photo's lighting (each photo's contrast is uniform in [this, 1])
LIGHT_CONTRAST = 0.3
#: fraction of photographed objects that show a dark contour
CONTOUR_RATE = 0.5
#: texture families of the ``stylized`` split: none of them is a training texture
STYLES = ("marble", "blotches", "zigzag", "spiral", "cells")
#: world options that only add or size splits: in the fingerprint only when set (see the module)
_SPLIT_OPTIONS = (
    "cbar_corruptions",
    "n_cbar_per_class",
    "stylized",
    "natural",
    "n_corrupt_per_class",
)
_NATURAL_ROUNDS = 50  # most rounds of candidates drawn for the ``natural`` split


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines the world's pixels. Same config -> identical arrays."""

    seed: int = 0
    n_classes: int = 10
    image_size: int = 32
    n_train_per_class: int = 300
    n_val_per_class: int = 60
    n_shift_per_class: int = 30
    texture_correlation: float = 0.9
    mark_rate: float = 0.8
    corruptions: tuple[str, ...] = ()  # empty -> every registered corruption
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    cbar_corruptions: tuple[str, ...] = ()  # ImageNet-C-bar splits cbar/T/S (empty -> none)
    n_cbar_per_class: int | None = None  # images per class of a cbar split (n_shift_per_class)
    n_corrupt_per_class: int | None = None  # images per class of a corrupt split (same)
    stylized: bool = False  # the ``stylized`` split
    natural: bool = False  # the adversarially filtered ``natural`` split

    def __post_init__(self) -> None:
        if not 2 <= self.n_classes <= len(SHAPES):
            raise ValueError(f"n_classes must be in [2, {len(SHAPES)}], got {self.n_classes}")
        if self.image_size < 16 or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 and >= 16, got {self.image_size}")
        for name in ("texture_correlation", "mark_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("n_cbar_per_class", "n_corrupt_per_class"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        unknown = [c for c in self.cbar_corruptions if c not in CBAR_CORRUPTIONS]
        if unknown:
            raise ValueError(
                f"cbar_corruptions: unknown {unknown}; available: {', '.join(CBAR_CORRUPTIONS)}"
            )

    def fingerprint(self) -> str:
        """Hash of everything that determines the pixels (split-adding options when set)."""
        fields = {k: v for k, v in asdict(self).items() if k not in _SPLIT_OPTIONS or v}
        if not self.cbar_corruptions:  # without C-bar splits their size changes nothing
            fields.pop("n_cbar_per_class", None)
        payload = json.dumps({**fields, "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]


# --------------------------------------------------------------------------- rendering
def _grid(
    n: int, size: int, rng: np.random.Generator, scale=(0.55, 0.8), shift=0.18, max_rot=15.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image local coordinates (u, v) of shape (n, size, size) after a random similarity."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(-t, t, indexing="ij")  # y up
    s = rng.uniform(*scale, size=(n, 1, 1)).astype(np.float32)
    th = np.deg2rad(rng.uniform(-max_rot, max_rot, size=(n, 1, 1))).astype(np.float32)
    tx = rng.uniform(-shift, shift, size=(n, 1, 1)).astype(np.float32)
    ty = rng.uniform(-shift, shift, size=(n, 1, 1)).astype(np.float32)
    xs, ys = (x - tx) / s, (y - ty) / s
    c, sn = np.cos(th), np.sin(th)
    return c * xs + sn * ys, -sn * xs + c * ys


def _shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.sqrt(u * u + v * v)
    au, av = np.abs(u), np.abs(v)
    name = SHAPES[shape]
    if name == "disk":
        m = r < 0.8
    elif name == "square":
        m = np.maximum(au, av) < 0.68
    elif name == "triangle":
        m = (v > -0.55) & (v < 0.85 - 1.9 * au)
    elif name == "plus":
        m = ((au < 0.26) & (av < 0.85)) | ((av < 0.26) & (au < 0.85))
    elif name == "ring":
        m = (r > 0.45) & (r < 0.85)
    elif name == "bar":
        m = (au < 0.9) & (av < 0.32)
    elif name == "star":
        m = r < 0.5 + 0.38 * np.cos(5 * np.arctan2(v, u))
    elif name == "crescent":
        m = (r < 0.85) & ((u - 0.4) ** 2 + v**2 > 0.62**2)
    elif name == "tee":
        m = ((au < 0.85) & (v > 0.35) & (v < 0.8)) | ((au < 0.24) & (v > -0.85) & (v <= 0.8))
    else:  # hexagon
        m = np.maximum(au * 0.866 + av * 0.5, av) < 0.7
    return m.astype(np.float32)


def _shape_masks(shapes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Masks (n, size, size) of the given shape ids, each under a random similarity."""
    u, v = _grid(len(shapes), size, rng)
    masks = np.zeros((len(shapes), size, size), np.float32)
    for k in np.unique(shapes):
        i = shapes == k
        masks[i] = _shape_mask(int(k), u[i], v[i])
    return masks


def _downsample(a: np.ndarray, f: int = 2) -> np.ndarray:
    n, h, w = a.shape[:3]
    return a.reshape(n, h // f, f, w // f, f, *a.shape[3:]).mean(axis=(2, 4))


def _texture(
    tex: np.ndarray, size: int, rng: np.random.Generator, colors: bool = True
) -> np.ndarray:
    """Textures of the given ids: (n, size, size, 3) float in [0, 1]."""
    n = len(tex)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(t, t, indexing="ij")
    x, y = x[None], y[None]
    f = rng.uniform(3.5, 5.0, size=(n, 1, 1)).astype(np.float32)
    ph = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    val = np.zeros((n, size, size), np.float32)
    two_pi = 2 * np.pi
    for k in np.unique(tex):
        i = tex == k
        fk, pk = f[i], ph[i]
        name = TEXTURES[int(k)]
        if name == "hstripes":
            p = np.sin(two_pi * fk * y + pk) > 0
        elif name == "vstripes":
            p = np.sin(two_pi * fk * x + pk) > 0
        elif name == "diagonal":
            p = np.sin(two_pi * fk * (x + y) / 1.4 + pk) > 0
        elif name == "antidiag":
            p = np.sin(two_pi * fk * (x - y) / 1.4 + pk) > 0
        elif name == "checker":
            p = np.sin(two_pi * fk * x + pk) * np.sin(two_pi * fk * y + pk) > 0
        elif name == "dots":
            p = np.sin(two_pi * fk * 1.3 * x + pk) * np.sin(two_pi * fk * 1.3 * y) > 0.45
        elif name == "waves":
            p = np.sin(two_pi * fk * y + 2.0 * np.sin(two_pi * 2 * x) + pk) > 0
        elif name == "rings":
            cx, cy = rng.uniform(0.2, 0.8, size=(2, int(i.sum()), 1, 1))
            p = np.sin(two_pi * fk * 1.2 * np.sqrt((x - cx) ** 2 + (y - cy) ** 2) + pk) > 0
        elif name == "grain":
            p = rng.random((int(i.sum()), size, size)) > 0.5
        else:  # grid
            p = (np.abs(np.sin(np.pi * fk * x + pk)) < 0.35) | (
                np.abs(np.sin(np.pi * fk * y)) < 0.35
            )
        val[i] = p
    jitter = rng.uniform(-0.08, 0.08, size=(n, 2, 3)).astype(np.float32)
    pal = (
        np.clip(_PALETTE[tex] + jitter, 0, 1)
        if colors
        else np.clip(rng.random((n, 2, 3)).astype(np.float32), 0, 1)
    )
    c0, c1 = pal[:, 0][:, None, None, :], pal[:, 1][:, None, None, :]
    return c0 * (1 - val[..., None]) + c1 * val[..., None]


def _background(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth, muted, low-frequency colour noise; scenes vary in brightness and clutter."""
    coarse = rng.normal(0.5, 0.12, size=(n, 4, 4, 3)).astype(np.float32)
    coarse = 0.5 + (coarse - 0.5) * 0.8 + (coarse.mean(-1, keepdims=True) - 0.5) * 0.2
    t = torch.from_numpy(coarse).permute(0, 3, 1, 2)
    up = F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False)
    up = up.permute(0, 2, 3, 1).numpy()
    level = rng.uniform(-0.1, 0.1, size=(n, 1, 1, 1)).astype(np.float32)
    amp = rng.uniform(0.6, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    return np.clip(0.5 + level + (up - 0.5) * amp, 0, 1)


def _smooth_noise(n: int, size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean smooth noise (n, size, size): a ``cells`` x ``cells`` grid, bicubic upsampled."""
    coarse = torch.from_numpy(rng.standard_normal((n, 1, cells, cells)).astype(np.float32))
    up = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def _style_texture(styles: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Textures of the :data:`STYLES` families, random high-contrast colours: (n, s, s, 3).

    None of these families is a training texture (:data:`TEXTURES`), and the colours are drawn
    afresh per image, so no style is tied to any class.
    """
    n = len(styles)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(t, t, indexing="ij")
    x, y = x[None], y[None]
    f = rng.uniform(2.5, 4.5, size=(n, 1, 1)).astype(np.float32)
    th = rng.uniform(0, np.pi, size=(n, 1, 1)).astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7, size=(2, n, 1, 1)).astype(np.float32)
    warp = _smooth_noise(n, size, 4, rng)
    two_pi = np.float32(2 * np.pi)
    along = x * np.cos(th) + y * np.sin(th)
    across = -x * np.sin(th) + y * np.cos(th)
    val = np.zeros((n, size, size), np.float32)
    for k in np.unique(styles):
        i = styles == k
        name = STYLES[int(k)]
        if name == "marble":  # veins: a stripe bent by smooth noise, soft edges
            v = 0.5 + 0.5 * np.sin(two_pi * f[i] * along[i] + 4.0 * warp[i])
        elif name == "blotches":  # camouflage: thresholded smooth noise
            v = (_smooth_noise(int(i.sum()), size, 6, rng) > 0).astype(np.float32)
        elif name == "zigzag":  # chevrons
            tri = np.abs(2 * ((f[i] * across[i]) % 1.0) - 1)
            v = (((f[i] * along[i] + 0.6 * tri) % 1.0) < 0.5).astype(np.float32)
        elif name == "spiral":
            r = np.sqrt((x - cx[i]) ** 2 + (y - cy[i]) ** 2)
            a = np.arctan2(y - cy[i], x - cx[i])
            v = (np.sin(3 * a + two_pi * f[i] * r) > 0).astype(np.float32)
        else:  # cells: a patchwork of Voronoi cells, each one of the two colours
            m = int(i.sum())
            pts = rng.random((m, 12, 2)).astype(np.float32)
            d = (x[..., None] - pts[:, None, None, :, 0]) ** 2 + (
                y[..., None] - pts[:, None, None, :, 1]
            ) ** 2
            owner = d.argmin(-1)
            colour = rng.random((m, 12)) < 0.5
            v = np.take_along_axis(colour, owner.reshape(m, -1), 1).reshape(m, size, size)
            v = v.astype(np.float32)
        val[i] = v
    c0 = rng.random((n, 3)).astype(np.float32)
    c1 = np.clip(1 - c0 + rng.uniform(-0.2, 0.2, size=(n, 3)), 0, 1).astype(np.float32)
    c0, c1 = c0[:, None, None, :], c1[:, None, None, :]
    return c0 * (1 - val[..., None]) + c1 * val[..., None]


def _nearest_class_mean(
    train: np.ndarray, labels: np.ndarray, images: np.ndarray, k: int
) -> np.ndarray:
    """Predictions of the nearest-class-mean classifier in pixel space (exact, integer).

    Class c's mean is ``S_c / n`` with ``S_c`` the sum of its ``n`` training images (every class
    of the world has the same ``n``), so ``argmin_c |n x - S_c|^2`` is the nearest mean,
    computed in int64 without rounding; ties go to the lower class.
    """
    counts = np.bincount(labels, minlength=k)
    if len(set(counts.tolist())) != 1:
        raise ValueError(f"the reference classifier needs balanced classes, got {counts}")
    n = np.int64(counts[0])
    flat = train.reshape(len(train), -1).astype(np.int64)
    sums = np.stack([flat[labels == c].sum(axis=0) for c in range(k)])
    x = images.reshape(len(images), -1).astype(np.int64) * n
    dist = np.stack([((x - sums[c]) ** 2).sum(axis=1) for c in range(k)], axis=1)
    return dist.argmin(axis=1)


def mark_codes(n_classes: int, seed: int = 1234) -> np.ndarray:
    """One mark per class: (K, MARK_SIZE, MARK_SIZE, 3) RGB in [0, 1].

    A mark is a frame in the class's own saturated hue around a black-and-white code that is
    symmetric left to right (so a horizontal flip keeps the code), codes differing in at least
    two mirrored pairs. The colour makes the mark a salient shortcut, like a watermark or a
    logo (fixed seed: part of the world's definition).
    """
    rng = np.random.default_rng(seed)
    inner = MARK_SIZE - 2
    half = inner // 2
    codes: list[np.ndarray] = []
    while len(codes) < n_classes:
        c = rng.random((inner, half)) > 0.5
        if all((c != o).sum() >= 2 for o in codes):
            codes.append(c)
    out = np.zeros((n_classes, MARK_SIZE, MARK_SIZE, 3), np.float32)
    for k, c in enumerate(codes):
        hue = np.array([k / n_classes + j / 3 for j in range(3)])
        frame = 0.5 + 0.5 * np.cos(2 * np.pi * hue)  # a saturated colour on the hue wheel
        out[k] = frame
        code = np.concatenate([c, c[:, ::-1]], axis=1).astype(np.float32)
        out[k, 1:-1, 1:-1] = code[..., None]
    return out


def apply_marks(
    images: np.ndarray, classes: np.ndarray, present: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Stamp the mark of ``classes[i]`` on image i where ``present[i]`` (uint8 images), one
    pixel from the bottom-right corner."""
    out = images.copy()
    size = images.shape[1]
    y0 = x0 = size - MARK_SIZE - 1
    idx = np.flatnonzero(present)
    if len(idx):
        rgb = np.round(codes[classes[idx]] * 255).astype(np.uint8)
        out[idx, y0 : y0 + MARK_SIZE, x0 : x0 + MARK_SIZE] = rgb
    return out


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def _outer_rim(mask_hi: np.ndarray, steps: int = 2) -> np.ndarray:
    """Pixels just outside binary masks (dilation by ``steps`` 4-neighbour steps, minus the
    mask): an object's contour line, outside the object so that a refill keeps it."""
    m = mask_hi > 0.5
    dil = m.copy()
    for _ in range(steps):
        p = np.pad(dil, ((0, 0), (1, 1), (1, 1)))
        dil = p[:, 1:-1, 1:-1] | p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]
    return (dil & ~m).astype(np.float32)


def _lighting(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scene lighting: contrast scaled by c in [LIGHT_CONTRAST, 1] around the image mean.

    Returns the lit images and ``light`` (n, 2) = (c, mean), so that a texture refill of the
    object (texture randomization) can be lit the same way (:func:`relight`).
    """
    n = len(img)
    c = rng.uniform(LIGHT_CONTRAST, 1.0, size=n).astype(np.float32)
    m = img.reshape(n, -1).mean(axis=1).astype(np.float32)
    light = np.stack([c, m], axis=1)
    return relight(img, light), light


def relight(img: np.ndarray, light: np.ndarray) -> np.ndarray:
    """``mean + (img - mean) * c`` per image, ``light`` = (c, mean) rows (float images)."""
    c, m = light[:, 0, None, None, None], light[:, 1, None, None, None]
    return m + (img - m) * c


def _render_objects(
    shapes: np.ndarray, textures: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photos of textured objects: (uint8 images, float masks, light (n, 2)).

    A textured shape on a background of varied brightness; half of the objects show a dark
    contour just outside the silhouette (as objects in photographs do where they meet their
    background); then the scene's lighting (:func:`_lighting`).
    """
    n = len(shapes)
    hi = _shape_masks(shapes, size * 2, rng)
    mask = _downsample(hi)
    tex = _texture(textures, size, rng)
    bg = _background(n, size, rng)
    img = bg * (1 - mask[..., None]) + tex * mask[..., None]
    outlined = rng.random(n) < CONTOUR_RATE
    rim = _downsample(_outer_rim(hi)) * outlined[:, None, None]
    ink = rng.uniform(0.03, 0.25, size=(n, 1, 1, 1)).astype(np.float32)
    img = img * (1 - rim[..., None]) + ink * rim[..., None]
    img, light = _lighting(img, rng)
    return _to_uint8(img), mask, light


def _sample_textures(
    labels: np.ndarray, k: int, corr: float, rng: np.random.Generator
) -> np.ndarray:
    other = rng.integers(0, k, size=len(labels))
    return np.where(rng.random(len(labels)) < corr, labels, other)


class SyntheticWorld:
    """Builds (and caches through a :class:`~robustlens.store.Store`) every split of a world."""

    def __init__(self, config: WorldConfig | None = None, store=None) -> None:
        self.config = config or WorldConfig()
        self.store = store
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.codes = mark_codes(self.config.n_classes)

    # ---------------------------------------------------------------- names
    @property
    def classes(self) -> list[str]:
        return list(SHAPES[: self.config.n_classes])

    @property
    def corruption_names(self) -> tuple[str, ...]:
        if self.config.corruptions:
            return tuple(self.config.corruptions)
        return DEFAULT_CORRUPTIONS

    def split_names(self) -> list[str]:
        cfg = self.config
        names = ["train", "val", "v2"]
        names += [f"corrupt/{c}/{s}" for c in self.corruption_names for s in cfg.severities]
        names += ["sketch", "cue_conflict", "spurious", "rendition", "adversarial"]
        names += [f"cbar/{c}/{s}" for c in cfg.cbar_corruptions for s in cfg.severities]
        names += [n for n, on in (("stylized", cfg.stylized), ("natural", cfg.natural)) if on]
        return names

    def fingerprint(self) -> str:
        return self.config.fingerprint()

    # ---------------------------------------------------------------- building
    def _rng(self, split: str) -> np.random.Generator:
        h = int.from_bytes(hashlib.blake2b(split.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng([self.config.seed, h])

    def _labels(self, per_class: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(np.repeat(np.arange(self.config.n_classes), per_class))

    def _build(self, split: str) -> dict[str, np.ndarray]:
        cfg = self.config
        k, size = cfg.n_classes, cfg.image_size
        rng = self._rng(split)
        if split in ("train", "val", "v2"):
            per = cfg.n_train_per_class if split == "train" else cfg.n_val_per_class
            out, img, mask, light = self._objects(per, rng)
            if split == "train":
                out["images_unmarked"] = img
                out["masks"] = _to_uint8(mask)
                out["light"] = light
            return out
        if split.startswith("cbar/"):
            _, name, sev = split.split("/")
            base = self.split("val")
            per = cfg.n_cbar_per_class or cfg.n_shift_per_class
            n = min(len(base["labels"]), per * k)
            x = torch.from_numpy(np.array(base["images"][:n])).permute(0, 3, 1, 2).float() / 255
            digest = hashlib.blake2b(f"cbar/{name}".encode(), digest_size=8).digest()
            seeds = torch.arange(n, dtype=torch.int64) + (int.from_bytes(digest, "little") >> 4)
            xc = cbar_corrupt(x, name, int(sev), seeds)
            imgs = _to_uint8(xc.permute(0, 2, 3, 1).numpy())
            return {"images": imgs, "labels": np.asarray(base["labels"][:n])}
        if split == "natural":
            return self._natural(rng)
        if split == "adversarial":
            base = self.split("val")
            n = min(len(base["labels"]), cfg.n_shift_per_class * k)
            return {
                "images": np.asarray(base["images"][:n]),
                "labels": np.asarray(base["labels"][:n]),
            }
        if split.startswith("corrupt/"):
            _, name, sev = split.split("/")
            base = self.split("val")
            n = min(len(base["labels"]), (cfg.n_corrupt_per_class or cfg.n_shift_per_class) * k)
            x = torch.from_numpy(np.array(base["images"][:n])).permute(0, 3, 1, 2).float() / 255
            seeds = torch.arange(n, dtype=torch.int64) + 7919 * (
                1 + self.corruption_names.index(name)
            )
            # at 32 px, side/224 scaling makes mild blurs vanish; scale as for a 64-px image
            xc = corrupt(x, name, int(sev), seeds, reference_side=2 * size)
            imgs = _to_uint8(xc.permute(0, 2, 3, 1).numpy())
            return {"images": imgs, "labels": np.asarray(base["labels"][:n])}
        per = cfg.n_shift_per_class
        y = self._labels(per, rng)
        n = len(y)
        hi = size * 2
        if split == "sketch":
            img = _sketch(y, size, rng)
            return {"images": _to_uint8(np.repeat(img[..., None], 3, -1)), "labels": y}
        if split == "cue_conflict":
            tex = (y + rng.integers(1, k, size=n)) % k  # always a different class's texture
            img, _, _ = _render_objects(y, tex, size, rng)
            return {"images": img, "labels": y, "texture_labels": tex}
        if split == "spurious":
            # an object of another class (drawn as in val) carrying the mark of class y
            obj = (y + rng.integers(1, k, size=n)) % k
            tex = _sample_textures(obj, k, cfg.texture_correlation, rng)
            img, _, _ = _render_objects(obj, tex, size, rng)
            return {
                "images": apply_marks(img, y, np.ones(n, bool), self.codes),
                "labels": y,
                "spurious_labels": y,
                "object_labels": obj,
            }
        if split == "stylized":
            mask = _downsample(_shape_masks(y, hi, rng))
            styles = rng.integers(0, len(STYLES), size=n)
            tex = _style_texture(styles, size, rng)
            bg = _background(n, size, rng)
            img = bg * (1 - mask[..., None]) + tex * mask[..., None]
            return {"images": _to_uint8(img), "labels": y, "style_labels": styles}
        if split == "rendition":
            img, styles = _rendition(y, size, rng)
            return {"images": _to_uint8(img), "labels": y, "style_labels": styles}
        raise KeyError(f"unknown split {split!r}; available: {self.split_names()}")

    def _objects(
        self, per_class: int, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """Images from the training distribution (``val``'s draw): arrays, unmarked images,
        masks and lighting."""
        cfg = self.config
        y = self._labels(per_class, rng)
        tex = _sample_textures(y, cfg.n_classes, cfg.texture_correlation, rng)
        img, mask, light = _render_objects(y, tex, cfg.image_size, rng)
        mark_u = rng.random(len(y)).astype(np.float32)
        out = {"labels": y, "texture_labels": tex, "mark_u": mark_u}
        out["images"] = apply_marks(img, y, mark_u < cfg.mark_rate, self.codes)
        return out, img, mask, light

    def _natural(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fresh ``val``-like images the reference classifier misclassifies (module docstring)."""
        cfg = self.config
        k, per = cfg.n_classes, cfg.n_shift_per_class
        train = self.split("train")
        train_images, train_labels = np.asarray(train["images"]), np.asarray(train["labels"])
        kept: list[tuple[np.ndarray, int, int]] = []
        counts = np.zeros(k, np.int64)
        for _ in range(_NATURAL_ROUNDS):
            batch, _, _, _ = self._objects(4 * per, rng)
            pred = _nearest_class_mean(train_images, train_labels, batch["images"], k)
            for i in np.flatnonzero(pred != batch["labels"]):
                c = int(batch["labels"][i])
                if counts[c] < per:
                    counts[c] += 1
                    kept.append((batch["images"][i], c, int(pred[i])))
            if (counts >= per).all():
                break
        size = cfg.image_size
        return {
            "images": np.stack([im for im, _, _ in kept])
            if kept
            else np.zeros((0, size, size, 3), np.uint8),
            "labels": np.array([c for _, c, _ in kept], dtype=np.int64),
            "reference_predictions": np.array([p for _, _, p in kept], dtype=np.int64),
        }

    def split(self, name: str) -> dict[str, np.ndarray]:
        """Arrays of one split (built once, then read from the store as memory maps)."""
        if name in self._cache:
            return self._cache[name]
        if name not in self.split_names():
            raise KeyError(f"unknown split {name!r}; available: {', '.join(self.split_names())}")
        key = f"{self.fingerprint()}/{name}"
        arrays = self.store.get_blob("world", key) if self.store is not None else None
        if arrays is None:
            arrays = self._build(name)
            if self.store is not None:
                self.store.put_blob("world", key, arrays)
                arrays = self.store.get_blob("world", key)
        self._cache[name] = arrays
        return arrays

    def build_all(self) -> Iterator[str]:
        """Build every split; yields split names as they finish (for progress bars)."""
        for name in self.split_names():
            self.split(name)
            yield name

    def dataset(self, split: str) -> ArrayDataset:
        """One split as a :class:`~robustlens.data.base.Dataset`."""
        a = self.split(split)
        extras = {}
        if "texture_labels" in a and split == "cue_conflict":
            extras["texture_label"] = a["texture_labels"]
        if "spurious_labels" in a:
            extras["spurious_label"] = a["spurious_labels"]
        if "object_labels" in a:
            extras["object_label"] = a["object_labels"]
        fp = hashlib.sha256(f"world:{self.fingerprint()}:{split}".encode()).hexdigest()[:24]
        return ArrayDataset(
            name=f"world/{split}",
            images=a["images"],
            labels=a["labels"],
            classes=self.classes,
            fingerprint=fp,
            extras=extras,
        )

    def training_arrays(self, mark_rate: float | None = None) -> dict[str, np.ndarray]:
        """Train images with marks at ``mark_rate`` (default: the world's), plus masks."""
        a = self.split("train")
        rate = self.config.mark_rate if mark_rate is None else mark_rate
        present = np.asarray(a["mark_u"]) < rate
        labels = np.asarray(a["labels"])
        return {
            "images": apply_marks(np.asarray(a["images_unmarked"]), labels, present, self.codes),
            "images_unmarked": np.asarray(a["images_unmarked"]),
            "masks": np.asarray(a["masks"]),
            "light": np.asarray(a["light"]),
            "labels": labels,
            "mark_present": present,
        }

    def export_imagefolder(
        self, root: str | Path, splits: list[str] | None = None, limit_per_class: int | None = None
    ) -> Path:
        """Write splits as PNG ImageFolder trees ``root/{split}/{class}/{i}.png``."""
        root = Path(root)
        for split in splits or self.split_names():
            a = self.split(split)
            counts: dict[int, int] = {}
            for i, (img, y) in enumerate(zip(a["images"], a["labels"], strict=True)):
                y = int(y)
                if limit_per_class is not None and counts.get(y, 0) >= limit_per_class:
                    continue
                counts[y] = counts.get(y, 0) + 1
                d = root / split / self.classes[y]
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(img)).save(d / f"{i:06d}.png")
        return root


def _sketch(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pencil drawings of the shapes (like ImageNet-Sketch): (n, size, size) gray in [0, 1].

    Outlines of varying darkness on paper of varying tone with a little grain; half of the
    drawings also shade the object's inside with graphite. No texture, no colour, no mark.
    """
    n = len(y)
    hi = _shape_masks(y, size * 2, rng)
    line = _downsample(_edges(hi))
    paper = rng.uniform(0.78, 0.96, size=(n, 1, 1)).astype(np.float32)
    paper = paper + rng.normal(0, 0.02, size=(n, size, size)).astype(np.float32)
    pencil = rng.uniform(0.05, 0.35, size=(n, 1, 1)).astype(np.float32)
    shaded = (rng.random(n) < 0.5)[:, None, None]
    depth = rng.uniform(0.08, 0.25, size=(n, 1, 1)).astype(np.float32)
    strokes = 0.7 + 0.3 * np.tanh(_smooth_noise(n, size, 6, rng))
    img = paper - _downsample(hi) * shaded * depth * strokes
    return np.clip(img * (1 - line) + pencil * line, 0, 1)


#: the media of the ``rendition`` split (like ImageNet-R's art, cartoons, paintings, toys)
RENDITION_STYLES = ("cartoon", "graphic", "painting", "toy")


def _colours_with_luma(luma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random colours (n, 3) whose luma is close to ``luma`` (n,)."""
    c = rng.random((len(luma), 3)).astype(np.float32)
    w = np.array([0.299, 0.587, 0.114], np.float32)
    cur = c @ w
    return np.clip(c + (luma - cur)[:, None], 0, 1)


def _rendition(y: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The shapes in other media (like ImageNet-R): (n, size, size, 3) floats, style ids.

    Flat cartoon fills with dark outlines, flat graphics, paintings (smooth blends of two
    colours for the object and for the ground) and shaded toys; the object always differs from
    its ground in lightness by at least 0.3, in colours tied to no class.
    """
    n = len(y)
    hi = _shape_masks(y, size * 2, rng)
    mask = _downsample(hi)[..., None]
    outline = _downsample(_edges(hi))[..., None]
    styles = rng.integers(0, len(RENDITION_STYLES), size=n)
    lf = rng.uniform(0.1, 0.9, size=n).astype(np.float32)
    gap = rng.uniform(0.3, 0.6, size=n).astype(np.float32)
    up = np.where(lf + gap <= 1.0, 1.0, -1.0)
    up = np.where((lf - gap < 0) & (up < 0), 1.0, up)
    lb = np.clip(lf + up * gap, 0, 1)
    fill = _colours_with_luma(lf, rng)[:, None, None, :] * np.ones((1, size, size, 1), np.float32)
    back = _colours_with_luma(lb, rng)[:, None, None, :] * np.ones((1, size, size, 1), np.float32)
    paint = styles == RENDITION_STYLES.index("painting")
    if paint.any():
        m = int(paint.sum())
        f2, b2 = _colours_with_luma(lf[paint], rng), _colours_with_luma(lb[paint], rng)
        wf = (0.5 + 0.5 * np.tanh(_smooth_noise(m, size, 5, rng)))[..., None]
        wb = (0.5 + 0.5 * np.tanh(_smooth_noise(m, size, 3, rng)))[..., None]
        fill[paint] = fill[paint] * wf + f2[:, None, None, :] * (1 - wf)
        back[paint] = back[paint] * wb + b2[:, None, None, :] * (1 - wb)
    toy = styles == RENDITION_STYLES.index("toy")
    if toy.any():
        t = (np.arange(size, dtype=np.float32) + 0.5) / size
        yy, xx = np.meshgrid(t, t, indexing="ij")
        glow = 0.65 + 0.6 * np.exp(-((xx - 0.35) ** 2 + (yy - 0.35) ** 2) / 0.08)
        fill[toy] = np.clip(fill[toy] * glow[None, ..., None], 0, 1)
    img = back * (1 - mask) + fill * mask
    ink = (styles == RENDITION_STYLES.index("cartoon"))[:, None, None, None]
    img = np.where(ink, img * (1 - outline) + 0.05 * outline, img)
    return img, styles


def _edges(mask_hi: np.ndarray) -> np.ndarray:
    """Boundary pixels of binary masks (dilation xor erosion, 3x3, twice for thickness)."""
    m = mask_hi > 0.5
    dil, ero = m.copy(), m.copy()
    for _ in range(2):
        p = np.pad(dil, ((0, 0), (1, 1), (1, 1)))
        dil = p[:, 1:-1, 1:-1] | p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]
        q = np.pad(ero, ((0, 0), (1, 1), (1, 1)), constant_values=True)
        ero = q[:, 1:-1, 1:-1] & q[:, :-2, 1:-1] & q[:, 2:, 1:-1] & q[:, 1:-1, :-2] & q[:, 1:-1, 2:]
    return (dil & ~ero).astype(np.float32)


@dataclass
class TextureBank:
    """Random textures (any family, random colours) for texture-randomization augmentation."""

    size: int
    n: int = 2048
    seed: int = 0
    textures: np.ndarray = field(init=False)

    flat_fraction: float = 0.25

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        fam = rng.integers(0, len(TEXTURES), size=self.n)
        tex = _texture(fam, self.size, rng, colors=False)
        # some flat fills: without them, flat-colour renditions are a texture never seen
        flat = rng.random(self.n) < self.flat_fraction
        tex[flat] = rng.random((int(flat.sum()), 1, 1, 3)).astype(np.float32)
        self.textures = _to_uint8(tex)
