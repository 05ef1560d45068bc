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
from .meter import MEMORY_PARTS, ResourceMeter, free_memory, memory_breakdown
from .perplexity import perplexity
from .trainer import train_lm

__all__ = ["RunSettings", "RunOutcome", "finetune", "grid_settings", "regularizer_settings", "compare_settings",
           "Choice", "choose", "sweep_rows", "sweep", "compare_lora_regularizers", "adapt", "choose_on_text", "METHODS",
           "CHOICE_FIELDS"]

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


def _counted_memory(model: torch.nn.Module, train: Blocks, s: RunSettings, device: torch.device) -> dict:
    """The run's memory counted by kind (`memory_breakdown` on one training batch, after the measured run)."""
    from .precision import choose_precision

    batch = train.input_ids[: s.batch_size].to(device)
    counted = memory_breakdown(model, batch, s.optimizer, choose_precision(device, s.precision).autocast)
    model.zero_grad(set_to_none=True)
    return {f"counted_{k}": v for k, v in counted.items() if k in (*MEMORY_PARTS, "total_mb", "frozen_bytes_per_param",
                                                                    "trainable_bytes_per_param")}


def finetune(method: str, model_name: str | None, train: Blocks, held_out: Blocks, settings: RunSettings = RunSettings(),
             device: torch.device | str = "cpu", eval_batch_size: int = 16, progress: bool = True,
             keep_model: bool = False) -> RunOutcome:
    """Load a fresh model, fine-tune it by `method` (see METHODS) for the step budget, and measure it ALONE.

    The meter starts before the model is loaded (garbage collected, caches emptied, peak reset) and stops after
    training: `peak_memory_mb` is the run's peak with whatever the caller still holds, `memory_increase_mb` what
    this run added. Unless `keep_model`, the model is freed before returning, so the next run does not count it;
    a kept model is freed with `outcome.release()`. The `counted_*` columns are the memory counted by kind from the
    model itself (`memory_breakdown`), beside the measured ones.
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
    counted = _counted_memory(model, train, settings, device)
    row = {"method": method, "perplexity": perplexity(model, held_out, eval_batch_size), "steps": settings.steps,
           "trainable_params": params.trainable, "total_params": params.total, "trainable_percent": params.percent,
           "base_weight_memory_mb": base_mb, "peak_memory_mb": meter.peak_memory_mb,
           "memory_before_mb": meter.start_memory_mb, "memory_increase_mb": meter.memory_increase_mb,
           "memory_measure": meter.memory_label, "tokens_per_second": result.steady_tokens_per_second,
           "seconds": result.seconds, "final_train_loss": result.final_loss, "precision": result.settings["precision"],
           "optimizer": settings.optimizer, "4bit_layers": count_4bit_layers(model) if method == "qlora" else 0,
           "device": str(device), **counted}
    log_device_run(f"{method} ({row['precision']})", device, started, meter.peak_memory_mb)
    outcome = RunOutcome(row, model if keep_model else None, result.losses)
    del model, result
    if not keep_model:
        free_memory(device)
    return outcome


# The settings a choice can change, shown beside each candidate's tuning perplexity.
CHOICE_FIELDS = ("r", "alpha", "dropout", "learning_rate", "weight_decay", "adapter_l2")


def grid_settings(grid: dict[str, list], settings: RunSettings = RunSettings()) -> dict[str, RunSettings]:
    """Candidates that vary one setting at a time around `settings`, labelled "name=value", with the unchanged
    `settings` first as "defaults" (a value equal to the default is that same run, listed once)."""
    candidates = {"defaults": settings}
    for name, values in grid.items():
        if name not in CHOICE_FIELDS:
            raise ValueError(f"grid setting {name!r} is not one of {CHOICE_FIELDS}")
        for value in values:
            if value != getattr(settings, name):
                candidates[f"{name}={value:g}"] = settings.with_(**{name: value})
    return candidates


def regularizer_settings(settings: RunSettings = RunSettings(), weight_decay: float = 0.1, dropout: float = 0.2,
                         adapter_l2: float = 1e-3) -> dict[str, RunSettings]:
    """Candidates, one per regulariser, with "none" (no LoRA dropout either) as the baseline: AdamW weight decay,
    more LoRA dropout, or an L2 penalty on the adapter weights."""
    return {"none": settings.with_(dropout=0.0),
            f"weight decay {weight_decay:g}": settings.with_(dropout=0.0, weight_decay=weight_decay),
            f"LoRA dropout {dropout:g}": settings.with_(dropout=dropout),
            f"adapter L2 {adapter_l2:g}": settings.with_(dropout=0.0, adapter_l2=adapter_l2)}


def _run_candidates(model_name: str | None, train: Blocks, tuning: Blocks, candidates: dict[str, RunSettings],
                    method: str, device: torch.device | str, keep_best: bool) -> tuple[pd.DataFrame, RunOutcome | None]:
    """Each candidate trained on `train` and scored on `tuning`; the table and, if `keep_best`, the best run's
    outcome with its model (the others are freed as soon as they are beaten)."""
    from tqdm.auto import tqdm

    if not candidates:
        raise ValueError("no candidate settings to compare: give at least one")
    rows, best = [], None
    for label, s in tqdm(list(candidates.items()), desc="candidates"):
        out = finetune(method, model_name, train, tuning, s, device, progress=False, keep_model=keep_best)
        rows.append({"candidate": label, **{k: getattr(s, k) for k in CHOICE_FIELDS},
                     "tuning_perplexity": out.row["perplexity"], "final_train_loss": out.row["final_train_loss"],
                     "seconds": out.row["seconds"], "trainable_params": out.row["trainable_params"]})
        if keep_best and (best is None or out.row["perplexity"] < best.row["perplexity"]):
            best, beaten = out, best
            if beaten is not None:
                beaten.release()
        elif keep_best:
            out.release()
    return pd.DataFrame(rows).set_index("candidate"), best


def compare_settings(model_name: str | None, train: Blocks, tuning: Blocks, candidates: dict[str, RunSettings],
                     method: str = "lora", device: torch.device | str = "cpu") -> pd.DataFrame:
    """Train each candidate on `train` and score it on the `tuning` blocks (the blocks choices are made on; never
    the held-out ones a result is reported on): one row per label, its settings and `tuning_perplexity`."""
    return _run_candidates(model_name, train, tuning, candidates, method, device, keep_best=False)[0]


@dataclass
class Choice:
    """A choice among candidate settings: the tuning table, the chosen label and settings, and the chosen run's
    perplexity on held-out blocks that played no part in the choice (with its model, if kept)."""

    table: pd.DataFrame
    chosen: str
    settings: RunSettings
    held_out_perplexity: float
    model: torch.nn.Module | None = field(default=None, repr=False)


def choose(model_name: str | None, train: Blocks, tuning: Blocks, held_out: Blocks,
           candidates: dict[str, RunSettings], method: str = "lora", device: torch.device | str = "cpu",
           keep_model: bool = False) -> Choice:
    """Choose the candidate with the lowest perplexity on the `tuning` blocks (as `compare_settings`), then score
    that same trained model once on the `held_out` blocks: the number to report, since no choice has seen them."""
    table, best = _run_candidates(model_name, train, tuning, candidates, method, device, keep_best=True)
    chosen = str(table["tuning_perplexity"].idxmin())
    choice = Choice(table, chosen, candidates[chosen], perplexity(best.model, held_out),
                    best.model if keep_model else None)
    if not keep_model:
        best.release()
    return choice


def sweep_rows(table: pd.DataFrame, grid: dict[str, list], settings: RunSettings) -> pd.DataFrame:
    """A table of `grid_settings` candidates (`compare_settings`, `Choice.table`) as one row per (setting, value)
    for `plot_sweep`: the defaults run appears once per setting, at its default value."""
    rows = []
    for name, values in grid.items():
        for value in sorted({*values, getattr(settings, name)}):
            label = "defaults" if value == getattr(settings, name) else f"{name}={value:g}"
            rows.append({"setting": name, "value": value, "candidate": label,
                         "tuning_perplexity": table.loc[label, "tuning_perplexity"],
                         "final_train_loss": table.loc[label, "final_train_loss"]})
    return pd.DataFrame(rows)


def sweep(model_name: str | None, train: Blocks, tuning: Blocks, grid: dict[str, list],
          settings: RunSettings = RunSettings(), method: str = "lora", device: torch.device | str = "cpu") -> pd.DataFrame:
    """Vary one setting at a time around `settings` (e.g. grid={"r": [2, 8, 16], "learning_rate": [...]}), each
    scored on the `tuning` blocks: `sweep_rows` of `compare_settings` on `grid_settings`."""
    table = compare_settings(model_name, train, tuning, grid_settings(grid, settings), method, device)
    return sweep_rows(table, grid, settings)


def compare_lora_regularizers(model_name: str | None, train: Blocks, tuning: Blocks,
                              settings: RunSettings = RunSettings(), weight_decay: float = 0.1, dropout: float = 0.2,
                              adapter_l2: float = 1e-3, device: torch.device | str = "cpu") -> pd.DataFrame:
    """LoRA runs on the same blocks, one per regulariser (`regularizer_settings`), scored on the `tuning` blocks
    (module 3's `twdl.compare_regularizers` is for image models)."""
    return compare_settings(model_name, train, tuning,
                            regularizer_settings(settings, weight_decay, dropout, adapter_l2), "lora", device)


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


def choose_on_text(model_name: str | None, text_path: str | Path, candidates: dict[str, RunSettings],
                   method: str = "lora", block_size: int = 128, max_blocks: int | None = None,
                   held_out_fraction: float = 0.1, tuning_fraction: float = 0.1,
                   device: torch.device | str = "cpu") -> dict:
    """Homework: choose among `candidates` (e.g. `grid_settings(...)` or `regularizer_settings(...)`) on your text.

    The text is cut into training, tuning and held-out parts (`load_text`: the held-out part is the same as
    `adapt`'s with the same `held_out_fraction`). Every candidate trains on the training blocks and is scored on the
    tuning blocks; the model with the lowest tuning perplexity is kept and scored once on the held-out blocks,
    which no choice has seen (`choose`). Returns the table, the chosen label, its held-out perplexity, the chosen
    model, the tuning and held-out blocks, and how they were built (with the tuning and held-out texts themselves).
    """
    from ..data.text import load_text

    corpus = load_text(text_path, held_out_fraction, tuning_fraction=tuning_fraction)
    tokenizer = load_tokenizer(model_name)
    train = make_blocks(corpus.train, tokenizer, block_size, max_blocks)
    tuning = make_blocks(corpus.tuning, tokenizer, block_size, max_blocks)
    held = make_blocks(corpus.held_out, tokenizer, block_size, max_blocks)
    choice = choose(model_name, train, tuning, held, candidates, method, device, keep_model=True)
    return {"table": choice.table, "chosen": choice.chosen, "perplexity_held_out": choice.held_out_perplexity,
            "model": choice.model, "tuning_blocks": tuning, "held_blocks": held,
            "built_from": {"text": str(text_path), "block_size": block_size, "max_blocks": max_blocks,
                           "held_out_fraction": held_out_fraction, "tuning_fraction": tuning_fraction,
                           "tuning_text": corpus.tuning, "held_out_text": corpus.held_out}}
