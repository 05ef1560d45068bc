"""Module 4 experiments: LoRA / QLoRA / last-blocks / full fine-tuning runs, each measured alone; a
hyperparameter sweep, regularisers, and `adapt` for the homework."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from ..common import log_device_run, set_seed, start_device_run
from .adapters import add_lora, add_qlora, count_4bit_layers, count_parameters, unfreeze_last_blocks
from .blocks import Blocks, make_blocks
from .load import load_model, load_model_4bit, load_tokenizer, model_weight_megabytes
from .meter import ResourceMeter, free_memory
from .perplexity import perplexity
from .trainer import train_lm

__all__ = ["RunSettings", "RunOutcome", "finetune", "sweep", "compare_lora_regularizers", "adapt", "METHODS"]

# lora / qlora: adapters on a frozen fp32 / 4-bit base; last_blocks: only the last `unfreeze_blocks` transformer
# blocks train; full: every weight trains.
METHODS = ("lora", "qlora", "last_blocks", "full")


@dataclass(frozen=True)
class RunSettings:
    """Everything one fine-tuning run depends on (defaults: the original's LoRA settings; steps: a budget, not
    epochs)."""

    steps: int = 200
    batch_size: int = 2
    learning_rate: float = 2e-4
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    weight_decay: float = 0.0
    adapter_l2: float = 0.0
    scope: str = "attention"
    unfreeze_blocks: int = 2
    precision: str = "auto"  # "auto" (bf16 only where native, else fp16 on a GPU; fp32 on a CPU), "bf16", "fp16", "fp32"
    optimizer: str = "adamw_torch"  # a Trainer `optim` name, e.g. "paged_adamw_32bit" (bitsandbytes, CUDA)
    seed: int = 0

    def with_(self, **changes) -> "RunSettings":
        """A copy with some settings changed."""
        return replace(self, **changes)


@dataclass
class RunOutcome:
    """One run's table row, its training losses, and the trained model if it was kept (`keep_model=True`)."""

    row: dict
    model: torch.nn.Module | None = field(default=None, repr=False)
    losses: list[float] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Drop the kept model and free its memory, so that the next measured run does not count it."""
        device = self.row.get("device", "cpu")
        self.model = None
        free_memory(device)


def _prepare(method: str, model_name: str | None, s: RunSettings, device: torch.device):
    """The model ready to train, and its base weights' memory (MB) measured before any adapter is added."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "qlora":
        from .precision import choose_precision

        base = load_model_4bit(model_name, device, choose_precision(device, s.precision).compute_dtype)
    else:
        base = load_model(model_name, device)
    base_mb = model_weight_megabytes(base)
    if method == "lora":
        return add_lora(base, s.r, s.alpha, s.dropout, s.scope), base_mb
    if method == "qlora":
        return add_qlora(base, s.r, s.alpha, s.dropout, s.scope), base_mb
    if method == "last_blocks":
        return unfreeze_last_blocks(base, s.unfreeze_blocks), base_mb
    base.requires_grad_(True)
    return base, base_mb


