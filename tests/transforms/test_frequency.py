"""Tests of robustlens.transforms.frequency (FFT filters and one-octave band noise)."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch

import robustlens.metrics.critical_band  # noqa: F401  (the module, not the function of that name)
from robustlens.errors import ValidationError
from robustlens.transforms.frequency import (
    BAND_CENTRES_CPI_224,
    CRITICAL_BAND_SIGMAS,
    N_BANDS,
    SPECTRAL_CUTOFFS,
    band_centre_cpi,
    band_mask,
    band_noise,
    fft_filter,
    valid_bands,
)

cb_metric = sys.modules["robustlens.metrics.critical_band"]


def _images(b: int = 2, side: int = 64, seed: int = 0) -> torch.Tensor:
    """1/f-noise colour images in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(b, 3, side, side, generator=g)
    f = torch.fft.fftfreq(side)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    amp = torch.where(r > 0, 1 / r.clamp(min=1e-9), torch.zeros_like(r))
    x = torch.fft.ifft2(torch.fft.fft2(n) * amp).real
    x = x - x.amin((2, 3), keepdim=True)
    return 0.1 + 0.8 * x / x.amax((2, 3), keepdim=True)


def _numpy_reference(img: np.ndarray, cutoff: float, kind: str) -> np.ndarray:
    """Explicit loops over the fftshift-centred spectrum of one (H, W) channel."""
    h, w = img.shape
    spec = np.fft.fftshift(np.fft.fft2(img))
    mask = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            inside = abs(i - h // 2) <= cutoff * h / 2 and abs(j - w // 2) <= cutoff * w / 2
            mask[i, j] = inside if kind == "low" else not inside
    out = np.fft.ifft2(np.fft.ifftshift(spec * mask)).real
    return np.clip(out, 0, 1)


def test_cutoff_and_sigma_constants():
    assert SPECTRAL_CUTOFFS == (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
    assert CRITICAL_BAND_SIGMAS == (0.02, 0.04, 0.08, 0.16)
    assert N_BANDS == 7
    assert BAND_CENTRES_CPI_224 == (1.75, 3.5, 7.0, 14.0, 28.0, 56.0, 112.0)
    # the metric keeps its own copy (no torch import there): they must agree
    assert cb_metric.DEFAULT_SIGMAS == CRITICAL_BAND_SIGMAS
    assert cb_metric.DEFAULT_BANDS_CPI == BAND_CENTRES_CPI_224


def test_fft_filter_hand_computed_8x8():
    # mean 0.5 + cos at 1 cycle/image (kept by cutoff 0.5: |k| <= 2) + cos at 3 cycles (removed)
    n = np.arange(8)
    low_part = 0.5 + 0.2 * np.cos(2 * np.pi * 1 * n / 8)[None, :] * np.ones((8, 1))
    high_part = 0.1 * np.cos(2 * np.pi * 3 * n / 8)[:, None] * np.ones((1, 8))
    img = torch.tensor(low_part + high_part, dtype=torch.float32).expand(1, 3, 8, 8)
    low = fft_filter(img, 0.5, "low")[0, 0].double().numpy()
    high = fft_filter(img, 0.5, "high")[0, 0].double().numpy()
    np.testing.assert_allclose(low, low_part, atol=1e-6)
    np.testing.assert_allclose(high, np.clip(high_part, 0, 1), atol=1e-6)


@pytest.mark.parametrize("kind", ["low", "high"])
@pytest.mark.parametrize("cutoff", [0.0, 0.01, 0.26, 0.5, 0.75, 0.99, 1.0])
def test_fft_filter_matches_numpy_reference(kind, cutoff):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    out = fft_filter(x, cutoff, kind)
    for c in range(3):
        ref = _numpy_reference(x[0, c].double().numpy(), cutoff, kind)
        np.testing.assert_allclose(out[0, c].double().numpy(), ref, atol=1e-6)


def test_fft_filter_non_square_matches_reference():
    x = torch.rand(1, 3, 6, 10, generator=torch.Generator().manual_seed(4))
    out = fft_filter(x, 0.4, "low")
    ref = _numpy_reference(x[0, 1].double().numpy(), 0.4, "low")
    np.testing.assert_allclose(out[0, 1].double().numpy(), ref, atol=1e-6)


def test_lowpass_099_is_near_identity_and_highpass_is_near_zero():
    x = _images()
    resid = fft_filter(x, 0.99, "low") - x  # only the Nyquist row and column are removed
    assert float(resid.pow(2).mean()) < 0.01 * float(x.var())
    assert float(resid.abs().mean()) < 0.01
    assert float((fft_filter(x, 1.0, "low") - x).abs().max()) < 1e-5
    const = torch.full((2, 3, 32, 32), 0.7)
    assert float(fft_filter(const, 0.01, "high").abs().max()) < 1e-5
    assert float(fft_filter(x, 0.99, "high").pow(2).mean()) < 1e-4
    # and the low-pass of a tiny cutoff keeps only the mean (DC)
    torch.testing.assert_close(
        fft_filter(x, 0.0, "low"),
        x.mean(dim=(-2, -1), keepdim=True).expand_as(x),
        atol=1e-5,
        rtol=0,
    )


def test_fft_filter_energy_is_monotone_in_cutoff():
    x = _images()
    lows = [float((fft_filter(x, c, "low") - x).pow(2).mean()) for c in SPECTRAL_CUTOFFS]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(lows))
    highs = [float(fft_filter(x, c, "high").pow(2).mean()) for c in SPECTRAL_CUTOFFS]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(highs))


