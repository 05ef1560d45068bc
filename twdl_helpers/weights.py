"""The weights a model's forward pass actually uses (a pruned layer counts as weight_orig * mask) and their norm."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["effective_parameters", "frobenius_norm"]


def effective_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter as the forward pass sees it: for a pruned weight, `weight_orig * weight_mask`, not weight_orig."""
    tensors = []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            tensors.append(getattr(module, name[: -len("_orig")]) if name.endswith("_orig") else param)
    return tensors


@torch.no_grad()
def frobenius_norm(model: nn.Module) -> float:
    """Model size: the square root of the sum of squares of every effective parameter."""
    tensors = effective_parameters(model)
    if not tensors:
        return 0.0
    return float(torch.sqrt(sum((t.detach().float() ** 2).sum() for t in tensors)))
