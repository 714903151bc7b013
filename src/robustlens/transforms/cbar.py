"""ImageNet-C-bar's 10 corruptions, batched in torch, for images of any size.

Reference: E. Mintun, A. Kirillov, S. Xie, "On Interaction Between Augmentations and
Corruptions in Natural Corruption Robustness", NeurIPS 2021; the authors' code
(``facebookresearch/augmentation-corruption``, ``imagenet_c_bar/corrupt.py``) with the
severities of ``imagenet_c_bar/imagenet_c_bar.csv``. :data:`CBAR_CORRUPTIONS` are the names as
the release spells its folders (``cocentric_sine_waves``, sic).

Inputs are float pixels ``(B, 3, H, W)`` in [0, 1] (before any normalization); outputs have the
same shape and dtype, clipped to [0, 1], on the device of the input.

Severities
----------
Each corruption of the release takes a *level* in [0, 10] and turns it into its parameters with
``float_parameter(level, maxval) = level * maxval / 10``; ImageNet-C-bar's five severities are
five levels per corruption (:data:`CBAR_LEVELS`, the release's CSV; its folders are named after
the level, ``caustic_refraction/2.35/``). Per level ``l`` (pixel values in [0, 255] as in the
release; robustlens divides them by 255):

============================  ===============================================================
corruption                    what it does, with the level's parameter
============================  ===============================================================
blue_noise_sample             zeroes the pixels where a blue-noise field (amplitude spectrum
                              proportional to the frequency, normalised to unit std) is below
                              ``0.3 l - 2.5``
brownish_noise                adds ``6.4 l`` x a brownish field per channel (amplitude
                              spectrum ``1 / (f^2 + 1)``, unit std)
caustic_refraction            refracts the image through a caustic "water" surface: shift by
                              ``0.05 l * side`` x the refracted ray (eta 4), plus caustic
                              lighting ``0.2 l`` x the surface slope
checkerboard_cutout           grey (128) squares: the cells of a rotated checkerboard (cell
                              side U(0.1, 0.25) x side) whose grid draw is below ``0.1 l``,
                              on one colour of the board
cocentric_sine_waves          adds ``12.8 l`` x rings (sawtooth of the distance, warped by a
                              sine of the angle) around a random centre
inverse_sparkles              the image seen through one star of rays (radius side / 4): white
                              outside, with falloff exponent ``0.13 l``
perlin_noise                  blends ``0.05 l`` of Perlin turbulence (5 octaves, feature size
                              32 px at 224)
plasma_noise                  blends ``6.4 l / 255`` of a coloured plasma (an iterated
                              domain-warp of sines)
single_frequency_greyscale    adds ``19.6 l`` x sin(fx x + fy y + phase), one random frequency
                              (``|f| <= pi`` radians per pixel) on all three channels
sparkles                      5 white stars of rays of radius ``0.01 l * side``
============================  ===============================================================

Faithfulness
------------
Every corruption follows ``corrupt.py``'s formulas (written here as batched tensor code instead
of per-pixel Python loops) with the release's parameters; random parameters are drawn from the
release's distributions with torch's random numbers, so a corrupted image matches the release in
distribution, not pixel for pixel. Where the algorithm differs, it is said here:

* ``blue_noise_sample`` and ``brownish_noise``: the release gives its random-phase spectrum
  phases that repeat (mirrored) across the two halves of the spectrum and then takes the real
  part of the inverse FFT; robustlens draws independent phases for every frequency and takes the
  real part, which gives a field with the same amplitude spectrum, normalised to unit standard
  deviation as in the release.
* ``perlin_noise``: the release's Perlin generator (256-entry permutation shuffled by its loop,
  gradients from uniform integers in [-256, 256), s-curve interpolation, ``1.5 x`` scaling,
  turbulence over frequencies 1, 2, 4, 8, 16); a zero gradient (probability 2^-18) is replaced
  by (1, 0) instead of producing NaN.
* The release truncates each corrupted image to ``uint8`` and saves it as a JPEG (quality 85);
  robustlens returns float pixels and does neither.

How parameters scale with the image size
----------------------------------------
The release writes most lengths as fractions of the image side ``im_size`` (224 for ImageNet,
32 for CIFAR-10-C-bar, same code), so they are used as fractions of ``side = min(H, W)`` here:
the checkerboard cell, the sine-wave centre, amplitude and ring width, the plasma scale, the
Perlin feature size (``32 side / 224``), the sparkle radii and the refraction shift. Per-pixel
parameters are used as they are at every size, as in ``transforms/corruptions.py``: intensities,
blend weights and thresholds, the single frequency in radians per pixel, and the noise
spectra of ``blue_noise_sample`` and ``brownish_noise`` (defined on the image's own FFT grid, as
the release defines them on its ``im_size`` grid). ``caustic_refraction`` is built from a
random texture whose pixel slope matters, so (like ImageNet-C's textured corruptions) it is
computed at the working size ``(H, W) / s`` with ``s = side / reference_side`` (short side
``reference_side``, 224 by default): its surface, 1-px softening, shift and lighting are computed
there and resized (bilinear, antialiased) to ``(H, W)``, the shift multiplied by ``s``. At 224 px
every parameter is the release's.

Randomness
----------
Every C-bar corruption is random. Sample ``i`` draws its randomness from its own
``torch.Generator().manual_seed(int(seeds[i]))`` on the CPU (:func:`seed_generators`), in an
order that does not depend on the severity, so a sample's corrupted image does not depend on the
batch, the batch order or the device, and the five severities of one sample share their random
draws (only the level changes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from robustlens.errors import ValidationError
from robustlens.transforms.corruptions import (
    _check_name_severity,
    _resize,
    check_images,
    seed_generators,
)

__all__ = [
    "CBAR_CORRUPTIONS",
    "CBAR_LEVELS",
    "cbar_corrupt",
    "cbar_parameters",
    "cbar_severity_of_level",
    "sinusoid",
]

#: ImageNet-C-bar's corruptions, as its release spells the folders
CBAR_CORRUPTIONS: tuple[str, ...] = (
    "blue_noise_sample",
    "brownish_noise",
    "caustic_refraction",
    "checkerboard_cutout",
    "cocentric_sine_waves",
    "inverse_sparkles",
    "perlin_noise",
    "plasma_noise",
    "single_frequency_greyscale",
    "sparkles",
)

#: the release's level (0..10) of each severity 1..5 (``imagenet_c_bar/imagenet_c_bar.csv``)
CBAR_LEVELS: dict[str, tuple[float, ...]] = {
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
    "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
    "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
}

_TWO_PI = 2.0 * math.pi
_GREY = 128.0 / 255.0  # checkerboard_cutout's fill
_LUMA = (0.2126, 0.7152, 0.0722)  # the release's luma weights (caustic refraction)


def _level_param(level: float, maxval: float) -> float:
    """The release's ``float_parameter(level, maxval)``."""
    return float(level) * maxval / 10.0


