"""Benchmark 4: LoRA vs QLoRA vs full fine-tuning of the bundled small OPT model on CPU, same data, budget and seed.

Measures training tokens per second, the base model's weight memory (fp32 vs 4-bit NF4) and the rise of the
process's resident memory during training (CPU; whole process, sampled every 20 ms). In this table "original"
is the reference method of each comparison (full fine-tuning, or LoRA for QLoRA) and "helpers" the method
compared with it; ratio > 1 means the compared method is better (faster / smaller). Data: the mirror's real
WikiText-2 raw test split when TWDL_DATA_MIRROR is set, else the labelled stand-in. On a GPU, `make gpu-check`
(scripts/gpu_check.py) measures LoRA against QLoRA on galactica-125m's configuration in bf16 and fp16.

The "original" part runs the original course's own LoRA code path (bench/original_lora.py: every line padded to
128 tokens, targets q/k/v/o_proj, the Trainer with DataCollatorForLanguageModeling at batch 2, fp32 on CPU) against
the helpers' (full 128-token blocks, targets found from the architecture, batch 2) for the same number of steps,
and counts only real (non-padding) tokens; D28 prices one epoch of WikiText-2 train at batch 2 from it.
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_lora as original  # noqa: E402
from covertype import row  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers.data.text import load_wikitext2  # noqa: E402
from twdl_helpers import lm  # noqa: E402

# Rows (lines, blank ones included) of WikiText-2 raw's train split: the Hugging Face dataset card's count. The
# split itself is not in the offline mirror; the original trained one epoch over it at batch 2 (D28).
WIKITEXT2_TRAIN_ROWS = 36_718


def _measure(method: str, train, held, settings, runs: int) -> dict[str, float]:
    rows = [lm.finetune(method, "bundled", train, held, settings, "cpu", progress=False).row for _ in range(runs)]
    keys = ("tokens_per_second", "base_weight_memory_mb", "memory_increase_mb", "perplexity")
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def original_vs_helpers(quick: bool) -> list[dict]:
    """Real tokens/s of the original's LoRA Trainer path vs the helpers' at batch 2, and D28's epoch cost."""
    steps, runs = (4, 1) if quick else (30, 3)
    mirror = twdl.data_mirror()
    if mirror is None:
        return []
    tokenizer = lm.load_tokenizer("bundled")
    rows_text = original.wikitext_rows(mirror)
    padded = original.tokenize(tokenizer, rows_text)
    real_per_row = float(padded["attention_mask"].float().mean()) * original.MAX_LENGTH
    blocks = lm.make_blocks("".join(rows_text), tokenizer, original.MAX_LENGTH)
    orig_s, help_s = [], []
    for _ in range(runs):
        twdl.set_seed(0)
        orig_s.append(original.train_original(original.original_lora(lm.load_model("bundled")), tokenizer, padded,
                                              steps))
        twdl.set_seed(0)
        result = lm.train_lm(lm.add_lora(lm.load_model("bundled")), blocks, steps, batch_size=2,
                             learning_rate=2e-4, progress=False)
        help_s.append(result.meter.seconds)
    o, h = statistics.median(orig_s), statistics.median(help_s)
    orig_rate, help_rate = steps * 2 * real_per_row / o, steps * 2 * original.MAX_LENGTH / h
    epoch_steps = math.ceil(WIKITEXT2_TRAIN_ROWS / 2)
    what = f"bundled model, batch 2, {steps} steps, 1 torch thread, trainer.train() wall time"
    return [
        row("original_real_tokens", f"LoRA: original path (lines padded to 128, q/k/v/o_proj) vs helpers (full "
            f"blocks, q/k/v/out_proj), {what}", "real (non-padding) training tokens per second", "tokens/s",
            orig_rate, help_rate, f"{runs} / {runs}", higher_is_better=True),
        row("original_step_seconds", f"LoRA training step, original path vs helpers, {what}", "seconds per step",
            "s", o / steps, h / steps, f"{runs} / {runs}", higher_is_better=False),
        row("d28_epoch_steps", f"D28 steps in one epoch of WikiText-2 train ({WIKITEXT2_TRAIN_ROWS:,} rows) at "
            "batch 2", "steps", "count", epoch_steps, float("nan"), "exact"),
        row("d28_epoch_hours", f"D28 one such epoch at the original path's measured speed ({what})", "hours", "h",
            epoch_steps * o / steps / 3600, float("nan"), f"{runs} / {runs}"),
    ]


