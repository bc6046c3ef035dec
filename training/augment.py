"""View augmentations for joint-embedding methods, per sample (torchvision v2) or batched.

Every method here trains on several random *views* of each image. A view is described by
one :class:`ViewConfig` (random resized crop, horizontal flip, colour jitter, grayscale,
Gaussian blur, solarisation, normalisation); a method's pipeline is a list of them, e.g.
SimCLR's two identical views, BYOL's two asymmetric ones (blur 1.0 / 0.1, solarise 0 / 0.2)
or multi-crop's 2 global + N local views (SwAV, DINO).

Two implementations draw the same distributions:

* :func:`v2_transform` builds a ``torchvision.transforms.v2`` pipeline applied to one image
  at a time: the reference, and what a GPU data loader with many workers would run;
* :class:`BatchedViews` draws every random parameter for a whole batch at once and applies
  them with batched tensor ops (one ``grid_sample`` for crop + flip + resize, per-sample
  factors for jitter, grouped convolutions for blur). On CPU this is what keeps the data
  pipeline off the critical path: the training issue measured ~2,300 views/s per process
  per sample against ~17,600 views/s batched.

The batched path differs from torchvision in two small ways: the four colour-jitter
operations run in one random order per batch (torchvision draws one per image), and crops
are resampled bilinearly without antialiasing (the stored images are at most a few times
larger than the views; the views' pixel spread comes out a few percent higher, see the
tests). Every single operation matches torchvision's on the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from zoo.models.lab_split import LAB_MEAN, LAB_STD, rgb_to_lab
from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

#: ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class ViewConfig:
    """How one view is drawn from an image. Defaults are BYOL's first view (Grill et al.
    2020, table 6) with SimCLR's crop: ``RandomResizedCrop(scale=(0.08, 1))``, flip 0.5,
    colour jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale 0.2, blur 1.0, no solarise."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    #: kernel size as a fraction of ``size`` (SimCLR: 10% of the image side, made odd).
    blur_kernel_frac: float = 0.1
    solarize_p: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {self.ratio}")
        for name in ("hflip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"{name} is a probability, got {p}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if min(self.brightness, self.contrast, self.saturation) < 0:
            raise ValueError("brightness, contrast and saturation must be >= 0")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma}")

    @property
    def blur_kernel(self) -> int:
        k = max(3, int(self.size * self.blur_kernel_frac))
        return k if k % 2 else k + 1


def simclr_views(size: int, *, blur: bool = True, strength: float = 1.0) -> list[ViewConfig]:
    """SimCLR (Chen et al. 2020, appendix A): two views, colour jitter ``0.8 s`` on brightness,
    contrast and saturation and ``0.2 s`` on hue, blur with p=0.5 (off on CIFAR, as in the paper)."""
    view = ViewConfig(
        size=size,
        brightness=0.8 * strength,
        contrast=0.8 * strength,
        saturation=0.8 * strength,
        hue=0.2 * strength,
        blur_p=0.5 if blur else 0.0,
    )
    return [view, view]


def byol_views(size: int, *, blur: bool = True) -> list[ViewConfig]:
    """BYOL (Grill et al. 2020, table 6): asymmetric views, blur 1.0 / 0.1, solarise 0 / 0.2.
    ``blur=False`` drops blur on tiny images (CIFAR), as solo-learn and lightly do."""
    first = ViewConfig(size=size, blur_p=1.0 if blur else 0.0)
    second = ViewConfig(size=size, blur_p=0.1 if blur else 0.0, solarize_p=0.2)
    return [first, second]


def multicrop_views(
    global_size: int,
    local_size: int,
    num_local: int,
    *,
    global_scale: tuple[float, float] = (0.14, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.14),
    blur: bool = True,
) -> list[ViewConfig]:
    """Multi-crop (SwAV, Caron et al. 2020; DINO): BYOL's two global views plus ``num_local``
    small crops of small regions (blur 0.5), which must agree with the global ones."""
    first, second = byol_views(global_size, blur=blur)
    local = ViewConfig(size=local_size, scale=local_scale, blur_p=0.5 if blur else 0.0)
    return [
        ViewConfig(**{**vars(first), "scale": global_scale}),
        ViewConfig(**{**vars(second), "scale": global_scale}),
        *[local] * num_local,
    ]