def cbar_severity_of_level(name: str, level: str | float) -> int | None:
    """The severity 1..5 of a release level (a folder name such as ``"2.35"``), else ``None``.

    Example:
        >>> cbar_severity_of_level("caustic_refraction", "2.35")
        1
        >>> cbar_severity_of_level("sparkles", 5.0), cbar_severity_of_level("sparkles", "4")
        (4, None)
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        return None
    for severity, lv in enumerate(CBAR_LEVELS.get(name, ()), start=1):
        if abs(lv - value) < 5e-3:
            return severity
    return None


def cbar_parameters(name: str, severity: int, side: int = 224) -> dict[str, Any]:
    """The severity's parameters of a C-bar corruption for an image side (see the module).

    Pixel values are in [0, 1] (the release's values / 255); lengths in pixels of an image of
    side ``side`` (the caustic shift: in pixels of the working size, ``side=reference_side``).

    Example:
        >>> p = cbar_parameters("single_frequency_greyscale", 1)
        >>> p["level"], round(p["intensity"] * 255, 6), p["max_frequency"] == math.pi
        (1.0, 19.6, True)
        >>> round(cbar_parameters("sparkles", 5, side=32)["radius"], 6)
        1.92
        >>> round(cbar_parameters("blue_noise_sample", 5)["threshold"], 6)
        -0.82
    """
    _check_name_severity(name, severity, CBAR_CORRUPTIONS, "C-bar corruption")
    if side < 1:
        raise ValidationError(f"side: expected a positive integer, got {side}")
    lv = CBAR_LEVELS[name][severity - 1]
    p: dict[str, Any] = {"level": lv}
    if name == "blue_noise_sample":
        p["threshold"] = _level_param(lv, 3.0) - 2.5
    elif name == "brownish_noise":
        p["intensity"] = _level_param(lv, 64) / 255
    elif name == "caustic_refraction":
        p.update(
            lens_scale=_level_param(lv, 0.5 * side),
            lighting=_level_param(lv, 2.0),
            eta=4.0,
            softening=1.0,
        )
    elif name == "checkerboard_cutout":
        p["fraction"] = _level_param(lv, 1.0)
    elif name == "cocentric_sine_waves":
        p["intensity"] = _level_param(lv, 128) / 255
    elif name == "inverse_sparkles":
        p["exponent"] = _level_param(lv, 65) / 50.0  # (100 - amount) / 50, amount = 100 - 6.5 l
    elif name == "perlin_noise":
        p.update(alpha=_level_param(lv, 0.5), feature=32.0 * side / 224)
    elif name == "plasma_noise":
        p["intensity"] = _level_param(lv, 64) / 255
    elif name == "single_frequency_greyscale":
        p.update(intensity=_level_param(lv, 196) / 255, max_frequency=math.pi)
    else:  # sparkles
        p["radius"] = _level_param(lv, 0.1) * side
    return p


# ----------------------------------------------------------------------------- helpers


def _draw(
    gens: list[torch.Generator], fn: Callable[[torch.Generator], torch.Tensor]
) -> torch.Tensor:
    """``fn(generator)`` per sample (on the CPU), stacked: (B, ...)."""
    return torch.stack([fn(g).to(torch.float64) for g in gens])


def _uniform(g: torch.Generator, n: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _coords(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (y, x), each (1, H, W) float64, as the release's loops use."""
    y = torch.arange(h, dtype=torch.float64, device=device)[:, None].expand(h, w)
    x = torch.arange(w, dtype=torch.float64, device=device)[None, :].expand(h, w)
    return y[None], x[None]


def _col(t: torch.Tensor, device: torch.device, k: int | None = None) -> torch.Tensor:
    """Column ``k`` of per-sample draws (or all of a 1-D draw) as (B, 1, 1) on ``device``."""
    v = t if k is None else t[:, k]
    return v.to(device)[:, None, None]


def _size(x: torch.Tensor) -> tuple[int, int, int]:
    """Height, width and short side ``min(H, W)`` of an image batch."""
    h, w = x.shape[-2:]
    return h, w, min(h, w)


def sinusoid(
    h: int, w: int, fx: torch.Tensor, fy: torch.Tensor, phase: torch.Tensor
) -> torch.Tensor:
    """``sin(fx * x + fy * y + phase)`` on the pixel grid, (B, H, W) float64.

    ``x`` is the column index and ``y`` the row index (0-based), frequencies in radians per
    pixel, one per sample: the pattern ``single_frequency_greyscale`` adds.

    Example:
        >>> s = sinusoid(1, 4, torch.tensor([math.pi / 2]), torch.tensor([0.0]), torch.zeros(1))
        >>> [round(v, 6) + 0.0 for v in s[0, 0].tolist()]
        [0.0, 1.0, 0.0, -1.0]
    """
    fx, fy, phase = (torch.as_tensor(t, dtype=torch.float64) for t in (fx, fy, phase))
    y, x = _coords(h, w, fx.device)
    return torch.sin(x * fx[:, None, None] + y * fy[:, None, None] + phase[:, None, None])


def _fft_radius(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Distance of each FFT bin from the zero frequency, in cycles per image (H, W)."""
    fy = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64, device=device)
    fx = torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64, device=device)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def _spectral_noise(
    gens: list[torch.Generator], h: int, w: int, channels: int, amplitude: torch.Tensor
) -> torch.Tensor:
    """Real part of the inverse FFT of ``amplitude * exp(i phase)``, random phases, unit std.

    Returns (B, channels, H, W) float64; each field is divided by its own standard deviation
    (``np.std``, population) as in the release.
    """
    phases = _draw(gens, lambda g: _uniform(g, channels * h * w, 0.0, _TWO_PI))
    phases = phases.reshape(len(gens), channels, h, w).to(amplitude.device)
    spec = torch.polar(amplitude.expand_as(phases), phases)
    noise = torch.fft.ifft2(spec).real
    std = noise.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return noise / std.clamp_min(1e-12)


def _gauss_reflect(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy's ``gaussian_filter`` on the last two dims: sampled kernel, ``reflect`` mode."""
    r = int(truncate * sigma + 0.5)
    if r < 1:
        return x
    i = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (i / sigma) ** 2)
    k = (k / k.sum()).tolist()
    out = x
    for dim in (-1, -2):
        n = out.shape[dim]
        idx = torch.arange(-r, n + r, device=x.device)
        m = idx.remainder(2 * n)  # half-sample symmetric (d c b a | a b c d): scipy's "reflect"
        padded = out.index_select(dim, torch.where(m >= n, 2 * n - 1 - m, m))
        out = sum(wt * padded.narrow(dim, t, n) for t, wt in enumerate(k))
    return out


def _star(
    y: torch.Tensor,
    x: torch.Tensor,
    center: torch.Tensor,
    lengths: torch.Tensor,
    rays: torch.Tensor,
    exponent: float,
) -> torch.Tensor:
    """The release's sparkle kernel: weight f in [0, 1] per pixel, (B, H, W).

    ``center`` (B, 2) as (row, column); ``lengths`` (B, R) ray lengths, of which the first
    ``rays[b]`` are used; ``exponent`` = (100 - amount) / 50.
    """
    dy = y - center[:, 0, None, None]
    dx = x - center[:, 1, None, None]
    dist2 = dy * dy + dx * dx
    angle = torch.atan2(dx, dy)  # the release's arctan2(dp[1], dp[0]) with dp = (row, col)
    n = rays.to(torch.float64)[:, None, None]
    d = (angle + math.pi) / _TWO_PI * n
    i = torch.floor(d)
    f = d - i
    nr = rays[:, None, None]
    i0 = i.long().remainder(nr)
    i1 = (i.long() + 1).remainder(nr)
    b = lengths.shape[0]
    flat = lengths.reshape(b, -1)
    l0 = torch.gather(flat, 1, i0.reshape(b, -1)).reshape(i0.shape)
    l1 = torch.gather(flat, 1, i1.reshape(b, -1)).reshape(i1.shape)
    length = l0 + f * (l1 - l0)
    g = (length * length / (dist2 + 1e-4)) ** exponent
    f = (1.0 - (f - 0.5) ** 2) * g
    return f.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- corruptions
# Each takes (x float64 (B, 3, H, W), params, generators, ctx) and returns float64 pixels.


def _single_frequency_greyscale(x, p, gens, ctx):
    def draw(g: torch.Generator) -> torch.Tensor:
        u = _uniform(g, 4)
        mag = (2 * u[0] - 1) * math.pi
        other = (2 * u[1] - 1) * abs(mag)
        swap = u[2] < 0.5  # np.random.permutation(2)
        fx, fy = (other, mag) if swap else (mag, other)
        return torch.stack([fx, fy, u[3] * _TWO_PI])

    d = _draw(gens, draw).to(x.device)
    wave = sinusoid(x.shape[-2], x.shape[-1], d[:, 0], d[:, 1], d[:, 2])
    return x + p["intensity"] * wave[:, None]


def _cocentric_sine_waves(x, p, gens, ctx):
    h, w, side = _size(x)

    def draw(g: torch.Generator) -> torch.Tensor:
        u = _uniform(g, 5)
        return torch.cat([u[:2] * side, u[2:3] * 10, u[3:5] * side / 10])

    d = _draw(gens, draw)
    x0, y0, freq, amp, ring = (_col(d, x.device, k) for k in range(5))
    yy, xx = _coords(h, w, x.device)
    # calc_intensity(x, y, x0, y0): x the column, y the row
    angle = torch.atan2(xx - x0, yy - y0) * freq
    dist = torch.sqrt((xx - x0) ** 2 + (yy - y0) ** 2) + torch.sin(angle) * amp
    ring = ring.clamp_min(1e-9)
    noise = torch.remainder(dist, ring) / ring - 0.5
    return x + p["intensity"] * noise[:, None]


def _plasma_noise(x, p, gens, ctx):
    h, w, side = _size(x)

    def draw(g: torch.Generator) -> torch.Tensor:
        u = _uniform(g, 3)
        iters = torch.randint(4, 7, (1,), generator=g).double()
        return torch.stack(
            [u[0] * 6 * math.pi, iters[0], 0.5 + 0.5 * u[1], (0.075 + 0.125 * u[2]) * side]
        )

    d = _draw(gens, draw)
    rand, iters, sharp, scale = (_col(d, x.device, k) for k in range(4))
    yy, xx = _coords(h, w, x.device)
    px, py = xx / scale, yy / scale
    b = len(gens)
    i0 = torch.ones(b, 1, 1, dtype=torch.float64, device=x.device)
    i1, i2, i3 = i0.clone(), i0.clone(), torch.zeros_like(i0)
    for s in range(int(iters.max().item()) if b else 0):
        active = iters > s
        r0 = torch.cos(py * i0 - i3 + rand / i1) / i2
        r1 = torch.sin(px * i0 - i3 + rand / i1) / i2
        r0, r1 = r0 - 0.3 * r1, r1 + 0.3 * r0
        px = torch.where(active, px + r0, px)
        py = torch.where(active, py + r1, py)
        n0, n1, n2, n3 = i0 * 1.93, i1 * 1.15, i2 * (2.25 - sharp), i3 * rand * i1
        i0, i1 = torch.where(active, n0, i0), torch.where(active, n1, i1)
        i2, i3 = torch.where(active, n2, i2), torch.where(active, n3, i3)
    red = torch.sin(px - rand)
    blue = torch.sin(py + rand)
    green = torch.sin((px + py + torch.sin(rand)) * 0.5)
    noise = torch.stack([red, green, blue], dim=1)
    a = p["intensity"]
    return (1 - a) * x + a * noise


def _caustic_surface(
    time: torch.Tensor, size: torch.Tensor, h: int, w: int, device: torch.device
) -> torch.Tensor:
    """The release's ``caustic_noise_kernel`` over the grid: (B, H, W) float32 in [0, 1]."""
    # float32: 10x cheaper at the working size, and far finer than the 8-bit output
    yy, xx = (t.float() for t in _coords(h, w, device))
    time, size = time.float(), size.float()
    p0 = torch.remainder(yy / size, 1.0) * 6.28318530718 - 250
    p1 = torch.remainder(xx / size, 1.0) * 6.28318530718 - 250
    i0, i1 = p0, p1
    c = torch.ones_like(p0)
    inten = 0.005
    for n in range(5):
        t = time * (1.0 - (3.5 / (n + 1)))
        i0, i1 = (
            p0 + torch.cos(t - i0) + torch.sin(t + i1),
            p1 + torch.sin(t - i1) + torch.cos(t + i0),
        )
        length = torch.sqrt(
            (p0 / (torch.sin(i0 + t) / inten)) ** 2 + (p1 / (torch.cos(i1 + t) / inten)) ** 2
        )
        c = c + 1.0 / length
    c = c / 5.0
    c = 1.17 - c**1.4
    return (c.abs() ** 8.0).clamp(0.0, 1.0)


def _caustic_refraction(x, p, gens, ctx):
    h, w = x.shape[-2:]
    hw, ww = ctx["work"]
    work_side = min(hw, ww)
    q = cbar_parameters("caustic_refraction", ctx["severity"], side=work_side)

    def draw(g: torch.Generator) -> torch.Tensor:
        u = _uniform(g, 2)
        return torch.stack([0.5 + 1.5 * u[0], (0.75 + 0.5 * u[1]) * work_side])

    d = _draw(gens, draw)
    time, size = _col(d, x.device, 0), _col(d, x.device, 1)
    surf = _caustic_surface(time, size, hw, ww, x.device)
    surf = _gauss_reflect(surf, q["softening"]).double()
    luma = surf * sum(_LUMA)  # the caustic is grey: the luma of its three equal channels
    z = F.pad(luma, (1, 1, 1, 1))  # neighbours outside the image count as 0
    north, south = z[:, 1:-1, :-2], z[:, 1:-1, 2:]  # column - 1, column + 1
    west, east = z[:, :-2, 1:-1], z[:, 2:, 1:-1]  # row - 1, row + 1
    nx, ny = east - west, south - north
    norm = torch.sqrt(nx * nx + ny * ny + 1.0)
    a, b, c = nx / norm, ny / norm, 1.0 / norm
    rho = torch.sqrt(a * a + b * b)
    # refract((0, 0, 1), n, eta): cos(out) n + sin(out) o, whose first two components are
    # (a, b) * (sqrt(1 - rho^2 / eta^2) - c / eta); the release returns the incident ray
    # (no shift) when |n . (0, 0, 1)| >= 1 - 1e-3
    eta = q["eta"]
    k = torch.sqrt(1.0 - rho * rho / (eta * eta)) - c / eta
    k = torch.where(c >= 1.0 - 1e-3, torch.zeros_like(k), k)
    shift_y = torch.round(a * k * q["lens_scale"] * 1000) / 1000  # np.round(v, 3)
    shift_x = torch.round(b * k * q["lens_scale"] * 1000) / 1000
    light = ((north - south) + (east - west)) * q["lighting"]
    fields = _resize(torch.stack([shift_y, shift_x, light], dim=1), (h, w))
    s = h / hw, w / ww
    yy, xx = _coords(h, w, x.device)
    py = yy + fields[:, 0] * s[0]
    px = xx + fields[:, 1] * s[1]
    # bilinear interpolation at (py, px), 0 outside the image (the release's interpolation)
    grid = torch.stack(
        [2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1], dim=-1
    )  # (B, H, W, 2) as (x, y)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out + fields[:, 2:3]


def _sparkles(x, p, gens, ctx):
    h, w, side = _size(x)
    radius = p["radius"]
    floor = side / ctx["reference_side"]  # the release's 1-px floor on a ray, at 224 px

    def draw(g: torch.Generator) -> torch.Tensor:
        centers = _uniform(g, 10, 0.0, side)  # 5 x (row, column)
        rays = torch.randint(50, 200, (5,), generator=g).double()
        noise = torch.randn(5 * 200, generator=g, dtype=torch.float64)
        return torch.cat([centers, rays, noise])

    d = _draw(gens, draw).to(x.device)
    b = len(gens)
    centers = d[:, :10].reshape(b, 5, 2)
    rays = d[:, 10:15].long()
    lengths = (radius + 0.25 * radius * d[:, 15:].reshape(b, 5, 200)).clamp_min(floor)
    yy, xx = _coords(h, w, x.device)
    out = x
    for k in range(5):
        f = _star(yy, xx, centers[:, k], lengths[:, k], rays[:, k], 1.0)[:, None]
        out = out + f * (1.0 - out)  # value + f (colour - value), colour white
    return out


def _inverse_sparkles(x, p, gens, ctx):
    h, w, side = _size(x)
    radius = 0.25 * side

    def draw(g: torch.Generator) -> torch.Tensor:
        center = _uniform(g, 2, 0.25 * side, 0.75 * side)
        rays = torch.randint(50, 200, (1,), generator=g).double()
        noise = torch.randn(200, generator=g, dtype=torch.float64)
        return torch.cat([center, rays, noise])

    d = _draw(gens, draw).to(x.device)
    lengths = radius + 0.25 * radius * d[:, 3:]
    yy, xx = _coords(h, w, x.device)
    f = _star(yy, xx, d[:, :2], lengths, d[:, 2].long(), p["exponent"])[:, None]
    return 1.0 + f * (x - 1.0)  # colour + f (value - colour), colour white


def _perlin_tables(g: torch.Generator) -> torch.Tensor:
    """The release's ``PerlinNoiseGenerator`` tables: 256 permuted indices + 256 gradients."""
    grad = torch.randint(-256, 256, (256, 2), generator=g).double() / 256
    norm = grad.norm(dim=1, keepdim=True)
    grad = torch.where(norm > 0, grad / norm.clamp_min(1e-12), torch.tensor([1.0, 0.0]).double())
    perm = list(range(256))
    for i, j in zip(
        range(255, -1, -1), torch.randint(0, 256, (256,), generator=g).tolist(), strict=True
    ):
        perm[i], perm[j] = perm[j], perm[i]
    return torch.cat([torch.tensor(perm, dtype=torch.float64), grad[:, 0], grad[:, 1]])


def _perlin(
    u: torch.Tensor, v: torch.Tensor, perm: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor
):
    """The release's ``noise(u, v)`` per sample: (B, H, W)."""
    b = perm.shape[0]

    def take(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(table, 1, idx.reshape(b, -1)).reshape(idx.shape)

    t = u + 4096
    bx0 = torch.floor(t).long().remainder(256)
    bx1 = (bx0 + 1).remainder(256)
    rx0 = torch.remainder(t, 1.0)
    rx1 = rx0 - 1.0
    t = v + 4096
    by0 = torch.floor(t).long().remainder(256)
    by1 = (by0 + 1).remainder(256)
    ry0 = torch.remainder(t, 1.0)
    ry1 = ry0 - 1.0
    i = take(perm, bx0)
    j = take(perm, bx1)
    # p[i + by] with p[256 + k] = p[k]
    b00 = take(perm, (i + by0).remainder(256))
    b10 = take(perm, (j + by0).remainder(256))
    b01 = take(perm, (i + by1).remainder(256))
    b11 = take(perm, (j + by1).remainder(256))
    sx = rx0 * rx0 * (3.0 - 2.0 * rx0)
    sy = ry0 * ry0 * (3.0 - 2.0 * ry0)

    def dot(idx: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor) -> torch.Tensor:
        return rx * take(gx, idx) + ry * take(gy, idx)

    a = dot(b00, rx0, ry0)
    a = a + sx * (dot(b10, rx1, ry0) - a)
    c = dot(b01, rx0, ry1)
    c = c + sx * (dot(b11, rx1, ry1) - c)
    return 1.5 * (a + sy * (c - a))


def _perlin_noise(x, p, gens, ctx):
    h, w = x.shape[-2:]
    d = _draw(gens, _perlin_tables).to(x.device)
    perm = d[:, :256].long()
    gx, gy = d[:, 256:512], d[:, 512:]
    yy, xx = _coords(h, w, x.device)
    u = (yy / p["feature"]).expand(len(gens), h, w)  # npoint = (row, column) @ m
    v = (xx / p["feature"]).expand(len(gens), h, w)
    turb = torch.zeros_like(u)
    f = 1.0
    while f <= 16.0:  # turbulence(..., 16): octaves 1, 2, 4, 8, 16
        turb = turb + _perlin(f * u, f * v, perm, gx, gy).abs() / f
        f *= 2
    noise = (0.5 * turb + 0.5).clamp(0.0, 1.0)[:, None]
    a = p["alpha"]
    return (1 - a) * x + a * noise


def _blue_noise_sample(x, p, gens, ctx):
    h, w = x.shape[-2:]
    amp = _fft_radius(h, w, x.device)  # blue: amplitude proportional to the frequency
    noise = _spectral_noise(gens, h, w, 1, amp)
    return x * (noise > p["threshold"])


def _brownish_noise(x, p, gens, ctx):
    h, w = x.shape[-2:]
    amp = 1.0 / (_fft_radius(h, w, x.device) ** 2 + 1.0)
    return x + p["intensity"] * _spectral_noise(gens, h, w, 3, amp)


def _checkerboard_cutout(x, p, gens, ctx):
    h, w, side = _size(x)
    # the release's grid has int(4 side // scale) cells a side, scale = max(U(0.1, 0.25) side, 1);
    # every sample draws the largest grid's worth of numbers and uses the first n x n
    most = int(4 * side // max(0.1 * side, 1.0)) + 1

    def draw(g: torch.Generator) -> torch.Tensor:
        u = _uniform(g, 2)
        cells = _uniform(g, most * most)
        return torch.cat([u, cells])

    d = _draw(gens, draw).to(x.device)
    b = len(gens)
    angle = _col(d[:, 0] * _TWO_PI, x.device)
    scale = _col((0.1 + 0.15 * d[:, 1]) * side, x.device).clamp_min(1.0)
    n = torch.floor(4 * side / scale).long()
    yy, xx = _coords(h, w, x.device)
    nx = (torch.cos(angle) * yy + torch.sin(angle) * xx) / scale
    ny = (-torch.sin(angle) * yy + torch.cos(angle) * xx) / scale
    same_colour = torch.floor(nx).remainder(2) == torch.floor(ny).remainder(2)  # int(v % 2)
    ix = torch.trunc(nx).long().remainder(n)  # grid[int(nx), int(ny)]: negative indices wrap
    iy = torch.trunc(ny).long().remainder(n)
    drawn = torch.gather(d[:, 2:], 1, (ix * n + iy).reshape(b, -1)).reshape(ix.shape)
    cut = same_colour & (drawn < p["fraction"])
    return torch.where(cut[:, None], torch.full_like(x, _GREY), x)


_APPLY: dict[str, Callable[..., torch.Tensor]] = {
    "blue_noise_sample": _blue_noise_sample,
    "brownish_noise": _brownish_noise,
    "caustic_refraction": _caustic_refraction,
    "checkerboard_cutout": _checkerboard_cutout,
    "cocentric_sine_waves": _cocentric_sine_waves,
    "inverse_sparkles": _inverse_sparkles,
    "perlin_noise": _perlin_noise,
    "plasma_noise": _plasma_noise,
    "single_frequency_greyscale": _single_frequency_greyscale,
    "sparkles": _sparkles,
}


@torch.no_grad()
def cbar_corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    seeds: Any,
    *,
    reference_side: int = 224,
) -> torch.Tensor:
    """Apply an ImageNet-C-bar corruption at a severity to a batch of pixel images.

    See the module docstring for the formulas, the release's parameters and the size rules.

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        name: one of :data:`CBAR_CORRUPTIONS`.
        severity: 1..5 (the release's level :data:`CBAR_LEVELS` ``[name][severity - 1]``).
        seeds: B integer seeds, one per image (every C-bar corruption is random). Sample i uses
            ``torch.Generator().manual_seed(seeds[i])``.
        reference_side: the image side at which the release's pixel lengths apply (the working
            size of ``caustic_refraction``).

    Returns:
        (B, 3, H, W) corrupted images, same dtype and device, clipped to [0, 1].

    Example:
        >>> x = torch.full((2, 3, 16, 16), 0.5)
        >>> y = cbar_corrupt(x, "checkerboard_cutout", 5, seeds=[0, 1])
        >>> y.shape, bool(torch.equal(y, cbar_corrupt(x, "checkerboard_cutout", 5, [0, 1])))
        (torch.Size([2, 3, 16, 16]), True)
    """
    _check_name_severity(name, severity, CBAR_CORRUPTIONS, "C-bar corruption")
    check_images(images)
    if reference_side < 1:
        raise ValidationError(f"reference_side: expected a positive integer, got {reference_side}")
    b, _, h, w = images.shape
    gens = seed_generators(seeds, b)
    if b == 0:
        return images.clone()
    k = reference_side / min(h, w)
    ctx = {
        "severity": severity,
        "reference_side": reference_side,
        "work": (max(1, round(h * k)), max(1, round(w * k))),
    }
    p = cbar_parameters(name, severity, side=min(h, w))
    out = _APPLY[name](images.to(torch.float64), p, gens, ctx)
    return out.clamp(0.0, 1.0).to(images.dtype)
