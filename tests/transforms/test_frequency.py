"""Tests of robustlens.transforms.frequency (FFT filters and Laplacian-pyramid band noise)."""

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
    CB_EPSILON,
    CRITICAL_BAND_SIGMAS,
    N_BANDS,
    SPECTRAL_CUTOFFS,
    band_centre_cpi,
    band_level,
    band_noise,
    centred_spectrum,
    critical_band_stimulus,
    fft_filter,
    laplacian_band,
    luma,
    pil_luma,
    pyramid_levels,
    spectral_mask,
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


def _numpy_bandpass(img: np.ndarray, cutoff: float, lowpass: bool) -> np.ndarray:
    """Seed 002's ``bandpass_filter`` (eval_spectral.py) on one (C, H, W) image, in numpy."""
    fft = np.fft.fftshift(np.fft.fft2(img), axes=(-2, -1))
    c = cutoff if lowpass else 1 - cutoff
    h, w = fft.shape[-2:]
    cy, cx = h // 2, w // 2
    ry, rx = int(c * cy), int(c * cx)
    mask = np.zeros(fft.shape) if lowpass else np.ones(fft.shape)
    mask[:, cy - ry : cy + ry, cx - rx : cx + rx] = 1 if lowpass else 0
    out = np.fft.ifft2(np.fft.ifftshift(fft * mask, axes=(-2, -1))).real
    return np.clip(out, 0, 1)


def test_cutoff_and_sigma_constants():
    assert SPECTRAL_CUTOFFS == (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
    assert CRITICAL_BAND_SIGMAS == (0.02, 0.04, 0.08, 0.16)
    assert N_BANDS == 7
    assert BAND_CENTRES_CPI_224 == (1.75, 3.5, 7.0, 14.0, 28.0, 56.0, 112.0)
    # the metric keeps its own copy (no torch import there): they must agree
    assert cb_metric.DEFAULT_SIGMAS == CRITICAL_BAND_SIGMAS
    assert (0.0, *CRITICAL_BAND_SIGMAS) == cb_metric.NOISE_SDS
    assert cb_metric.DEFAULT_BANDS_CPI == BAND_CENTRES_CPI_224


# ----------------------------------------------------------------------------- FFT filter


def _kept(mask: torch.Tensor) -> set[tuple[int, int]]:
    """The (k_y, k_x) frequencies a shifted 8x8 mask keeps (k = index - 4)."""
    return {(i - 4, j - 4) for i, j in mask.nonzero().tolist()}


def test_spectral_masks_hand_worked_8x8():
    # side 8: centre 4, shifted index i is frequency k = i - 4 in -4..3; r = int(c' * 4)
    every = set(itertools.product(range(-4, 4), repeat=2))
    # low-pass 0.25: r = 1, slice [3, 5): k in {-1, 0} on each axis (not +1)
    assert _kept(spectral_mask(8, 8, 0.25, "low")) == set(itertools.product((-1, 0), repeat=2))
    # low-pass 0.5: r = 2, slice [2, 6): k in {-2, -1, 0, 1}
    low_half = set(itertools.product((-2, -1, 0, 1), repeat=2))
    assert _kept(spectral_mask(8, 8, 0.5, "low")) == low_half
    # high-pass 0.25: 1 - 0.25 = 0.75, r = 3, removes [1, 7): k in -3..2 on both axes; the
    # survivors have k_y or k_x in {-4, 3}: the outermost ring only (28 of 64)
    high_q = {k for k in every if k[0] in (-4, 3) or k[1] in (-4, 3)}
    assert _kept(spectral_mask(8, 8, 0.25, "high")) == high_q and len(high_q) == 28
    # high-pass 0.5: r = 2, removes the low-pass-0.5 square: 48 frequencies survive
    assert _kept(spectral_mask(8, 8, 0.5, "high")) == every - low_half
    assert len(every - low_half) == 48


def test_fft_filter_hand_computed_8x8():
    # 0.5 + 0.2 cos(2 pi x / 8) + 0.1 cos(2 pi 3 y / 8)
    n = np.arange(8)
    one = 0.2 * np.cos(2 * np.pi * n / 8)[None, :] * np.ones((8, 1))  # k_x = +-1
    three = 0.1 * np.cos(2 * np.pi * 3 * n / 8)[:, None] * np.ones((1, 8))  # k_y = +-3
    img = torch.tensor(0.5 + one + three, dtype=torch.float32).expand(1, 3, 8, 8)
    # low 0.25 keeps k_x = -1 but not +1: the cosine keeps half its amplitude
    low = fft_filter(img, 0.25, "low")[0, 0].double().numpy()
    np.testing.assert_allclose(low, 0.5 + one / 2, atol=1e-6)
    # low 0.5 keeps k = -1 and +1 (and neither -3 nor 3)
    low = fft_filter(img, 0.5, "low")[0, 0].double().numpy()
    np.testing.assert_allclose(low, 0.5 + one, atol=1e-6)
    # high 0.25 keeps k_y = +3 (ring) but not -3, nor the mean: half the k=3 cosine, clipped
    high = fft_filter(img, 0.25, "high")[0, 0].double().numpy()
    np.testing.assert_allclose(high, np.clip(three / 2, 0, 1), atol=1e-6)
    # high 0.5 keeps both +-3: the whole k=3 cosine, clipped
    high = fft_filter(img, 0.5, "high")[0, 0].double().numpy()
    np.testing.assert_allclose(high, np.clip(three, 0, 1), atol=1e-6)


@pytest.mark.parametrize("kind", ["low", "high"])
@pytest.mark.parametrize("cutoff", [0.0, 0.01, 0.25, 0.26, 0.5, 0.75, 0.99, 1.0])
def test_fft_filter_matches_the_reference_code(kind, cutoff):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    out = fft_filter(x, cutoff, kind)
    ref = _numpy_bandpass(x[0].double().numpy(), cutoff, kind == "low")
    np.testing.assert_allclose(out[0].double().numpy(), ref, atol=1e-6)


@pytest.mark.parametrize(("h", "w"), [(6, 10), (7, 9), (32, 32), (224, 224)])
@pytest.mark.parametrize("cutoff", [0.1, 0.3, 0.7])
def test_fft_filter_non_square_and_odd_sizes_match_the_reference_code(h, w, cutoff):
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(4))
    for kind in ("low", "high"):
        ref = _numpy_bandpass(x[0].double().numpy(), cutoff, kind == "low")
        np.testing.assert_allclose(fft_filter(x, cutoff, kind)[0].double().numpy(), ref, atol=2e-6)