# --------------------------------------------------------------------------------------
# What a method does with the views: how many, which colour space, a patch grid


@dataclass(frozen=True)
class ViewSpec:
    """A method's declaration of its inputs, applied by :func:`build_views` after the
    recipe's views (:class:`ViewConfig` list) are drawn, on whole batches of tensors.

    Attributes:
        count: keep the first ``count`` views (0 = all); NPID, DeepCluster and SeLa train on one.
        colour: ``rgb`` (normalised as the view says) or ``lab``: CIELAB (D65) with L in channel
            0 and ab in channels 1-2, each mapped to about [-1, 1] (CMC's split of an image into
            luminance and colour).
        patch_grid: ``(grid, patch)``: each view becomes a ``grid x grid`` grid of overlapping
            ``patch``-pixel squares at a stride of ``(size - patch) / (grid - 1)`` (CPC), returned as
            one tensor (N * grid * grid, 3, patch, patch), image-major, patches in row-major order.
    """

    count: int = 0
    colour: Literal["rgb", "lab"] = "rgb"
    patch_grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.colour not in ("rgb", "lab"):
            raise ValueError(f"colour must be 'rgb' or 'lab', got {self.colour!r}")
        if self.patch_grid is not None and (self.patch_grid[0] < 2 or self.patch_grid[1] < 1):
            raise ValueError(f"patch_grid must be (grid >= 2, patch >= 1), got {self.patch_grid}")

    def check(self, views: Sequence[ViewConfig]) -> None:
        """ValueError naming the problem when ``views`` cannot give these inputs."""
        if self.count > len(views):
            raise ValueError(f"the method takes {self.count} views but the preset draws {len(views)}")
        if self.patch_grid is not None:
            grid, patch = self.patch_grid
            for v in views[: self.count or None]:
                if patch > v.size or (v.size - patch) % (grid - 1):
                    raise ValueError(
                        f"a {grid}x{grid} grid of {patch}-pixel patches does not tile {v.size}-pixel views"
                        f" evenly: (size - patch) must be a multiple of {grid - 1}"
                    )


def patch_grid(x: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """(N, C, S, S) -> (N * grid * grid, C, patch, patch) overlapping patches, row-major."""
    n, c, size, _ = x.shape
    stride = (size - patch) // (grid - 1)
    tiles = x.unfold(2, patch, stride).unfold(3, patch, stride)  # (N, C, grid, grid, P, P)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(n * grid * grid, c, patch, patch).contiguous()


class SpecViews:
    """A view pipeline (:class:`BatchedViews` or :class:`PerSampleViews`) followed by a
    method's :class:`ViewSpec`: same call signature, so the data path is unchanged."""

    def __init__(
        self,
        base: Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]],
        views: Sequence[ViewConfig],
        spec: ViewSpec,
    ) -> None:
        spec.check(views)
        self.base, self.views, self.spec = base, list(views), spec

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        out = self.base(images, generator)
        keep = self.spec.count or len(out)
        result = []
        for x, view in zip(out[:keep], self.views, strict=False):
            if self.spec.colour == "lab":
                mean = torch.tensor(view.mean).view(1, 3, 1, 1)
                std = torch.tensor(view.std).view(1, 3, 1, 1)
                rgb = (x * std + mean).clamp_(0, 1)
                lab_mean = torch.tensor(LAB_MEAN).view(1, 3, 1, 1)
                lab_std = torch.tensor(LAB_STD).view(1, 3, 1, 1)
                x = (rgb_to_lab(rgb) - lab_mean) / lab_std
            if self.spec.patch_grid is not None:
                x = patch_grid(x, *self.spec.patch_grid)
            result.append(x)
        return result


