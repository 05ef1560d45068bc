"""Module 4 experiments: LoRA / QLoRA / full fine-tuning runs, a hyperparameter sweep, regularisers, `adapt`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from ..common import set_seed
from .adapters import add_lora, add_qlora, count_4bit_layers, count_parameters
from .blocks import Blocks, make_blocks
from .load import load_model, load_model_4bit, load_tokenizer, model_weight_megabytes
from .perplexity import perplexity
from .trainer import train_lm

__all__ = ["RunSettings", "finetune", "compare_methods", "sweep", "compare_regularisers", "adapt", "METHODS"]

METHODS = ("lora", "qlora", "full")


@dataclass(frozen=True)
class RunSettings:
    """Everything one fine-tuning run depends on (defaults: the original's LoRA settings; steps: a budget, D28)."""

    steps: int = 200
    batch_size: int = 2
    learning_rate: float = 2e-4
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    weight_decay: float = 0.0
    adapter_l2: float = 0.0
    scope: str = "attention"
    seed: int = 0

    def with_(self, **changes) -> "RunSettings":
        """A copy with some settings changed."""
        return replace(self, **changes)


@dataclass
class RunOutcome:
    """One run's table row and the trained model (kept for generation, saving and merging)."""

    row: dict
    model: torch.nn.Module = field(repr=False)
    losses: list[float] = field(default_factory=list, repr=False)


def _prepare(method: str, model_name: str | None, s: RunSettings, device: torch.device):
    """The model ready to train, and its base weights' memory (MB) measured before any adapter is added."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    base = load_model_4bit(model_name, device) if method == "qlora" else load_model(model_name, device)
    base_mb = model_weight_megabytes(base)
    if method == "lora":
        return add_lora(base, s.r, s.alpha, s.dropout, s.scope), base_mb
    if method == "qlora":
        return add_qlora(base, s.r, s.alpha, s.dropout, s.scope), base_mb
    base.requires_grad_(True)
    return base, base_mb


def finetune(method: str, model_name: str | None, train: Blocks, held_out: Blocks, settings: RunSettings = RunSettings(),
             device: torch.device | str = "cpu", eval_batch_size: int = 16, progress: bool = True) -> RunOutcome:
    """Load a fresh model, fine-tune it by `method` ("lora", "qlora" or "full") for the step budget, and measure it."""
    device = torch.device(device)
    set_seed(settings.seed)
    model, base_mb = _prepare(method, model_name, settings, device)
    params = count_parameters(model)
    result = train_lm(model, train, settings.steps, settings.batch_size, settings.learning_rate,
                      settings.weight_decay, settings.adapter_l2, seed=settings.seed, device=device, progress=progress,
                      log_every=max(1, settings.steps // 20))
    m = result.meter
    row = {"method": method, "perplexity": perplexity(model, held_out, eval_batch_size), "steps": settings.steps,
           "trainable_params": params.trainable, "total_params": params.total, "trainable_percent": params.percent,
           "base_weight_memory_mb": base_mb, "peak_memory_mb": m.peak_memory_mb,
           "memory_increase_mb": m.peak_memory_mb - m.start_memory_mb, "memory_measure": m.memory_label,
           "tokens_per_second": result.steady_tokens_per_second, "seconds": m.seconds, "final_train_loss": result.final_loss,
           "4bit_layers": count_4bit_layers(model) if method == "qlora" else 0}
    return RunOutcome(row, model, result.losses)


def compare_methods(model_name: str | None, train: Blocks, held_out: Blocks, settings: RunSettings = RunSettings(),
                    methods: tuple[str, ...] = METHODS, device: torch.device | str = "cpu",
                    full_learning_rate: float | None = None) -> tuple[pd.DataFrame, dict[str, RunOutcome]]:
    """Run each method with the same data, budget and seed; one table row per method."""
    runs = {}
    for method in methods:
        s = settings.with_(learning_rate=full_learning_rate) if method == "full" and full_learning_rate else settings
        runs[method] = finetune(method, model_name, train, held_out, s, device)
    return pd.DataFrame([r.row for r in runs.values()]).set_index("method"), runs


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
        del outcome
    return pd.DataFrame(rows)


def compare_regularisers(model_name: str | None, train: Blocks, held_out: Blocks, settings: RunSettings = RunSettings(),
                         weight_decay: float = 0.1, dropout: float = 0.2, adapter_l2: float = 1e-3,
                         device: torch.device | str = "cpu") -> pd.DataFrame:
    """Held-out perplexity with no regulariser, weight decay, more LoRA dropout, or an L2 penalty on adapter weights."""
    variants = {"none": settings.with_(dropout=0.0), f"weight decay {weight_decay}": settings.with_(
        dropout=0.0, weight_decay=weight_decay), f"LoRA dropout {dropout}": settings.with_(dropout=dropout),
        f"adapter L2 {adapter_l2:g}": settings.with_(dropout=0.0, adapter_l2=adapter_l2)}
    rows = []
    for label, s in variants.items():
        out = finetune("lora", model_name, train, held_out, s, device, progress=False)
        rows.append({"regulariser": label, "perplexity": out.row["perplexity"],
                     "final_train_loss": out.row["final_train_loss"], "seconds": out.row["seconds"]})
    return pd.DataFrame(rows).set_index("regulariser")


def adapt(model_name: str | None, text_path: str | Path, method: str = "lora", settings: RunSettings = RunSettings(),
          block_size: int = 128, max_blocks: int | None = None, held_out_fraction: float = 0.1,
          device: torch.device | str = "cpu") -> dict:
    """Homework: adapt `model_name` to your text file/folder; perplexity before and after, and a comparison row.

    Returns perplexity_before / perplexity_after, the row, the adapted model, the held-out blocks both
    perplexities were measured on, and how they were built (text, block_size, max_blocks, held_out_fraction).
    """
    from ..data.text import load_text

    corpus = load_text(text_path, held_out_fraction)
    tokenizer = load_tokenizer(model_name)
    train = make_blocks(corpus.train, tokenizer, block_size, max_blocks)
    held = make_blocks(corpus.held_out, tokenizer, block_size, max_blocks)
    before = perplexity(load_model(model_name, device), held)  # measured before any adaptation (D25)
    outcome = finetune(method, model_name, train, held, settings, device, progress=False)
    after = outcome.row["perplexity"]
    row = {"text": str(text_path), "model": str(model_name or "bundled"), **outcome.row,
           "perplexity_before": before, "change_percent": 100.0 * (after - before) / before}
    return {"perplexity_before": before, "perplexity_after": after, "row": row, "model": outcome.model,
            "held_blocks": held, "built_from": {"text": str(text_path), "block_size": block_size,
                                                "max_blocks": max_blocks, "held_out_fraction": held_out_fraction}}