def test_fft_filter_validation():
    x = _images(b=1, side=8)
    with pytest.raises(ValidationError, match="'low' or 'high'"):
        fft_filter(x, 0.5, "band")
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        fft_filter(x, 1.5)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        fft_filter(x * 2 - 1, 0.5)


# ----------------------------------------------------------------------------- band noise


def _radial_cpi(side: int) -> np.ndarray:
    k = np.fft.fftfreq(side, d=1.0 / side)
    return np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


@pytest.mark.parametrize(("side", "band"), [(64, 2), (64, 4), (64, 6), (224, 0), (224, 3)])
def test_band_noise_power_lies_in_its_octave(side, band):
    x = _images(b=2, side=side)
    sigma = 0.02  # small enough that nothing is clipped
    noisy = band_noise(x, band, sigma, seeds=[1, 2])
    base = band_noise(x, band, 0.0)
    r = (noisy - base)[:, 0].double().numpy()
    assert abs(r.std() - sigma) < 1e-3
    power = np.abs(np.fft.fft2(r)) ** 2
    f = _radial_cpi(side)
    fc = band_centre_cpi(band, side)
    assert fc == pytest.approx(1.75 * 2**band * side / 224)
    in_band = (f >= fc / math.sqrt(2) - 1e-9) & (f < fc * math.sqrt(2) + 1e-9)
    frac = power[:, in_band].sum() / power.sum()
    assert frac > 0.99
    # the power-weighted mean log-frequency is within half an octave of the centre
    w = power.sum(axis=0)
    centre = np.sum(w[f > 0] * np.log2(f[f > 0])) / np.sum(w[f > 0])
    assert abs(centre - math.log2(fc)) < 0.5


def test_band_noise_base_is_low_contrast_gray():
    x = _images(b=2, side=32)
    y = band_noise(x, 4, 0.0)
    g = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    ref = 0.5 + 0.2 * (g - g.mean(dim=(-2, -1), keepdim=True))
    for c in range(3):
        torch.testing.assert_close(y[:, c], ref, atol=1e-6, rtol=0)


def test_band_noise_is_seeded_per_sample():
    x = _images(b=3, side=32)
    seeds = torch.tensor([5, 6, 7])
    batch = band_noise(x, 3, 0.08, seeds)
    alone = torch.cat([band_noise(x[i : i + 1], 3, 0.08, seeds[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)
    assert not torch.allclose(batch, band_noise(x, 3, 0.08, seeds + 1))
    with pytest.raises(ValidationError, match="seeds"):
        band_noise(x, 3, 0.08)


def test_band_validity_depends_on_size():
    assert valid_bands(224) == tuple(range(7))
    assert valid_bands(32) == (2, 3, 4, 5, 6)  # 0.25 and 0.5 cycles/image do not exist
    assert valid_bands(32, reference_side=32) == (0, 1, 2, 3)  # 28 cpi > Nyquist (16)
    x = _images(b=1, side=32)
    with pytest.raises(ValidationError, match=r"no DFT frequency.*valid bands.*\[2, 3, 4, 5, 6\]"):
        band_noise(x, 0, 0.04, [0])
    with pytest.raises(ValidationError, match="Nyquist"):
        band_noise(x, 4, 0.04, [0], reference_side=32)
    with pytest.raises(ValidationError, match="Nyquist"):
        band_mask(224, 224, 7)
    with pytest.raises(ValidationError, match="non-negative integer"):
        band_noise(x, -1, 0.04, [0])
    with pytest.raises(ValidationError, match="sigma"):
        band_noise(x, 3, -0.1, [0])


def test_bands_do_not_overlap():
    masks = [band_mask(64, 64, b) for b in valid_bands(64)]
    total = torch.stack(masks).sum(0)
    assert int(total.max()) == 1
    assert not bool(total[0, 0])  # DC is in no band
