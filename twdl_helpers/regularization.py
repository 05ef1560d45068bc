"""Regularisers for the shared training loop: penalties, pruning, the lottery ticket and distillation."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

from .augment import BatchAugment, flips
from .optim import make_optimizer
from .training import Callback, EarlyStopping, History, ModelsByRun, ParameterNorm, TensorData, evaluate, train

__all__ = [
    "l1_penalty", "l2_penalty", "elastic_penalty", "frobenius_norm", "prune_magnitude", "layer_sparsity",
    "apply_masks", "pruning_masks", "LotteryResult", "lottery_ticket", "distillation_loss", "distillation",
    "sgd", "BatchCounter", "TECHNIQUES", "train_technique", "compare_regularizers", "BatchAugment", "flips",
]

Penalty = Callable[[nn.Module], torch.Tensor]


def _effective_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter as the forward pass sees it (a pruned weight counts as weight_orig * mask)."""
    tensors = []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            tensors.append(getattr(module, name[: -len("_orig")]) if name.endswith("_orig") else param)
    return tensors


def l1_penalty(lam: float) -> Penalty:
    """Penalty lam * sum |w| over all parameters (LASSO), for `train(..., penalty=...)`."""
    return lambda model: lam * sum(t.abs().sum() for t in _effective_tensors(model))


def l2_penalty(lam: float) -> Penalty:
    """Penalty lam * sum w^2 over all parameters (ridge); SGD's weight_decay = 2 * lam gives the same update."""
    return lambda model: lam * sum((t ** 2).sum() for t in _effective_tensors(model))


def elastic_penalty(lam1: float, lam2: float) -> Penalty:
    """Elastic net: lam1 * sum |w| + lam2 * sum w^2 over all parameters."""
    l1, l2 = l1_penalty(lam1), l2_penalty(lam2)
    return lambda model: l1(model) + l2(model)


@torch.no_grad()
def frobenius_norm(model: nn.Module) -> float:
    """Model size: sqrt of the sum of squares of every (effective) parameter."""
    return float(torch.sqrt(sum((t.detach() ** 2).sum() for t in _effective_tensors(model))))


def _linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


@torch.no_grad()
def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero weights in each Linear layer (what the forward pass uses)."""
    return {name: float((m.weight == 0).float().mean()) for name, m in _linears(model).items()}


def prune_magnitude(model: nn.Module, amount: float) -> dict[str, float]:
    """L1-unstructured prune `amount` of each Linear's weights in place (torch.nn.utils.prune); return sparsity per layer.

    The mask is kept as a forward hook (weight = weight_orig * weight_mask), so further training never
    revives a pruned weight. Pruning a layer twice compounds: the new amount applies to what is left.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount is the fraction of weights to prune, in [0, 1]; got {amount}")
    for module in _linears(model).values():
        prune.l1_unstructured(module, name="weight", amount=amount)
    return layer_sparsity(model)


def pruning_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weight masks of a pruned model, by Linear layer name (all ones for an unpruned layer)."""
    return {name: (m.weight_mask if hasattr(m, "weight_mask") else torch.ones_like(m.weight)).detach().clone()
            for name, m in _linears(model).items()}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Prune `model` in place with given masks (same layer names); return sparsity per layer."""
    layers = _linears(model)
    missing = sorted(set(masks) - set(layers))
    if missing:
        raise KeyError(f"masks name layers {missing} that the model lacks; its Linear layers are {sorted(layers)}")
    for name, mask in masks.items():
        prune.custom_from_mask(layers[name], name="weight", mask=mask.to(layers[name].weight.device))
    return layer_sparsity(model)


def sgd(model: nn.Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.SGD:
    """SGD over the model's parameters (the course trains every network with SGD + momentum; fused where possible)."""
    return make_optimizer("sgd", model.parameters(), lr, momentum=momentum, weight_decay=weight_decay)


class BatchCounter(Callback):
    """Adds `batches` (optimizer steps taken this epoch) to each row: shows the batch size really used."""

    def __init__(self) -> None:
        self.count = 0

    def on_batch_end(self, model: nn.Module) -> None:
        self.count += 1

    def on_epoch_end(self, model: nn.Module, row: dict[str, float], history: History) -> None:
        row["batches"], self.count = self.count, 0


@dataclass
class LotteryResult:
    """The dense run, the ticket (same init under the mask) and the control (fresh init under the same mask)."""

    dense: History
    ticket: History
    random: History
    sparsity: dict[str, float]
    masks: dict[str, torch.Tensor]
    initial_state: dict[str, torch.Tensor]
    ticket_model: nn.Module
    random_model: nn.Module


def lottery_ticket(
    model_fn: Callable[..., nn.Module], train_data: TensorData, *, amount: float, epochs: int, batch_size: int,
    lr: float, momentum: float = 0.9, eval_data: dict[str, TensorData] | None = None, seed: int = 0,
    retrain_epochs: int | None = None, device: torch.device | str | None = None, progress: bool = False,
) -> LotteryResult:
    """Frankle & Carbin's experiment: train dense, prune `amount` by magnitude, retrain from the SAME initial
    weights under the mask (the ticket) and from a fresh random init under the same mask (the control)."""
    common = dict(batch_size=batch_size, eval_data=eval_data, seed=seed, device=device,
                  callbacks=[ParameterNorm()], progress=progress)
    dense_model = model_fn(seed=seed, init="xavier")
    initial_state = copy.deepcopy(dense_model.state_dict())
    dense = train(dense_model, train_data, epochs=epochs, optimizer=sgd(dense_model, lr, momentum), **common)
    prune_magnitude(dense_model, amount)
    masks = pruning_masks(dense_model)
    ticket_model = model_fn(seed=seed, init="xavier")
    ticket_model.load_state_dict(initial_state)
    random_model = model_fn(seed=seed + 10_007, init="xavier")
    if device is not None:
        ticket_model.to(device), random_model.to(device)
    sparsity = apply_masks(ticket_model, masks)
    apply_masks(random_model, masks)
    again = epochs if retrain_epochs is None else retrain_epochs
    ticket = train(ticket_model, train_data, epochs=again, optimizer=sgd(ticket_model, lr, momentum), **common)
    control = train(random_model, train_data, epochs=again, optimizer=sgd(random_model, lr, momentum), **common)
    return LotteryResult(dense, ticket, control, sparsity, masks, initial_state, ticket_model, random_model)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, T: float) -> torch.Tensor:
    """(1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)).

    The KL term is summed over classes and averaged over the batch ('batchmean', the true KL divergence);
    the T^2 factor keeps its gradients on the scale of the hard-label term (Hinton et al. 2015).
    """
    hard = F.cross_entropy(student_logits, targets)
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - alpha) * hard + alpha * T ** 2 * soft


