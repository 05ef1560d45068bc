"""Module 2's MNIST networks: shallow and deep MLPs with and without batch norm, and a residual MLP (logits out).

Each takes `seed` (weights drawn from it without touching the global random stream; None: the global stream) and
`device` (built there). BatchNorm layers draw no random numbers, so a net and its BN twin built with the same seed
start from identical linear weights: they differ only by the BN layers.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..common import seeded
from .architecture import Rebuildable

__all__ = ["FeedForward", "ShallowNet", "BNShallowNet", "DeepNet", "BNDeepNet", "ResidualBlock", "ResidualMLP"]

Device = torch.device | str | None


class FeedForward(Rebuildable, nn.Sequential):
    """Flatten, then Linear [-> BatchNorm1d] -> ReLU per hidden width, [Dropout], Linear to the classes (logits)."""

    def __init__(self, widths: Sequence[int], batch_norm: bool = False, dropout: float = 0.0,
                 seed: int | None = None, device: Device = None):
        if len(widths) < 3:
            raise ValueError(f"widths must be (inputs, hidden..., classes) with at least one hidden layer, got {widths}")
        layers: list[nn.Module] = [nn.Flatten()]
        with seeded(seed):
            for n_in, n_out in zip(widths[:-2], widths[1:-1]):
                layers.append(nn.Linear(n_in, n_out))
                if batch_norm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(widths[-2], widths[-1]))
        super().__init__(*layers)
        self.widths, self.batch_norm, self.dropout = tuple(widths), batch_norm, dropout
        if device is not None:
            self.to(device)


class ShallowNet(FeedForward):
    """784 -> 128 (ReLU) -> 10; optional dropout before the output layer."""

    def __init__(self, dropout: float = 0.0, batch_norm: bool = False, seed: int | None = None, device: Device = None):
        super().__init__((784, 128, 10), batch_norm=batch_norm, dropout=dropout, seed=seed, device=device)


class BNShallowNet(ShallowNet):
    """ShallowNet with BatchNorm1d after the hidden linear layer (same dropout argument as ShallowNet)."""

    def __init__(self, dropout: float = 0.0, seed: int | None = None, device: Device = None):
        super().__init__(dropout=dropout, batch_norm=True, seed=seed, device=device)


class DeepNet(FeedForward):
    """784 -> 128 -> 64 -> 32 -> 32 (ReLU) -> 10, dropout (0.5 by default) before the output layer."""

    def __init__(self, dropout: float = 0.5, batch_norm: bool = False, seed: int | None = None, device: Device = None):
        super().__init__((784, 128, 64, 32, 32, 10), batch_norm=batch_norm, dropout=dropout, seed=seed,
                         device=device)


class BNDeepNet(DeepNet):
    """DeepNet with BatchNorm1d after every hidden linear layer (same dropout as DeepNet)."""

    def __init__(self, dropout: float = 0.5, seed: int | None = None, device: Device = None):
        super().__init__(dropout=dropout, batch_norm=True, seed=seed, device=device)


class ResidualBlock(nn.Module):
    """relu(BN(Linear(relu(BN(Linear(x))))) + shortcut(x)); the shortcut is Linear when widths differ, else identity."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(),
                                  nn.Linear(n_out, n_out), nn.BatchNorm1d(n_out))
        self.shortcut = nn.Linear(n_in, n_out) if n_in != n_out else nn.Identity()
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the block's transformation to its (projected) input, then apply ReLU."""
        return self.activation(self.body(x) + self.shortcut(x))


class ResidualMLP(Rebuildable, nn.Module):
    """Flatten, ResidualBlock(784 -> 128), ResidualBlock(128 -> 64), Linear(64 -> 10) logits."""

    def __init__(self, widths: Sequence[int] = (784, 128, 64), n_classes: int = 10, seed: int | None = None,
                 device: Device = None):
        super().__init__()
        self.flatten = nn.Flatten()
        with seeded(seed):
            self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:])))
            self.head = nn.Linear(widths[-1], n_classes)
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images [N, 1, 28, 28] or flat rows [N, 784]."""
        return self.head(self.blocks(self.flatten(x)))