def test_decimal_cutoffs_give_the_reference_masks_at_224():
    # the reference iterates np.arange(0.1, 0.99, 0.1) (0.30000000000000004, ...)
    ref = [0.01, *np.arange(0.1, 0.99, 0.1), 0.99]
    for c_ref, c in zip(ref, SPECTRAL_CUTOFFS, strict=True):
        for kind in ("low", "high"):
            torch.testing.assert_close(
                spectral_mask(224, 224, float(c_ref), kind), spectral_mask(224, 224, c, kind)
            )


def test_identities_and_extremes():
    x = _images()
    # c = 1: low-pass keeps [0, side), high-pass removes a square of half-side 0: identities
    assert float((fft_filter(x, 1.0, "low") - x).abs().max()) < 1e-5
    assert float((fft_filter(x, 1.0, "high") - x).abs().max()) < 1e-5
    # high-pass 0.99 removes int(0.01 * 32) = 0: the identity too; low-pass 0 keeps nothing
    assert float((fft_filter(x, 0.99, "high") - x).abs().max()) < 1e-5
    assert float(fft_filter(x, 0.0, "low").abs().max()) == 0.0
    # high-pass 0.01 removes the mean, so a constant image becomes 0
    const = torch.full((2, 3, 32, 32), 0.7)
    assert float(fft_filter(const, 0.01, "high").abs().max()) < 1e-5
    # low-pass 0.99 drops only the outermost frequencies (r = 31 of 32)
    resid = fft_filter(x, 0.99, "low") - x
    assert float(resid.pow(2).mean()) < 0.01 * float(x.var())


def test_fft_filter_is_monotone_in_cutoff():
    x = _images()
    # a larger low-pass cutoff keeps more: the residual shrinks
    lows = [float((fft_filter(x, c, "low") - x).pow(2).mean()) for c in SPECTRAL_CUTOFFS]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(lows))
    # a larger high-pass cutoff removes a smaller square (1 - c): the residual shrinks too
    highs = [float((fft_filter(x, c, "high") - x).pow(2).mean()) for c in SPECTRAL_CUTOFFS]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(highs))
    # and high-pass 0.1 keeps only the outermost tenth: almost nothing of a 1/f image
    assert float(fft_filter(x, 0.1, "high").pow(2).mean()) < 1e-3


def test_fft_filter_validation():
    x = _images(b=1, side=8)
    with pytest.raises(ValidationError, match="'low' or 'high'"):
        fft_filter(x, 0.5, "band")
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        fft_filter(x, 1.5)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        fft_filter(x * 2 - 1, 0.5)
    with pytest.raises(ValidationError, match="'low' or 'high'"):
        spectral_mask(8, 8, 0.5, "band")


