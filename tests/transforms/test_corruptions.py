"""Tests of robustlens.transforms.corruptions (ImageNet-C-style corruptions in torch)."""

from __future__ import annotations

import colorsys
import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import zoom as scipy_zoom

from robustlens.errors import ValidationError
from robustlens.transforms import corruptions as corruptions_module
from robustlens.transforms.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    RANDOM_CORRUPTIONS,
    SEVERITIES,
    check_images,
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


# ImageNet-C's parameters do not order these by mean absolute change: glass blur's severity 3
# shuffles 3 times, severity 4 twice; snow's severity 3 thresholds its flakes harder than 2;
# frost's severity 4 keeps less of the image than 3 but adds the same frost; elastic's 1-2 are
# large smooth warps, 3-5 local ones. The reference behaves the same (AlexNet's snow error is
# lower at severity 3 than 2, its elastic error lower at 3 than 2). Each is checked below on the
# severities its parameters do order.
NOT_MONOTONE = {
    "glass_blur": ((1, 2, 3), (4, 5)),
    "snow": ((1, 2), (3, 4, 5)),
    "frost": ((1, 2, 3), (4, 5)),
    "elastic_transform": ((1, 2), (3, 4, 5)),
}


@pytest.mark.parametrize("name", [c for c in CORRUPTIONS if c not in NOT_MONOTONE])
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


@pytest.mark.parametrize("name", sorted(NOT_MONOTONE))
def test_strength_increases_along_the_ordered_severities(name):
    x = _images(b=6)
    seeds = torch.arange(6) + 5
    s = {sev: _strength(name, corrupt(x, name, sev, seeds), x) for sev in SEVERITIES}
    for chain in NOT_MONOTONE[name]:
        for lo, hi in itertools.pairwise(chain):
            assert s[hi] >= s[lo], f"{name}: strength {s} decreases from {lo} to {hi}"
    if name != "elastic_transform":  # its 1-2 (global warps) outweigh its 3-5
        assert s[5] > s[1]


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
        corrupt(x, "blizzard", 1, [0])
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_check_images_finds_one_bad_pixel_at_either_end_of_the_range(dtype):
    def one_pixel(value: float) -> torch.Tensor:
        x = torch.full((2, 3, 8, 8), 0.5, dtype=dtype)
        x[1, 2, 7, 3] = value
        return x

    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError, match="NaN or infinite"):
            check_images(one_pixel(bad))
    with pytest.raises(ValidationError, match=r"range \[0.5, 1.0[0-9]*\]"):
        check_images(one_pixel(1.01))
    with pytest.raises(ValidationError, match=r"range \[-0.0[0-9]*, 0.5\]"):
        check_images(one_pixel(-0.01))
    # the bounds themselves, and an empty batch, pass
    for ok in (torch.cat([one_pixel(0.0), one_pixel(1.0)]), torch.zeros(0, 3, 8, 8, dtype=dtype)):
        assert check_images(ok) is ok


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


# ----------------------------------------------------------------------------- all 19


DETERMINISTIC = {
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
}


def test_corruption_lists_follow_imagenet_c():
    assert IMAGENET_C_CORRUPTIONS == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    )
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert CORRUPTIONS == IMAGENET_C_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert set(CORRUPTIONS) - RANDOM_CORRUPTIONS == DETERMINISTIC


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_ignore_seeds(name):
    x = _images()
    assert torch.equal(corrupt(x, name, 4), corrupt(x, name, 4, [9, 8, 7]))


def _glass_loop(offsets: np.ndarray, h: int, w: int, d: int) -> np.ndarray:
    """make_imagenet_c.py's glass-blur loop on pixel indices (its "swap" copies, see module)."""
    img = np.arange(h * w).reshape(h, w, 1).repeat(3, axis=2)
    for it in range(offsets.shape[0]):
        for i, hh in enumerate(range(h - d, d, -1)):
            for j, ww in enumerate(range(w - d, d, -1)):
                dx, dy = offsets[it, i, j]
                h_prime, w_prime = hh + dy, ww + dx
                img[hh, ww], img[h_prime, w_prime] = img[h_prime, w_prime], img[hh, ww]
    return img[..., 0].reshape(-1)


@pytest.mark.parametrize(
    ("h", "w", "d", "iterations"), [(21, 26, 1, 2), (30, 30, 2, 3), (24, 40, 4, 2)]
)
def test_glass_blur_shuffle_is_the_reference_loop(h, w, d, iterations):
    gen = torch.Generator().manual_seed(h * w * d)
    offsets = corruptions_module._glass_offsets(gen, iterations, h, w, d)
    ours = corruptions_module._glass_sources(offsets[None], h, w, d)[0].numpy()
    ref = _glass_loop(offsets.numpy(), h, w, d)
    np.testing.assert_array_equal(ours, ref)
    assert len(np.unique(ref)) < h * w  # the reference copies pixels: some are duplicated


