"""Batched image augmentation with per-sample random parameters, on any device.

Self-supervised methods such as SimCLR [0] train on two random views of every image. torchvision's
transforms draw one set of random parameters per call, so applied to a batch they give every image
the same crop and the same colours; the usual fix is a DataLoader that augments one PIL image at a
time. Here every function takes a whole batch ``(B, 3, H, W)`` and draws its parameters per sample,
with the semantics and parameter ranges of torchvision's per-image transforms, and without Python
loops over samples, so the views are made where the data lives (CPU or GPU).

Images come in as ``uint8`` (or float in [0, 1]) and leave as float32 in [0, 1]; normalisation by
the dataset mean and std belongs to the model.

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709, Appendix A (the augmentation recipe).
[1] SwAV, Caron et al. 2020, arXiv:2006.09882, §3.2 (multi-crop).
[2] DINO, Caron et al. 2021, arXiv:2104.14294, §3.1 (multi-crop with global and local views).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import check_images, to_float

__all__ = [
    "MultiCropAugment",
    "SimCLRAugment",
    "color_jitter",
    "gaussian_blur",
    "horizontal_flip",
    "random_grayscale",
    "random_resized_crop",
    "sample_crop_params",
    "solarize",
    "two_views",
]

# ITU-R 601-2 luma weights for R, G, B, as PIL's convert("L")
LUMA = (0.299, 0.587, 0.114)


# -----------------------------------------------------------------------------
# input checks and random numbers


def _check_p(p: float, name: str = "p") -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"expected {name} in [0, 1], got {p}")


def _check_range(values, name: str, low: float = 0.0) -> tuple[float, float]:
    """A (min, max) pair with low < min <= max, as floats."""
    if len(values) != 2 or not low < values[0] <= values[1]:
        raise ValueError(f"expected {name} as (min, max) with {low} < min <= max, got {values}")
    return float(values[0]), float(values[1])


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """U[0, 1) draws on ``device``, from ``generator`` when given.

    Drawn on the generator's device and moved: a CPU generator gives the same views on every
    device (at the cost of a host-to-device copy).
    """
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _as_float(images: Tensor, inplace: bool) -> Tensor:
    """:func:`to_float`, copied unless ``inplace`` so that in-place ops never touch the input."""
    x = to_float(images)
    return x if inplace or x is not images else x.clone()


_GATHER_ON = ("cpu",)  # device types where _apply_to gathers the chosen samples


def _with_probability(
    images: Tensor, p: float, generator, inplace: bool, fn: Callable[[Tensor], Tensor]
) -> Tensor:
    """``fn`` applied to each sample with probability ``p`` (one uniform draw per sample)."""
    _check_p(p)
    x = _as_float(images, inplace)
    if p == 0:
        return x
    chosen = _uniform((len(x),), generator, x.device) < p
    return _apply_to(chosen, fn, x)


def _apply_to(mask: Tensor, fn: Callable[..., Tensor], x: Tensor, *per_sample: Tensor) -> Tensor:
    """Replace, in place, the samples of ``x`` in ``mask`` by ``fn(x, *per_sample)``.

    On the CPU only the chosen samples are computed (gathered by index). On accelerators the whole
    batch is computed and mixed in with a 0/1 weight: cheaper there than the host sync that finding
    the indices needs. ``fn`` must act on each sample independently and return finite values.

    Shape:
        mask: (N,) bool. x: (N, C, H, W). per_sample: tensors with N rows. Returns x.
    """
    if x.device.type not in _GATHER_ON:
        weight = mask.to(x.dtype)[:, None, None, None]
        return x.lerp_(fn(x, *per_sample), weight)  # exact for weights 0 and 1
    index = mask.nonzero().squeeze(1)
    if index.numel() > 0:
        picked = fn(x.index_select(0, index), *(t.index_select(0, index) for t in per_sample))
        x.index_copy_(0, index, picked)
    return x


# -----------------------------------------------------------------------------
# geometry: random resized crop and horizontal flip as one affine grid per sample


def sample_crop_params(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Crop boxes drawn as torchvision's ``RandomResizedCrop.get_params``, ``n`` at once.

    Each box tries 10 times: area = H W U(scale), log aspect ratio uniform in log(ratio),
    w = round(sqrt(area ratio)), h = round(sqrt(area / ratio)); the first attempt that fits in the
    image is kept, at a uniformly random position. Boxes with no fitting attempt fall back to the
    central crop with the image's aspect ratio clamped to ``ratio``.

    Args:
        n: number of boxes. height, width: the image's size in pixels.
        scale: range of the box area as a fraction of the image area.
        ratio: range of the box aspect ratio, width / height.
        generator: source of randomness (default: torch's global one).
        device: where the boxes are made (default: the generator's device, else the CPU).

    Returns:
        (top, left, crop_h, crop_w), int64 tensors of shape (n,), in pixels.
    """
    scale = _check_range(scale, "scale")
    ratio = _check_range(ratio, "ratio")
    if n < 1 or height < 1 or width < 1:
        raise ValueError(f"expected n, height, width >= 1, got {n}, {height}, {width}")
    if device is None and generator is not None:
        device = generator.device
    attempts = 10
    u = _uniform((n, 2 * attempts + 2), generator, device)
    # 1) all 10 attempts of every box at once, (n, 10)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, :attempts])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, attempts : 2 * attempts])
    w = torch.sqrt(area * aspect).round()  # round half to even, as Python's round
    h = torch.sqrt(area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    # 2) keep the first attempt that fits (argmax returns the first maximum)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # 3) fallback: the central crop, aspect ratio clamped to the range (as torchvision)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, float(fw))
    h = torch.where(found, h, float(fh))
    # 4) position uniform over the integers 0..H-h (the clamp guards float rounding at u ~ 1)
    top = torch.minimum((u[:, -2] * (height - h + 1)).floor(), height - h)
    left = torch.minimum((u[:, -1] * (width - w + 1)).floor(), width - w)
    top = torch.where(found, top, float((height - fh) // 2))
    left = torch.where(found, left, float((width - fw) // 2))
    return top.long(), left.long(), h.long(), w.long()


def _crop_flip(
    x: Tensor,
    size: tuple[int, int],
    top: Tensor,
    left: Tensor,
    crop_h: Tensor,
    crop_w: Tensor,
    flip: Tensor | None = None,
) -> Tensor:
    """Resample a box of every image to ``size``, bilinearly, with one affine grid per sample.

    With align_corners=False, normalised coordinate -1 is the left edge of the first pixel and +1
    the right edge of the last, so the box [left, left + crop_w) is
    [2 left / W - 1, 2 (left + crop_w) / W - 1]: the grid is x_in = scale * x_out + centre, the
    ``F.affine_grid`` of theta = [[scale_x, 0, centre_x], [0, scale_y, centre_y]]. Flipping the
    output left-right negates scale_x. The grid is built directly as an outer sum because
    ``F.affine_grid``'s batched matmul is ~15x slower on the CPU.

    Shape:
        x: (N, 3, H, W) float. top, left, crop_h, crop_w, flip: (N,). Returns (N, 3, *size).
    """
    n, _, height, width = x.shape
    top, left, crop_h, crop_w = (
        t.to(x.device, x.dtype)[:, None, None] for t in (top, left, crop_h, crop_w)
    )
    scale_x, scale_y = crop_w / width, crop_h / height  # (N, 1, 1)
    centre_x, centre_y = (2 * left + crop_w) / width - 1, (2 * top + crop_h) / height - 1
    if flip is not None:
        scale_x = scale_x * (1 - 2 * flip.to(x.dtype)[:, None, None])
    # output pixel centres in normalised coordinates, as affine_grid's base grid
    out_y, out_x = ((torch.arange(s, device=x.device, dtype=x.dtype) * 2 + 1) / s - 1 for s in size)
    grid_x = scale_x * out_x + centre_x  # (N, 1, w)
    grid_y = scale_y * out_y[:, None] + centre_y  # (N, h, 1)
    grid = torch.stack(torch.broadcast_tensors(grid_x, grid_y), dim=-1)  # (N, h, w, 2)
    # "border" clamps samples half a pixel outside the image, as torch's interpolate does
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0, 1)  # bilinear weights may sum to 1 + 1 ulp


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"expected size as an int or (h, w) pair >= 1, got {size}")
    return size


def random_resized_crop(
    images: Tensor,
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """``RandomResizedCrop(size, scale, ratio)`` per sample: boxes of :func:`sample_crop_params`.

    Bilinear without antialiasing: the same as torchvision's for upsampling, which every crop of a
    32x32 CIFAR image to 32x32 is. Near a box's edges we read the image's pixels beyond the box,
    where torchvision, which resizes the cut-out box, repeats the box's edge pixels.

    Args:
        images: uint8 or float in [0, 1]. size: output side, or (height, width).
        scale, ratio: as :func:`sample_crop_params`. generator: source of randomness.

    Shape:
        images: (B, 3, H, W). Returns (B, 3, size, size), float32 in [0, 1].
    """
    x = to_float(images)
    boxes = sample_crop_params(len(x), *x.shape[-2:], scale, ratio, generator, x.device)
    return _crop_flip(x, _pair(size), *boxes)


def horizontal_flip(
    images: Tensor, p: float = 0.5, generator: torch.Generator | None = None, inplace: bool = False
) -> Tensor:
    """``RandomHorizontalFlip(p)`` per sample: mirror each image left-right with probability p.

    Args:
        images: uint8 or float in [0, 1]. p: probability per sample. generator: randomness.
        inplace: overwrite float32 ``images`` rather than a copy (for tensors the caller owns).

    Shape:
        images: (B, 3, H, W). Returns (B, 3, H, W), float32.
    """
    return _with_probability(images, p, generator, inplace, lambda t: t.flip(-1))


# -----------------------------------------------------------------------------
# colour: the tensor formulas of torchvision.transforms.functional, with per-sample factors


def _grayscale(x: Tensor) -> Tensor:
    """Luma of RGB images. Shape: x: (N, 3, H, W). Returns (N, 1, H, W)."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(1)


def _adjust_hue(x: Tensor, hue_factor: Tensor) -> Tensor:
    """Rotate the hue by ``hue_factor`` turns in HSV space, as torchvision's ``adjust_hue``.

    A hue rotation keeps every pixel's max(r, g, b) and min(r, g, b), so only the hue is needed:
    1) the hue in sixths of a turn, as torchvision's ``_rgb2hsv``, rotated;
    2) back to RGB in closed form: channel = min + (max - min) clamp(||w| - 3| - 1, 0, 1), with
       w the new hue minus the channel's own hue (R 0, G 2, B 4): 1 within one sixth of the
       channel's hue, 0 beyond two sixths, linear in between.

    Shape:
        x: (N, 3, H, W) in [0, 1]. hue_factor: (N,) in [-0.5, 0.5]. Returns (N, 3, H, W).
    """
    r, g, b = x.unbind(1)  # (N, H, W) each
    high, low = x.amax(dim=1), x.amin(dim=1)
    chroma = high - low
    # 1) (g - b) / C if red is the max, else 2 + (b - r) / C if green is, else 4 + (r - g) / C;
    #    sign(high - channel): 0 where the channel is the max, else 1 (bool masks are slow on CPU)
    not_r, not_g = torch.sign(high - r), torch.sign(high - g)
    hue = torch.lerp(g - b, torch.lerp(b - r, r - g, not_g), not_r)
    hue.div_(chroma.clamp_min(1e-12))  # grey pixels (C = 0) have numerator 0: any hue will do
    hue.add_(not_r * (2 + 2 * not_g)).add_(6 * hue_factor[:, None, None])
    hue.sub_(hue.div(6).floor_().mul_(6))  # wrap to [0, 6]
    # 2) each channel's share of the chroma, (N, 3, H, W)
    own_hue = torch.arange(0, 6, 2, dtype=x.dtype, device=x.device)[:, None, None]  # R, G, B
    ramp = (hue[:, None] - own_hue).abs_().sub_(3).abs_().sub_(1).clamp_(0, 1)
    return torch.addcmul(low[:, None], chroma[:, None], ramp).clamp_(0, 1)


def _factor_range(value, name: str, centre: float, bound: float | None = None):
    """torchvision's ColorJitter ranges: v -> [max(0, c - v), c + v], or an explicit (min, max)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected {name} >= 0, got {value}")
        lo, hi = centre - value, centre + value
        lo = max(lo, 0.0) if bound is None else lo
    else:
        if len(value) != 2 or not value[0] <= value[1]:
            raise ValueError(f"expected {name} as (min, max) with min <= max, got {value}")
        lo, hi = float(value[0]), float(value[1])
    if bound is None and lo < 0:
        raise ValueError(f"expected {name} factors >= 0, got ({lo}, {hi})")
    if bound is not None and not -bound <= lo <= hi <= bound:
        raise ValueError(f"expected {name} in [-{bound}, {bound}], got ({lo}, {hi})")
    return lo, hi


def color_jitter(
    images: Tensor,
    brightness: float | tuple[float, float] = 0.4,
    contrast: float | tuple[float, float] = 0.4,
    saturation: float | tuple[float, float] = 0.4,
    hue: float | tuple[float, float] = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`` per sample.

    Every sample draws its own factors (brightness, contrast, saturation ~ U[max(0, 1 - v), 1 + v],
    hue ~ U[-v, v], or explicit (min, max) pairs) and its own order of the four operations, as
    torchvision does per call. Brightness, contrast and saturation are all torchvision's blend
    clamp(f x + (1 - f) ref, 0, 1) with ref = black, the mean grey level, or the grey image, so
    each of the four steps is one blend whose ref is chosen per sample (f = 1 leaves a sample
    as it is), then a hue rotation of the samples whose step it is.

    Args:
        images: uint8 or float in [0, 1].
        brightness, contrast, saturation: v >= 0 for factors U[max(0, 1 - v), 1 + v], or (min, max).
        hue: v in [0, 0.5] for hue shifts U[-v, v] in turns, or (min, max) within [-0.5, 0.5].
        p: probability per sample of applying the jitter at all. generator: randomness.
        inplace: overwrite float32 ``images`` rather than a copy (for tensors the caller owns).

    Shape:
        images: (B, 3, H, W). Returns (B, 3, H, W), float32 in [0, 1].
    """
    _check_p(p)
    ranges = [
        _factor_range(brightness, "brightness", 1.0),
        _factor_range(contrast, "contrast", 1.0),
        _factor_range(saturation, "saturation", 1.0),
        _factor_range(hue, "hue", 0.0, bound=0.5),
    ]
    x = _as_float(images, inplace)
    # an op whose range is a single neutral value is skipped, as torchvision skips it
    use_b, use_c, use_s = (r != (1.0, 1.0) for r in ranges[:3])
    use_h = ranges[3] != (0.0, 0.0)
    if p == 0 or not (use_b or use_c or use_s or use_h):
        return x
    n = len(x)
    u = _uniform((n, 9), generator, x.device)
    applied = u[:, 0] < p  # (N,) RandomApply
    # (N, 4) factors of brightness, contrast, saturation, hue (Python bounds: no host-device copy)
    factors = torch.stack([lo + (hi - lo) * u[:, 1 + i] for i, (lo, hi) in enumerate(ranges)], 1)
    order = u[:, 5:9].argsort(dim=1)  # (N, 4) a uniformly random permutation per sample
    for step in range(4):
        op = order[:, step]  # (N,) 0 brightness, 1 contrast, 2 saturation, 3 hue
        if use_b or use_c or use_s:
            is_blend = applied & (op < 3)
            f = torch.where(is_blend, factors.gather(1, op[:, None]).squeeze(1), 1.0)  # (N,)
            f4 = f[:, None, None, None]
            if use_c or use_s:
                gray = _grayscale(x)  # (N, 1, H, W)
                mean = gray.mean(dim=(2, 3), keepdim=True)  # (N, 1, 1, 1)
                w_gray = ((op == 2) * (1 - f))[:, None, None, None]  # saturation: ref = grey image
                w_mean = ((op == 1) * (1 - f))[:, None, None, None]  # contrast: ref = mean grey
                ref = gray.mul_(w_gray).add_(w_mean * mean)  # (1 - f) ref
                torch.addcmul(ref, f4, x, out=x)  # f x + (1 - f) ref, in place
            else:
                x.mul_(f4)  # brightness only: ref = black
            x.clamp_(0, 1)
        if use_h:
            x = _apply_to(applied & (op == 3), _adjust_hue, x, factors[:, 3])
    return x


def random_grayscale(
    images: Tensor, p: float = 0.2, generator: torch.Generator | None = None, inplace: bool = False
) -> Tensor:
    """``RandomGrayscale(p)`` per sample: the luma, copied to 3 channels, with probability ``p``.

    Luma = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2, as PIL and the torchvision docs; torchvision's
    tensor code uses 0.2989 for R).

    Args:
        images: uint8 or float in [0, 1]. p: probability per sample. generator: randomness.
        inplace: overwrite float32 ``images`` rather than a copy (for tensors the caller owns).

    Shape:
        images: (B, 3, H, W). Returns (B, 3, H, W), float32.
    """
    return _with_probability(images, p, generator, inplace, lambda t: _grayscale(t).expand_as(t))


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Separable convolution with a per-sample 1-D kernel, reflect padding.

    Shape:
        x: (N, 3, H, W). kernel: (N, K), K odd. Returns (N, 3, H, W).
    """
    size, half = kernel.shape[1], kernel.shape[1] // 2
    height, width = x.shape[-2:]
    padded = F.pad(x, (half, half, half, half), mode="reflect")  # (N, 3, H + K - 1, W + K - 1)
    taps = kernel[:, :, None, None, None]  # (N, K, 1, 1, 1)
    rows = padded[..., :width] * taps[:, 0]
    for i in range(1, size):
        rows.addcmul_(padded[..., i : i + width], taps[:, i])
    out = rows[..., :height, :] * taps[:, 0]
    for i in range(1, size):
        out.addcmul_(rows[..., i : i + height, :], taps[:, i])
    return out.clamp_(0, 1)  # a weighted mean, up to rounding


def gaussian_blur(
    images: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int = 3,
    p: float = 0.5,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """``RandomApply([GaussianBlur(kernel_size, sigma)], p)`` per sample, sigma ~ U(sigma) each.

    torchvision's kernel: exp(-t^2 / (2 sigma^2)) at t = -(K-1)/2 .. (K-1)/2, normalised to sum 1,
    along rows and columns of the reflect-padded image.

    Args:
        images: uint8 or float in [0, 1]. sigma: (min, max) of the kernel's std in pixels.
        kernel_size: odd kernel side. p: probability per sample. generator: randomness.
        inplace: overwrite float32 ``images`` rather than a copy (for tensors the caller owns).

    Shape:
        images: (B, 3, H, W). Returns (B, 3, H, W), float32.
    """
    _check_p(p)
    sigma = _check_range(sigma, "sigma")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"expected an odd kernel_size >= 1, got {kernel_size}")
    x = _as_float(images, inplace)
    if kernel_size // 2 >= min(x.shape[-2:]):
        raise ValueError(f"expected kernel_size // 2 < image side, got {kernel_size} for {x.shape}")
    if p == 0:
        return x
    u = _uniform((len(x), 2), generator, x.device)
    s = sigma[0] + (sigma[1] - sigma[0]) * u[:, 1:]  # (N, 1)
    half = kernel_size // 2
    t = torch.linspace(-half, half, kernel_size, device=x.device)  # (K,)
    kernel = torch.exp(-0.5 * (t / s) ** 2)  # (N, K)
    return _apply_to(u[:, 0] < p, _blur, x, kernel / kernel.sum(dim=1, keepdim=True))


def solarize(
    images: Tensor,
    threshold: float = 0.5,
    p: float = 0.2,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """``RandomSolarize(threshold, p)`` per sample: invert the pixels >= threshold.

    Args:
        images: uint8 or float in [0, 1]. threshold: in [0, 1]. p: probability per sample.
        generator: randomness. inplace: overwrite float32 ``images`` rather than a copy.

    Shape:
        images: (B, 3, H, W). Returns (B, 3, H, W), float32.
    """
    _check_p(p)
    _check_p(threshold, "threshold")
    x = _as_float(images, inplace)
    if p == 0:
        return x
    chosen = _uniform((len(x),), generator, x.device) < p
    return _apply_to(chosen, lambda t: torch.where(t >= threshold, 1 - t, t), x)


# -----------------------------------------------------------------------------
# the SimCLR recipe


@dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's augmentation for CIFAR-10 [0]: crop + flip, colour jitter, grayscale.

    [0] SimCLR, Chen et al. 2020, arXiv:2002.05709: Appendix A (the recipe, colour strength s)
        and B.9 (CIFAR-10: s = 0.5, no Gaussian blur).
    """

    size: int = 32  # output side in pixels (CIFAR-10 images are 32x32)
    scale: tuple[float, float] = (0.08, 1.0)  # crop area as a fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio (width / height)
    flip_p: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.4  # 0.8 s with colour strength s = 0.5 (App. A)
    contrast: float = 0.4  # 0.8 s
    saturation: float = 0.4  # 0.8 s
    hue: float = 0.1  # 0.2 s
    jitter_p: float = 0.8  # probability of applying the colour jitter (App. A)
    grayscale_p: float = 0.2  # probability of dropping colour (App. A)
    blur_p: float = 0.0  # Gaussian blur probability; SimCLR drops blur on CIFAR (App. B.9)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # range of the blur's std in pixels (App. A)
    blur_kernel_size: int = 3  # blur kernel side; SimCLR uses 10% of the image side
    solarize_p: float = 0.0  # solarization probability (BYOL's second view uses 0.2)
    solarize_threshold: float = 0.5  # pixels at or above it are inverted

    def __post_init__(self):  # a bad recipe fails here, not at the first batch
        _pair(self.size)
        _check_range(self.scale, "scale")
        _check_range(self.ratio, "ratio")
        _check_range(self.blur_sigma, "blur_sigma")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _check_p(getattr(self, name), name)
        for name in ("brightness", "contrast", "saturation"):
            _factor_range(getattr(self, name), name, 1.0)
        _factor_range(self.hue, "hue", 0.0, bound=0.5)
        _check_p(self.solarize_threshold, "solarize_threshold")

    @classmethod
    def crop_only(cls, **changes) -> SimCLRAugment:
        """Random resized crop and flip, no colour: the crop-only ablation (SimCLR Fig. 5)."""
        return cls(**{"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0, **changes})

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One random view of every image.

        Shape:
            images: (B, 3, H, W), uint8 or float in [0, 1]. Returns (B, 3, size, size), float32.
        """
        x = to_float(images)
        n, _, height, width = x.shape
        # 1) crop and flip: one resampling pass, into a new tensor the colour ops may overwrite
        boxes = sample_crop_params(n, height, width, self.scale, self.ratio, generator, x.device)
        flip = _uniform((n,), generator, x.device) < self.flip_p
        x = _crop_flip(x, _pair(self.size), *boxes, flip)
        # 2) colour distortion
        jitter = (self.brightness, self.contrast, self.saturation, self.hue)
        x = color_jitter(x, *jitter, p=self.jitter_p, generator=generator, inplace=True)
        x = random_grayscale(x, self.grayscale_p, generator, inplace=True)
        # 3) extras of later recipes (BYOL), off in SimCLR's CIFAR-10 recipe
        blur = (self.blur_sigma, self.blur_kernel_size, self.blur_p)
        x = gaussian_blur(x, *blur, generator=generator, inplace=True)
        return solarize(x, self.solarize_threshold, self.solarize_p, generator, inplace=True)


def two_views(
    images: Tensor,
    augment: Callable[..., Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Two independent random views of every image (default :class:`SimCLRAugment`).

    Both views come from one call on the doubled batch: every sample draws its own parameters.

    Args:
        images: uint8 or float in [0, 1].
        augment: a callable ``augment(images, generator=None)`` making one view per image.
        generator: source of randomness (default: torch's global one).

    Shape:
        images: (B, 3, H, W). Returns two (B, 3, size, size) float32 tensors.
    """
    augment = SimCLRAugment() if augment is None else augment
    check_images(images)
    views = augment(torch.cat([images, images]), generator=generator)
    return views[: len(images)], views[len(images) :]


# -----------------------------------------------------------------------------
# multi-crop: two global views and several small local views


@dataclass(frozen=True)
class MultiCropAugment:
    """Multi-crop [1, 2]: ``n_global`` large views and ``n_local`` small views of every image.

    The local views are crops of a small part of the image (``local_scale``) resized to a small
    side (``local_size``), so they cost little: a 16x16 view is a quarter of a 32x32 one. In DINO
    [2] the teacher sees only the global views and the student sees all of them, so the student
    learns to predict, from a small part of an image, what the teacher says about the whole:
    "local-to-global" correspondences. [2] uses 2 global views of 224 px at scale (0.4, 1) and
    10 local views of 96 px at scale (0.05, 0.4); on CIFAR-10 the defaults keep those scales at
    32 and 16 px.

    Every view is one :class:`SimCLRAugment` draw with its own crop, flip and colours per sample
    (``colour`` sets the colour recipe; its ``size`` and ``scale`` are replaced by those below).

    Shape:
        images: (B, 3, H, W), uint8 or float in [0, 1]. Returns a list of n_global views
        (B, 3, global_size, global_size) followed by n_local views (B, 3, local_size, local_size),
        float32; view v of image i is row i of the v-th tensor.
    """

    n_global: int = 2  # large views, seen by the teacher and the student
    global_size: int = 32  # their side in pixels (a CIFAR-10 image)
    global_scale: tuple[float, float] = (0.4, 1.0)  # their crop area, fraction of the image ([2])
    n_local: int = 6  # small views, seen by the student only; 10 in [2], 6 keeps CIFAR runs short
    local_size: int = 16  # their side in pixels: 96 / 224 of ImageNet's ~ 16 / 32 here
    local_scale: tuple[float, float] = (0.05, 0.4)  # their crop area, fraction of the image ([2])
    colour: SimCLRAugment = field(default_factory=SimCLRAugment)  # flip and colour recipe

    def __post_init__(self):  # a bad recipe fails here, not at the first batch
        if self.n_global < 1 or self.n_local < 0:
            raise ValueError(
                f"expected n_global >= 1 and n_local >= 0, got {self.n_global} and {self.n_local}"
            )
        _pair(self.global_size)
        _pair(self.local_size)
        _check_range(self.global_scale, "global_scale")
        _check_range(self.local_scale, "local_scale")

    @property
    def global_view(self) -> SimCLRAugment:
        """The recipe of one global view."""
        return replace(self.colour, size=self.global_size, scale=self.global_scale)

    @property
    def local_view(self) -> SimCLRAugment:
        """The recipe of one local view."""
        return replace(self.colour, size=self.local_size, scale=self.local_scale)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        check_images(images)
        n = len(images)
        # one call per kind of view on the repeated batch: every row draws its own parameters
        views = self.global_view(images.repeat(self.n_global, 1, 1, 1), generator).split(n)
        if self.n_local > 0:
            local = self.local_view(images.repeat(self.n_local, 1, 1, 1), generator)
            views += local.split(n)
        return list(views)
