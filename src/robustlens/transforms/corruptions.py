"""ImageNet-C-style common corruptions, batched in torch, for images of any size.

Reference: D. Hendrycks, T. Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (``make_imagenet_c.py``, severities 1..5).

Inputs are float pixels ``(B, 3, H, W)`` in [0, 1] (before any normalization); outputs have the
same shape and dtype and are clipped to [0, 1].

How parameters scale with the image size
----------------------------------------
ImageNet-C defines its parameters for 224 px images. Here:

* per-pixel parameters (noise standard deviations, Poisson rates, impulse rates, contrast and
  brightness factors, JPEG quality, fog amplitude) are used exactly as in ImageNet-C, whatever
  the size;
* lengths in pixels (Gaussian / defocus / motion blur radii and sigmas) are multiplied by
  ``min(H, W) / reference_side`` (``reference_side=224`` by default), so a corruption covers the
  same *fraction of the image* at every size;
* pixelation keeps ImageNet-C's relative down-sampling factor (``side * c``).

Blur kernels integrate the continuous kernel over each pixel (Gaussian: differences of the
error function; disk: sub-pixel area coverage; motion: a line splatted bilinearly), so that
sub-pixel blurs of small images are represented instead of collapsing to the identity. At 32 px
the scaled blurs of severity 1 are genuinely weak (a 224 px sigma of 1 px becomes 0.14 px);
pass ``reference_side`` (e.g. 64) to make them stronger on purpose.

Randomness
----------
Random corruptions (``RANDOM_CORRUPTIONS``) draw the noise of sample ``i`` from its own
``torch.Generator().manual_seed(int(seeds[i]))`` on the CPU, so a sample's corrupted image does
not depend on the batch it is in, the batch order or the device.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from robustlens.errors import ValidationError

__all__ = [
    "CORRUPTIONS",
    "RANDOM_CORRUPTIONS",
    "SEVERITIES",
    "check_images",
    "corrupt",
    "corruption_parameters",
    "seed_generators",
]

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# ImageNet-C parameters per severity (make_imagenet_c.py), at 224 px.
_PARAMS: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise std
    "shot_noise": (60.0, 25.0, 12.0, 5.0, 3.0),  # Poisson rate: poisson(x * c) / c
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # salt-and-pepper fraction
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),  # multiplicative noise std
    "gaussian_blur": (1.0, 2.0, 3.0, 4.0, 6.0),  # sigma (px at 224)
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # disk radius, alias
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),  # radius, sigma (px at 224)
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # factor around the per-channel mean
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to HSV value
    "fog": ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),  # amplitude, decay
    "jpeg_compression": (25, 18, 15, 10, 7),  # JPEG quality
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # down-sampling factor
}

CORRUPTIONS: tuple[str, ...] = tuple(_PARAMS)
RANDOM_CORRUPTIONS: frozenset[str] = frozenset(
    {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur", "fog"}
)
_BLURS = frozenset({"gaussian_blur", "defocus_blur", "motion_blur"})


# ----------------------------------------------------------------------------- validation


def check_images(images: Any, name: str = "images", atol: float = 1e-4) -> torch.Tensor:
    """Check a float image batch ``(B, 3, H, W)`` with values in [0, 1]; return it.

    Args:
        images: the tensor to check.
        name: the argument name used in error messages.
        atol: tolerance on the [0, 1] range.

    Returns:
        The same tensor.

    Example:
        >>> check_images(torch.zeros(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """
    if not isinstance(images, torch.Tensor):
        raise ValidationError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValidationError(f"{name}: expected shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValidationError(
            f"{name}: expected float pixels in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if images.numel():
        lo, hi = float(images.min()), float(images.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValidationError(f"{name}: contains NaN or infinite values")
        if lo < -atol or hi > 1 + atol:
            raise ValidationError(
                f"{name}: expected pixels in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
                "pass un-normalized pixels (normalization happens inside the model adapter)"
            )
    return images


def seed_generators(seeds: Any, n: int, name: str = "seeds") -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample, seeded with ``int(seeds[i])``.

    Args:
        seeds: a length-``n`` integer sequence, numpy array or tensor (e.g. derived from stable
            sample ids).
        n: the batch size.
        name: the argument name used in error messages.

    Returns:
        A list of ``n`` generators.

    Example:
        >>> g = seed_generators([7, 7], 2)
        >>> bool(torch.rand(1, generator=g[0]) == torch.rand(1, generator=g[1]))
        True
    """
    if seeds is None:
        raise ValidationError(f"{name}: expected {n} integer seeds (one per image), got None")
    if isinstance(seeds, torch.Tensor):
        arr = seeds.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(seeds)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{name}: cannot convert to an integer array ({exc})") from exc
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValidationError(f"{name}: expected {n} seeds (one per image), got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValidationError(f"{name}: expected integer seeds, got dtype {arr.dtype}")
    return [torch.Generator().manual_seed(int(s)) for s in arr.tolist()]


def _check_name_severity(name: str, severity: int) -> None:
    if name not in _PARAMS:
        raise ValidationError(
            f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}"
        )
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValidationError(
            f"severity: expected one of {list(SEVERITIES)}, got {severity!r} (for {name!r})"
        )


def corruption_parameters(
    name: str, severity: int, side: int = 224, reference_side: int = 224
) -> dict[str, float]:
    """The parameters :func:`corrupt` uses for a corruption, severity and image side.

    Blur lengths are scaled by ``side / reference_side``; other parameters are ImageNet-C's.

    Args:
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        side: the image side in pixels (``min(H, W)``).
        reference_side: the side at which ImageNet-C's pixel lengths apply.

    Returns:
        A dict of named parameters.

    Example:
        >>> corruption_parameters("gaussian_blur", 2, side=112)
        {'sigma': 1.0}
        >>> corruption_parameters("gaussian_noise", 5, side=32)
        {'std': 0.38}
    """
    _check_name_severity(name, severity)
    if side < 1 or reference_side < 1:
        raise ValidationError(
            f"side and reference_side must be positive, got {side} and {reference_side}"
        )
    c = _PARAMS[name][severity - 1]
    scale = side / reference_side
    if name == "gaussian_blur":
        return {"sigma": c * scale}
    if name == "defocus_blur":
        return {"radius": c[0] * scale, "alias_sigma": c[1] * scale}
    if name == "motion_blur":
        return {"length": 2 * c[0] * scale, "sigma": c[1] * scale}
    if name == "fog":
        return {"amplitude": c[0], "decay": c[1]}
    key = {
        "gaussian_noise": "std",
        "shot_noise": "rate",
        "impulse_noise": "amount",
        "speckle_noise": "std",
        "contrast": "factor",
        "brightness": "delta",
        "jpeg_compression": "quality",
        "pixelate": "factor",
    }[name]
    return {key: c}


# ----------------------------------------------------------------------------- helpers


def _per_sample(gens: list[torch.Generator], fn: Any, device: torch.device) -> torch.Tensor:
    """Stack ``fn(generator)`` over the samples (drawn on the CPU) and move to ``device``."""
    return torch.stack([fn(g) for g in gens]).to(device)


def _gauss_kernel1d(sigma: float) -> torch.Tensor:
    """Pixel-integrated Gaussian: w_i = Phi((i + .5) / s) - Phi((i - .5) / s), normalized."""
    r = max(1, math.ceil(4 * sigma))
    i = torch.arange(-r, r + 1, dtype=torch.float64)
    if sigma <= 0:
        k = (i == 0).double()
    else:
        s = sigma * math.sqrt(2.0)
        k = 0.5 * (torch.erf((i + 0.5) / s) - torch.erf((i - 0.5) / s))
    return (k / k.sum()).float()


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel with a shared 2-D kernel, replicate padding (same size out)."""
    kh, kw = kernel.shape
    c = x.shape[1]
    w = kernel.to(x).expand(c, 1, kh, kw)
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    return F.conv2d(xp, w, groups=c)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gauss_kernel1d(sigma)
    x = _depthwise(x, k[None, :])
    return _depthwise(x, k[:, None])


def _disk_kernel(radius: float, sub: int = 16) -> torch.Tensor:
    """Disk of the given radius, each pixel weighted by its covered area (sub-pixel samples)."""
    r = max(1, math.ceil(radius + 0.5))
    offs = (torch.arange(sub, dtype=torch.float64) + 0.5) / sub - 0.5
    grid = torch.arange(-r, r + 1, dtype=torch.float64)
    fine = (grid[:, None] + offs[None, :]).reshape(-1)
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
    n = 2 * r + 1
    cover = inside.double().reshape(n, sub, n, sub).mean(dim=(1, 3))
    if cover.sum() <= 0:  # radius below half a sub-sample: a point
        cover = torch.zeros(n, n, dtype=torch.float64)
        cover[r, r] = 1.0
    return (cover / cover.sum()).float()


def _motion_blur(x: torch.Tensor, length: float, sigma: float, angles: list[float]) -> torch.Tensor:
    """One-sided line blur: sum_k w_k shift(x, t_k (cos a, -sin a)), w_k ~ exp(-t_k^2 / 2 s^2).

    Like ImageNet-C's ``_motion_blur`` (a weighted sum of shifted copies), with the samples
    ``t_k`` spaced at most 1 px apart on [0, length] and sub-pixel shifts interpolated
    bilinearly (replicate padding). ``angles[b]`` (degrees) is the direction for image b.
    """
    h, w = x.shape[-2:]
    n_t = max(2, math.ceil(length) + 1)
    t = torch.linspace(0.0, length, n_t, dtype=torch.float64)
    wt = torch.exp(-(t**2) / (2 * max(sigma, 1e-6) ** 2))
    wt = (wt / wt.sum()).tolist()
    a = torch.tensor([math.radians(v) for v in angles], dtype=torch.float64)
    cos, sin = torch.cos(a), torch.sin(a)
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) * (2.0 / h) - 1.0
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * (2.0 / w) - 1.0
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    out = torch.zeros_like(x)
    for tk, wk in zip(t.tolist(), wt, strict=True):
        shift = torch.stack([tk * cos * (2.0 / w), -tk * sin * (2.0 / h)], dim=-1)  # (B, 2)
        grid = (base[None] + shift[:, None, None, :]).to(x)
        out += wk * F.grid_sample(
            x, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    return out


def _fractal(gen: torch.Generator, h: int, w: int, decay: float) -> torch.Tensor:
    """Low-frequency 'plasma' noise in [0, 1]: amplitude spectrum f^-log2(decay).

    ImageNet-C's diamond-square plasma divides the random amplitude by ``decay`` per octave,
    i.e. an amplitude spectrum proportional to f^-log2(decay); we synthesise that spectrum
    directly with random phases (white Gaussian noise shaped in the Fourier domain), then
    min-max normalise like ``plasma_fractal``.
    """
    noise = torch.randn(h, w, generator=gen, dtype=torch.float64)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None] * h
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :] * w
    f = torch.sqrt(fy**2 + fx**2)
    amp = torch.where(f > 0, f.clamp(min=1e-12) ** (-math.log2(decay)), torch.zeros_like(f))
    field = torch.fft.ifft2(torch.fft.fft2(noise) * amp).real
    field = field - field.min()
    return (field / field.max().clamp(min=1e-12)).float()


# ----------------------------------------------------------------------------- corrupt


@torch.no_grad()
def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    seeds: Any = None,
    *,
    reference_side: int = 224,
) -> torch.Tensor:
    """Apply an ImageNet-C corruption at a severity to a batch of pixel images.

    Formulas (x in [0, 1], c the severity's parameter, outputs clipped to [0, 1]):

    * ``gaussian_noise``: x + N(0, c^2);  ``speckle_noise``: x + x * N(0, c^2)
    * ``shot_noise``: Poisson(x * c) / c;  ``impulse_noise``: a fraction c of values set to 0 or
      1 (half each)
    * ``gaussian_blur``: Gaussian of std c * s;  ``defocus_blur``: disk of radius r * s then a
      Gaussian of std a * s;  ``motion_blur``: one-sided line of length 2 r * s at a random
      angle in [-45, 45] degrees, weights exp(-t^2 / 2 (sigma s)^2); s = min(H, W) / 224
    * ``contrast``: (x - m) * c + m, m the per-channel mean
    * ``brightness``: HSV value v -> min(v + c, 1) (hue and saturation kept)
    * ``fog``: (x + a * F) * M / (M + a), F a low-frequency fractal in [0, 1], M = max(x)
    * ``jpeg_compression``: JPEG encode/decode at quality c (uint8, torchvision.io)
    * ``pixelate``: area down-sampling to side * c, nearest up-sampling back

    Reference: D. Hendrycks, T. Dietterich, "Benchmarking Neural Network Robustness to Common
    Corruptions and Perturbations", ICLR 2019.

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        seeds: B integer seeds, one per image (required for :data:`RANDOM_CORRUPTIONS`,
            ignored otherwise). Sample i uses ``torch.Generator().manual_seed(seeds[i])``.
        reference_side: the image side at which ImageNet-C's blur lengths apply.

    Returns:
        (B, 3, H, W) corrupted images, same dtype and device, clipped to [0, 1].

    Example:
        >>> x = torch.full((1, 3, 4, 4), 0.5)
        >>> round(float(corrupt(x, "brightness", 1).mean()), 4)
        0.6
        >>> y = corrupt(x, "gaussian_noise", 3, seeds=[0])
        >>> bool(torch.equal(y, corrupt(x, "gaussian_noise", 3, seeds=[0])))
        True
    """
    _check_name_severity(name, severity)
    check_images(images)
    if reference_side < 1:
        raise ValidationError(f"reference_side: expected a positive integer, got {reference_side}")
    b, _, h, w = images.shape
    gens = seed_generators(seeds, b) if name in RANDOM_CORRUPTIONS else []
    if b == 0:
        return images.clone()
    p = corruption_parameters(name, severity, side=min(h, w), reference_side=reference_side)
    x = images.float()
    dev = x.device
    shape = (3, h, w)

    if name == "gaussian_noise":
        out = x + p["std"] * _per_sample(gens, lambda g: torch.randn(shape, generator=g), dev)
    elif name == "speckle_noise":
        out = x + x * p["std"] * _per_sample(gens, lambda g: torch.randn(shape, generator=g), dev)
    elif name == "shot_noise":
        rate = (x * p["rate"]).cpu()
        out = torch.stack([torch.poisson(rate[i], generator=g) for i, g in enumerate(gens)])
        out = out.to(dev) / p["rate"]
    elif name == "impulse_noise":
        u = _per_sample(gens, lambda g: torch.rand(shape, generator=g), dev)
        a = p["amount"]
        out = torch.where(u < a / 2, torch.zeros_like(x), torch.where(u < a, 1.0, x))
    elif name == "gaussian_blur":
        out = _gaussian_blur(x, p["sigma"])
    elif name == "defocus_blur":
        out = _gaussian_blur(_depthwise(x, _disk_kernel(p["radius"])), p["alias_sigma"])
    elif name == "motion_blur":
        angles = [float(torch.empty(1).uniform_(-45.0, 45.0, generator=g)) for g in gens]
        out = _motion_blur(x, p["length"], p["sigma"], angles)
    elif name == "contrast":
        m = x.mean(dim=(-2, -1), keepdim=True)
        out = (x - m) * p["factor"] + m
    elif name == "brightness":
        v = x.amax(dim=1, keepdim=True)
        v_new = (v + p["delta"]).clamp(max=1.0)
        # In HSV every RGB channel is proportional to V for fixed hue and saturation; a black
        # pixel has saturation 0 and becomes gray with value v_new.
        out = torch.where(v > 0, x * (v_new / v.clamp(min=1e-12)), v_new.expand_as(x))
    elif name == "fog":
        fields = _per_sample(gens, lambda g: _fractal(g, h, w, p["decay"]), dev)[:, None]
        m = x.amax(dim=(1, 2, 3), keepdim=True)
        a = p["amplitude"]
        out = (x + a * fields) * m / (m + a)
    elif name == "jpeg_compression":
        u8 = (x * 255).round().clamp(0, 255).to(torch.uint8).cpu()
        with warnings.catch_warnings():
            # torchvision >= 0.29 marks its JPEG codec deprecated (in favour of torchcodec);
            # it still works and is the codec this project standardises on.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
            enc = encode_jpeg(list(u8.unbind(0)), quality=int(p["quality"]))
            out = torch.stack(decode_jpeg(enc)).to(dev).float() / 255
    elif name == "pixelate":
        small = (max(1, int(h * p["factor"])), max(1, int(w * p["factor"])))
        out = F.interpolate(F.interpolate(x, size=small, mode="area"), (h, w), mode="nearest-exact")
    else:  # pragma: no cover - _check_name_severity guards this
        raise ValidationError(f"unknown corruption {name!r}")
    return out.clamp(0.0, 1.0).to(images.dtype)