def test_saturate_matches_hsv_reference():
    x = torch.tensor([[0.2, 0.5, 0.1], [0.9, 0.8, 0.7], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    img = x.T.reshape(1, 3, 2, 2)
    for sev in SEVERITIES:
        a, b = corruption_parameters("saturate", sev).values()
        y = corrupt(img, "saturate", sev).reshape(3, 4).T
        for (r, g, bl), out in zip(x.tolist(), y.tolist(), strict=True):
            h, s, v = colorsys.rgb_to_hsv(r, g, bl)
            ref = colorsys.hsv_to_rgb(h, min(max(s * a + b, 0.0), 1.0), v)
            assert out == pytest.approx(ref, abs=1e-6)


def test_pixelate_uses_the_box_filter_both_ways():
    x = _images(b=1)
    for sev in SEVERITIES:
        c = corruption_parameters("pixelate", sev)["factor"]
        y = corrupt(x, "pixelate", sev)[0]
        for ch in range(3):
            im = Image.fromarray(x[0, ch].numpy(), mode="F")
            small = im.resize((int(64 * c), int(64 * c)), Image.Resampling.BOX)
            ref = np.asarray(small.resize((64, 64), Image.Resampling.BOX))
            np.testing.assert_allclose(y[ch].numpy(), ref, atol=1e-5)


def test_zoom_blur_is_the_mean_of_clipped_zooms():
    x = _images(b=1)
    img = x[0].permute(1, 2, 0).numpy().astype(np.float32)
    for sev in (1, 5):
        zooms = corruption_parameters("zoom_blur", sev)["zooms"]
        out = np.zeros_like(img)
        for z in zooms:  # make_imagenet_c.py's clipped_zoom
            ch = int(np.ceil(64 / z))
            top = (64 - ch) // 2
            zoomed = scipy_zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
            trim = (zoomed.shape[0] - 64) // 2
            out += zoomed[trim : trim + 64, trim : trim + 64]
        ref = np.clip((img + out) / (len(zooms) + 1), 0, 1)
        y = corrupt(x, "zoom_blur", sev)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(y, ref, atol=1e-5)
    assert zooms[0] == 1.0 and zooms[-1] == pytest.approx(1.3) and len(zooms) == 11


WORKING_SIZE = ["glass_blur", "snow", "frost", "fog", "elastic_transform", "spatter"]


@pytest.mark.parametrize("name", WORKING_SIZE)
def test_working_size_corruptions_on_small_and_non_square_images(name):
    for h, w in ((32, 32), (40, 72)):
        x = _images(b=2, side=72)[..., :h, :w].contiguous()
        y = corrupt(x, name, 5, [3, 4])
        assert y.shape == x.shape
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert float((y - x).abs().mean()) > 1e-3
        # computed at the working size (short side reference_side): a smaller reference side
        # makes the same corruption cover more of the image
        big = corrupt(x, name, 5, [3, 4], reference_side=16)
        assert not torch.allclose(big, y)


def test_glass_blur_is_stronger_with_a_smaller_reference_side():
    x = _images(b=2, side=32)
    weak = (corrupt(x, "glass_blur", 3, [1, 2]) - x).abs().mean()
    strong = (corrupt(x, "glass_blur", 3, [1, 2], reference_side=64) - x).abs().mean()
    assert float(strong) > 1.5 * float(weak)


def test_frost_templates_are_fixed_and_have_the_reference_statistics():
    for k, ((h, w), mean, cov6, _, _) in enumerate(corruptions_module._FROST_STATS):
        tex = corruptions_module._frost_texture(k)
        assert tex.shape == (3, h, w)
        assert torch.equal(tex, corruptions_module._frost_texture.__wrapped__(k))  # seeded
        px = tex.reshape(3, -1).double().numpy() * 255
        np.testing.assert_allclose(px.mean(axis=1), mean, rtol=0.01)
        cov = np.cov(px)[np.triu_indices(3)]
        np.testing.assert_allclose(cov, cov6, rtol=0.06)
    # the reference draws 5 photos, the 2nd and 3rd identical
    assert corruptions_module._FROST_SLOTS == (0, 1, 1, 2, 3)


def test_snow_layer_is_white_and_symmetric():
    x = torch.zeros(1, 3, 48, 48)
    y = corrupt(x, "snow", 3, [5])
    # on black, the image term is (1 - blend) * 0.5; flakes add the same to every channel
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    base = (1 - corruption_parameters("snow", 3)["blend"]) * 0.5
    assert float(y.min()) == pytest.approx(base, abs=1e-6)
    assert float(y.max()) > base + 0.1


def test_parameters_of_the_new_corruptions():
    assert corruption_parameters("glass_blur", 5) == {"sigma": 1.5, "max_delta": 4, "iterations": 2}
    assert corruption_parameters("snow", 1)["zoom"] == 3
    assert corruption_parameters("frost", 3) == {"image_weight": 0.7, "frost_weight": 0.7}
    el = corruption_parameters("elastic_transform", 2)
    assert el == pytest.approx({"alpha": 488.0, "sigma": 19.52, "affine": 48.8})
    assert corruption_parameters("spatter", 4)["mud"] == 1
    assert corruption_parameters("saturate", 5) == {"factor": 20, "offset": 0.2}
    assert len(corruption_parameters("zoom_blur", 2)["zooms"]) == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_cuda_matches_cpu(name):
    x = _images(b=3, side=96)
    cpu = corrupt(x, name, 3, SEEDS)
    gpu = corrupt(x.cuda(), name, 3, SEEDS).cpu()
    assert gpu.dtype == cpu.dtype
    diff = (gpu - cpu).abs()
    assert float(diff.mean()) < 2e-3, f"{name}: mean |cuda - cpu| = {float(diff.mean())}"
    assert math.isfinite(float(diff.max()))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_tiny_and_elongated_images(name):
    g = torch.Generator().manual_seed(0)
    for h, w, ref in ((1, 1, 224), (2, 5, 224), (8, 8, 4), (40, 9, 64)):
        x = torch.rand(2, 3, h, w, generator=g)
        y = corrupt(x, name, 5, [1, 2], reference_side=ref)
        assert y.shape == x.shape and bool(torch.isfinite(y).all())
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