def distillation(alpha: float, T: float) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A `loss_fn` for `train` whose targets are (labels, teacher_logits); plain labels give cross-entropy."""
    def loss_fn(outputs: torch.Tensor, targets: Any) -> torch.Tensor:
        if isinstance(targets, tuple) and len(targets) == 2:
            return distillation_loss(outputs, targets[1], targets[0], alpha, T)
        labels = targets[0] if isinstance(targets, tuple) else targets
        return F.cross_entropy(outputs, labels)  # validation data carries no teacher: report the hard-label loss
    return loss_fn


TECHNIQUES = ("none", "l1", "l2", "elastic", "weight_decay", "augmentation", "early_stopping")


def train_technique(
    technique: str, model_fn: Callable[..., nn.Module], train_data: TensorData, val_data: TensorData, *,
    epochs: int, batch_size: int, lr: float, momentum: float, seed: int = 0, lam: float = 1e-3,
    augment: BatchAugment | None = None, patience: int = 20, device: torch.device | str | None = None,
    progress: bool | str = False,
) -> tuple[nn.Module, History]:
    """Train `model_fn(seed=seed)` with ONE regularisation technique; everything else is held fixed."""
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
    model = model_fn(seed=seed)
    penalty = {"l1": l1_penalty(lam), "l2": l2_penalty(lam), "elastic": elastic_penalty(lam, lam)}.get(technique)
    optimizer = sgd(model, lr, momentum, weight_decay=2 * lam if technique == "weight_decay" else 0.0)
    callbacks: list = [ParameterNorm()]
    if technique == "early_stopping":
        callbacks.append(EarlyStopping("val_loss", patience=patience))
    history = train(model, train_data, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                    eval_data={"val": val_data}, penalty=penalty, callbacks=callbacks, seed=seed, device=device,
                    augment=(augment or flips(0.5, 0.1)) if technique == "augmentation" else None, progress=progress)
    return model, history


def compare_regularizers(
    model_fn: Callable[..., nn.Module], train_data: TensorData, val_data: TensorData,
    techniques: Sequence[str] = ("l2", "augmentation", "early_stopping"), *, epochs: int = 30,
    batch_size: int = 64, lr: float = 5e-3, momentum: float = 0.9, seeds: Sequence[int] = (0,),
    lam: float = 1e-3, test_data: TensorData | None = None, device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Train the unregularised model and each technique on the same data, epochs and seeds; one row per technique.

    Columns: train / validation accuracy (mean and std over seeds), final parameter norm, and, when
    `test_data` is given, the test accuracy of the technique with the best mean validation accuracy (once).
    The trained models (one per seed) are in `table.attrs["models"][technique]`.
    """
    rows, best, models = [], (-1.0, None, None), ModelsByRun()
    for technique in ["none", *[t for t in techniques if t != "none"]]:
        runs = [train_technique(technique, model_fn, train_data, val_data, epochs=epochs, batch_size=batch_size,
                                lr=lr, momentum=momentum, seed=s, lam=lam, device=device) for s in seeds]
        val = torch.tensor([evaluate(m, val_data.to(next(m.parameters()).device))["accuracy"] for m, _ in runs])
        models[technique] = [m for m, _ in runs]
        rows.append({"technique": technique, "train_accuracy": sum(h.last["train_accuracy"] for _, h in runs) / len(runs),
                     "val_accuracy": val.mean().item(), "val_accuracy_std": val.std().item() if len(runs) > 1 else 0.0,
                     "param_norm": sum(frobenius_norm(m) for m, _ in runs) / len(runs), "seeds": len(runs)})
        if val.mean().item() > best[0]:
            best = (val.mean().item(), technique, runs[int(val.argmax())][0])
    table = pd.DataFrame(rows).set_index("technique")
    if test_data is not None:
        model = best[2]
        table["test_accuracy"] = float("nan")
        table.loc[best[1], "test_accuracy"] = evaluate(model, test_data.to(next(model.parameters()).device))["accuracy"]
    table.attrs["models"] = models
    return table
