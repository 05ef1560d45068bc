"""Benchmark 4: LoRA vs QLoRA vs full fine-tuning of the bundled small OPT model on CPU, same data, budget and seed.

Measures training tokens per second, the base model's weight memory (fp32 vs 4-bit NF4) and the rise of the
process's resident memory during training (CPU; whole process, sampled every 20 ms). In this table "original"
is the reference method of each comparison (full fine-tuning, or LoRA for QLoRA) and "helpers" the method
compared with it; ratio > 1 means the compared method is better (faster / smaller). Data: the mirror's real
WikiText-2 raw test split when TWDL_DATA_MIRROR is set, else the labelled stand-in. On a GPU see lora_gpu.py.
"""
from __future__ import annotations

import statistics

import pandas as pd
import torch

from twdl_helpers.data.text import load_wikitext2
from twdl_helpers import lm


def _measure(method: str, train, held, settings, runs: int) -> dict[str, float]:
    rows = [lm.finetune(method, "bundled", train, held, settings, "cpu", progress=False).row for _ in range(runs)]
    keys = ("tokens_per_second", "base_weight_memory_mb", "memory_increase_mb", "perplexity")
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def run(quick: bool = False) -> pd.DataFrame:
    """Median tokens/s and memory over repeated runs for full, LoRA and QLoRA fine-tuning; one table."""
    torch.set_num_threads(1)  # comparable on a shared machine
    runs, steps = (1, 2) if quick else (3, 10)
    tokenizer = lm.load_tokenizer("bundled")
    corpus = load_wikitext2(limit=200_000)
    train = lm.make_blocks(corpus.train, tokenizer, 64, 200)
    held = lm.make_blocks(corpus.held_out, tokenizer, 64, 16)
    base = lm.RunSettings(steps=steps, batch_size=8, learning_rate=1e-2)
    m = {"full": _measure("full", train, held, base.with_(learning_rate=1e-3), runs),
         "lora": _measure("lora", train, held, base, runs), "qlora": _measure("qlora", train, held, base, runs)}
    rows = []

    def add(comparison, measure, unit, original, helpers, higher_is_better, target="", target_ratio=None):
        ratio = helpers / original if higher_is_better else original / helpers
        met = None if target_ratio is None else bool(ratio >= target_ratio)
        rows.append(dict(comparison=comparison, measure=measure, unit=unit, original=original, helpers=helpers,
                         ratio=ratio, target=target, met=met, runs=runs))

    add("LoRA vs full fine-tuning", "training throughput", "tokens/s", m["full"]["tokens_per_second"],
        m["lora"]["tokens_per_second"], True)
    add("LoRA vs full fine-tuning", "RSS rise during training (CPU, whole process)", "MB",
        m["full"]["memory_increase_mb"], m["lora"]["memory_increase_mb"], False)
    add("QLoRA vs LoRA", "training throughput", "tokens/s", m["lora"]["tokens_per_second"],
        m["qlora"]["tokens_per_second"], True)
    add("QLoRA vs LoRA", "base weight memory (fp32 vs NF4 + double quant)", "MB", m["lora"]["base_weight_memory_mb"],
        m["qlora"]["base_weight_memory_mb"], False, ">= 2.5x (4-bit <= 40 % of fp32)", 2.5)
    add("QLoRA vs LoRA", f"held-out perplexity after {steps} steps", "ppl", m["lora"]["perplexity"],
        m["qlora"]["perplexity"], False, ">= 0.91x (within 10 %)", 1 / 1.1)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run().to_markdown(index=False))
