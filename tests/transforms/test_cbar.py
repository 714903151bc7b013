"""ImageNet-C-bar's corruptions (robustlens.transforms.cbar) and their views."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from robustlens.analysis.generalization import CBAR_CORRUPTIONS as DIMENSION_CBAR
from robustlens.errors import ValidationError
from robustlens.transforms.cbar import (
    CBAR_CORRUPTIONS,
    CBAR_LEVELS,
    cbar_corrupt,
    cbar_parameters,
    cbar_severity_of_level,
    sinusoid,
)
from robustlens.views import ViewContext, available_views, parse_view, sample_seeds


def _image(side: int = 32, n: int = 1) -> torch.Tensor:
    """A smooth colour image with some structure, values well inside (0, 1)."""
    t = torch.linspace(0, 1, side)
    y, x = torch.meshgrid(t, t, indexing="ij")
    img = torch.stack(
        [0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(6 * x) * torch.cos(4 * y)]
    )
    return img[None].repeat(n, 1, 1, 1).clamp(0, 1)


def test_names_and_levels_are_the_releases():
    assert CBAR_CORRUPTIONS == DIMENSION_CBAR  # the names the dimensions look for
    assert set(CBAR_LEVELS) == set(CBAR_CORRUPTIONS)
    # imagenet_c_bar.csv of facebookresearch/augmentation-corruption
    assert CBAR_LEVELS["caustic_refraction"] == (2.35, 3.2, 4.9, 6.6, 9.15)
    assert CBAR_LEVELS["cocentric_sine_waves"] == (3.0, 5.0, 8.0, 9.0, 10.0)
    assert cbar_severity_of_level("plasma_noise", "9.25") == 4
    assert cbar_severity_of_level("plasma_noise", "9.2") is None


def test_parameters_at_224_are_the_releases_and_lengths_scale_with_the_side():
    # float_parameter(level, maxval) = level * maxval / 10
    p = cbar_parameters("caustic_refraction", 5)
    assert p["lens_scale"] == pytest.approx(9.15 * 0.5 * 224 / 10)
    assert p["lighting"] == pytest.approx(9.15 * 2 / 10) and p["eta"] == 4.0
    assert cbar_parameters("perlin_noise", 5)["alpha"] == pytest.approx(0.44)
    assert cbar_parameters("perlin_noise", 5)["feature"] == 32.0
    assert cbar_parameters("perlin_noise", 5, side=112)["feature"] == 16.0
    assert cbar_parameters("sparkles", 1)["radius"] == pytest.approx(2.24)
    assert cbar_parameters("sparkles", 1, side=32)["radius"] == pytest.approx(0.32)
    assert cbar_parameters("brownish_noise", 3)["intensity"] == pytest.approx(19.2 / 255)
    assert cbar_parameters("blue_noise_sample", 1)["threshold"] == pytest.approx(-2.26)
    assert cbar_parameters("inverse_sparkles", 5)["exponent"] == pytest.approx(1.3)
    # per-pixel parameters do not depend on the size
    assert cbar_parameters("brownish_noise", 3, side=32) == cbar_parameters("brownish_noise", 3)


@pytest.mark.parametrize("name", CBAR_CORRUPTIONS)
def test_range_shape_and_per_sample_determinism(name):
    x = _image(32, 3)
    x[1] = x[1].flip(-1)
    seeds = [11, 12, 13]
    y = cbar_corrupt(x, name, 3, seeds)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)
    # a sample's result depends on its seed only, not on the batch it is in
    alone = cbar_corrupt(x[1:2], name, 3, [12])
    assert torch.allclose(alone, y[1:2], atol=1e-6)
    assert torch.equal(cbar_corrupt(x, name, 3, seeds), y)
    other = cbar_corrupt(x[1:2], name, 3, [99])
    assert not torch.allclose(other, alone)


@pytest.mark.parametrize("name", CBAR_CORRUPTIONS)
def test_distortion_grows_with_severity(name):
    x = _image(32, 6)
    seeds = list(range(100, 106))
    dist = [float((cbar_corrupt(x, name, s, seeds) - x).abs().mean()) for s in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(dist)), dist


def test_single_frequency_greyscale_adds_one_sinusoid_of_the_drawn_frequency():
    x = torch.full((4, 3, 24, 20), 0.5)
    seeds = [1, 2, 3, 4]
    y = cbar_corrupt(x, "single_frequency_greyscale", 1, seeds)
    amp = 19.6 / 255  # float_parameter(1, 196), no clipping around 0.5
    diff = (y - x).double()
    assert torch.allclose(diff[:, 0], diff[:, 1]) and torch.allclose(diff[:, 0], diff[:, 2])
    for i, seed in enumerate(seeds):
        # the release's draw: |f| ~ U(-pi, pi), the other ~ U(-|f|, |f|), shuffled; phase
        u = torch.rand(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        mag = (2 * u[0] - 1) * math.pi
        other = (2 * u[1] - 1) * abs(mag)
        fx, fy = (other, mag) if u[2] < 0.5 else (mag, other)
        assert abs(fx) <= math.pi and abs(fy) <= math.pi
        wave = sinusoid(24, 20, fx[None], fy[None], (u[3] * 2 * math.pi)[None])[0]
        assert torch.allclose(diff[i, 0], amp * wave, atol=1e-6)
        # and a pure sinusoid along each row: s[x-1] + s[x+1] = 2 cos(fx) s[x]
        s = diff[i, 0]
        lhs = s[:, :-2] + s[:, 2:]
        assert torch.allclose(lhs, 2 * math.cos(float(fx)) * s[:, 1:-1], atol=1e-5)


def test_checkerboard_cutout_greys_cells_of_one_colour_at_the_documented_rate():
    x = _image(64, 24)
    seeds = list(range(24))
    cut_before = None
    for severity in range(1, 6):
        y = cbar_corrupt(x, "checkerboard_cutout", severity, seeds)
        changed = (y != x).any(dim=1)
        grey = (y - 128 / 255).abs().max(dim=1).values < 1e-6
        assert torch.equal(changed, changed & grey)  # every changed pixel is grey 128
        # a cell is cut when it is on one colour of the board (half) and its draw < 0.1 level
        frac = cbar_parameters("checkerboard_cutout", severity)["fraction"]
        assert float(grey.float().mean()) == pytest.approx(frac / 2, abs=0.05)
        if cut_before is not None:  # shared draws: a higher severity cuts a superset
            assert torch.equal(cut_before & grey, cut_before)
        cut_before = grey


def test_blue_noise_sample_zeroes_pixels_below_the_threshold():
    x = _image(64, 12)
    seeds = list(range(12))
    zero_before = None
    for severity in (1, 3, 5):
        y = cbar_corrupt(x, "blue_noise_sample", severity, seeds)
        kept = (y == x).all(dim=1)
        zero = (y == 0).all(dim=1)
        assert bool((kept | zero).all())  # one mask for the three channels
        # unit-variance, near-Gaussian noise: P(noise <= threshold) = Phi(threshold)
        t = cbar_parameters("blue_noise_sample", severity)["threshold"]
        phi = 0.5 * (1 + math.erf(t / math.sqrt(2)))
        assert float(zero.float().mean()) == pytest.approx(phi, abs=0.03)
        if zero_before is not None:
            assert torch.equal(zero_before & zero, zero_before)
        zero_before = zero


def test_brownish_noise_adds_unit_std_noise_times_the_intensity_mostly_at_low_frequencies():
    x = torch.full((3, 3, 48, 48), 0.5)
    y = cbar_corrupt(x, "brownish_noise", 1, [5, 6, 7])
    diff = (y - x).double()
    intensity = 6.4 / 255
    std = diff.std(dim=(-2, -1), unbiased=False)
    assert torch.allclose(std, torch.full_like(std, intensity), rtol=1e-4)
    power = torch.fft.fft2(diff).abs() ** 2
    f = torch.fft.fftfreq(48, d=1 / 48).abs()
    low = (f[:, None] <= 4) & (f[None, :] <= 4)
    assert float(power[..., low].sum() / power.sum()) > 0.8


def test_blends_and_additions_use_the_documented_weights():
    x1, x2 = _image(32, 2), 0.4 + 0.2 * _image(32, 2).flip(-1)
    x1 = 0.4 + 0.2 * x1  # inside [0.4, 0.6]: nothing clips
    seeds = [3, 4]
    for name, severity, weight in (
        ("perlin_noise", 5, 1 - 0.44),
        ("plasma_noise", 5, 1 - 64 / 255),
        ("cocentric_sine_waves", 1, 1.0),
        ("brownish_noise", 1, 1.0),
    ):
        d = cbar_corrupt(x1, name, severity, seeds) - cbar_corrupt(x2, name, severity, seeds)
        assert torch.allclose(d, weight * (x1 - x2), atol=1e-5), name


def test_sparkles_only_brighten():
    x = _image(32, 4)
    for name in ("sparkles", "inverse_sparkles"):
        y = cbar_corrupt(x, name, 4, [1, 2, 3, 4])
        assert bool((y >= x - 1e-6).all()), name
    # the inverse star is white far from its centre
    y = cbar_corrupt(x, "inverse_sparkles", 5, [1, 2, 3, 4])
    corners = y[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert float(corners.mean()) > 0.9


def test_caustic_refraction_at_another_size_matches_the_working_size_in_distribution():
    small = cbar_corrupt(_image(32, 4), "caustic_refraction", 5, [1, 2, 3, 4])
    big = cbar_corrupt(_image(224, 1), "caustic_refraction", 5, [1])
    down = torch.nn.functional.interpolate(big, size=(32, 32), mode="area")
    d_small = float((small[:1] - _image(32, 1)).abs().mean())
    d_big = float((down - _image(32, 1)).abs().mean())
    assert d_small == pytest.approx(d_big, rel=0.6)


def test_errors_name_the_valid_values():
    x = _image(8, 2)
    with pytest.raises(ValidationError, match="cocentric_sine_waves"):
        cbar_corrupt(x, "concentric_sine_waves", 1, [0, 1])
    with pytest.raises(ValidationError, match=r"severity.*\[1, 2, 3, 4, 5\]"):
        cbar_corrupt(x, "sparkles", 6, [0, 1])
    with pytest.raises(ValidationError, match="2 seeds"):
        cbar_corrupt(x, "sparkles", 1, [0])
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        cbar_corrupt(x * 2, "sparkles", 1, [0, 1])


def test_cbar_views_are_registered_and_seeded_by_spec_and_sample_id():
    assert "cbar" in available_views()
    ids = torch.tensor([5, 9])
    x = _image(16, 2)
    v = parse_view("cbar:plasma_noise:2")
    assert v.random and not v.needs_model
    expected = cbar_corrupt(x, "plasma_noise", 2, sample_seeds("cbar:plasma_noise:2", ids))
    assert torch.equal(v(x, ViewContext(ids)), expected)
    # one sample alone gives the same pixels as in a batch
    assert torch.allclose(v(x[1:], ViewContext(ids[1:])), expected[1:], atol=1e-6)
    for bad, match in (
        ("cbar:fog:2", "cbar:NAME:SEVERITY"),
        ("cbar:sparkles:0", "severity"),
        ("cbar:sparkles", "cbar:NAME:SEVERITY"),
    ):
        with pytest.raises(ValidationError, match=match):
            parse_view(bad)
