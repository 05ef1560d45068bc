"""Optimisers and learning-rate schedules by name (module 2's comparison of them is in experiments.py)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "SCHEDULES", "DEFAULT_LEARNING_RATES", "FUSED_OPTIMIZERS", "optimizer_name", "make_optimizer",
           "make_schedule", "schedule_factors", "schedule_formula"]

# The spec's learning rate for each optimiser (used only when the caller gives none; make_optimizer always
# uses the lr it is given, for every optimiser alike: the original course's RMSprop and Adam ignored it).
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
                          "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}
OPTIMIZERS = tuple(DEFAULT_LEARNING_RATES)
# Optimiser name -> the device types where torch has a fused kernel for it (one kernel updates every parameter).
# On the small course nets the per-step overhead dominates and fusing makes every step cheaper
# (bench/covertype_speed.py measures it). RMSprop has no fused kernel; torch's fused Adagrad is CPU-only.
FUSED_OPTIMIZERS = {"sgd": ("cpu", "cuda", "mps"), "momentum": ("cpu", "cuda", "mps"),
                    "nesterov": ("cpu", "cuda", "mps"), "adagrad": ("cpu",), "adam": ("cpu", "cuda", "mps"),
                    "adamw": ("cpu", "cuda", "mps")}


def _fusable(params: list, devices: tuple[str, ...]) -> bool:
    """True when every parameter (or every parameter of every group) is a dense float tensor on one of `devices`."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return bool(tensors) and all(t.is_floating_point() and not t.is_sparse and t.device.type in devices
                                 for t in tensors)


def _unknown(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(valid)}")


def optimizer_name(name: str) -> str:
    """The registered name of optimiser `name` (any case), or a ValueError that lists the valid names."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS)
    return key


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, **kw) -> torch.optim.Optimizer:
    """Build optimiser `name` (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw) with learning rate `lr`.

    "momentum" and "nesterov" are SGD with momentum 0.9 (override with momentum=...); "rmsprop" uses decay
    alpha 0.9 (override with alpha=...). Any other keyword goes to the torch optimiser (e.g. weight_decay).
    Where torch has a fused kernel for the optimiser (all but RMSprop) and the parameters allow it, the fused
    implementation is used (same update rule, one kernel per step); pass fused=False or foreach=... to choose.
    """
    key = optimizer_name(name)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    params = list(params)
    if key in FUSED_OPTIMIZERS and "fused" not in kw and "foreach" not in kw and not kw.get("differentiable"):
        kw["fused"] = _fusable(params, FUSED_OPTIMIZERS[key]) or None
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, **kw)
    if key in ("momentum", "nesterov"):
        kw.setdefault("momentum", 0.9)
        return torch.optim.SGD(params, lr=lr, nesterov=key == "nesterov", **kw)
    if key == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, **kw)
    if key == "rmsprop":
        kw.setdefault("alpha", 0.9)
        return torch.optim.RMSprop(params, lr=lr, **kw)
    return (torch.optim.Adam if key == "adam" else torch.optim.AdamW)(params, lr=lr, **kw)


def _linear(epoch: int, epochs: int) -> float:
    return max(1e-7, 1.0 - epoch / epochs)


# factor(epoch, epochs) multiplying the base learning rate during 0-based `epoch`.
SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda epoch, epochs: 1.0,
    "linear": _linear,  # 1 - epoch / epochs: 1 - 0.1 * epoch for the spec's 10 epochs, floored at 1e-7
    "sqrt": lambda epoch, epochs: (epoch + 1) ** -0.5,
    "exp": lambda epoch, epochs: 0.1 ** epoch,  # collapses: 1e-9 of the base rate by epoch 9, training stalls
}


def _check_schedule(name: str, epochs: int) -> str:
    key = name.lower()
    if key not in SCHEDULES:
        raise _unknown("schedule", name, SCHEDULES)
    if not (isinstance(epochs, int) and epochs > 0):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    return key


def schedule_factors(name: str, epochs: int) -> list[float]:
    """The multiplier of the base learning rate at epochs 0 .. epochs-1 for schedule `name`."""
    key = _check_schedule(name, epochs)
    return [SCHEDULES[key](epoch, epochs) for epoch in range(epochs)]


def schedule_formula(name: str, epochs: int) -> str:
    """The factor of schedule `name` as run for `epochs` epochs, written out (t = 0-based epoch).

    The linear schedule depends on the run length: `schedule_formula("linear", 10)` is "max(1e-7, 1 - t/10)",
    which is the spec's 1 - 0.1 t; with 3 epochs it is "max(1e-7, 1 - t/3)".
    """
    key = _check_schedule(name, epochs)
    return {"constant": "1", "linear": f"max(1e-7, 1 - t/{epochs})", "sqrt": "(t + 1)^(-1/2)",
            "exp": "0.1^t"}[key]


def make_schedule(name: str, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """An epoch-based LambdaLR (call .step() once per epoch, as `train` does) for constant/linear/sqrt/exp.

    `epochs` is the planned run length: the linear schedule falls from 1 to its floor over it
    (1 - 0.1 * epoch for 10 epochs, as in the original course).
    """
    key = _check_schedule(name, epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: SCHEDULES[key](epoch, epochs))
