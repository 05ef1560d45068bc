"""How much memory one minibatch step needs, measured on the actual model: parameters, activations, gradients, state."""
from __future__ import annotations

import copy
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from .optim import make_optimizer

__all__ = ["minibatch_memory"]


def _numel(tensors) -> int:
    return sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))


def minibatch_memory(
    model: nn.Module, batch_size: int, input_shape: Sequence[int] = (1, 28, 28), optimizer: str = "adam",
    bytes_per_value: int = 4,
) -> pd.DataFrame:
    """Count the values one training step of `model` keeps in memory and convert them to MiB.

    A copy of the model does one real step on a random batch: forward hooks add up every layer's output
    (activations kept for backpropagation), the gradients and the optimiser's state are read after the step.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    work = copy.deepcopy(model).cpu().train()
    activations = {"values": 0}

    def count(module: nn.Module, inputs, output) -> None:
        activations["values"] += _numel(output if isinstance(output, (tuple, list)) else [output])

    views = (nn.Flatten, nn.Identity, nn.Unflatten)  # outputs that share the input's storage
    leaves = [m for m in work.modules() if not list(m.children()) and not isinstance(m, views)]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        x = torch.randn(batch_size, *input_shape)
        opt = make_optimizer(optimizer, work.parameters(), lr=1e-3)
        loss = work(x).logsumexp(dim=1).mean()
        loss.backward()
        opt.step()
    finally:
        for handle in handles:
            handle.remove()
    params = list(work.parameters())
    state = sum(_numel(s.values()) for s in opt.state.values())
    rows = [
        ("input batch", batch_size * int(torch.tensor(input_shape).prod()), "the minibatch itself"),
        ("parameters", _numel(params), "weights and biases (independent of batch size)"),
        ("gradients", _numel(p.grad for p in params if p.grad is not None), "one per parameter"),
        (f"optimiser state ({optimizer})", state, "e.g. momentum / moment estimates per parameter"),
        ("activations", activations["values"], "every layer's output for the batch, kept for backprop"),
    ]
    table = pd.DataFrame(rows, columns=["what", "values", "note"])
    table["MiB"] = table["values"] * bytes_per_value / 2**20
    total = pd.DataFrame([{"what": "total", "values": table["values"].sum(), "note": "",
                           "MiB": table["MiB"].sum()}])
    return pd.concat([table, total], ignore_index=True)[["what", "values", "MiB", "note"]]
