"""On-device batch augmentation for image tensors, seeded by the generator the training loop passes in."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torchvision.transforms import v2

__all__ = ["BatchAugment", "flips", "course_augmentation", "label_preserving_augmentation", "shift_images",
           "AUGMENT_PROBABILITY", "MAX_SHIFT"]

# The course's flip probability (per image, horizontal and vertical alike).
AUGMENT_PROBABILITY = 0.1
# The label-preserving augmentation's largest shift, in pixels (of 32), each way.
MAX_SHIFT = 3


def _per_sample(n: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A boolean mask with one independent draw per sample."""
    return (torch.rand(n, generator=generator) < p).to(device)


def shift_images(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Move each image of the batch by its own random offset of up to `max_shift` pixels in each direction.

    The batch is reflect-padded by `max_shift` once, and every image's window is taken with one `gather` on its
    device (no loop over images); the offsets are drawn from `generator`, on the CPU.
    """
    n, channels, height, width = x.shape
    if max_shift == 0:
        return x
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n, 1, 1), generator=generator).to(x.device)
    padded = F.pad(x, (max_shift,) * 4, mode="reflect").flatten(2)  # (n, C, H' * W')
    rows = offsets[0] + torch.arange(height, device=x.device)[:, None]  # (n, H, 1): the padded rows each image keeps
    cols = offsets[1] + torch.arange(width, device=x.device)  # (n, 1, W)
    index = (rows * (width + 2 * max_shift) + cols).reshape(n, 1, height * width)
    return padded.gather(2, index.expand(n, channels, height * width)).view(n, channels, height, width)


@dataclass
class BatchAugment:
    """Random flips and shifts (decided per sample) plus optional torchvision v2 crops / erasing (per small group).

    `shift` moves each image by up to that many pixels each way (reflect padding at the border). Call as
    `augment(x, generator)` on a batch (N, C, H, W) that stays on its device; `twdl.train(...,
    augment=BatchAugment(...))` passes its seeded generator, so runs are reproducible. A v2 transform
    called on a whole batch draws ONE random decision for all of it, so crops and erasing are applied to
    groups of `group_size` samples, each group with its own draw from `generator`.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    crop_scale: tuple[float, float] | None = None
    erase: float = 0.0
    group_size: int = 8
    shift: int = 0

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "erase"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")
        if self.shift < 0:
            raise ValueError(f"shift is a number of pixels >= 0, got {self.shift}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return an augmented copy of the image batch `x`."""
        if x.ndim != 4:
            raise ValueError(f"BatchAugment expects images shaped (N, C, H, W), got shape {tuple(x.shape)}")
        n = x.shape[0]
        if self.hflip > 0:
            x = torch.where(_per_sample(n, self.hflip, generator, x.device)[:, None, None, None], x.flip(-1), x)
        if self.vflip > 0:
            x = torch.where(_per_sample(n, self.vflip, generator, x.device)[:, None, None, None], x.flip(-2), x)
        if self.shift > 0:
            if self.shift >= min(x.shape[-2:]):
                raise ValueError(f"shift ({self.shift} px) must be smaller than the image ({tuple(x.shape[-2:])})")
            x = shift_images(x, self.shift, generator)
        steps = []
        if self.crop_scale is not None:
            steps.append(v2.RandomResizedCrop(tuple(x.shape[-2:]), scale=self.crop_scale, antialias=True))
        if self.erase > 0:
            steps.append(v2.RandomErasing(p=self.erase, value=0.0))
        if not steps:
            return x
        transform = v2.Compose(steps)
        seeds = torch.randint(0, 2**62, ((n + self.group_size - 1) // self.group_size,), generator=generator)
        groups = []
        for seed, group in zip(seeds.tolist(), x.split(self.group_size)):
            with torch.random.fork_rng(devices=[]):  # v2 draws from the global stream: seed it from ours
                torch.manual_seed(seed)
                groups.append(transform(group))
        return torch.cat(groups)


def flips(horizontal: float = AUGMENT_PROBABILITY, vertical: float = AUGMENT_PROBABILITY) -> BatchAugment:
    """Random horizontal and vertical flips, each decided per sample (the course's p = 0.1 by default)."""
    return BatchAugment(hflip=horizontal, vflip=vertical)


def course_augmentation() -> BatchAugment:
    """The course's augmentation: horizontal and vertical flips, each with probability AUGMENT_PROBABILITY (0.1)
    per image. A vertical flip turns an animal upside down: it does not preserve what a photo looks like."""
    return flips(AUGMENT_PROBABILITY, AUGMENT_PROBABILITY)


def label_preserving_augmentation(max_shift: int = MAX_SHIFT) -> BatchAugment:
    """A horizontal flip with probability 0.5 plus a random shift of up to `max_shift` pixels (reflect padding),
    per image: a mirrored or slightly moved animal photo is still a photo of the same animal."""
    return BatchAugment(hflip=0.5, shift=max_shift)
