"""The one training loop every experiment uses, with an explicit per-epoch History."""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .common import log_device_run, model_device, seeded, start_device_run
from .optim import make_optimizer
from .weights import frobenius_norm

__all__ = [
    "TensorData", "History", "Callback", "ParameterNorm", "DeviceLog", "EarlyStopping", "BatchCounter", "accuracy",
    "binary_accuracy", "binary_loss", "classification_loss", "regression_loss", "forward", "evaluate", "predict",
    "train", "TRAIN_EVAL_ROWS", "ModelsByRun",
]

# Train loss/accuracy are measured after each epoch, in eval mode, on at most this many training rows.
TRAIN_EVAL_ROWS = 10_000

Tensors = torch.Tensor | tuple[torch.Tensor, ...]
LossFn = Callable[[torch.Tensor, Tensors], torch.Tensor]


@dataclass
class TensorData:
    """Inputs and targets as whole tensors (one tensor or a tuple of tensors each), sliced by index in batches."""

    inputs: Tensors
    targets: Tensors

    def __post_init__(self) -> None:
        sizes = {t.shape[0] for t in (*_as_tuple(self.inputs), *_as_tuple(self.targets))}
        if len(sizes) != 1:
            raise ValueError(f"inputs and targets must have the same number of rows, got sizes {sorted(sizes)}")

    def __len__(self) -> int:
        return _as_tuple(self.inputs)[0].shape[0]

    def subset(self, index: torch.Tensor | Sequence[int]) -> "TensorData":
        """Return the rows at `index` (a tensor or list of row numbers)."""
        index = torch.as_tensor(index, dtype=torch.long, device=_as_tuple(self.inputs)[0].device)
        return TensorData(_take(self.inputs, index), _take(self.targets, index))

    def to(self, device: torch.device | str) -> "TensorData":
        """Return the same data on `device` (a no-op when already there)."""
        return TensorData(_to(self.inputs, device), _to(self.targets, device))

    @property
    def device(self) -> torch.device:
        """The device the (first) input tensor lives on."""
        return _as_tuple(self.inputs)[0].device

    @property
    def labels(self) -> torch.Tensor:
        """The class labels (the first target tensor)."""
        return _as_tuple(self.targets)[0]


@dataclass
class History:
    """What a training run measured: one dict per epoch.

    Columns: `train_loss` / `train_accuracy` (measured after the epoch in eval mode on the training rows, at most
    TRAIN_EVAL_ROWS of them, no augmentation), `running_loss` (the mean batch loss during the epoch, in train mode,
    on augmented batches, while the weights changed), `<split>_loss` / `<split>_accuracy` for each eval split,
    `seconds` (training time of the epoch) and `lr`, plus what callbacks add.
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def __getitem__(self, name: str) -> list[float]:
        return [row.get(name, float("nan")) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last(self) -> dict[str, float]:
        """The final epoch's row."""
        return self.rows[-1] if self.rows else {}

    def best(self, metric: str, mode: str = "max") -> dict[str, float]:
        """The row where `metric` is best ("max" or "min")."""
        pick = max if mode == "max" else min
        return pick(self.rows, key=lambda row: row[metric])

    def to_frame(self) -> pd.DataFrame:
        """The history as a DataFrame indexed by epoch."""
        return pd.DataFrame(self.rows).set_index("epoch")


class ModelsByRun(dict):
    """Trained models keyed by run name, kept in a results table's `attrs["models"]` so they can be checked.

    pandas deep-copies `attrs` into every derived table (`table.round(2)`); these models are shared, not copied.
    """

    def __deepcopy__(self, memo: dict) -> "ModelsByRun":
        return self


class Callback:
    """Hooks into `train`: override any of these. `on_epoch_end` may add columns to `row` and return True to stop."""

    def on_train_begin(self, model: nn.Module) -> None: ...

    def on_batch_end(self, model: nn.Module) -> None: ...

    def on_epoch_end(self, model: nn.Module, row: dict[str, float], history: History) -> bool | None: ...

    def on_train_end(self, model: nn.Module, history: History) -> None: ...


def _as_tuple(x: Tensors) -> tuple[torch.Tensor, ...]:
    return x if isinstance(x, tuple) else (x,)


