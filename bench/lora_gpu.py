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

# facebook/galactica-125m config.json values, written out (OPT architecture). Not re-checked against the hub file
# in this offline session: compare with https://huggingface.co/facebook/galactica-125m/blob/main/config.json
GALACTICA_125M = dict(vocab_size=50000, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
                      max_position_embeddings=2048, word_embed_proj_dim=768, do_layer_norm_before=True,
                      activation_function="gelu", dropout=0.1, attention_dropout=0.1, enable_bias=True,
                      layer_norm_elementwise_affine=True, learnable_pos_emb=True, scale_embedding=False,
                      pad_token_id=1, bos_token_id=0, eos_token_id=2, tie_word_embeddings=True)


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
    from transformers import OPTConfig, OPTForCausalLM

    from twdl_helpers import lm

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        OPTForCausalLM(OPTConfig(**GALACTICA_125M)).save_pretrained(folder)
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
          f"{a.steps} steps x batch {a.batch_size} x {a.block_size} tokens; bf16 autocast: "
          f"{lm.autocast_dtype('cuda') is torch.bfloat16}")
    print(table.round(2).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
