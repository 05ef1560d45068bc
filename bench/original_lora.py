"""The original course's LoRA / QLoRA code path (module 4), reproduced for comparison only; never imported by the package.

Each function names the section of the original it reproduces (COURSE_SPEC.md, D19-D28):
- data: WikiText-2 raw rows (one row per line, blank lines included), each tokenised on its own with
  `padding="max_length", truncation=True, max_length=128` (D22);
- adapters: `LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
  lora_dropout=0.05, bias="none", task_type="CAUSAL_LM")` (D20: OPT has no `o_proj`), the QLoRA example's
  `["query_key_value"]`, `print(model.print_trainable_parameters())` (D26);
- 4-bit loading through `bnb.QuantizationConfig` / `from_pretrained(..., load_in_4bit=True)` (D19);
- `TrainingArguments(evaluation_strategy="epoch", ...)` and `from_pretrained(..., torch_dtype=...)` (D23);
- training: the Trainer with `DataCollatorForLanguageModeling(tokenizer, mlm=False)` (labels = inputs, padding
  positions -100) at batch 2, lr 2e-4, max grad norm 1.0 (fp16 is left out: it needs CUDA, see D24);
- perplexity: `math.exp(trainer.evaluate()["eval_loss"])`, the exponential of the mean of per-batch mean losses
  (D27).
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from torch.nn import functional as F

MAX_LENGTH = 128
ORIGINAL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
QLORA_EXAMPLE_TARGETS = ["query_key_value"]
LORA_SETTINGS = dict(r=8, lora_alpha=32, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM")
TRAINING_SETTINGS = dict(learning_rate=2e-4, per_device_train_batch_size=2, num_train_epochs=1, max_grad_norm=1.0)


def wikitext_rows(mirror: Path) -> list[str]:
    """Original `load_dataset("wikitext", "wikitext-2-raw-v1")["test"]["text"]`: one row per line, blank ones "".

    The mirror's raw test file has its blank lines dropped; they are put back where the tokenised test.txt, which
    has the same line structure, has them (see the mirror's PROVENANCE.md)."""
    raw = (mirror / "wikitext2" / "wikitext-2-raw" / "wiki.test.raw").read_text(encoding="utf-8").splitlines()
    layout = (mirror / "wikitext2" / "wikitext-2" / "test.txt").read_text(encoding="utf-8").splitlines()
    lines, filled = [], iter(raw)
    for line in layout:
        lines.append("" if not line.strip() else next(filled) + "\n")
    if next(filled, None) is not None:
        raise ValueError("wiki.test.raw has more non-blank lines than test.txt: not the files the mirror describes")
    return lines


def tokenize(tokenizer, rows: list[str]) -> dict[str, torch.Tensor]:
    """Original `tokenize(examples)`: every row padded (or cut) to exactly 128 tokens."""
    out = tokenizer(rows, padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def original_lora(model, targets: list[str] = ORIGINAL_TARGETS):
    """Original "LoRA configuration": `get_peft_model(model, LoraConfig(...))` with the original's target list."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(target_modules=targets, **LORA_SETTINGS))


def original_training_arguments(output_dir: str, **changes):
    """Original `TrainingArguments(..., evaluation_strategy="epoch", fp16=True, ...)` (current transformers: D23)."""
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=output_dir, evaluation_strategy="epoch", fp16=True, **TRAINING_SETTINGS,
                             **changes)


def original_load_4bit(name: str):
    """Original QLoRA loading: `from_pretrained(name, load_in_4bit=True, ...)` (D19; bnb.QuantizationConfig is gone)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(name, load_in_4bit=True)


def collate(tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Original `DataCollatorForLanguageModeling(tokenizer, mlm=False)` on padded rows: labels = inputs, -100 at padding."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    return collator([{"input_ids": i, "attention_mask": a} for i, a in zip(input_ids, attention_mask)])


@torch.no_grad()
def batch_losses(model, tokenizer, padded: dict[str, torch.Tensor], batch_size: int = 2) -> list[tuple[float, int]]:
    """(mean loss, scored tokens) of each evaluation batch, as the Trainer's evaluation loop computes them."""
    model.eval()
    out = []
    for start in range(0, len(padded["input_ids"]), batch_size):
        batch = collate(tokenizer, padded["input_ids"][start:start + batch_size],
                        padded["attention_mask"][start:start + batch_size])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        scored = int((labels != -100).sum())
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100,
                               reduction="sum")
        out.append((float(loss) / scored if scored else float("nan"), scored))
    return out


def original_perplexity(losses: list[tuple[float, int]]) -> float:
    """Original `math.exp(eval_results["eval_loss"])`: exp of the plain mean of per-batch mean losses (D27)."""
    return math.exp(sum(loss for loss, _ in losses) / len(losses))


def token_weighted_perplexity(losses: list[tuple[float, int]]) -> float:
    """exp(total NLL / total scored tokens) over the same batches (what `lm.perplexity` computes)."""
    total = sum(loss * n for loss, n in losses if n)
    return math.exp(total / sum(n for _, n in losses))


def train_original(model, tokenizer, padded: dict[str, torch.Tensor], steps: int, seed: int = 0) -> float:
    """Original `Trainer(model, args, train_dataset, data_collator=DataCollatorForLanguageModeling(mlm=False)).train()`
    at batch 2 (fp32 on CPU; the original's fp16 needs CUDA), stopped after `steps` steps; returns the seconds."""
    import time

    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    rows = Dataset.from_dict({k: v.tolist() for k, v in padded.items()})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, eval_strategy="no", max_steps=steps, seed=seed, report_to="none",
                                 save_strategy="no", use_cpu=True, disable_tqdm=True, logging_steps=max(1, steps),
                                 **{k: v for k, v in TRAINING_SETTINGS.items() if k != "num_train_epochs"})
        trainer = Trainer(model=model, args=args, train_dataset=rows,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
        trainer.remove_callback(PrinterCallback)  # its end-of-training printout is not part of the timing
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start