def _take(x: Tensors, index: torch.Tensor) -> Tensors:
    return tuple(t[index] for t in x) if isinstance(x, tuple) else x[index]


def _rows(x: Tensors, first: int, last: int) -> Tensors:
    """Rows first..last-1 as views (slices copy nothing)."""
    return tuple(t[first:last] for t in x) if isinstance(x, tuple) else x[first:last]


def _to(x: Tensors, device: torch.device | str) -> Tensors:
    return tuple(t.to(device) for t in x) if isinstance(x, tuple) else x.to(device)


def accuracy(outputs: torch.Tensor, targets: Tensors) -> torch.Tensor:
    """Number of rows whose arg-max output equals the label (summed, not averaged)."""
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        raise ValueError("accuracy needs one logit per class; for a one-logit binary model pass "
                         "metrics={'accuracy': binary_accuracy} (and loss_fn=binary_loss)")
    return (outputs.argmax(dim=1) == _as_tuple(targets)[0]).sum()


def binary_accuracy(outputs: torch.Tensor, targets: Tensors) -> torch.Tensor:
    """Number of rows whose logit sign matches the 0/1 label (summed, like `accuracy`)."""
    target = _as_tuple(targets)[0]
    return ((outputs.reshape(target.shape) > 0).long() == target.long()).sum()


def binary_loss(outputs: torch.Tensor, targets: Tensors) -> torch.Tensor:
    """Binary cross-entropy on one logit per row (sigmoid and BCE fused, numerically stable)."""
    target = _as_tuple(targets)[0]
    return F.binary_cross_entropy_with_logits(outputs.reshape(target.shape), target.float())


def classification_loss(outputs: torch.Tensor, targets: Tensors) -> torch.Tensor:
    """Cross-entropy on logits (log-softmax + NLL in one stable step)."""
    return F.cross_entropy(outputs, _as_tuple(targets)[0])


def regression_loss(outputs: torch.Tensor, targets: Tensors) -> torch.Tensor:
    """Mean squared error for a one-column regression output."""
    target = _as_tuple(targets)[0]
    return F.mse_loss(outputs.reshape(target.shape), target.float())


def forward(model: nn.Module, inputs: Tensors) -> torch.Tensor:
    """Call the model on one tensor or on a tuple of tensors (e.g. numeric and categorical columns), moved to the
    model's device first (a no-op when they are already there)."""
    return _call(model, _to(inputs, model_device(model)))


def _call(model: nn.Module, inputs: Tensors) -> torch.Tensor:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def evaluate(
    model: nn.Module, data: TensorData, loss_fn: LossFn = classification_loss,
    batch_size: int = 4096, metrics: dict[str, Callable] | None = None,
) -> dict[str, float]:
    """Mean loss and metrics of `model` on `data` in eval mode (batched, no gradients).

    Each batch is moved to the model's device, wherever `data` lives (as d2l's `evaluate_accuracy_gpu` does).
    """
    metrics = {"accuracy": accuracy} if metrics is None else metrics
    return _evaluate(model, data, model_device(model), loss_fn, batch_size, metrics)


