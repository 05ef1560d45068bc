"""Module 2's MNIST networks: shallow and deep MLPs with and without batch norm, the spec's residual MLP (projection
shortcuts), and a deep same-width MLP with or without identity shortcuts (logits out).

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

__all__ = ["FeedForward", "ShallowNet", "BNShallowNet", "DeepNet", "BNDeepNet", "ResidualBlock", "ResidualMLP", "DeepMLP"]

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


class DeepMLP(Rebuildable, nn.Module):
    """Flatten, Linear(784 -> width), `depth` layers ReLU -> Linear(width -> width), ReLU -> Linear(width -> 10).

    With `shortcuts` each layer adds its input back (pre-activation residual, h <- h + Linear(ReLU(h)), an identity
    shortcut: the widths agree); without, it is the plain twin h <- Linear(ReLU(h)). No batch norm, PyTorch's
    default initialisation; the same seed gives both twins the same weights, so they differ only by the shortcuts.
    """

    def __init__(self, depth: int = 8, width: int = 64, shortcuts: bool = True, n_classes: int = 10,
                 seed: int | None = None, device: Device = None):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be positive integers, got depth={depth}, width={width}")
        self.flatten = nn.Flatten()
        with seeded(seed):
            self.projection = nn.Linear(784, width)
            self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
            self.head = nn.Linear(width, n_classes)
        self.depth, self.width, self.shortcuts = depth, width, shortcuts
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images [N, 1, 28, 28] or flat rows [N, 784]."""
        h = self.projection(self.flatten(x))
        for layer in self.layers:
            out = layer(torch.relu(h))
            h = h + out if self.shortcuts else out
        return self.head(torch.relu(h))
