"""Train a causal LM on token blocks with the transformers Trainer (current argument names, D23), metered."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

import torch

from .blocks import BlockDataset, Blocks
from .load import autocast_dtype
from .meter import ResourceMeter

__all__ = ["TrainResult", "train_lm", "adapter_l2_norm"]


@dataclass
class TrainResult:
    """What a training run produced: per-step training losses and the resource measurements."""

    steps: int
    losses: list[float]
    meter: ResourceMeter
    settings: dict = field(default_factory=dict)
    steady_tokens_per_second: float = 0.0  # after the first step (which pays one-time start-up costs)

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
             log_every: int = 1, progress: bool = True) -> TrainResult:
    """Train for exactly `steps` optimiser steps (a budget, not epochs: D28) and meter time, tokens and memory.

    bf16 mixed precision is used only where the hardware supports it (CUDA with bf16); otherwise fp32. Trainable
    weights stay fp32 either way, so no fp16 gradient unscaling error can occur (D24).
    """
    from transformers import TrainingArguments, default_data_collator

    device = torch.device(device)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    bf16 = autocast_dtype(device) is torch.bfloat16
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=output_dir or tmp, max_steps=steps, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps,
            lr_scheduler_type="linear", max_grad_norm=max_grad_norm, bf16=bf16, fp16=False,
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
        with ResourceMeter(device) as meter:
            trainer.train()
        meter.tokens = steps * batch_size * blocks.block_size
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    settings = dict(steps=steps, batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay,
                    adapter_l2=adapter_l2, bf16=bf16, block_size=blocks.block_size)
    steady = ((steps - 1) * batch_size * blocks.block_size / (marks["end"] - marks["first"])
              if steps > 1 and marks.get("end", 0) > marks.get("first", 0) else meter.tokens_per_second)
    return TrainResult(steps, losses, meter, settings, steady)