def build_views(
    views: Sequence[ViewConfig], spec: ViewSpec | None = None, backend: str = "batched"
) -> Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]]:
    """The data pipeline of a run: ``views`` drawn batched on tensors (or per sample with
    torchvision), then the method's ``spec`` applied (nothing to apply: the plain pipeline)."""
    spec = spec or ViewSpec()
    spec.check(views)
    kept = list(views)[: spec.count or None]  # views are drawn in order: the kept ones are unchanged
    base = BatchedViews(kept) if backend == "batched" else PerSampleViews(kept)
    if spec.colour == "rgb" and spec.patch_grid is None:
        return base
    return SpecViews(base, kept, spec)


# --------------------------------------------------------------------------------------
# Per sample: torchvision.transforms.v2


def v2_transform(view: ViewConfig) -> v2.Compose:
    """The torchvision v2 pipeline for one view: uint8 or float (3, H, W) -> normalised float."""
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.RandomResizedCrop(view.size, scale=view.scale, ratio=view.ratio, antialias=True),
        v2.RandomHorizontalFlip(view.hflip_p),
        v2.RandomApply(
            [v2.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue)], p=view.jitter_p
        ),
        v2.RandomGrayscale(view.grayscale_p),
    ]
    if view.blur_p > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(view.blur_kernel, view.blur_sigma)], p=view.blur_p))
    if view.solarize_p > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=view.solarize_p))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(view.mean, view.std)]
    return v2.Compose(steps)


class PerSampleViews:
    """Views of a uint8 batch (N, 3, H, W), one image at a time with :func:`v2_transform`.

    v2 draws from torch's global generator, so the batch's seed is installed inside a
    forked RNG state: the same ``generator`` seed gives the same views, in any process.
    """

    def __init__(self, views: Sequence[ViewConfig]) -> None:
        self.views = list(views)
        self.transforms = [v2_transform(v) for v in self.views]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return [torch.stack([t(img) for img in images]) for t in self.transforms]


# --------------------------------------------------------------------------------------
# Batched on tensors


class BatchedViews:
    """Views of a uint8 (or [0, 1] float) batch (N, 3, H, W), all samples at once.

    Call with an explicit ``torch.Generator`` so the views of a step depend only on its
    seed (exact resume, any number of loader workers). Returns one normalised float32
    tensor (N, 3, size, size) per view.
    """

    def __init__(self, views: Sequence[ViewConfig]) -> None:
        if not views:
            raise ValueError("at least one view is needed")
        self.views = list(views)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a batch (N, 3, H, W), got shape {tuple(images.shape)}")
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        return [augment_batch(x, view, generator) for view in self.views]


def augment_batch(x: torch.Tensor, view: ViewConfig, generator: torch.Generator) -> torch.Tensor:
    """One view of every image of ``x`` ((N, 3, H, W) float in [0, 1])."""
    n = len(x)

    def uniform(lo: float, hi: float, size: int = n) -> torch.Tensor:
        return torch.empty(size).uniform_(lo, hi, generator=generator)

    def chosen(p: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) < p

    out = _resized_crop(x, view, chosen(view.hflip_p), generator)
    # Colour jitter: factors of samples not selected are the identity.
    jitter = chosen(view.jitter_p)
    ops = [
        ("brightness", view.brightness, _brightness),
        ("contrast", view.contrast, _contrast),
        ("saturation", view.saturation, _saturation),
        ("hue", view.hue, _hue),
    ]
    order = torch.randperm(4, generator=generator).tolist()
    for i in order:
        name, strength, fn = ops[i]
        if strength <= 0:
            continue
        if name == "hue":
            factor = torch.where(jitter, uniform(-strength, strength), torch.zeros(n))
        else:
            factor = torch.where(jitter, uniform(max(0.0, 1 - strength), 1 + strength), torch.ones(n))
        out = fn(out, factor.view(n, 1, 1, 1))
    gray = chosen(view.grayscale_p)
    if gray.any():
        out = torch.where(gray.view(n, 1, 1, 1), _grayscale(out).expand_as(out), out)
    blur = chosen(view.blur_p)
    sigma = uniform(*view.blur_sigma)
    if blur.any():
        out[blur] = _gaussian_blur(out[blur], view.blur_kernel, sigma[blur])
    solar = chosen(view.solarize_p)
    if solar.any():
        out = torch.where(solar.view(n, 1, 1, 1) & (out >= 0.5), 1 - out, out)
    mean = torch.tensor(view.mean).view(1, 3, 1, 1)
    std = torch.tensor(view.std).view(1, 3, 1, 1)
    return (out - mean) / std


