"""On-device batch augmentation for image tensors, seeded by the generator the training loop passes in."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

__all__ = ["BatchAugment", "flips", "course_augmentation", "AUGMENT_PROBABILITY"]

# The course's flip probability (per image, horizontal and vertical alike), used wherever the helpers augment.
AUGMENT_PROBABILITY = 0.1


def _per_sample(n: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A boolean mask with one independent draw per sample."""
    return (torch.rand(n, generator=generator) < p).to(device)


@dataclass
class BatchAugment:
    """Random flips (decided per sample) plus optional torchvision v2 crops / erasing (decided per small group).

    Call as `augment(x, generator)` on a batch (N, C, H, W) that stays on its device; `twdl.train(...,
    augment=BatchAugment(...))` passes its seeded generator, so runs are reproducible. A v2 transform
    called on a whole batch draws ONE random decision for all of it, so crops and erasing are applied to
    groups of `group_size` samples, each group with its own draw from `generator`.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    crop_scale: tuple[float, float] | None = None
    erase: float = 0.0
    group_size: int = 8

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "erase"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return an augmented copy of the image batch `x`."""
        if x.ndim != 4:
            raise ValueError(f"BatchAugment expects images shaped (N, C, H, W), got shape {tuple(x.shape)}")
        n = x.shape[0]
        if self.hflip > 0:
            x = torch.where(_per_sample(n, self.hflip, generator, x.device)[:, None, None, None], x.flip(-1), x)
        if self.vflip > 0:
            x = torch.where(_per_sample(n, self.vflip, generator, x.device)[:, None, None, None], x.flip(-2), x)
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
    """The one augmentation the course uses: horizontal and vertical flips, each with probability
    AUGMENT_PROBABILITY (0.1) per image, plus a random resized crop (scale 0.8-1) per group of 8 images."""
    return BatchAugment(hflip=AUGMENT_PROBABILITY, vflip=AUGMENT_PROBABILITY, crop_scale=(0.8, 1.0), group_size=8)
