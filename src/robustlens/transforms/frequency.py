"""Frequency-domain views: FFT low/high-pass filters and Laplacian-pyramid band noise.

* :func:`fft_filter` feeds the spectral-bias measure (``robustlens.metrics.spectral``).
* :func:`band_noise` feeds the critical-band measure (``robustlens.metrics.critical_band``).

Both follow the public code of the papers line by line, because the published numbers were
computed with it: ``bandpass_filter`` of seed 002's ``eval_spectral.py`` and ``solomon_filter``
of ``eval_criticalband.py`` (itself the ``methods.py`` of Subramanian et al.). The details that
move published numbers (the asymmetric mask slice, the high-pass cutoff ``1 - c``, the
Laplacian pyramid of ``pyrtools`` with its edge handling, the power equalisation, the
pixel-shift rule) are reproduced exactly and documented in each function.

References: P. Gavrikov, J. Lukasik, S. Jung, R. Geiger, B. Lorenz, J. Keuper, M. Keuper,
"Can Biases in ImageNet Models Explain Generalization?", CVPR 2024 (spectral bias, critical
band); H. Wang, X. Wu, Z. Huang, E. P. Xing, "High-frequency Component Helps Explain the
Generalization of Convolutional Neural Networks", CVPR 2020 (FFT filtering); A. Subramanian,
E. Sizikova, N. J. Majaj, D. G. Pelli, "Spatial-frequency channels, shape bias, and adversarial
robustness", NeurIPS 2023 (critical-band masking).

Inputs are float pixels ``(B, 3, H, W)`` in [0, 1]; outputs keep shape, dtype and device.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from robustlens._validation import check_number
from robustlens.errors import ValidationError
from robustlens.transforms.corruptions import check_images, seed_generators

__all__ = [
    "BAND_CENTRES_CPI_224",
    "CB_CONTRAST",
    "CB_EPSILON",
    "CB_MEAN",
    "CRITICAL_BAND_SIGMAS",
    "N_BANDS",
    "SPECTRAL_CUTOFFS",
    "band_centre_cpi",
    "band_level",
    "band_noise",
    "critical_band_stimulus",
    "fft_filter",
    "laplacian_band",
    "luma",
    "pil_luma",
    "pyramid_levels",
    "spectral_mask",
    "valid_bands",
]

#: the cutoffs of seed 002 (``[0.01, *np.arange(0.1, 0.99, 0.1), 0.99]``, as decimals)
SPECTRAL_CUTOFFS: tuple[float, ...] = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
#: the positive noise standard deviations of the critical band (the reference adds SD 0)
CRITICAL_BAND_SIGMAS: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)
#: number of octave bands (the reference's ``N_FREQS``)
N_BANDS = 7
_F0_CPI_224 = 1.75  # centre of band 0 in cycles per image at 224 px
BAND_CENTRES_CPI_224: tuple[float, ...] = tuple(_F0_CPI_224 * 2.0**b for b in range(N_BANDS))
#: contrast, mean and edge gap of the critical-band stimulus (the reference's CONTRAST,
#: IMAGENET_MEAN and EPSILON)
CB_CONTRAST = 0.2
CB_MEAN = 0.449
CB_EPSILON = 0.1
_LUMA = (0.299, 0.587, 0.114)
# binom5 of pyrtools: sqrt(2) * [1, 4, 6, 4, 1] / 16 (not normalised: sums to sqrt(2))
_BINOM5 = np.sqrt(2.0) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def luma(images: torch.Tensor) -> torch.Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of (B, 3, H, W) pixels, shape (B, 1, H, W).

    Example:
        >>> luma(torch.ones(1, 3, 2, 2)).shape, round(float(luma(torch.ones(1, 3, 1, 1))), 6)
        (torch.Size([1, 1, 2, 2]), 1.0)
    """
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device)
    # three products added in order: the same floats as ``(images * w).sum(dim=1)`` (tested),
    # which on a channels-last batch reduced its innermost dimension at half the speed or less;
    # half precision is added in float32, as that reduction accumulates it
    acc = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    r, g, b = (images[:, c : c + 1] * w[c] for c in range(3))
    return (r.to(acc) + g.to(acc) + b.to(acc)).to(images.dtype)


# ----------------------------------------------------------------------------- FFT filter