def crop_boxes(
    n: int, height: int, width: int, view: ViewConfig, generator: torch.Generator, attempts: int = 10
) -> torch.Tensor:
    """(N, 4) crop boxes ``(top, left, h, w)`` drawn as torchvision's RandomResizedCrop does:
    up to ``attempts`` tries of area and log-aspect ratio, else a centre crop clamped to
    the ratio range."""
    area = height * width
    target = area * torch.empty(n, attempts).uniform_(*view.scale, generator=generator)
    log_lo, log_hi = math.log(view.ratio[0]), math.log(view.ratio[1])
    aspect = torch.exp(torch.empty(n, attempts).uniform_(log_lo, log_hi, generator=generator))
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    w_pick, h_pick = w[rows, first.clamp(min=0)], h[rows, first.clamp(min=0)]
    # Fallback (no attempt fitted): the largest centre crop whose ratio is in range.
    in_ratio = width / height
    if in_ratio < view.ratio[0]:
        fw, fh = width, round(width / view.ratio[0])
    elif in_ratio > view.ratio[1]:
        fw, fh = round(height * view.ratio[1]), height
    else:
        fw, fh = width, height
    fallback = first < 0
    w_pick = torch.where(fallback, torch.full((n,), float(fw)), w_pick)
    h_pick = torch.where(fallback, torch.full((n,), float(fh)), h_pick)
    top = torch.floor(torch.rand(n, generator=generator) * (height - h_pick + 1))
    left = torch.floor(torch.rand(n, generator=generator) * (width - w_pick + 1))
    top = torch.where(fallback, ((height - h_pick) / 2).round(), top)
    left = torch.where(fallback, ((width - w_pick) / 2).round(), left)
    return torch.stack([top, left, h_pick, w_pick], 1)


def _resized_crop(
    x: torch.Tensor, view: ViewConfig, flip: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Crop each image's box, flip the chosen ones and resize to ``view.size``: one affine
    ``grid_sample`` for the whole batch instead of N crops and N resizes."""
    n, _, height, width = x.shape
    top, left, h, w = crop_boxes(n, height, width, view, generator).unbind(1)
    # affine_grid maps output coordinates in [-1, 1] to input coordinates in [-1, 1]
    # (align_corners=False: -1 and 1 are the outer edges of the border pixels).
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -w / width, w / width)
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, 3, view.size, view.size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor).clamp_(0, 1)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # Blend with the image's mean gray level, as torchvision's adjust_contrast.
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (factor * x + (1 - factor) * mean).clamp_(0, 1)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x + (1 - factor) * _grayscale(x)).clamp_(0, 1)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (RGB -> HSV -> RGB, as torchvision's adjust_hue)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    h = (h + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB in closed form (no per-sector gather): channel n in (5, 3, 1) for (r, g, b)
    # is v - v s clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6.
    vs = maxc * s
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + 6.0 * h) % 6.0
        channels.append(maxc - vs * torch.minimum(k, 4.0 - k).clamp_(0, 1))
    return torch.stack(channels, 1)


def _gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image: a grouped convolution whose groups
    are the (image, channel) pairs, with reflect padding as torchvision."""
    n, c, height, width = x.shape
    half = (kernel - 1) / 2
    coords = torch.linspace(-half, half, kernel)
    weights = torch.exp(-0.5 * (coords / sigma.view(-1, 1)) ** 2)
    weights = (weights / weights.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, K)
    pad = kernel // 2
    flat = x.reshape(1, n * c, height, width)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect" if min(height, width) > pad else "replicate")
    flat = F.conv2d(flat, weights.view(n * c, 1, kernel, 1), groups=n * c)
    flat = F.conv2d(flat, weights.view(n * c, 1, 1, kernel), groups=n * c)
    return flat.view(n, c, height, width)