@torch.no_grad()
def _evaluate(model: nn.Module, data: TensorData, device: torch.device, loss_fn: LossFn, batch_size: int,
              metrics: dict[str, Callable]) -> dict[str, float]:
    """`evaluate` with the model's device already known (each batch is moved there)."""
    was_training = model.training
    model.eval()
    total_loss, totals, n = 0.0, dict.fromkeys(metrics, 0.0), len(data)
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        inputs, targets = _rows(data.inputs, start, end), _to(_rows(data.targets, start, end), device)  # views
        outputs = _call(model, _to(inputs, device))
        total_loss = total_loss + loss_fn(outputs, targets).detach() * (end - start)  # summed on the device:
        for name, fn in metrics.items():  # one host sync per metric at the end, none per batch
            totals[name] = totals[name] + fn(outputs, targets)
    model.train(was_training)
    result = {"loss": float(total_loss) / max(n, 1)}
    result.update({name: 100.0 * float(value) / max(n, 1) if name == "accuracy" else float(value) / max(n, 1)
                   for name, value in totals.items()})
    return result


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensors, batch_size: int = 4096) -> torch.Tensor:
    """Model outputs for all rows of `inputs`, batched, in eval mode, on the model's device."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    n = _as_tuple(inputs)[0].shape[0]
    outs = [_call(model, _to(_rows(inputs, s, min(s + batch_size, n)), device)) for s in range(0, n, batch_size)]
    model.train(was_training)
    return torch.cat(outs)


def _fit_rows(data: TensorData, rows: int | None, seed: int) -> TensorData | None:
    """The training rows train/accuracy are measured on: all of them, or a fixed seeded subset of `rows`."""
    if rows == 0:
        return None
    if rows is None or len(data) <= rows:
        return data
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:rows].sort().values
    return data.subset(chosen)


def train(
    model: nn.Module,
    train_data: TensorData,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: LossFn = classification_loss,
    eval_data: dict[str, TensorData] | None = None,
    scheduler: Any | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    callbacks: Iterable[Callback] = (),
    metrics: dict[str, Callable] | None = None,
    seed: int = 0,
    max_grad_norm: float | None = None,
    train_eval_rows: int | None = TRAIN_EVAL_ROWS,
    progress: bool | str = True,
) -> History:
    """Train `model` on `train_data` for `epochs` and return its History.

    Training runs on the MODEL's device (build the model there: `twdl.AnimalNet(device=dev)`); the data are
    moved to it once, whatever device they were loaded on. Minibatches are shuffled every epoch (seeded by
    `seed`) and taken by index slicing. After every epoch the model is measured in eval mode, without
    augmentation: on the training rows (`train_loss`, `train_accuracy`; a fixed seeded subset of
    `train_eval_rows` rows when there are more, None for all, 0 to skip) and on each split of `eval_data`
    ("val", "test"). The mean batch loss of the epoch is kept as `running_loss`. `penalty(model)` is added to
    each batch loss (L1/L2 regularisers), `augment(x, generator)` transforms each training batch,
    `scheduler.step()` runs once per epoch, and callbacks may stop training early.
    """
    device = model_device(model)  # looked up once: the data, every measurement and the device log use it
    if train_data.device != device and device.type == "cpu":
        warnings.warn(f"the model is on the CPU but the data on {train_data.device}: training runs on the CPU. "
                      "Build the model on the notebook's device (e.g. `twdl.AnimalNet(device=dev)`).", stacklevel=2)
    train_data = train_data.to(device)
    fit_data = _fit_rows(train_data, train_eval_rows, seed)
    splits = ({"train": fit_data} if fit_data is not None else {}) | {
        name: data.to(device) for name, data in (eval_data or {}).items()}
    metrics = {"accuracy": accuracy} if metrics is None else metrics
    optimizer = optimizer if optimizer is not None else make_optimizer("adam", model.parameters(), lr)
    label = progress if isinstance(progress, str) else "train"
    callbacks = [*callbacks, DeviceLog(label, device)]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    history = History()
    for cb in callbacks:
        cb.on_train_begin(model)
    bar = tqdm(range(1, epochs + 1), desc=label, disable=progress is False, leave=False)
    with seeded(seed, device):  # dropout masks (any random draw in the model) come from `seed` alone
        for epoch in bar:
            start = time.perf_counter()
            running_loss = _train_epoch(model, train_data, optimizer, batch_size=batch_size, generator=generator,
                                        loss_fn=loss_fn, penalty=penalty, augment=augment,
                                        max_grad_norm=max_grad_norm, callbacks=callbacks)
            row: dict[str, float] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                                     "running_loss": running_loss}
            if scheduler is not None:
                scheduler.step()
            row["seconds"] = time.perf_counter() - start
            row.update(_measure(model, splits, device, loss_fn, metrics))
            stop = False
            for cb in callbacks:
                stop = bool(cb.on_epoch_end(model, row, history)) or stop
            history.rows.append(row)
            bar.set_postfix({k: round(v, 4) for k, v in row.items() if k.endswith(("loss", "accuracy"))}, refresh=False)
            if stop:
                history.stopped_early = True
                break
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history


def _train_epoch(model: nn.Module, data: TensorData, optimizer: torch.optim.Optimizer, *, batch_size: int,
                 generator: torch.Generator, loss_fn: LossFn, penalty: Callable[[nn.Module], torch.Tensor] | None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
                 max_grad_norm: float | None, callbacks: list[Callback]) -> float:
    """One epoch in train mode over `data` (on the model's device) in a shuffled order drawn from `generator`: each
    minibatch's loss (plus `penalty(model)`) is backpropagated and `optimizer` steps. Returns the mean batch loss."""
    model.train()
    n = len(data)
    order = torch.randperm(n, generator=generator).to(data.device)
    # One gather per epoch puts the rows in this epoch's shuffled order; each batch is then a slice (a view),
    # which saves an index copy per tensor per step (the same batches as indexing by order[first:last]).
    epoch_inputs, epoch_targets = _take(data.inputs, order), _take(data.targets, order)
    loss_sum = torch.zeros((), device=data.device)
    for first in range(0, n, batch_size):
        last = min(first + batch_size, n)
        inputs, targets = _rows(epoch_inputs, first, last), _rows(epoch_targets, first, last)
        if augment is not None:
            inputs = augment(inputs, generator)
        outputs = _call(model, inputs)
        loss = loss_fn(outputs, targets)
        total = loss + penalty(model) if penalty is not None else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        for cb in callbacks:
            cb.on_batch_end(model)
        loss_sum += loss.detach() * (last - first)
    return loss_sum.item() / n


def _measure(model: nn.Module, splits: dict[str, TensorData], device: torch.device, loss_fn: LossFn,
             metrics: dict[str, Callable]) -> dict[str, float]:
    """An epoch's measurements: `<split>_loss` and `<split>_<metric>` of every split, in eval mode."""
    return {f"{split}_{key}": value for split, data in splits.items()
            for key, value in _evaluate(model, data, device, loss_fn, 4096, metrics).items()}


class ParameterNorm(Callback):
    """Adds `param_norm` (the Frobenius norm of the weights the forward pass uses; pruned ones count as 0)."""

    def on_epoch_end(self, model: nn.Module, row: dict[str, float], history: History) -> None:
        row["param_norm"] = frobenius_norm(model)


class DeviceLog(Callback):
    """Appends the finished run to the file TWDL_DEVICE_LOG names (scripts/gpu_check.py): its label, device, seconds
    and peak memory. `train` adds one to every run; without that variable it writes nothing."""

    def __init__(self, label: str, device: torch.device) -> None:
        self.label, self.device, self.started = label, device, 0.0

    def on_train_begin(self, model: nn.Module) -> None:
        self.started = start_device_run(self.device)

    def on_train_end(self, model: nn.Module, history: History) -> None:
        log_device_run(self.label, self.device, self.started)


class BatchCounter(Callback):
    """Adds `batches` (optimizer steps taken this epoch) to each row: shows the batch size really used."""

    def __init__(self) -> None:
        self.count = 0

    def on_batch_end(self, model: nn.Module) -> None:
        self.count += 1

    def on_epoch_end(self, model: nn.Module, row: dict[str, float], history: History) -> None:
        row["batches"], self.count = self.count, 0


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs and restore the best weights.

    `mode` says whether larger is better ("max") or smaller ("min"); None infers it from the name: "max" for an
    accuracy (`val_accuracy`), "min" otherwise (`val_loss`).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 20, mode: str | None = None,
                 restore_best: bool = True):
        mode = mode if mode is not None else "max" if monitor.endswith("accuracy") else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience is a number of epochs >= 1, got {patience}")
        self.monitor, self.patience, self.mode, self.restore_best = monitor, patience, mode, restore_best
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, model: nn.Module) -> None:
        self.best_value, self.best_epoch, self.best_state = None, 0, None

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def on_epoch_end(self, model: nn.Module, row: dict[str, float], history: History) -> bool:
        if self.monitor not in row:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r} but the epoch row has {sorted(row)}; "
                           "pass eval_data={'val': ...} to train()")
        value = row[self.monitor]
        if self._better(value):
            self.best_value, self.best_epoch = value, int(row["epoch"])
            self.best_state = copy.deepcopy(model.state_dict())
        return int(row["epoch"]) - self.best_epoch >= self.patience

    def on_train_end(self, model: nn.Module, history: History) -> None:
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