def _half_side(cutoff: float, n: int) -> int:
    """The reference's half-side ``int(cutoff * (n // 2))`` (truncation, not rounding)."""
    return int(cutoff * (n // 2))


def spectral_mask(h: int, w: int, cutoff: float, kind: str = "low") -> torch.Tensor:
    """The (H, W) 0/1 mask of :func:`fft_filter`, in *shifted* order (DC at ``(H//2, W//2)``).

    As seed 002's ``bandpass_filter``: ``c = cutoff`` for a low-pass and ``c = 1 - cutoff``
    for a high-pass; ``r_y = int(c * (H // 2))``, ``r_x = int(c * (W // 2))``; the square is
    the slice ``[H//2 - r_y, H//2 + r_y) x [W//2 - r_x, W//2 + r_x)`` of the shifted spectrum,
    i.e. the integer frequencies ``-r <= k < r`` on each axis (one more on the negative side,
    so the kept spectrum is not conjugate-symmetric and the filtered image is not real: its
    real part is taken). A low-pass keeps the square, a high-pass removes it. Cutoff 0.1 of a
    high-pass therefore keeps only the outermost tenth of the spectrum.

    Args:
        h: image height.
        w: image width.
        cutoff: the cutoff in [0, 1].
        kind: ``"low"`` or ``"high"``.

    Returns:
        A float tensor of 0 and 1, shape (H, W).

    Example:
        >>> m = spectral_mask(8, 8, 0.25, "low")  # r = int(0.25 * 4) = 1: k in {-1, 0}
        >>> (m[3:5, 3:5].sum().item(), m.sum().item())
        (4.0, 4.0)
    """
    if kind not in ("low", "high"):
        raise ValidationError(f"kind: expected 'low' or 'high', got {kind!r}")
    c = cutoff if kind == "low" else 1.0 - cutoff
    cy, cx = h // 2, w // 2
    ry, rx = _half_side(c, h), _half_side(c, w)
    square = torch.zeros(h, w)
    square[cy - ry : cy + ry, cx - rx : cx + rx] = 1.0
    return square if kind == "low" else 1.0 - square


def centred_spectrum(images: torch.Tensor) -> torch.Tensor:
    """``fftshift(fft2(x))`` of each channel of (B, C, H, W) pixels, as :func:`fft_filter`
    computes it (complex64 for float32 pixels): every cutoff of a batch filters this one."""
    return torch.fft.fftshift(torch.fft.fft2(images.float()), dim=(-2, -1))


def fft_filter(
    images: torch.Tensor,
    cutoff: float,
    kind: str = "low",
    spectrum: torch.Tensor | None = None,
) -> torch.Tensor:
    """Low- or high-pass filter each channel with seed 002's centred square spectral mask.

    Per image and channel, on the [0, 1] pixels (before normalisation)::

        X   = fftshift(fft2(x))
        out = clip(real(ifft2(ifftshift(X * M))), 0, 1)

    with ``M = spectral_mask(H, W, cutoff, kind)``: a low-pass at cutoff ``c`` keeps the
    centred square of half-side ``int(c * (side // 2))`` (slice ``[centre - r, centre + r)``);
    a high-pass at ``c`` *removes* the centred square of half-side ``int((1 - c) * (side //
    2))``. So low-pass 1.0 and high-pass 1.0 are the identity (for even sides), low-pass 0.0
    is a black image, and high-pass 0.1 keeps only the outermost 10 % of the spectrum.

    At 224 px the decimal cutoffs of :data:`SPECTRAL_CUTOFFS` give the same masks as the
    reference's ``np.arange(0.1, 0.99, 0.1)`` floats (a test checks it).

    Reference: Gavrikov et al., CVPR 2024, ``code/eval_spectral.py`` (``bandpass_filter``);
    Wang et al., CVPR 2020.

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        cutoff: fraction of the half-spectrum in [0, 1] (see :data:`SPECTRAL_CUTOFFS`).
        kind: ``"low"`` or ``"high"``.
        spectrum: ``centred_spectrum(images)`` when the caller has it already (a batch
            filtered at many cutoffs); computed here otherwise.

    Returns:
        (B, 3, H, W) filtered images in [0, 1], same dtype and device.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4); x[..., ::2] = 1.0  # vertical stripes, mean 0.5
        >>> fft_filter(x, 0.5, "low")[0, 0, 0].tolist()  # r = 1: only k in {-1, 0} kept
        [0.5, 0.5, 0.5, 0.5]
        >>> fft_filter(x, 0.5, "high")[0, 0, 0].tolist()  # the +-0.5 stripes, negatives clipped
        [0.5, 0.0, 0.5, 0.0]
    """
    check_images(images)
    if kind not in ("low", "high"):
        raise ValidationError(f"kind: expected 'low' or 'high', got {kind!r}")
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cutoff: expected a number in [0, 1], got {cutoff!r}") from exc
    if not 0.0 <= cutoff <= 1.0:
        raise ValidationError(f"cutoff: expected a number in [0, 1], got {cutoff}")
    h, w = images.shape[-2:]
    mask = spectral_mask(h, w, cutoff, kind).to(images.device)
    if spectrum is None:
        spectrum = centred_spectrum(images)
    elif spectrum.shape != images.shape:
        raise ValidationError(
            f"spectrum: expected the shape of the images {tuple(images.shape)}, got "
            f"{tuple(spectrum.shape)}"
        )
    spec = torch.fft.ifftshift(spectrum * mask, dim=(-2, -1))
    out = torch.fft.ifft2(spec).real
    return out.clamp(0.0, 1.0).to(images.dtype)


# ----------------------------------------------------------------------------- band noise


def band_centre_cpi(band: int, side: int, reference_side: int = 224) -> float:
    """Centre frequency of a noise band, in cycles per image for an image of ``side`` pixels.

    ``f_c = 1.75 * 2**band * side / reference_side``: 1.75 * 2^band cycles per image at
    ``reference_side`` (224) px, the reference's convention (band 6, pyramid level 0, is at the
    Nyquist frequency). Band b is pyramid level ``6 - b`` at every size (:func:`band_level`),
    and a pyramid level sits at a fixed number of cycles per *pixel*, so the centre scales
    proportionally with the side.

    Args:
        band: band index (0 is the lowest).
        side: the image side in pixels.
        reference_side: the side at which band b is centred at 1.75 * 2^b cycles per image.

    Returns:
        The centre frequency in cycles per image.

    Example:
        >>> band_centre_cpi(3, 224), band_centre_cpi(3, 32), band_centre_cpi(3, 32, 32)
        (14.0, 2.0, 14.0)
    """
    if isinstance(band, bool) or int(band) != band or band < 0:
        raise ValidationError(f"band: expected a non-negative integer, got {band!r}")
    if side < 1 or reference_side < 1:
        raise ValidationError(
            f"side and reference_side must be positive, got {side} and {reference_side}"
        )
    return _F0_CPI_224 * 2.0 ** int(band) * side / reference_side


def _max_pyr_height(h: int, w: int, filt: int = 5) -> int:
    """``pyrtools.pyramids.pyr_utils.max_pyr_height`` for a 2-D image (floor halving)."""
    height = 0
    while min(h, w) >= filt:
        height, h, w = height + 1, h // 2, w // 2
    return height


def pyramid_levels(h: int, w: int | None = None) -> int:
    """Number of levels of ``pyrtools.pyramids.LaplacianPyramid`` of an H x W image.

    ``max_pyr_height + 1`` for the 5-tap binomial filter: 7 at 224 px (levels of 224, 112,
    56, 28, 14, 7 and 4 pixels), 5 at 64 px, 4 at 32 px. The last level is the low-pass
    residual.

    Example:
        >>> pyramid_levels(224), pyramid_levels(64), pyramid_levels(32)
        (7, 5, 4)
    """
    w = h if w is None else w
    return _max_pyr_height(int(h), int(w)) + 1


def band_level(band: int) -> int:
    """The pyramid level of a band: ``N_BANDS - (band + 1)`` (band 6 is level 0, the finest).

    Example:
        >>> band_level(0), band_level(6)
        (6, 0)
    """
    if isinstance(band, bool) or int(band) != band or not 0 <= band < N_BANDS:
        raise ValidationError(f"band: expected an integer in 0..{N_BANDS - 1}, got {band!r}")
    return N_BANDS - (int(band) + 1)


def valid_bands(h: int, w: int | None = None, *, n_bands: int = N_BANDS) -> tuple[int, ...]:
    """The bands among ``0..n_bands-1`` that :func:`band_noise` can realise at this size.

    Band b is pyramid level ``6 - b``; it exists when the Laplacian pyramid of the image has
    that level (:func:`pyramid_levels`). All 7 bands exist from 160 px (at 224 px as in the
    reference); bands 1..6 at 80-159 px, 2..6 at 40-79 px, 3..6 at 20-39 px (at 32 px band 3
    is the 4 x 4 low-pass residual, as band 0 is at 224 px).

    Args:
        h: image height.
        w: image width (defaults to ``h``).
        n_bands: number of bands considered (at most :data:`N_BANDS`).

    Returns:
        The valid band indices, ascending.

    Example:
        >>> valid_bands(224), valid_bands(64), valid_bands(32)
        ((0, 1, 2, 3, 4, 5, 6), (2, 3, 4, 5, 6), (3, 4, 5, 6))
    """
    levels = pyramid_levels(h, w)
    return tuple(b for b in range(min(n_bands, N_BANDS)) if N_BANDS - (b + 1) < levels)


def _reflect(p: int, n: int) -> int:
    """Reflect an index about the edge samples (pyrtools' ``reflect1``)."""
    if p < 0:
        p = -p
    if p >= n:
        p = 2 * (n - 1) - p
    return p


@functools.lru_cache(maxsize=64)
def _down(n: int) -> np.ndarray:
    """(ceil(n/2), n) matrix of pyrtools' ``corrDn`` (binom5, reflect1, step 2) on one axis."""
    m = (n + 1) // 2
    d = np.zeros((m, n))
    for i in range(m):
        for t, k in enumerate(_BINOM5):
            d[i, _reflect(2 * i + t - 2, n)] += k
    return d


@functools.lru_cache(maxsize=64)
def _up(n: int) -> np.ndarray:
    """(n, ceil(n/2)) matrix of pyrtools' ``upConv`` (binom5, reflect1, step 2) on one axis.

    Zero-insertion upsampling, reflection about the edge samples, convolution with binom5.
    pyrtools' C edge handler folds one tap differently when the output has exactly 5 samples
    (its last row is ``[0, 1, 6] / 16 * sqrt 2`` instead of ``[0, 2, 6]``); that is reproduced.
    """
    m = (n + 1) // 2
    u = np.zeros((n, m))
    for r in range(n):
        for t, k in enumerate(_BINOM5):
            p = _reflect(r + t - 2, n)
            if p % 2 == 0:
                u[r, p // 2] += k
    if n == 5:
        u[4, 1] = _BINOM5[0]
    return u


@functools.lru_cache(maxsize=32)
def _level_operators(n: int, levels: int) -> tuple[np.ndarray, ...]:
    """``A_l = U_0 ... U_{l-1} D_{l-1} ... D_0`` (n x n) for l = 0..levels-1 on one axis.

    ``A_l`` is the level-l Gaussian low-pass brought back to full size; the reconstruction of
    Laplacian level l alone is ``A_l Z A_l^T - A_{l+1} Z A_{l+1}^T`` (the top level, the
    low-pass residual, is ``A_top Z A_top^T``).
    """
    ops = [np.eye(n)]
    down, up, size = np.eye(n), np.eye(n), n
    for _ in range(levels - 1):
        down = _down(size) @ down
        up = up @ _up(size)
        size = (size + 1) // 2
        ops.append(up @ down)
    return tuple(ops)


def laplacian_band(noise: torch.Tensor, level: int) -> torch.Tensor:
    """Reconstruct one level of ``pyrtools.pyramids.LaplacianPyramid(noise)``, batched.

    Equals ``LaplacianPyramid(z).recon_pyr(levels=level)`` of pyrtools (default binom5 filter,
    ``reflect1`` edges, automatic height) for each (H, W) image ``z`` of the batch, up to
    floating-point rounding (a test checks it against pyrtools). The pyramid is linear and
    separable, so each level is two products with per-axis matrices (float64).

    Args:
        noise: (B, H, W) or (H, W) float tensor.
        level: 0 (finest) .. ``pyramid_levels(H, W) - 1`` (the low-pass residual).

    Returns:
        A float64 tensor of the shape of ``noise``.

    Example:
        >>> z = torch.randn(2, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> total = sum(laplacian_band(z, lev) for lev in range(pyramid_levels(32)))
        >>> bool(torch.allclose(total, z.double()))  # the levels add up to the image
        True
    """
    h, w = noise.shape[-2:]
    levels = pyramid_levels(h, w)
    if isinstance(level, bool) or int(level) != level or not 0 <= level < levels:
        raise ValidationError(
            f"level: expected an integer in 0..{levels - 1} for a {h}x{w} image, got {level!r}"
        )
    z = noise.to(torch.float64)
    ay, ax = _level_operators(h, levels), _level_operators(w, levels)

    def smooth(lev: int) -> torch.Tensor:
        if lev == 0:  # A_0 is the identity
            return z
        my = torch.as_tensor(ay[lev], device=z.device)
        mx = torch.as_tensor(ax[lev], device=z.device)
        return my @ z @ mx.T

    out = smooth(level)
    if level < levels - 1:
        out = out - smooth(level + 1)
    return out


def pil_luma(images: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")`` of (B, 3, H, W) pixels in [0, 1], as (B, H, W) uint8 values.

    The pixels are first quantised to 8 bits (``round(255 x)``, as the reference's PIL images
    are), then ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16``, PIL's integer form of
    ``0.299 R + 0.587 G + 0.114 B``.

    Example:
        >>> pil_luma(torch.ones(1, 3, 1, 1)).item(), pil_luma(torch.zeros(1, 3, 1, 1)).item()
        (255, 0)
    """
    q = torch.round(images.double().clamp(0.0, 1.0) * 255.0).to(torch.int64)
    lum = (q[:, 0] * 19595 + q[:, 1] * 38470 + q[:, 2] * 7471 + 0x8000) >> 16
    return lum.to(torch.uint8)


def critical_band_stimulus(images: torch.Tensor) -> torch.Tensor:
    """The noise-free critical-band stimulus: grayscale, contrast 0.2 around a mean of 0.449.

    ``g = pil_luma(x) / 255``; ``s = (g - mean(g)) * 0.2 + 0.449`` per image (the reference's
    ``image = (image - image.mean()) * contrast + imagenet_mean``). Returns (B, H, W) float64.

    Example:
        >>> s = critical_band_stimulus(torch.rand(2, 3, 8, 8))
        >>> s.shape, [round(v, 3) for v in s.mean(dim=(1, 2)).tolist()]
        (torch.Size([2, 8, 8]), [0.449, 0.449])
    """
    g = pil_luma(images).to(torch.float64) / 255.0
    return (g - g.mean(dim=(-2, -1), keepdim=True)) * CB_CONTRAST + CB_MEAN


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()


def _keep_in_range(
    image: torch.Tensor, noise: torch.Tensor, sigma: float, gens: list[torch.Generator]
) -> torch.Tensor:
    """The reference's out-of-range rule; returns ``image + noise`` in [0, 1] (no clipping).

    For a pixel with ``image + noise < 0`` the image pixel becomes ``EPSILON - noise`` (the
    noisy pixel is then 0.1); for ``> 1`` it becomes ``1 - EPSILON - noise`` (0.9). Where that
    new image pixel would itself leave [0, 1], the noise pixel is redrawn as ``sigma * N(0, 1)``
    from the sample's generator, in raster order, until ``image + noise`` is in [0, 1] (this
    leaves the band; the reference accepts it as rare).
    """
    noisy = image + noise
    low, high = noisy < 0, noisy > 1
    if not bool((low | high).any()):
        return noisy
    new_low, new_high = CB_EPSILON - noise, 1.0 - CB_EPSILON - noise
    other = (low & (new_low > 1)) | (high & (new_high < 0))
    image = torch.where(low & ~other, new_low, image)
    image = torch.where(high & ~other, new_high, image)
    if bool(other.any()):
        noise = noise.clone()
        for b, i, j in other.nonzero().tolist():
            pixel, n = float(image[b, i, j]), float(noise[b, i, j])
            while not 0.0 <= pixel + n <= 1.0:
                n = float(torch.randn((), generator=gens[b], dtype=torch.float64)) * sigma
            noise[b, i, j] = n
    return image + noise


def band_noise(
    images: torch.Tensor,
    band: int,
    sigma: float,
    seeds: Any = None,
    stimulus: torch.Tensor | None = None,
) -> torch.Tensor:
    """Critical-band masking stimulus: low-contrast grayscale + band-limited Gaussian noise.

    The reference protocol (``solomon_filter`` of Subramanian et al., as run in seed 002's
    ``eval_criticalband.py``), per image:

    1. ``s = critical_band_stimulus(x)``: PIL grayscale, ``(g - mean g) * 0.2 + 0.449``.
    2. ``z = sigma * N(0, 1)`` per pixel (float64, from the sample's generator).
    3. ``n_b`` = Laplacian-pyramid level ``6 - band`` of ``z`` reconstructed alone
       (:func:`laplacian_band`; band 0 is the low-pass residual at 224 px), and
       ``noise = n_b * rms(n_6) / rms(n_b)``: the band's RMS power is equated to that of the
       finest level (band 6) of the same noise sample. (The reference's comment says "equate
       power with first noise"; its code uses ``recon_pyr(levels=0)``, the finest level, which
       holds about 0.8 of the full-band RMS: every band gets that RMS, not ``sigma``.)
    4. ``out = s + noise``; pixels pushed out of [0, 1] shift the *image* pixel so that the noisy
       pixel is 0.1 (or 0.9), redrawing the noise pixel only where that shift itself leaves
       [0, 1]. Nothing is clipped.
    5. Copied to three channels.

    ``sigma = 0`` is the noise-free stimulus (no seeds needed). Band b at ``side`` px is
    centred at :func:`band_centre_cpi` ``(b, side)`` cycles per image; the bands that exist
    at a size are :func:`valid_bands`.

    Reference: Subramanian et al., NeurIPS 2023 (``methods.py``, ``solomon_filter``);
    Gavrikov et al., CVPR 2024 (``code/eval_criticalband.py``).

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        band: octave band index 0..6 (see :func:`valid_bands`).
        sigma: noise standard deviation (see :data:`CRITICAL_BAND_SIGMAS`).
        seeds: B integer seeds, one per image; sample i draws from
            ``torch.Generator().manual_seed(seeds[i])``.
        stimulus: ``critical_band_stimulus(images)`` when the caller has it already (one batch
            under many bands and sigmas); computed here otherwise.

    Returns:
        (B, 3, H, W) images in [0, 1] (three equal channels), same dtype and device.

    Example:
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> y = band_noise(x, band=4, sigma=0.04, seeds=[0, 1])
        >>> y.shape, bool((y[:, 0] == y[:, 2]).all()), bool(y.min() >= 0 and y.max() <= 1)
        (torch.Size([2, 3, 32, 32]), True, True)
    """
    check_images(images)
    sigma = check_number(sigma, "sigma")
    b, _, h, w = images.shape
    if isinstance(band, bool) or int(band) != band or band < 0:
        raise ValidationError(f"band: expected a non-negative integer, got {band!r}")
    valid = valid_bands(h, w)
    if int(band) not in valid:
        raise ValidationError(
            f"band {band}: the Laplacian pyramid of a {h}x{w} image has "
            f"{pyramid_levels(h, w)} levels, so it has no level {N_BANDS - (int(band) + 1)} "
            f"(band b is level {N_BANDS - 1} - b); valid bands for this size: {list(valid)}"
        )
    if stimulus is None:
        stimulus = critical_band_stimulus(images)
    elif stimulus.shape != (b, h, w):
        raise ValidationError(
            f"stimulus: expected shape {(b, h, w)} (one grayscale image per input), got "
            f"{tuple(stimulus.shape)}"
        )
    stim = stimulus.to(images.device)
    if sigma == 0 or b == 0:
        out = stim
    else:
        gens = seed_generators(seeds, b)
        z = torch.stack([torch.randn(h, w, generator=g, dtype=torch.float64) for g in gens])
        z = (z * sigma).to(images.device)
        nb = laplacian_band(z, band_level(band))
        finest = nb if band_level(band) == 0 else laplacian_band(z, 0)
        nb = nb * _rms(finest) / _rms(nb).clamp(min=1e-300)
        out = _keep_in_range(stim, nb, sigma, gens)
    return out[:, None].expand(b, 3, h, w).to(images.dtype).contiguous()
