"""LoRA vs QLoRA on a CUDA GPU: peak allocated memory and training tokens/s on a model with galactica-125m's
exact configuration (OPTConfig values written out below) and RANDOMLY INITIALISED weights (no download): memory
and speed do not depend on the weights' values. Exits cleanly with a message where no CUDA GPU is visible.

Usage: python bench/lora_gpu.py [--steps 30] [--batch-size 8] [--block-size 128]
"""
from __future__ import annotations

import argparse
import sys
import tempfile

import torch

from twdl_helpers.lm.load import GALACTICA_125M_CONFIG as GALACTICA_125M  # galactica-125m's config.json values


def main(argv: list[str] | None = None) -> int:
    """Measure both methods and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--block-size", type=int, default=128)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU visible: this benchmark needs one (LoRA vs QLoRA peak CUDA memory). Nothing measured.")
        return 0
    import pandas as pd
    from twdl_helpers import lm

    with tempfile.TemporaryDirectory() as folder:
        lm.save_random_model(GALACTICA_125M, folder)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(4, GALACTICA_125M["vocab_size"], (a.steps * a.batch_size, a.block_size), generator=gen)
        blocks, held = lm.Blocks(ids, 0), lm.Blocks(ids[:16], 0)
        settings = lm.RunSettings(steps=a.steps, batch_size=a.batch_size, learning_rate=2e-4)
        rows = []
        for method in ("lora", "qlora"):
            torch.cuda.empty_cache()
            row = lm.finetune(method, folder, blocks, held, settings, "cuda", progress=False).row
            rows.append({k: row[k] for k in ("method", "base_weight_memory_mb", "peak_memory_mb",
                                             "tokens_per_second", "seconds", "trainable_params")})
    table = pd.DataFrame(rows).set_index("method")
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; random-weight galactica-125m config; "
          f"{a.steps} steps x batch {a.batch_size} x {a.block_size} tokens; mixed precision: "
          f"{lm.choose_precision('cuda').name}")
    print(table.round(2).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
