"""Optimisers and learning-rate schedules by name, and the homework's "3 optimisers, BN on one" comparison."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import pandas as pd
import torch
from torch import nn

from .training import History, evaluate, train

__all__ = ["OPTIMIZERS", "SCHEDULES", "DEFAULT_LEARNING_RATES", "make_optimizer", "make_schedule",
           "schedule_factors", "schedule_formula", "compare_optimizers"]

# The spec's learning rate for each optimiser (used only when the caller gives none; make_optimizer always
# uses the lr it is given, for every optimiser alike: defect D10 was RMSprop/Adam ignoring it).
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
                          "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}
OPTIMIZERS = tuple(DEFAULT_LEARNING_RATES)


def _unknown(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(valid)}")


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, **kw) -> torch.optim.Optimizer:
    """Build optimiser `name` (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw) with learning rate `lr`.

    "momentum" and "nesterov" are SGD with momentum 0.9 (override with momentum=...); "rmsprop" uses decay
    alpha 0.9 (override with alpha=...). Any other keyword goes to the torch optimiser (e.g. weight_decay).
    """
    key = name.lower()
    if key not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
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
    "exp": lambda epoch, epochs: 0.1 ** epoch,  # collapses: 1e-9 of the base rate by epoch 9 (D12)
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


def compare_optimizers(
    model_fn: Callable[[], nn.Module], data: Any, optimizers: Iterable[str] = ("sgd", "momentum", "adam"),
    bn_model_fn: Callable[[], nn.Module] | None = None, bn_optimizer: str | None = None,
    learning_rates: dict[str, float] | None = None, epochs: int = 10, batch_size: int = 64, seed: int = 0,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Train `model_fn()` once per optimiser, and `bn_model_fn()` with `bn_optimizer` (default: the first one).

    `data` has `.train` and `.test` TensorData (e.g. `load_mnist(...)`). Returns one row per run with the final
    model's train and test accuracy and loss, both measured in eval mode (dropout off, BN running statistics);
    the per-run Histories are in `table.attrs["histories"]` for plotting.
    """
    names = [name.lower() for name in optimizers]
    rates = {**DEFAULT_LEARNING_RATES, **(learning_rates or {})}
    runs: list[tuple[str, str, Callable[[], nn.Module]]] = [(name, "no", model_fn) for name in names]
    if bn_model_fn is not None:
        runs.append(((bn_optimizer or names[0]).lower(), "yes", bn_model_fn))
    rows, histories = [], {}
    for name, batch_norm, build in runs:
        if name not in rates:
            raise _unknown("optimizer", name, OPTIMIZERS)
        torch.manual_seed(seed)  # every run (and the BN twin) starts from the same linear weights
        model = build().to(device)
        history: History = train(model, data.train, epochs=epochs, batch_size=batch_size, seed=seed,
                                 optimizer=make_optimizer(name, model.parameters(), rates[name]),
                                 eval_data={"test": data.test}, progress=f"{name} BN={batch_norm}")
        label = name + (" + BN" if batch_norm == "yes" else "")
        histories[label] = history
        fit, last = evaluate(model, data.train), history.last
        rows.append({"run": label, "optimizer": name, "batch_norm": batch_norm, "lr": rates[name],
                     "train_accuracy": fit["accuracy"], "test_accuracy": last["test_accuracy"],
                     "train_loss": fit["loss"], "test_loss": last["test_loss"],
                     "gap": fit["accuracy"] - last["test_accuracy"],
                     "seconds": sum(history["seconds"])})
    table = pd.DataFrame(rows)
    table.attrs["histories"] = histories
    return table