# ----------------------------------------------------------------------------- band noise


def test_pyramid_levels_and_bands_per_size():
    # pyrtools' height: 224 -> 112, 56, 28, 14, 7, 4 (7 levels); band b is level 6 - b
    assert pyramid_levels(224) == 7 and pyramid_levels(64) == 5 and pyramid_levels(32) == 4
    assert [band_level(b) for b in range(7)] == [6, 5, 4, 3, 2, 1, 0]
    assert valid_bands(224) == tuple(range(7))
    assert valid_bands(160) == tuple(range(7))
    assert valid_bands(159) == valid_bands(80) == (1, 2, 3, 4, 5, 6)
    assert valid_bands(64) == (2, 3, 4, 5, 6)
    assert valid_bands(32) == valid_bands(20) == (3, 4, 5, 6)
    assert valid_bands(32, 224) == (3, 4, 5, 6)  # the smaller side decides
    assert band_centre_cpi(6, 224) == 112.0 and band_centre_cpi(3, 32) == 2.0


def test_laplacian_levels_add_up_to_the_noise():
    z = torch.randn(3, 40, 56, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    total = sum(laplacian_band(z, lev) for lev in range(pyramid_levels(40, 56)))
    torch.testing.assert_close(total, z, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("h", "w"), [(224, 224), (32, 32), (64, 64), (160, 160), (48, 80)])
def test_laplacian_band_equals_pyrtools(h, w):
    pt = pytest.importorskip("pyrtools")
    z = np.random.default_rng(h * w).standard_normal((h, w))
    pyr = pt.pyramids.LaplacianPyramid(z)
    assert pyr.num_scales == pyramid_levels(h, w)
    for lev in range(pyr.num_scales):
        mine = laplacian_band(torch.tensor(z), lev).numpy()
        np.testing.assert_allclose(mine, pyr.recon_pyr(levels=lev), rtol=0, atol=1e-12)


def _stimulus_and_noise(x: torch.Tensor, band: int, sigma: float, seeds: list[int]):
    """The noise-free stimulus and the power-equated band noise that band_noise adds."""
    stim = critical_band_stimulus(x)
    h, w = x.shape[-2:]
    z = torch.stack(
        [
            torch.randn(h, w, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
            for s in seeds
        ]
    )
    z = z * sigma
    nb, n0 = laplacian_band(z, band_level(band)), laplacian_band(z, 0)

    def rms(t: torch.Tensor) -> torch.Tensor:
        return t.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()

    return stim, z, nb * rms(n0) / rms(nb)


def _reference_solomon(gray_u8: np.ndarray, z: np.ndarray, freq: int) -> np.ndarray:
    """The reference ``solomon_filter`` for one grayscale uint8 image and a given noise draw
    (pyrtools pyramid; the redraw branch is not reached in the tests that use it)."""
    pt = pytest.importorskip("pyrtools")
    image = gray_u8 / 255.0
    image = (image - image.mean()) * 0.2 + 0.449
    pyr = pt.pyramids.LaplacianPyramid(z)
    recon = pyr.recon_pyr(levels=7 - (freq + 1))
    first = pyr.recon_pyr(levels=0)
    sf = recon * np.sqrt(np.mean(first**2)) / np.sqrt(np.mean(recon**2))
    noisy = image + sf
    if noisy.min() < 0 or noisy.max() > 1:
        for i in range(noisy.shape[0]):
            for j in range(noisy.shape[1]):
                if noisy[i, j] < 0:
                    new = 0.1 - sf[i, j]
                    assert not new > 1, "redraw branch"
                    image[i, j] = new
                elif noisy[i, j] > 1:
                    new = 0.9 - sf[i, j]
                    assert not new < 0, "redraw branch"
                    image[i, j] = new
        noisy = image + sf
    return noisy.astype(np.float32)


@pytest.mark.parametrize(("side", "band", "sigma"), [(224, 0, 0.16), (224, 5, 0.08), (32, 6, 0.16)])
def test_band_noise_equals_the_reference_protocol(side, band, sigma):
    pytest.importorskip("pyrtools")
    pil = pytest.importorskip("PIL.Image")
    x = torch.round(_images(b=2, side=side, seed=side + band) * 255) / 255  # 8-bit, as decoded
    seeds = [11, 12]
    y = band_noise(x, band, sigma, seeds)
    _, z, _ = _stimulus_and_noise(x, band, sigma, seeds)
    for i in range(2):
        rgb = np.round(x[i].permute(1, 2, 0).double().numpy() * 255).astype(np.uint8)
        gray = np.asarray(pil.fromarray(rgb).convert("L"), dtype=np.uint8)
        np.testing.assert_array_equal(pil_luma(x[i : i + 1])[0].numpy(), gray)
        ref = _reference_solomon(gray, z[i].numpy(), band)
        np.testing.assert_allclose(y[i, 0].numpy(), ref, rtol=0, atol=1e-6)


def _radial_cpi(side: int) -> np.ndarray:
    k = np.fft.fftfreq(side, d=1.0 / side)
    return np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


@pytest.mark.parametrize("side", [224, 64])
def test_band_noise_power_lies_in_its_octave(side):
    """Radial power spectrum of each band's noise.

    Band 6 (pyramid level 0, the finest) has most of its power in the octave around its
    nominal centre ``f_c = band_centre_cpi`` (the Nyquist frequency). A band-pass level l >= 1
    holds the frequencies between the Nyquist frequencies of levels l + 1 and l, smoothed by
    the binomial filters on the way back up: most of its power lies in the octave centred one
    octave *below* the reference's nominal ``1.75 * 2^b`` (``[f_c / 2 sqrt 2, f_c / sqrt 2)``),
    and about three quarters of it within the octave and a half ``[f_c / 2 sqrt 2, f_c sqrt 2)``.
    """
    x = _images(b=32, side=side)
    f = _radial_cpi(side)
    residual_band = valid_bands(side)[0]  # the top level is a low-pass, not a band
    centres = []
    for band in valid_bands(side):
        _, _, noise = _stimulus_and_noise(x, band, 0.04, list(range(32)))
        power = (np.abs(np.fft.fft2(noise.numpy())) ** 2).sum(axis=0)
        fc = band_centre_cpi(band, side)

        def frac(lo: float, hi: float, power=power) -> float:
            return power[(f >= lo) & (f < hi)].sum() / power.sum()

        nz = f > 0
        centres.append(np.sum(power[nz] * np.log2(f[nz])) / np.sum(power[nz]))
        if band == residual_band:
            continue
        if band == 6:
            assert frac(fc / math.sqrt(2), fc * math.sqrt(2)) > 0.6
        else:
            assert frac(fc / 2 / math.sqrt(2), fc / math.sqrt(2)) > 0.5
        assert frac(fc / 2 / math.sqrt(2), fc * math.sqrt(2)) > 0.65
    # and the bands climb in frequency, band after band
    assert all(b > a + 0.25 for a, b in itertools.pairwise(centres)), centres


def test_band_noise_has_equal_rms_power_in_every_band():
    # every band's noise is scaled to the RMS of the finest level of the same noise draw
    x = _images(b=2, side=224)
    rms = []
    for band in range(7):
        stim, _, noise = _stimulus_and_noise(x, band, 0.02, [3, 4])
        y = band_noise(x, band, 0.02, [3, 4])[:, 0].double()
        torch.testing.assert_close(y, (stim + noise).float().double(), atol=1e-6, rtol=0)
        rms.append(noise.pow(2).mean(dim=(-2, -1)).sqrt())
    for r in rms[1:]:
        torch.testing.assert_close(r, rms[0], atol=1e-12, rtol=0)
    # which is that of level 0 of white noise: about 0.94 sigma
    assert 0.9 * 0.02 < float(rms[0].mean()) < 0.98 * 0.02


def test_band_noise_base_is_the_low_contrast_grayscale_stimulus():
    x = _images(b=2, side=32)
    y = band_noise(x, 4, 0.0)
    q = torch.round(x * 255).to(torch.int64)
    lum = (q[:, 0] * 19595 + q[:, 1] * 38470 + q[:, 2] * 7471 + 0x8000) >> 16  # PIL "L"
    g = lum.double() / 255
    ref = (g - g.mean(dim=(-2, -1), keepdim=True)) * 0.2 + 0.449
    for c in range(3):
        torch.testing.assert_close(y[:, c].double(), ref, atol=1e-6, rtol=0)
    assert y.mean(dim=(-2, -1)).sub(0.449).abs().max() < 1e-6


def test_out_of_range_pixels_shift_the_image_pixel_not_clip():
    x = _images(b=2, side=64)
    seeds = [5, 6]
    stim, _, noise = _stimulus_and_noise(x, 6, 0.16, seeds)
    noisy = stim + noise
    low, high = noisy < 0, noisy > 1
    assert int(low.sum()) > 0 and int(high.sum()) > 0  # the case is exercised
    y = band_noise(x, 6, 0.16, seeds)[:, 0].double()
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    # the image pixel moved so that the noisy pixel sits EPSILON inside the range
    torch.testing.assert_close(y[low], torch.full_like(y[low], CB_EPSILON), atol=1e-6, rtol=0)
    torch.testing.assert_close(y[high], torch.full_like(y[high], 1 - CB_EPSILON), atol=1e-6, rtol=0)
    # nothing else changed, and no pixel sits at 0 or 1 (no clipping)
    ok = ~(low | high)
    torch.testing.assert_close(y[ok], noisy[ok].float().double(), atol=1e-6, rtol=0)
    assert not bool(((y == 0) | (y == 1)).any())


def test_noise_redrawn_only_where_the_shift_fails():
    # sigma 2: some noise pixels are beyond -0.9 or 1.9, where no image shift can help
    x = _images(b=1, side=32)
    stim, _, noise = _stimulus_and_noise(x, 6, 2.0, [7])
    noisy = stim + noise
    redraw = ((noisy < 0) & (CB_EPSILON - noise > 1)) | ((noisy > 1) & (0.9 - noise < 0))
    assert int(redraw.sum()) > 0
    y = band_noise(x, 6, 2.0, [7])
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    torch.testing.assert_close(y, band_noise(x, 6, 2.0, [7]))  # deterministic for a seed
    shifted = ((noisy < 0) | (noisy > 1)) & ~redraw
    vals = y[0, 0].double()[shifted[0]]
    assert bool(((vals - CB_EPSILON).abs() < 1e-6).logical_or((vals - 0.9).abs() < 1e-6).all())


def test_band_noise_is_seeded_per_sample():
    x = _images(b=3, side=32)
    seeds = torch.tensor([5, 6, 7])
    batch = band_noise(x, 3, 0.08, seeds)
    alone = torch.cat([band_noise(x[i : i + 1], 3, 0.08, seeds[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)
    assert not torch.allclose(batch, band_noise(x, 3, 0.08, seeds + 1))
    with pytest.raises(ValidationError, match="seeds"):
        band_noise(x, 3, 0.08)


def test_a_precomputed_stimulus_or_spectrum_gives_the_same_pixels():
    """Views of one batch share its critical-band stimulus and its spectrum: passing them in
    must give exactly what computing them inside gives, and the wrong shape is an error."""
    x = _images(b=3, side=32)
    seeds = torch.tensor([5, 6, 7])
    stim = critical_band_stimulus(x)
    for band, sigma in ((3, 0.08), (5, 0.16), (4, 0.0)):
        assert torch.equal(
            band_noise(x, band, sigma, seeds, stimulus=stim), band_noise(x, band, sigma, seeds)
        )
    spec = centred_spectrum(x)
    for kind, cutoff in (("low", 0.3), ("high", 0.7), ("high", 1.0)):
        assert torch.equal(fft_filter(x, cutoff, kind, spectrum=spec), fft_filter(x, cutoff, kind))
    with pytest.raises(ValidationError, match="stimulus: expected shape"):
        band_noise(x, 3, 0.08, seeds, stimulus=stim[:2])
    with pytest.raises(ValidationError, match="spectrum: expected the shape"):
        fft_filter(x, 0.3, "low", spectrum=spec[:, :1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_luma_is_the_weighted_channel_sum_to_the_bit(dtype, channels_last):
    # luma adds its three products one by one (faster on channels-last batches); the grayscale
    # views' pixels, and every number computed from them, must not move
    g = torch.Generator().manual_seed(3)
    for b, h, w in [(1, 1, 1), (3, 17, 9), (64, 32, 32)]:
        x = torch.rand(b, 3, h, w, generator=g).to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=dtype).view(1, 3, 1, 1)
        expected = (x * weights).sum(dim=1, keepdim=True)
        got = luma(x)
        assert got.dtype == dtype and got.shape == (b, 1, h, w)
        assert torch.equal(got, expected)


def test_band_validity_depends_on_size():
    x = _images(b=1, side=32)
    with pytest.raises(ValidationError, match=r"4 levels.*valid bands.*\[3, 4, 5, 6\]"):
        band_noise(x, 2, 0.04, [0])
    with pytest.raises(ValidationError, match="valid bands"):
        band_noise(x, 7, 0.04, [0])
    with pytest.raises(ValidationError, match="non-negative integer"):
        band_noise(x, -1, 0.04, [0])
    with pytest.raises(ValidationError, match="sigma"):
        band_noise(x, 3, -0.1, [0])
    with pytest.raises(ValidationError, match="level"):
        laplacian_band(torch.zeros(32, 32), 4)