def finetune(method: str, model_name: str | None, train: Blocks, held_out: Blocks, settings: RunSettings = RunSettings(),
             device: torch.device | str = "cpu", eval_batch_size: int = 16, progress: bool = True,
             keep_model: bool = False) -> RunOutcome:
    """Load a fresh model, fine-tune it by `method` (see METHODS) for the step budget, and measure it ALONE.

    The meter starts before the model is loaded (garbage collected, caches emptied, peak reset) and stops after
    training: `peak_memory_mb` is the run's peak with whatever the caller still holds, `memory_increase_mb` what
    this run added. Unless `keep_model`, the model is freed before returning, so the next run does not count it;
    a kept model is freed with `outcome.release()`.
    """
    device = torch.device(device)
    set_seed(settings.seed)
    started = start_device_run(device)
    with ResourceMeter(device) as meter:
        model, base_mb = _prepare(method, model_name, settings, device)
        params = count_parameters(model)
        result = train_lm(model, train, settings.steps, settings.batch_size, settings.learning_rate,
                          settings.weight_decay, settings.adapter_l2, seed=settings.seed, device=device,
                          progress=progress, log_every=max(1, settings.steps // 20), precision=settings.precision,
                          optimizer=settings.optimizer, meter=meter)
    row = {"method": method, "perplexity": perplexity(model, held_out, eval_batch_size), "steps": settings.steps,
           "trainable_params": params.trainable, "total_params": params.total, "trainable_percent": params.percent,
           "base_weight_memory_mb": base_mb, "peak_memory_mb": meter.peak_memory_mb,
           "memory_before_mb": meter.start_memory_mb, "memory_increase_mb": meter.memory_increase_mb,
           "memory_measure": meter.memory_label, "tokens_per_second": result.steady_tokens_per_second,
           "seconds": result.seconds, "final_train_loss": result.final_loss, "precision": result.settings["precision"],
           "optimizer": settings.optimizer, "4bit_layers": count_4bit_layers(model) if method == "qlora" else 0,
           "device": str(device)}
    log_device_run(f"{method} ({row['precision']})", device, started, meter.peak_memory_mb)
    outcome = RunOutcome(row, model if keep_model else None, result.losses)
    del model, result
    if not keep_model:
        free_memory(device)
    return outcome


def sweep(model_name: str | None, train: Blocks, held_out: Blocks, grid: dict[str, list],
          settings: RunSettings = RunSettings(), method: str = "lora", device: torch.device | str = "cpu") -> pd.DataFrame:
    """Vary one setting at a time around `settings` (e.g. grid={"r": [2, 8, 16], "learning_rate": [...]})."""
    from tqdm.auto import tqdm

    rows = []
    plan = [(name, value) for name, values in grid.items() for value in values]
    for name, value in tqdm(plan, desc="sweep"):
        outcome = finetune(method, model_name, train, held_out, settings.with_(**{name: value}), device, progress=False)
        rows.append({"setting": name, "value": value, "perplexity": outcome.row["perplexity"],
                     "seconds": outcome.row["seconds"], "trainable_params": outcome.row["trainable_params"]})
    return pd.DataFrame(rows)


def compare_lora_regularizers(model_name: str | None, train: Blocks, held_out: Blocks,
                              settings: RunSettings = RunSettings(), weight_decay: float = 0.1, dropout: float = 0.2,
                              adapter_l2: float = 1e-3, device: torch.device | str = "cpu") -> pd.DataFrame:
    """LoRA runs on the same blocks, one per regulariser: held-out perplexity with none, weight decay, more LoRA
    dropout, or an L2 penalty on the adapter weights (module 3's `twdl.compare_regularizers` is for image models)."""
    variants = {"none": settings.with_(dropout=0.0), f"weight decay {weight_decay}": settings.with_(
        dropout=0.0, weight_decay=weight_decay), f"LoRA dropout {dropout}": settings.with_(dropout=dropout),
        f"adapter L2 {adapter_l2:g}": settings.with_(dropout=0.0, adapter_l2=adapter_l2)}
    rows = []
    for label, s in variants.items():
        out = finetune("lora", model_name, train, held_out, s, device, progress=False)
        rows.append({"regularizer": label, "perplexity": out.row["perplexity"],
                     "final_train_loss": out.row["final_train_loss"], "seconds": out.row["seconds"]})
    return pd.DataFrame(rows).set_index("regularizer")


def adapt(model_name: str | None, text_path: str | Path, method: str = "lora", settings: RunSettings = RunSettings(),
          block_size: int = 128, max_blocks: int | None = None, held_out_fraction: float = 0.1,
          device: torch.device | str = "cpu") -> dict:
    """Homework: adapt `model_name` to your text file/folder; perplexity before and after, and a comparison row.

    Returns perplexity_before / perplexity_after, the row, the adapted model, the held-out blocks both
    perplexities were measured on, and how they were built (text, block_size, max_blocks, held_out_fraction, and
    held_out_text: the held-out part of the text itself, from which the grader rebuilds the blocks).
    """
    from ..data.text import load_text

    corpus = load_text(text_path, held_out_fraction)
    tokenizer = load_tokenizer(model_name)
    train = make_blocks(corpus.train, tokenizer, block_size, max_blocks)
    held = make_blocks(corpus.held_out, tokenizer, block_size, max_blocks)
    before = perplexity(load_model(model_name, device), held)  # before any adaptation, on the same held-out blocks
    outcome = finetune(method, model_name, train, held, settings, device, progress=False, keep_model=True)
    after = outcome.row["perplexity"]
    row = {"text": Path(text_path).name, "model": str(model_name or "bundled"), **outcome.row,
           "perplexity_before": before, "change_percent": 100.0 * (after - before) / before}
    return {"perplexity_before": before, "perplexity_after": after, "row": row, "model": outcome.model,
            "held_blocks": held, "built_from": {"text": str(text_path), "block_size": block_size,
                                                "max_blocks": max_blocks, "held_out_fraction": held_out_fraction,
                                                "held_out_text": corpus.held_out}}
