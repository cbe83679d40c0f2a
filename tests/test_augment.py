"""Tests of sslbook.augment against torchvision's per-image transforms (the reference semantics)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from sslbook import augment as A

# our luma weights are ITU-R 601-2's 0.299, torchvision's tensor ops use 0.2989: up to 1e-4 apart
GRAY_ATOL = 2e-4


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    points = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, points, right=True) / len(a)
    cdf_b = torch.searchsorted(b, points, right=True) / len(b)
    return (cdf_a - cdf_b).abs().max().item()


def ks_critical(n: int, m: int, alpha: float = 0.001) -> float:
    """Asymptotic critical value c(alpha) sqrt((n + m) / (n m)); conservative for discrete data."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


def torchvision_boxes(n, height, width, scale, ratio, seed):
    torch.manual_seed(seed)
    img = torch.empty(3, height, width)
    boxes = [RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(n)]
    return torch.tensor(boxes, dtype=torch.float64).unbind(1)  # top, left, h, w


def box_statistics(top, left, h, w, height, width):
    """Area fraction, log aspect ratio, and the offsets of a batch of boxes."""
    top, left, h, w = (t.double() for t in (top, left, h, w))
    return {"area": h * w / (height * width), "log_ratio": (w / h).log(), "top": top, "left": left}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def colourful(n=4, size=8, seed=0):
    """Random RGB images with a few exact greys, primaries and ties among the channels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[0, :, 0] = 0.5  # grey row
    x[0, :, 1] = torch.tensor([1.0, 1.0, 0.0])[:, None]  # yellow: red and green tie for max
    x[0, :, 2] = torch.tensor([0.0, 0.3, 0.3])[:, None]  # cyan-ish: green and blue tie
    x[0, :, 3] = torch.tensor([0.0, 0.0, 1.0])[:, None]  # blue
    return x


# ----------------------------------------------------------------------------- crop parameters


@pytest.mark.parametrize(
    "height, width, scale",
    [(32, 32, (0.08, 1.0)), (20, 40, (0.5, 1.0))],  # the second falls back often
)
def test_crop_params_follow_torchvision_distribution(height, width, scale):
    n, ratio = 20_000, (3 / 4, 4 / 3)
    g = torch.Generator().manual_seed(0)
    ours = A.sample_crop_params(n, height, width, scale, ratio, generator=g)
    theirs = torchvision_boxes(n, height, width, scale, ratio, seed=0)
    ours, theirs = box_statistics(*ours, height, width), box_statistics(*theirs, height, width)
    critical = ks_critical(n, n)
    for name in ours:
        assert ks_statistic(ours[name], theirs[name]) < critical, name
    # the test has power: a sampler with a different scale range is rejected
    wrong = A.sample_crop_params(n, height, width, (scale[0] + 0.1, 1.0), ratio, generator=g)
    wrong = box_statistics(*wrong, height, width)
    assert ks_statistic(wrong["area"], theirs["area"]) > critical


def test_crop_params_inside_image_and_integer():
    g = torch.Generator().manual_seed(1)
    for height, width in [(32, 32), (17, 45), (45, 17), (1, 1)]:
        top, left, h, w = A.sample_crop_params(5000, height, width, generator=g)
        assert all(t.dtype == torch.int64 and t.shape == (5000,) for t in (top, left, h, w))
        assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
        assert (top + h <= height).all() and (left + w <= width).all()


@pytest.mark.parametrize("height, width", [(20, 40), (40, 20), (30, 30)])
def test_crop_params_fallback_is_torchvision_central_crop(height, width):
    # an area larger than the image never fits: every box is the fallback, deterministically
    scale, ratio = (2.0, 3.0), (3 / 4, 4 / 3)
    expected = RandomResizedCrop.get_params(torch.empty(3, height, width), scale, ratio)
    boxes = torch.stack(A.sample_crop_params(10, height, width, scale, ratio), dim=1)
    assert (boxes == torch.tensor(expected)).all()


# ----------------------------------------------------------------------------- resampling


def test_full_box_reproduces_input():
    x = torch.rand(3, 3, 16, 24)
    out = A.random_resized_crop(x, (16, 24), scale=(1.0, 1.0), ratio=(1.5, 1.5))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("box", [(3, 5, 20, 14), (0, 0, 10, 10), (10, 12, 22, 20), (0, 0, 32, 32)])
@pytest.mark.parametrize("size", [32, 12])
def test_crop_matches_torchvision_resized_crop(box, size):
    top, left, h, w = box
    x = torch.rand(2, 3, 32, 32)
    ours = A._crop_flip(x, (size, size), *(torch.full((2,), v) for v in box))
    ref = TF.resized_crop(x, top, left, h, w, [size, size], InterpolationMode.BILINEAR, False)

    # torchvision resizes the cut-out box, so it clamps at the box's edges where we read the
    # image's pixels beyond them: compare where bilinear reads only pixels inside the box
    def inside(n_out, n_box):
        src = (torch.arange(n_out) + 0.5) * n_box / n_out - 0.5  # box pixel coordinates
        return (src >= 0) & (src <= n_box - 1)

    rows, cols = inside(size, h), inside(size, w)
    assert rows.sum() > size // 2 and cols.sum() > size // 2
    torch.testing.assert_close(ours[:, :, rows][..., cols], ref[:, :, rows][..., cols])
    if (h, w) == (32, 32):  # a plain resize: torchvision clamps at the image border too
        torch.testing.assert_close(ours, ref)


def test_crop_grid_is_affine_grid_and_flip_mirrors():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(64, 3, 20, 28)
    top, left, h, w = A.sample_crop_params(64, 20, 28, generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    ours = A._crop_flip(x, (16, 16), top, left, h, w, flip)
    theta = torch.zeros(64, 2, 3)
    theta[:, 0, 0] = (w / 28) * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = (2 * left + w) / 28 - 1
    theta[:, 1, 1] = h / 20
    theta[:, 1, 2] = (2 * top + h) / 20 - 1
    grid = F.affine_grid(theta, [64, 3, 16, 16], align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    unflipped = A._crop_flip(x, (16, 16), top, left, h, w)
    torch.testing.assert_close(ours[flip], unflipped[flip].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[~flip], unflipped[~flip])


# ----------------------------------------------------------------------------- colour


@pytest.mark.parametrize(
    "op, factor",
    [("brightness", 0.6), ("brightness", 1.4), ("contrast", 0.6), ("contrast", 1.7),
     ("saturation", 0.0), ("saturation", 1.9), ("hue", -0.5), ("hue", -0.1), ("hue", 0.27),
     ("hue", 0.5)],
)  # fmt: skip
def test_color_jitter_fixed_factor_matches_torchvision(op, factor):
    x = colourful()
    ranges = {"brightness": (1.0, 1.0), "contrast": (1.0, 1.0), "saturation": (1.0, 1.0)}
    ranges["hue"] = (0.0, 0.0)
    ranges[op] = (factor, factor)
    ours = A.color_jitter(x, **ranges, p=1.0)
    ref = getattr(TF, f"adjust_{op}")(x, factor)
    torch.testing.assert_close(ours, ref, atol=GRAY_ATOL if op != "hue" else 1e-5, rtol=0)


def test_color_jitter_per_sample_order_covers_all_permutations():
    img = colourful(n=1)
    factors = {"brightness": 1.5, "contrast": 0.5, "saturation": 1.8, "hue": 0.2}
    refs = []
    for order in itertools.permutations(factors):
        y = img
        for op in order:
            y = getattr(TF, f"adjust_{op}")(y, factors[op])
        refs.append(y)
    refs = torch.cat(refs)  # (24, 3, 8, 8)
    b = 480
    ranges = {k: (v, v) for k, v in factors.items()}
    out = A.color_jitter(img.expand(b, -1, -1, -1), **ranges, p=1.0, generator=gen(3))
    err = (out[:, None] - refs[None]).abs().flatten(2).amax(2)  # (B, 24)
    best, second = err.topk(2, dim=1, largest=False).values.unbind(1)
    assert (best < GRAY_ATOL).all() and (second > 10 * GRAY_ATOL).all()  # each sample: one order
    counts = torch.bincount(err.argmin(1), minlength=24).double()
    chi2 = ((counts - b / 24) ** 2 / (b / 24)).sum()
    assert chi2 < 49.7  # chi-square, 23 degrees of freedom, alpha = 0.001: orders uniform


def test_pipeline_applies_jitter_then_grayscale():
    # no crop, no flip, fixed factors: every view is the grey image of the jittered image
    img = colourful(n=1)
    factors = {"brightness": 1.5, "contrast": 0.5, "saturation": 1.8, "hue": 0.2}
    fixed = {k: (v, v) for k, v in factors.items()}
    augment = A.SimCLRAugment(size=8, scale=(1, 1), ratio=(1, 1), flip_p=0.0, **fixed,
                              jitter_p=1.0, grayscale_p=1.0)  # fmt: skip
    out = augment(img.expand(96, -1, -1, -1), gen(9))
    refs = []
    for order in itertools.permutations(factors):
        y = img
        for op in order:
            y = getattr(TF, f"adjust_{op}")(y, factors[op])
        refs.append(TF.rgb_to_grayscale(y, 3))
    err = (out[:, None] - torch.cat(refs)[None]).abs().flatten(2).amax(2)  # (96, 24)
    assert (err.min(1).values < 2 * GRAY_ATOL).all()


@pytest.mark.parametrize("op, lo, hi", [("brightness", 0.6, 1.4), ("contrast", 0.2, 0.7),
                                        ("saturation", 0.5, 1.5)])  # fmt: skip
def test_color_jitter_factor_distribution(op, lo, hi):
    # mid-range pixels (no clamping): recover each sample's factor f = (out - ref) / (x - ref)
    x = (0.3 + 0.4 * colourful(n=1, seed=4))[:, :, 4:]
    ranges = {"brightness": (1.0, 1.0), "contrast": (1.0, 1.0), "saturation": (1.0, 1.0)}
    ranges[op] = (lo, hi)
    out = A.color_jitter(x.expand(4000, -1, -1, -1), **ranges, hue=0.0, p=1.0, generator=gen(5))
    gray = TF.rgb_to_grayscale(x)
    ref = {"brightness": torch.zeros_like(x), "contrast": gray.mean(), "saturation": gray}[op]
    f = ((out - ref) / (x - ref)).flatten(1).median(1).values
    assert f.min() > lo - 0.01 and f.max() < hi + 0.01
    assert ks_statistic(f, lo + (hi - lo) * torch.rand(4000, generator=gen(6))) < ks_critical(
        4000, 4000
    )


def test_grayscale_matches_torchvision():
    x = colourful()
    out = A.random_grayscale(x, p=1.0)
    torch.testing.assert_close(out, TF.rgb_to_grayscale(x, 3), atol=GRAY_ATOL, rtol=0)


def test_blur_and_solarize_match_torchvision():
    x = colourful(size=12)
    for k, s in [(3, 0.7), (5, 1.6)]:
        ours = A.gaussian_blur(x, sigma=(s, s), kernel_size=k, p=1.0)
        torch.testing.assert_close(ours, TF.gaussian_blur(x, [k, k], [s, s]), atol=1e-5, rtol=0)
    x[0, :, 5] = 0.4  # at the threshold: inverted too
    torch.testing.assert_close(A.solarize(x, 0.4, p=1.0), TF.solarize(x, 0.4))


# ----------------------------------------------------------------------------- randomness


def test_each_sample_draws_its_own_parameters():
    img = (colourful(n=1, size=16) * 255).to(torch.uint8).expand(64, -1, -1, -1)
    for out in [A.SimCLRAugment()(img, gen(0)), A.color_jitter(img, p=1.0, generator=gen(0))]:
        flat = out.flatten(1)
        assert torch.unique(flat, dim=0).shape[0] == 64
    v1, v2 = A.two_views(img, generator=gen(0))
    assert (v1 - v2).flatten(1).abs().amax(1).gt(0).all()


def test_same_seed_same_views_and_uint8_equals_float():
    x = (torch.rand(16, 3, 32, 32, generator=gen(7)) * 255).to(torch.uint8)
    augment = A.SimCLRAugment(blur_p=0.5, solarize_p=0.5)
    a = A.two_views(x, augment, generator=gen(1))
    b = A.two_views(x, augment, generator=gen(1))
    c = A.two_views(x.float() / 255, augment, generator=gen(1))
    d = A.two_views(x, augment, generator=gen(2))
    for u, v, w, z in zip(a, b, c, d, strict=True):
        assert torch.equal(u, v)
        torch.testing.assert_close(u, w)
        assert not torch.allclose(u, z)


def test_accelerator_path_equals_cpu_path(monkeypatch):
    # off the CPU, per-sample choices are mixed in with lerp rather than gathered by index
    x = (torch.rand(64, 3, 16, 16, generator=gen(8)) * 255).to(torch.uint8)
    augment = A.SimCLRAugment(size=16, blur_p=0.5, solarize_p=0.3)
    cpu = augment(x, gen(4))
    monkeypatch.setattr(A, "_GATHER_ON", ())
    torch.testing.assert_close(augment(x, gen(4)), cpu, atol=1e-6, rtol=0)


def test_random_fractions_match_p():
    n = 4000
    x = colourful(n=1, size=8).expand(n, -1, -1, -1).contiguous()  # not mirror-symmetric
    band = 4 * math.sqrt(0.25 / n)  # 4 standard deviations of a binomial fraction (at most)
    flipped = A.horizontal_flip(x, p=0.3, generator=gen(1))
    is_flipped = (flipped - x.flip(-1)).flatten(1).abs().amax(1) == 0
    assert abs(is_flipped.double().mean() - 0.3) < band
    gray = A.random_grayscale(x, p=0.2, generator=gen(2))
    is_gray = (gray - gray[:, :1]).flatten(1).abs().amax(1) == 0
    assert abs(is_gray.double().mean() - 0.2) < band
    jittered = A.color_jitter(x, p=0.8, generator=gen(3))
    changed = (jittered - x).flatten(1).abs().amax(1) > 0
    assert abs(changed.double().mean() - 0.8) < band
    # the flip folded into the crop's grid, in the pipeline
    same_box = A.SimCLRAugment.crop_only(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.6)
    out = same_box(x, gen(4))
    is_flipped = (out - x.flip(-1)).flatten(1).abs().amax(1) < 1e-6
    assert abs(is_flipped.double().mean() - 0.6) < band


# ----------------------------------------------------------------------------- interface


def test_output_dtype_shape_range_and_input_untouched():
    x = torch.rand(8, 3, 40, 30)
    before = x.clone()
    views = A.two_views(x, A.SimCLRAugment(size=24, blur_p=1.0, solarize_p=1.0), generator=gen(0))
    for v in views:
        assert v.dtype == torch.float32 and v.shape == (8, 3, 24, 24)
        assert v.min() >= 0 and v.max() <= 1
    for fn in [A.horizontal_flip, A.color_jitter, A.random_grayscale, A.gaussian_blur, A.solarize]:
        out = fn(x, p=1.0)
        assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.equal(x, before)
    assert A.to_float(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)).eq(1).all()
    crop_only = A.SimCLRAugment.crop_only()
    assert crop_only.jitter_p == crop_only.grayscale_p == crop_only.blur_p == 0


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: A.to_float(torch.zeros(3, 32, 32)), ["(B, 3, H, W)", "(3, 32, 32)"]),
        (lambda: A.to_float(torch.zeros(2, 1, 8, 8)), ["(B, 3, H, W)", "(2, 1, 8, 8)"]),
        (lambda: A.to_float(torch.zeros(2, 3, 8, 8, dtype=torch.int32)), ["uint8", "int32"]),
        (lambda: A.two_views(torch.zeros(0, 3, 8, 8)), ["non-empty", "(0, 3, 8, 8)"]),
        (lambda: A.color_jitter(torch.rand(2, 3, 8, 8), p=1.5), ["[0, 1]", "1.5"]),
        (lambda: A.random_grayscale(torch.rand(2, 3, 8, 8), p=-0.1), ["[0, 1]", "-0.1"]),
        (lambda: A.sample_crop_params(4, 8, 8, scale=(0.9, 0.1)), ["min <= max", "(0.9, 0.1)"]),
        (lambda: A.sample_crop_params(4, 8, 8, ratio=(0.0, 1.0)), ["0.0 < min", "(0.0, 1.0)"]),
        (lambda: A.SimCLRAugment(grayscale_p=2.0), ["grayscale_p in [0, 1]", "2.0"]),
        (lambda: A.color_jitter(torch.rand(2, 3, 8, 8), hue=0.7), ["[-0.5, 0.5]", "0.7"]),
        (lambda: A.gaussian_blur(torch.rand(2, 3, 8, 8), kernel_size=4), ["odd", "4"]),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_actual(call, words):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "expected" in message and all(w in message for w in words), message