def galactica_weight_memory() -> list[dict]:
    """Base weight memory of galactica-125m's configuration (random weights): fp32 (LoRA) vs NF4 (QLoRA), and the
    share of parameters in the embeddings, which bitsandbytes does not quantise (only nn.Linear layers)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="twdl-galactica-") as tmp:
        folder = lm.save_random_model(lm.GALACTICA_125M_CONFIG, tmp)
        fp32 = lm.load_model(folder, "cpu")
        total = sum(p.numel() for p in fp32.parameters())
        embedded = sum(m.weight.numel() for m in fp32.modules() if isinstance(m, torch.nn.Embedding))
        fp32_mb = lm.model_weight_megabytes(fp32)
        del fp32
        nf4_mb = lm.model_weight_megabytes(lm.load_model_4bit(folder, "cpu"))
    what = "galactica-125m's configuration, random weights, CPU"
    rows = [row("galactica_weight_memory", f"QLoRA vs LoRA, {what}", "base weight memory (fp32 vs NF4 + double "
                "quant)", "MB", fp32_mb, nf4_mb, "exact", False, 2.5),
            row("galactica_embedding_share", f"{what}: parameters in embeddings (kept at full precision by "
                "bitsandbytes, which quantises nn.Linear layers; the LM head is tied to them)", "share of all "
                "parameters", "%", float("nan"), 100.0 * embedded / total, "exact")]
    rows[0]["target"] = ">= 2.5x (4-bit <= 40 % of fp32)"
    return rows


def run(quick: bool = False) -> pd.DataFrame:
    """Median tokens/s and memory over repeated runs for full, LoRA and QLoRA fine-tuning; one table."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # comparable on a shared machine
    try:
        return pd.DataFrame(_methods(quick) + galactica_weight_memory() + original_vs_helpers(quick))
    finally:
        torch.set_num_threads(before)


def _methods(quick: bool) -> list[dict]:
    """Full fine-tuning vs LoRA vs QLoRA with the helpers (same data, budget and seed)."""
    runs, steps = (1, 2) if quick else (3, 10)
    tokenizer = lm.load_tokenizer("bundled")
    corpus = load_wikitext2(limit=200_000)
    train = lm.make_blocks(corpus.train, tokenizer, 64, 200)
    held = lm.make_blocks(corpus.held_out, tokenizer, 64, 16)
    base = lm.RunSettings(steps=steps, batch_size=8, learning_rate=1e-2)
    m = {"full": _measure("full", train, held, base.with_(learning_rate=1e-3), runs),
         "lora": _measure("lora", train, held, base, runs), "qlora": _measure("qlora", train, held, base, runs)}
    what = f"bundled model, batch 8 x 64 tokens, {steps} steps, 1 torch thread"
    rows = [
        row("lora_vs_full_tokens", f"LoRA vs full fine-tuning, {what}", "training throughput (after the first step)",
            "tokens/s", m["full"]["tokens_per_second"], m["lora"]["tokens_per_second"], runs, True),
        row("lora_vs_full_rss", f"LoRA vs full fine-tuning, {what}", "RSS rise during training (CPU, whole process)",
            "MB", m["full"]["memory_increase_mb"], m["lora"]["memory_increase_mb"], runs, False),
        row("qlora_vs_lora_tokens", f"QLoRA vs LoRA, {what}", "training throughput (after the first step)",
            "tokens/s", m["lora"]["tokens_per_second"], m["qlora"]["tokens_per_second"], runs, True),
        row("qlora_weight_memory", f"QLoRA vs LoRA, {what}", "base weight memory (fp32 vs NF4 + double quant)", "MB",
            m["lora"]["base_weight_memory_mb"], m["qlora"]["base_weight_memory_mb"], runs, False, 2.5),
        row("qlora_perplexity", f"QLoRA vs LoRA, {what}", f"held-out perplexity after {steps} steps", "ppl",
            m["lora"]["perplexity"], m["qlora"]["perplexity"], runs, False),
    ]
    rows[3]["target"] = ">= 2.5x (4-bit <= 40 % of fp32)"
    rows[4]["target"], rows[4]["met"] = ">= 0.91x (within 10 %)", bool(rows[4]["ratio"] >= 1 / 1.1)
    return rows


if __name__ == "__main__":
    print(run().to_markdown(index=False))
