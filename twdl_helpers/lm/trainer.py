"""Train a causal LM on token blocks with the transformers Trainer (its current argument names), metered."""
from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from .blocks import BlockDataset, Blocks
from .meter import ResourceMeter
from .precision import choose_precision, paged_optimizer_support

__all__ = ["TrainResult", "train_lm", "adapter_l2_norm"]


@dataclass
class TrainResult:
    """What a training run produced: per-step training losses and the resource measurements."""

    steps: int
    losses: list[float]
    meter: ResourceMeter
    settings: dict = field(default_factory=dict)
    steady_tokens_per_second: float = 0.0  # after the first step (which pays one-time start-up costs)
    seconds: float = 0.0  # wall time of the training alone

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last quarter of the logged steps."""
        tail = self.losses[-max(1, len(self.losses) // 4):]
        return sum(tail) / len(tail) if tail else float("nan")


def adapter_l2_norm(model: torch.nn.Module) -> torch.Tensor:
    """Sum of squared LoRA adapter weights (the lora_A / lora_B matrices) that require gradients."""
    terms = [p.pow(2).sum() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    if not terms:
        raise ValueError("the model has no trainable LoRA weights (names containing 'lora_'): add adapters first")
    return torch.stack(terms).sum()


def _callbacks(progress: bool, marks: dict):
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class StepClock(TrainerCallback):
        """Remember when the first step ended and when training ended (for steady-state throughput)."""

        def on_step_end(self, args, state, control, **kwargs):
            marks.setdefault("first", time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            marks["end"] = time.perf_counter()

    class QuietProgress(ProgressCallback):
        """The step progress bar, without printing every logged dict under it."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return [StepClock()] + ([QuietProgress()] if progress else [])


def _trainer_class(adapter_l2: float):
    from transformers import Trainer

    if adapter_l2 <= 0:
        return Trainer

    class AdapterL2Trainer(Trainer):
        """The Trainer with `adapter_l2 * sum of squared adapter weights` added to each step's loss."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
            loss, outputs = result if return_outputs else (result, None)
            loss = loss + adapter_l2 * adapter_l2_norm(model).to(loss.dtype)
            return (loss, outputs) if return_outputs else loss

    return AdapterL2Trainer


def train_lm(model: torch.nn.Module, blocks: Blocks, steps: int, batch_size: int = 8, learning_rate: float = 2e-4,
             weight_decay: float = 0.0, adapter_l2: float = 0.0, warmup_steps: int = 0, max_grad_norm: float = 1.0,
             seed: int = 0, device: torch.device | str = "cpu", output_dir: str | None = None,
             log_every: int = 1, progress: bool = True, precision: str = "auto", optimizer: str = "adamw_torch",
             meter: ResourceMeter | None = None) -> TrainResult:
    """Train for exactly `steps` optimiser steps (a budget, not epochs: one epoch of a real corpus takes hours) and
    meter time, tokens and memory.

    `precision` ("auto", "bf16", "fp16", "fp32") goes through `choose_precision`: bf16 only where the GPU has it
    natively, fp16 with the Trainer's gradient scaler otherwise, fp32 on a CPU. Trainable weights must be fp32
    (the helpers keep adapters fp32), so fp16 never meets "Attempting to unscale FP16 gradients".
    `optimizer` is a Trainer `optim` name, e.g. "paged_adamw_32bit" (bitsandbytes, CUDA only). Pass an entered
    `meter` to measure more than the training (e.g. loading too); otherwise training alone is measured.
    """
    from transformers import TrainingArguments, default_data_collator

    device = torch.device(device)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if optimizer.startswith("paged_"):
        ok, why = paged_optimizer_support(device)
        if not ok:
            raise ValueError(f"optimizer={optimizer!r} cannot run here: {why}")
    wrong = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad and p.dtype != torch.float32})
    if wrong:
        raise ValueError(f"trainable weights must be fp32 for mixed precision (the gradient scaler cannot unscale fp16 "
                         f"gradients), found {wrong}; "
                         "load the model in fp32 (load_model) or add adapters with add_lora/add_qlora")
    mixed = choose_precision(device, precision)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=output_dir or tmp, max_steps=steps, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps,
            lr_scheduler_type="linear", max_grad_norm=max_grad_norm, **mixed.trainer_flags, optim=optimizer,
            eval_strategy="no", save_strategy="no", logging_steps=log_every, report_to="none", seed=seed,
            data_seed=seed, use_cpu=device.type == "cpu", dataloader_pin_memory=device.type == "cuda",
            disable_tqdm=True, remove_unused_columns=False)
        trainer = _trainer_class(adapter_l2)(model=model, args=args, train_dataset=BlockDataset(blocks),
                                             data_collator=default_data_collator)
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        marks: dict[str, float] = {}
        for callback in _callbacks(progress, marks):
            trainer.add_callback(callback)
        own = meter is None
        meter = ResourceMeter(device) if own else meter
        start = time.perf_counter()
        with meter if own else nullcontext():
            trainer.train()
        seconds = time.perf_counter() - start
        tokens = steps * batch_size * blocks.block_size
        meter.tokens += tokens
        losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
        del trainer  # the Trainer holds the model and optimiser state: let them go with the caller's model
    settings = dict(steps=steps, batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay,
                    adapter_l2=adapter_l2, precision=mixed.name, optimizer=optimizer, block_size=blocks.block_size)
    steady = ((steps - 1) * batch_size * blocks.block_size / (marks["end"] - marks["first"])
              if steps > 1 and marks.get("end", 0) > marks.get("first", 0) else tokens / seconds)
    return TrainResult(steps, losses, meter, settings, steady, seconds)
