"""Frequency-domain views: FFT low/high-pass filters and one-octave band-limited noise.

* :func:`fft_filter` feeds the spectral-bias measure (``robustlens.metrics.spectral``).
* :func:`band_noise` feeds the critical-band measure (``robustlens.metrics.critical_band``).

References: P. Gavrikov, J. Lukasik, S. Jung, R. Geiger, B. Lorenz, J. Keuper, M. Keuper,
"Can Biases in ImageNet Models Explain Generalization?", CVPR 2024 (spectral bias, critical
band); H. Wang, X. Wu, Z. Huang, E. P. Xing, "High-frequency Component Helps Explain the
Generalization of Convolutional Neural Networks", CVPR 2020 (FFT filtering); A. Subramanian,
E. Sizikova, N. J. Majaj, D. G. Pelli, "Spatial-frequency channels, shape bias, and adversarial
robustness", NeurIPS 2023 (critical-band masking).

Inputs are float pixels ``(B, 3, H, W)`` in [0, 1]; outputs keep shape, dtype and device.
"""

from __future__ import annotations

from typing import Any

import torch

from robustlens._validation import check_number
from robustlens.errors import ValidationError
from robustlens.transforms.corruptions import check_images, seed_generators

__all__ = [
    "BAND_CENTRES_CPI_224",
    "CRITICAL_BAND_SIGMAS",
    "N_BANDS",
    "SPECTRAL_CUTOFFS",
    "band_centre_cpi",
    "band_mask",
    "band_noise",
    "fft_filter",
    "luma",
    "valid_bands",
]

SPECTRAL_CUTOFFS: tuple[float, ...] = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
CRITICAL_BAND_SIGMAS: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)
N_BANDS = 7
_F0_CPI_224 = 1.75  # centre of band 0 in cycles per image at 224 px
BAND_CENTRES_CPI_224: tuple[float, ...] = tuple(_F0_CPI_224 * 2.0**b for b in range(N_BANDS))
_LUMA = (0.299, 0.587, 0.114)
_CONTRAST = 0.2
_MID_GRAY = 0.5


def luma(images: torch.Tensor) -> torch.Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of (B, 3, H, W) pixels, shape (B, 1, H, W).

    Example:
        >>> luma(torch.ones(1, 3, 2, 2)).shape, round(float(luma(torch.ones(1, 3, 1, 1))), 6)
        (torch.Size([1, 1, 2, 2]), 1.0)
    """
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


def _int_freqs(n: int, device: Any = None) -> torch.Tensor:
    """Signed integer DFT frequencies (cycles per image) in unshifted FFT order."""
    return torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64)


def fft_filter(images: torch.Tensor, cutoff: float, kind: str = "low") -> torch.Tensor:
    """Low- or high-pass filter each channel with a centred square mask in the 2-D spectrum.

    With ``X = fftshift(fft2(x))`` per image and channel and frequency offsets ``k_y, k_x`` from
    the centre (integer cycles per image, ``-H/2 <= k_y < H/2``), the mask is::

        inside(k) = |k_y| <= cutoff * H / 2  and  |k_x| <= cutoff * W / 2
        low:  keep X where inside;   high: keep X where not inside
        out = clip(real(ifft2(ifftshift(X * mask))), 0, 1)

    The square is symmetric (k and -k are kept together), so the filtered image is real up to
    rounding. ``cutoff=1`` low-pass is the identity; ``cutoff=0`` low-pass keeps only the mean
    (DC); high-pass outputs are zero-mean before clipping, so clipping drops their negative half
    (as in the reference evaluation code).

    Note on conventions: this is the DESIGN.md definition. The public code of Gavrikov et al.
    (``eval_spectral.py``) removes, for a *high-pass* cutoff ``c``, the square of half-side
    ``1 - c`` and uses the asymmetric slice ``[centre - r, centre + r)``; its high-pass curve
    therefore runs in the opposite direction.

    Reference: Wang et al., CVPR 2020; Gavrikov et al., CVPR 2024 (spectral bias).

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        cutoff: fraction of the half-spectrum in [0, 1] (see :data:`SPECTRAL_CUTOFFS`).
        kind: ``"low"`` or ``"high"``.

    Returns:
        (B, 3, H, W) filtered images in [0, 1], same dtype and device.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4); x[..., ::2] = 1.0  # vertical stripes, mean 0.5
        >>> fft_filter(x, 0.3, "low")[0, 0, 0].tolist()  # only the mean survives
        [0.5, 0.5, 0.5, 0.5]
        >>> fft_filter(x, 0.3, "high")[0, 0, 0].tolist()  # +-0.5 stripes, negatives clipped
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
    ky = _int_freqs(h, images.device).abs()[:, None]
    kx = _int_freqs(w, images.device).abs()[None, :]
    inside = (ky <= cutoff * h / 2) & (kx <= cutoff * w / 2)
    mask = inside if kind == "low" else ~inside
    spec = torch.fft.fft2(images.float())
    out = torch.fft.ifft2(spec * mask.to(spec.real.dtype)).real
    return out.clamp(0.0, 1.0).to(images.dtype)


