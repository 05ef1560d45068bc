"""Module 1's tabular networks: baseline MLP with embeddings, Wide & Deep, Deep & Cross, and the warm-up net.

Each takes `seed` (initial weights drawn from it, the caller's random stream untouched; None: the current stream)
and `device` (the model is built there).
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import torch
from torch import nn

from ..common import seeded
from .architecture import Rebuildable

Device = torch.device | str | None

__all__ = [
    "embedding_width", "TabularInput", "mlp_stack", "BaselineNet", "WideDeepNet", "CrossLayer", "DeepCrossNet",
    "WarmupNet", "SoftmaxBeforeLoss",
]


def embedding_width(cardinality: int) -> int:
    """The course's rule for an embedding's width: floor(sqrt(cardinality)), at least 1."""
    return max(1, math.isqrt(int(cardinality)))


class TabularInput(nn.Module):
    """Numeric columns concatenated with one learned embedding per categorical column."""

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], embedding_dims: Sequence[int] | None = None):
        super().__init__()
        dims = list(embedding_dims) if embedding_dims is not None else [embedding_width(c) for c in cardinalities]
        if len(dims) != len(cardinalities):
            raise ValueError(f"got {len(dims)} embedding widths for {len(cardinalities)} categorical columns")
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims))
        self.out_features = n_numeric + sum(dims)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


def mlp_stack(in_features: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    """Hidden layers, each Linear -> BatchNorm1d -> ReLU -> Dropout."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
        in_features = width
    return nn.Sequential(*layers)


class BaselineNet(Rebuildable, nn.Module):
    """Numeric features + embeddings -> hidden layers -> linear output (logits)."""

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], n_classes: int = 7,
                 hidden: Sequence[int] = (32, 32), dropout: float = 0.1, embedding_dims: Sequence[int] | None = None,
                 seed: int | None = None, device: Device = None):
        super().__init__()
        with seeded(seed):
            self.inputs = TabularInput(n_numeric, cardinalities, embedding_dims)
            self.deep = mlp_stack(self.inputs.out_features, hidden, dropout)
            self.output = nn.Linear(hidden[-1] if hidden else self.inputs.out_features, n_classes)
        if device is not None:
            self.to(device)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.output(self.deep(self.inputs(numeric, categorical)))


class WideDeepNet(Rebuildable, nn.Module):
    """Wide & Deep: a wide path (inputs straight to the output layer) beside a deep path, each with its own embeddings.

    With `crossed=True` the wide path also gets the cross-product of every pair of categorical columns (one weight
    per class for each combination such as wilderness area x soil type), which is what makes it "wide" in Cheng et
    al. (2016); with `crossed=False` it is the original course's version (no crossed features).
    """

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], n_classes: int = 7,
                 hidden: Sequence[int] = (32, 32), dropout: float = 0.1,
                 embedding_dims: Sequence[int] | None = None, crossed: bool = True, seed: int | None = None,
                 device: Device = None):
        super().__init__()
        self.pairs = list(combinations(range(len(cardinalities)), 2)) if crossed else []
        self.cardinalities = list(cardinalities)
        with seeded(seed):
            self.wide_inputs = TabularInput(n_numeric, cardinalities, embedding_dims)
            self.deep_inputs = TabularInput(n_numeric, cardinalities, embedding_dims)
            self.deep = mlp_stack(self.deep_inputs.out_features, hidden, dropout)
            self.output = nn.Linear(self.wide_inputs.out_features + hidden[-1], n_classes)
            # a linear layer on a one-hot cross-product feature is exactly a lookup of one weight row per combination
            self.crossed = nn.ModuleList(nn.Embedding(cardinalities[i] * cardinalities[j], n_classes)
                                         for i, j in self.pairs)
        for table in self.crossed:
            nn.init.zeros_(table.weight)
        if device is not None:
            self.to(device)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        wide = self.wide_inputs(numeric, categorical)
        deep = self.deep(self.deep_inputs(numeric, categorical))
        logits = self.output(torch.cat([wide, deep], dim=1))
        for (i, j), table in zip(self.pairs, self.crossed):
            logits = logits + table(categorical[:, i] * self.cardinalities[j] + categorical[:, j])
        return logits


class CrossLayer(nn.Module):
    """One cross layer of DCN-V2 (Wang et al., 2021): x_{l+1} = x0 * (W x_l + b) + x_l, with a full dim x dim
    matrix W (the original course's layer). The 2017 Deep & Cross paper's layer has one weight vector w instead:
    x_{l+1} = x0 (x_l . w) + b + x_l, a rank-one cross with dim weights per layer."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class DeepCrossNet(Rebuildable, nn.Module):
    """Deep & Cross (DCN-V2's full-matrix cross layers): a cross network (then BatchNorm1d) beside a deep path on the
    same inputs, joined at the output."""

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], n_classes: int = 7,
                 hidden: Sequence[int] = (32, 32), dropout: float = 0.1,
                 embedding_dims: Sequence[int] | None = None, n_cross: int | None = None, seed: int | None = None,
                 device: Device = None):
        super().__init__()
        with seeded(seed):
            self.inputs = TabularInput(n_numeric, cardinalities, embedding_dims)
            dim = self.inputs.out_features
            self.cross = nn.ModuleList(CrossLayer(dim) for _ in range(len(hidden) if n_cross is None else n_cross))
            self.cross_norm = nn.BatchNorm1d(dim)
            self.deep = mlp_stack(dim, hidden, dropout)
            self.output = nn.Linear(dim + hidden[-1], n_classes)
        if device is not None:
            self.to(device)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        x0 = self.inputs(numeric, categorical)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self.output(torch.cat([self.cross_norm(x), self.deep(x0)], dim=1))


class WarmupNet(Rebuildable, nn.Module):
    """The warm-up network: in_features -> hidden (ReLU) -> 1 logit (the sigmoid lives in the loss)."""

    def __init__(self, in_features: int, hidden: int = 200, seed: int | None = None, device: Device = None):
        super().__init__()
        with seeded(seed):
            self.hidden = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
            self.output = nn.Linear(hidden, 1)
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x))


class SoftmaxBeforeLoss(nn.Module):
    """Reproduces the original's defect for teaching: returns softmax probabilities instead of logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*inputs), dim=1)


