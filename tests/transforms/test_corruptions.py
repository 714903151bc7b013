"""Tests of robustlens.transforms.corruptions (ImageNet-C-style corruptions in torch)."""

from __future__ import annotations

import colorsys
import itertools

import pytest
import torch

from robustlens.errors import ValidationError
from robustlens.transforms.corruptions import (
    CORRUPTIONS,
    RANDOM_CORRUPTIONS,
    SEVERITIES,
    corrupt,
    corruption_parameters,
    seed_generators,
)


def _images(b: int = 3, side: int = 64, seed: int = 0) -> torch.Tensor:
    """Natural-image-like test batch: 1/f noise per channel, rescaled to [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(b, 3, side, side, generator=g)
    f = torch.fft.fftfreq(side)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    amp = torch.where(r > 0, 1 / r.clamp(min=1e-9), torch.zeros_like(r))
    x = torch.fft.ifft2(torch.fft.fft2(n) * amp).real
    x = x - x.amin((2, 3), keepdim=True)
    x = x / x.amax((2, 3), keepdim=True)
    return 0.1 + 0.8 * x


def _strength(name: str, out: torch.Tensor, clean: torch.Tensor) -> float:
    """How strongly an image was corrupted.

    Mean absolute difference to the clean image, except for pixelate, whose strength is its
    block size: the fraction of horizontally adjacent pixel pairs that are exactly equal
    (mean abs diff is not monotone there: an integer factor 0.5 aligns blocks better than 0.6).
    """
    if name == "pixelate":
        return float((out[..., 1:] == out[..., :-1]).float().mean())
    return float((out - clean).abs().mean())


SEEDS = torch.tensor([11, 22, 33], dtype=torch.int64)


def test_corruption_list_has_the_required_ten():
    required = {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "gaussian_blur",
        "motion_blur",
        "contrast",
        "brightness",
        "jpeg_compression",
        "pixelate",
        "fog",
    }
    assert required <= set(CORRUPTIONS)
    assert set(CORRUPTIONS) >= RANDOM_CORRUPTIONS
    assert SEVERITIES == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_range_and_change(name):
    x = _images()
    for sev in SEVERITIES:
        y = corrupt(x, name, sev, SEEDS)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert float((y - x).abs().mean()) > 1e-4, f"{name} severity {sev} left the image as is"


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_strength_increases_with_severity(name):
    x = _images(b=6)
    seeds = torch.arange(6) + 5
    s = [_strength(name, corrupt(x, name, sev, seeds), x) for sev in SEVERITIES]
    assert s[-1] > s[0]
    # ImageNet-C's fog severities 3 and 4 share the amplitude 2.5 and differ only in the
    # roughness of the fractal, so their mean abs diffs are equal up to a few percent.
    rtol = 0.03 if name == "fog" else 0.0
    for lo, hi in itertools.pairwise(s):
        assert hi >= lo * (1 - rtol), f"{name}: strength {s} decreases with severity"


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_batch_invariance(name):
    x = _images()
    batch = corrupt(x, name, 3, SEEDS)
    alone = torch.cat([corrupt(x[i : i + 1], name, 3, SEEDS[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)
    # reordering the batch (with its seeds) reorders the output
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(
        corrupt(x[perm], name, 3, SEEDS[perm]), batch[perm], atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("name", sorted(RANDOM_CORRUPTIONS))
def test_random_corruptions_depend_on_seed_only(name):
    x = _images(b=2)
    a = corrupt(x, name, 2, [1, 2])
    assert torch.equal(a, corrupt(x, name, 2, [1, 2]))
    assert not torch.allclose(a, corrupt(x, name, 2, [3, 4]))
    with pytest.raises(ValidationError, match="seeds"):
        corrupt(x, name, 2)
    with pytest.raises(ValidationError, match="2 seeds"):
        corrupt(x, name, 2, [1, 2, 3])


def test_unknown_name_and_severity_list_the_valid_ones():
    x = _images(b=1)
    with pytest.raises(ValidationError, match=r"gaussian_noise.*pixelate"):
        corrupt(x, "snow", 1, [0])
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValidationError, match=r"\[1, 2, 3, 4, 5\]"):
            corrupt(x, "contrast", bad)


def test_rejects_normalized_or_malformed_images():
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        corrupt(torch.full((1, 3, 8, 8), -1.0), "contrast", 1)
    with pytest.raises(ValidationError, match=r"\(B, 3, H, W\)"):
        corrupt(torch.zeros(3, 8, 8), "contrast", 1)
    with pytest.raises(ValidationError, match="uint8"):
        corrupt(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "contrast", 1)
    with pytest.raises(ValidationError, match="integer seeds"):
        seed_generators([0.5], 1)


def test_gaussian_noise_std_matches_imagenet_c():
    x = torch.full((2, 3, 64, 64), 0.5)
    for sev, std in zip(SEVERITIES, (0.08, 0.12, 0.18), strict=False):
        d = corrupt(x, "gaussian_noise", sev, [1, 2]) - x
        assert abs(float(d.std()) - std) < 0.05 * std
        assert abs(float(d.mean())) < 0.01


def test_shot_noise_is_poisson():
    x = torch.full((2, 3, 64, 64), 0.4)
    rate = corruption_parameters("shot_noise", 3)["rate"]  # 12
    y = corrupt(x, "shot_noise", 3, [5, 6])
    assert torch.allclose(y * rate, (y * rate).round(), atol=1e-4)  # counts / rate
    assert abs(float(y.mean()) - 0.4) < 0.01
    assert abs(float(y.var()) - 0.4 / rate) < 0.1 * 0.4 / rate


def test_impulse_noise_fraction():
    x = torch.full((2, 3, 64, 64), 0.5)
    y = corrupt(x, "impulse_noise", 4, [0, 1])  # amount 0.17
    salt = float((y == 1).float().mean())
    pepper = float((y == 0).float().mean())
    assert abs(salt + pepper - 0.17) < 0.01
    assert abs(salt - pepper) < 0.02
    assert bool(((y == 0) | (y == 1) | (y == 0.5)).all())


def test_contrast_formula():
    x = _images(b=2)
    y = corrupt(x, "contrast", 2)  # c = 0.3
    m = x.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(y, (x - m) * 0.3 + m)


def test_brightness_matches_hsv_reference():
    x = torch.tensor([[0.2, 0.5, 0.1], [0.9, 0.8, 0.7], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    img = x.T.reshape(1, 3, 2, 2)
    y = corrupt(img, "brightness", 3).reshape(3, 4).T  # value + 0.3
    for (r, g, b), out in zip(x.tolist(), y.tolist(), strict=True):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        ref = colorsys.hsv_to_rgb(h, s, min(1.0, v + 0.3))
        assert out == pytest.approx(ref, abs=1e-6)


def test_blurs_preserve_a_constant_image():
    x = torch.full((2, 3, 40, 40), 0.3)
    for name in ("gaussian_blur", "defocus_blur", "motion_blur"):
        torch.testing.assert_close(corrupt(x, name, 5, [0, 1]), x, atol=1e-6, rtol=0)


def test_blur_lengths_scale_with_image_side():
    p224 = corruption_parameters("gaussian_blur", 5, side=224)
    p32 = corruption_parameters("gaussian_blur", 5, side=32)
    assert p224["sigma"] == 6.0
    assert p32["sigma"] == pytest.approx(6.0 * 32 / 224)
    assert corruption_parameters("motion_blur", 1, side=112)["length"] == pytest.approx(10.0)
    # pixelate keeps ImageNet-C's relative factor; noise levels do not scale
    assert corruption_parameters("pixelate", 1, side=32) == {"factor": 0.6}
    assert corruption_parameters("gaussian_noise", 1, side=32) == {"std": 0.08}
    # a smaller reference side makes the same blur stronger on small images
    x = _images(b=1, side=32)
    weak = (corrupt(x, "gaussian_blur", 2) - x).abs().mean()
    strong = (corrupt(x, "gaussian_blur", 2, reference_side=64) - x).abs().mean()
    assert float(strong) > 2 * float(weak)


def test_motion_blur_angle_differs_between_seeds():
    x = _images(b=1, side=48).expand(2, -1, -1, -1)
    y = corrupt(x, "motion_blur", 5, [0, 1])
    assert not torch.allclose(y[0], y[1], atol=1e-3)


def test_pixelate_makes_blocks():
    x = _images(b=1)
    y = corrupt(x, "pixelate", 2)  # factor 0.5 of 64 px -> 2 x 2 blocks
    assert torch.equal(y[..., ::2, ::2], y[..., 1::2, 1::2])
    torch.testing.assert_close(
        y[..., ::2, ::2], torch.nn.functional.avg_pool2d(x, 2), atol=1e-6, rtol=0
    )


def test_jpeg_output_is_quantized_and_lossy():
    x = _images(b=2)
    y = corrupt(x, "jpeg_compression", 5)
    torch.testing.assert_close(y * 255, (y * 255).round(), atol=1e-4, rtol=0)
    assert float((y - x).abs().mean()) > 0.01


def test_empty_batch_and_dtype_roundtrip():
    x = torch.zeros(0, 3, 8, 8)
    assert corrupt(x, "gaussian_noise", 1, []).shape == (0, 3, 8, 8)
    xd = _images(b=1).double()
    assert corrupt(xd, "fog", 1, [0]).dtype == torch.float64