# ----------------------------------------------------------------------------- band noise


def band_centre_cpi(band: int, side: int, reference_side: int = 224) -> float:
    """Centre frequency of a noise band, in cycles per image for an image of ``side`` pixels.

    ``f_c = 1.75 * 2**band * side / reference_side``: 1.75 * 2^band cycles per image at
    ``reference_side`` (224) px, scaled proportionally with the image side (a constant number of
    cycles per *pixel*, 1.75 * 2^band / 224). Band 6 is at the Nyquist frequency for every side.

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


def _band_index(h: int, w: int, reference_side: int, device: Any = None) -> torch.Tensor:
    """Octave band of every DFT frequency (unshifted order); -1 marks DC.

    ``index = floor(log2(nu / nu_0) + 1/2)`` with ``nu`` the radial frequency in cycles per
    pixel and ``nu_0 = 1.75 / reference_side`` the centre of band 0, i.e. band b is the annulus
    ``nu_0 2^b / sqrt(2) <= nu < nu_0 2^b sqrt(2)``. A tiny epsilon sends frequencies exactly on
    a band edge (which happen on square grids) to the upper band, deterministically.
    """
    fy = _int_freqs(h, device)[:, None] / h
    fx = _int_freqs(w, device)[None, :] / w
    nu = torch.sqrt(fy**2 + fx**2)
    nu0 = _F0_CPI_224 / reference_side
    idx = torch.floor(torch.log2(nu.clamp(min=1e-12) / nu0) + 0.5 + 1e-9)
    return torch.where(nu > 0, idx, torch.full_like(idx, -1.0)).long()


def band_mask(h: int, w: int, band: int, reference_side: int = 224) -> torch.Tensor:
    """Boolean (H, W) mask, in unshifted FFT order, of the DFT frequencies in one octave band.

    Raises :class:`~robustlens.errors.ValidationError` if the band's centre frequency is above
    the Nyquist frequency (0.5 cycles per pixel) or if no DFT frequency of an H x W image falls
    in the band (e.g. bands 0 and 1 at 32 px, whose centres are 0.25 and 0.5 cycles per image).

    Args:
        h: image height.
        w: image width.
        band: band index.
        reference_side: see :func:`band_centre_cpi`.

    Returns:
        A bool tensor of shape (H, W).

    Example:
        >>> int(band_mask(32, 32, 2).sum())  # the 4 frequencies at 1 cycle per image
        4
    """
    centre_cpp = band_centre_cpi(band, 1, reference_side)  # cycles per pixel
    valid = valid_bands(h, w, reference_side=reference_side, n_bands=max(N_BANDS, band + 1))
    if centre_cpp > 0.5 + 1e-12:
        raise ValidationError(
            f"band {band}: centre {centre_cpp * min(h, w):.3g} cycles per image is above the "
            f"Nyquist frequency of a {h}x{w} image ({min(h, w) / 2:g} cycles per image); "
            f"valid bands for this size: {list(valid)}"
        )
    mask = _band_index(h, w, reference_side) == band
    if not bool(mask.any()):
        raise ValidationError(
            f"band {band}: no DFT frequency of a {h}x{w} image lies in the octave around "
            f"{centre_cpp * min(h, w):.3g} cycles per image (the lowest non-zero frequency is 1 "
            f"cycle per image); valid bands for this size: {list(valid)}"
        )
    return mask


def valid_bands(
    h: int, w: int | None = None, *, reference_side: int = 224, n_bands: int = N_BANDS
) -> tuple[int, ...]:
    """The bands among ``0..n_bands-1`` that :func:`band_noise` can realise at this size.

    A band is valid when its centre is at or below Nyquist and at least one DFT frequency of
    the image falls in its octave.

    Args:
        h: image height.
        w: image width (defaults to ``h``).
        reference_side: see :func:`band_centre_cpi`.
        n_bands: number of bands considered.

    Returns:
        The valid band indices, ascending.

    Example:
        >>> valid_bands(224), valid_bands(32), valid_bands(32, reference_side=32)
        ((0, 1, 2, 3, 4, 5, 6), (2, 3, 4, 5, 6), (0, 1, 2, 3))
    """
    w = h if w is None else w
    idx = _band_index(h, w, reference_side)
    present = set(idx[idx >= 0].unique().tolist())
    nyq_ok = [b for b in range(n_bands) if band_centre_cpi(b, 1, reference_side) <= 0.5 + 1e-12]
    return tuple(b for b in nyq_ok if b in present)


def band_noise(
    images: torch.Tensor,
    band: int,
    sigma: float,
    seeds: Any = None,
    *,
    reference_side: int = 224,
) -> torch.Tensor:
    """Low-contrast grayscale image plus Gaussian noise limited to one octave band.

    For each image (luma ``g = .299 R + .587 G + .114 B``)::

        base  = 0.5 + 0.2 * (g - mean(g))                   # contrast 20 %, centred on mid-gray
        n     = real(ifft2(fft2(z) * M_band)),  z ~ N(0, 1) per pixel (the sample's generator)
        noise = sigma * n / rms(n)                          # exactly std sigma per image
        out   = clip(base + noise, 0, 1), copied to 3 channels

    ``M_band`` is an ideal FFT annulus one octave wide: radial frequencies
    ``f_c / sqrt(2) <= f < f_c * sqrt(2)`` with ``f_c`` from :func:`band_centre_cpi`
    (1.75 * 2^band cycles per image at 224 px, proportional to the side otherwise). The bands
    tile the spectrum without overlap. Clipping (only at large sigma) slightly leaks power
    outside the band. ``sigma=0`` gives the noise-free baseline view (seeds not needed).

    Differences from the reference code (Gavrikov et al., ``eval_criticalband.py``, after
    Subramanian et al.): there the noise band is a Laplacian-pyramid level (a smooth, roughly
    one-octave filter) rescaled to the RMS of the unfiltered noise, the image mean is moved to
    0.449, and out-of-range pixels are shifted or resampled instead of clipped.

    Reference: Subramanian et al., NeurIPS 2023; Gavrikov et al., CVPR 2024.

    Args:
        images: (B, 3, H, W) float pixels in [0, 1].
        band: octave band index (see :func:`valid_bands`).
        sigma: noise standard deviation in pixel units (see :data:`CRITICAL_BAND_SIGMAS`).
        seeds: B integer seeds, one per image; sample i draws ``z`` from
            ``torch.Generator().manual_seed(seeds[i])``.
        reference_side: see :func:`band_centre_cpi`.

    Returns:
        (B, 3, H, W) images in [0, 1] (three equal channels), same dtype and device.

    Example:
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> y = band_noise(x, band=4, sigma=0.04, seeds=[0, 1])
        >>> y.shape, bool((y[:, 0] == y[:, 2]).all())
        (torch.Size([2, 3, 32, 32]), True)
        >>> base = band_noise(x, band=4, sigma=0.0)
        >>> round(float((y - base).std()), 2)
        0.04
    """
    check_images(images)
    sigma = check_number(sigma, "sigma")
    b, _, h, w = images.shape
    mask = band_mask(h, w, band, reference_side)  # validates the band for this size
    g = luma(images.float())
    base = _MID_GRAY + _CONTRAST * (g - g.mean(dim=(-2, -1), keepdim=True))
    if sigma == 0 or b == 0:
        out = base
    else:
        gens = seed_generators(seeds, b)
        z = torch.stack([torch.randn(h, w, generator=gen, dtype=torch.float64) for gen in gens])
        n = torch.fft.ifft2(torch.fft.fft2(z) * mask.to(torch.float64)).real
        # DC is outside every band, so n has zero mean and its RMS is its standard deviation.
        n = n / n.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp(min=1e-12)
        out = base + (sigma * n).to(base)[:, None]
    return out.clamp(0.0, 1.0).expand(b, 3, h, w).to(images.dtype).contiguous()
