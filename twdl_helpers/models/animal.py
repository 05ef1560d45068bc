"""Module 3's fully connected networks for 3x32x32 Animal Faces; each is seeded by an explicit argument and built
on the device it is given (the same weights on every device: drawn on the CPU, then moved)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..common import seeded
from .architecture import Rebuildable

__all__ = ["AnimalNet", "BigAnimalNet", "AnimalNetDropout", "SmallAnimalNet", "ANIMAL_MODELS", "IMAGE_FEATURES"]

IMAGE_FEATURES = 3 * 32 * 32
INITS = ("default", "xavier")


class _SeededMLP(Rebuildable, nn.Module):
    """Flatten, then the given layers; weights drawn from `seed` without touching the global random state."""

    def __init__(self, build: Callable[[], list[nn.Module]], seed: int, init: str,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        with seeded(seed):  # the caller's random stream is left exactly as it was
            self.layers = nn.Sequential(nn.Flatten(), *build())
            if init == "xavier":
                for layer in self.layers:
                    if isinstance(layer, nn.Linear):
                        nn.init.xavier_uniform_(layer.weight)
                        nn.init.zeros_(layer.bias)
        self.seed, self.init = seed, init
        if device is not None:
            self.to(device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images (N, 3, 32, 32) or already flat rows (N, 3072)."""
        return self.layers(images)


class AnimalNet(_SeededMLP):
    """3072 -> 128 -> 32 -> 3 with ReLU (the course's Animal_Net)."""

    def __init__(self, seed: int = 0, init: str = "default", device: torch.device | str | None = None) -> None:
        super().__init__(lambda: [nn.Linear(IMAGE_FEATURES, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(),
                                  nn.Linear(32, 3)], seed, init, device)


class BigAnimalNet(_SeededMLP):
    """3072 -> 124 -> 64 -> 3 with leaky ReLU (Big_Animal_Net: the memoriser, pruning subject and teacher)."""

    def __init__(self, seed: int = 0, init: str = "default", device: torch.device | str | None = None) -> None:
        super().__init__(lambda: [nn.Linear(IMAGE_FEATURES, 124), nn.LeakyReLU(), nn.Linear(124, 64),
                                  nn.LeakyReLU(), nn.Linear(64, 3)], seed, init, device)


class AnimalNetDropout(_SeededMLP):
    """3072 -> 248 -> 210 -> 3, leaky ReLU, dropout 0.5 and 0.3 after the hidden layers (train mode only)."""

    def __init__(self, seed: int = 0, init: str = "default", p1: float = 0.5, p2: float = 0.3,
                 device: torch.device | str | None = None) -> None:
        super().__init__(lambda: [nn.Linear(IMAGE_FEATURES, 248), nn.LeakyReLU(), nn.Dropout(p1),
                                  nn.Linear(248, 210), nn.LeakyReLU(), nn.Dropout(p2), nn.Linear(210, 3)], seed, init,
                         device)


class SmallAnimalNet(_SeededMLP):
    """3072 -> 32 -> 3 with leaky ReLU (the distillation student)."""

    def __init__(self, seed: int = 0, init: str = "default", device: torch.device | str | None = None) -> None:
        super().__init__(lambda: [nn.Linear(IMAGE_FEATURES, 32), nn.LeakyReLU(), nn.Linear(32, 3)], seed, init,
                         device)


ANIMAL_MODELS: dict[str, type[_SeededMLP]] = {
    "animal": AnimalNet, "big": BigAnimalNet, "dropout": AnimalNetDropout, "small": SmallAnimalNet,
}
