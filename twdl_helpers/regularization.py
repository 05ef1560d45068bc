"""Regularisers for the shared training loop: penalties (and a proximal L1 step), pruning, the lottery ticket
and distillation. The experiments that compare them live in `experiments.py`."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

from .optim import make_optimizer
from .training import Callback, History, ParameterNorm, TensorData, evaluate, predict, train
from .weights import effective_parameters

__all__ = [
    "l1_penalty", "l2_penalty", "elastic_penalty", "momentum_gain", "ProximalL1", "count_exact_zeros",
    "prune_magnitude", "layer_sparsity", "apply_masks", "pruning_masks", "PruneResult", "prune_and_retrain",
    "LotteryResult", "lottery_ticket", "distillation_loss", "distillation", "with_teacher",
]

Penalty = Callable[[nn.Module], torch.Tensor]


def l1_penalty(lam: float) -> Penalty:
    """Penalty lam * sum |w| over all parameters (LASSO), for `train(..., penalty=...)`."""
    return lambda model: lam * sum(t.abs().sum() for t in effective_parameters(model))


def l2_penalty(lam: float) -> Penalty:
    """Penalty lam * sum w^2 over all parameters (ridge); SGD's weight_decay = 2 * lam gives the same update."""
    return lambda model: lam * sum((t ** 2).sum() for t in effective_parameters(model))


def elastic_penalty(lam1: float, lam2: float) -> Penalty:
    """Elastic net: lam1 * sum |w| + lam2 * sum w^2 over all parameters."""
    l1, l2 = l1_penalty(lam1), l2_penalty(lam2)
    return lambda model: l1(model) + l2(model)


def momentum_gain(optimizer: torch.optim.Optimizer) -> float:
    """How much SGD's momentum multiplies a steady gradient's step: (1 - dampening) / (1 - momentum); 1 without
    momentum (and for optimisers other than SGD). Momentum 0.99 makes every gradient's step 100 times lr * g."""
    group = optimizer.param_groups[0]
    if not isinstance(optimizer, torch.optim.SGD) or not group.get("momentum", 0.0):
        return 1.0
    return (1.0 - group.get("dampening", 0.0)) / (1.0 - group["momentum"])


class ProximalL1(Callback):
    """Proximal L1: after every optimiser step, soft-threshold each weight, w <- sign(w) * max(|w| - t, 0), with
    t = lr * lam * momentum_gain(optimizer) = lr * lam / (1 - momentum) for SGD with momentum.

    Plain (sub)gradient descent on lam * sum |w| pushes every weight by lr * lam * sign(w) and overshoots zero, so
    weights hover around zero without reaching it; the proximal step sets every weight within t of zero to exactly
    zero (ISTA). The penalty's gradient goes through the momentum, which multiplies its steady step by
    1 / (1 - momentum), while the proximal step happens after the optimiser; dividing t by (1 - momentum) gives
    both the same pull per step, so the same lam means the same strength for `l1_penalty` and `ProximalL1`.
    Use it INSTEAD of `l1_penalty` (not both): `callbacks=[ProximalL1(lam, optimizer)]`.
    """

    def __init__(self, lam: float, optimizer: torch.optim.Optimizer) -> None:
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam, self.optimizer = lam, optimizer

    @property
    def threshold(self) -> float:
        """The soft threshold of one step, lr * lam * momentum_gain(optimizer)."""
        return self.optimizer.param_groups[0]["lr"] * self.lam * momentum_gain(self.optimizer)

    @torch.no_grad()
    def on_batch_end(self, model: nn.Module) -> None:
        threshold = self.threshold
        for param in model.parameters():
            param.copy_(param.sign() * (param.abs() - threshold).clamp_min(0))


@torch.no_grad()
def count_exact_zeros(model: nn.Module) -> dict[str, int | float]:
    """How many of the weights the forward pass uses are exactly 0.0, of how many (and the share in percent)."""
    tensors = effective_parameters(model)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    total = sum(t.numel() for t in tensors)
    return {"exact_zeros": zeros, "weights": total, "percent": 100.0 * zeros / max(total, 1)}


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


@dataclass
class PruneResult:
    """Validation accuracy before pruning, right after, and after retraining under the mask; sparsity per layer."""

    sparsity: dict[str, float]
    before: float
    pruned: float
    retrained: float
    history: History


def prune_and_retrain(model: nn.Module, amount: float, train_data: TensorData, val_data: TensorData, *,
                      epochs: int, lr: float, momentum: float = 0.9, batch_size: int = 64, seed: int = 0,
                      progress: bool | str = False) -> PruneResult:
    """Magnitude-prune `amount` of each Linear layer of a trained `model` (in place), then retrain it with SGD under
    the mask; the history's train accuracy after retraining shows when the pruned net can no longer fit the data."""
    before = evaluate(model, val_data)["accuracy"]
    sparsity = prune_magnitude(model, amount)
    pruned = evaluate(model, val_data)["accuracy"]
    history = train(model, train_data, epochs=epochs, batch_size=batch_size, eval_data={"val": val_data},
                    optimizer=make_optimizer("sgd", model.parameters(), lr, momentum=momentum), seed=seed,
                    progress=progress)
    return PruneResult(sparsity, before, pruned, history.last["val_accuracy"], history)


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
    weights under the mask (the ticket) and from a fresh random init under the same mask (the control).

    Every network is built with `model_fn(seed=..., init="xavier", device=device)`."""
    common = dict(batch_size=batch_size, eval_data=eval_data, seed=seed, callbacks=[ParameterNorm()],
                  progress=progress)
    sgd = lambda model: make_optimizer("sgd", model.parameters(), lr, momentum=momentum)  # noqa: E731
    dense_model = model_fn(seed=seed, init="xavier", device=device)
    initial_state = copy.deepcopy(dense_model.state_dict())
    dense = train(dense_model, train_data, epochs=epochs, optimizer=sgd(dense_model), **common)
    prune_magnitude(dense_model, amount)
    masks = pruning_masks(dense_model)
    ticket_model = model_fn(seed=seed, init="xavier", device=device)
    ticket_model.load_state_dict(initial_state)
    random_model = model_fn(seed=seed + 10_007, init="xavier", device=device)
    sparsity = apply_masks(ticket_model, masks)
    apply_masks(random_model, masks)
    again = epochs if retrain_epochs is None else retrain_epochs
    ticket = train(ticket_model, train_data, epochs=again, optimizer=sgd(ticket_model), **common)
    control = train(random_model, train_data, epochs=again, optimizer=sgd(random_model), **common)
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


def with_teacher(data: TensorData, teacher: nn.Module) -> TensorData:
    """The same inputs with targets (labels, teacher logits): the training data of a distilled student."""
    logits = predict(teacher, data.inputs).to(data.device)
    return TensorData(data.inputs, (data.labels, logits))
