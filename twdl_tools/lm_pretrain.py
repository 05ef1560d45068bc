"""`twdl lm pretrain`: build the bundled small OPT model (BPE tokenizer + pretraining on Python's own docs text)."""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

from twdl_helpers.common import set_seed
from twdl_helpers.files import atomic_write
from twdl_helpers.lm.blocks import make_blocks
from twdl_helpers.lm.load import BUNDLED_MODEL
from twdl_helpers.lm.perplexity import perplexity
from twdl_helpers.lm.trainer import train_lm

__all__ = ["corpus_documents", "train_tokenizer", "small_opt_config", "pretrain", "add_lm_arguments", "lm_main"]

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, OPT's layout (bos = eos = "</s>" = 2, pad = 1)


def corpus_documents(held_out_every: int = 8) -> tuple[list[str], list[str]]:
    """Python's bundled documentation topics (pydoc_data), sorted by name: (training docs, held-out docs).

    Every `held_out_every`-th topic is held out, so held-out perplexity is measured on unseen pages.
    """
    from pydoc_data.topics import topics

    docs = [topics[k] for k in sorted(topics)]
    held = [d for i, d in enumerate(docs) if i % held_out_every == held_out_every - 1]
    train = [d for i, d in enumerate(docs) if i % held_out_every != held_out_every - 1]
    return train, held


def train_tokenizer(texts: list[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer (any text encodes, no <unk>) wrapped for transformers, prefixing </s> like OPT."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=256)


def small_opt_config(vocab_size: int, hidden: int = 128, layers: int = 4, heads: int = 4, positions: int = 256):
    """An OPT configuration (q_proj, k_proj, v_proj, out_proj, fc1, fc2 like galactica), tiny enough for a CPU."""
    from transformers import OPTConfig

    return OPTConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, ffn_dim=4 * hidden,
                     num_attention_heads=heads, max_position_embeddings=positions, word_embed_proj_dim=hidden,
                     do_layer_norm_before=True, dropout=0.1, attention_dropout=0.0, activation_function="gelu",
                     pad_token_id=1, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True)


def pretrain(out: str | Path = BUNDLED_MODEL, steps: int = 400, vocab_size: int = 2048, hidden: int = 128,
             layers: int = 4, block_size: int = 128, batch_size: int = 16, learning_rate: float = 3e-3,
             seed: int = 0, command: str = "") -> dict:
    """Train tokenizer and model, measure held-out perplexity, save both and a MODEL_CARD.md in `out`."""
    from transformers import OPTForCausalLM

    set_seed(seed)
    train_docs, held_docs = corpus_documents()
    tokenizer = train_tokenizer(train_docs, vocab_size)
    train_blocks = make_blocks(train_docs, tokenizer, block_size)
    held_blocks = make_blocks(held_docs, tokenizer, block_size)
    model = OPTForCausalLM(small_opt_config(len(tokenizer), hidden, layers))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"corpus: {len(train_docs)} training / {len(held_docs)} held-out pages; {train_blocks}; model "
          f"{n_params:,} parameters")
    ppl_start = perplexity(model, held_blocks)
    started = time.perf_counter()
    result = train_lm(model, train_blocks, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                      weight_decay=0.01, warmup_steps=max(1, steps // 20), seed=seed, log_every=max(1, steps // 20))
    minutes = (time.perf_counter() - started) / 60
    ppl = perplexity(model, held_blocks)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts = dict(parameters=n_params, vocab_size=len(tokenizer), hidden=hidden, layers=layers, block_size=block_size,
                 steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                 train_tokens=train_blocks.n_tokens, held_out_tokens=held_blocks.n_tokens,
                 epochs=steps * batch_size / len(train_blocks), held_out_perplexity=ppl,
                 held_out_perplexity_untrained=ppl_start, train_minutes=minutes, final_train_loss=result.final_loss,
                 command=command or f"twdl lm pretrain --out {out} --steps {steps} --seed {seed}",
                 torch=torch.__version__)
    atomic_write(out / "pretraining.json", json.dumps(facts, indent=2))
    atomic_write(out / "MODEL_CARD.md", _card(facts, len(train_docs), len(held_docs)))
    print(f"held-out perplexity {ppl:.1f} (untrained {ppl_start:.0f}, vocabulary {len(tokenizer)}); "
          f"{minutes:.1f} min; saved to {out}")
    return facts


def _card(f: dict, n_train: int, n_held: int) -> str:
    return f"""# small_opt: the course's bundled small causal language model

A tiny OPT-architecture causal LM pretrained by this project so that Module 4 runs offline. Its linear layers
carry galactica-125m's names (`q_proj`, `k_proj`, `v_proj`, `out_proj`, `fc1`, `fc2`), so the same LoRA targets apply.
It is a teaching model: it knows only the style of Python's reference documentation.

| | |
|---|---|
| architecture | `OPTForCausalLM`: {f['layers']} layers, hidden {f['hidden']}, 4 heads, FFN {4 * f['hidden']}, 256 positions, tied embeddings |
| parameters | {f['parameters']:,} (fp32 safetensors) |
| tokenizer | byte-level BPE trained with `tokenizers` on the training pages, vocabulary {f['vocab_size']:,}; `</s>` (id 2) is prefixed as OPT does; pad = `<pad>` (id 1) |
| corpus | Python {'.'.join(map(str, __import__('sys').version_info[:3]))} standard library `pydoc_data.topics.topics` (the language reference pages that `help()` shows; real English text, PSF license): {n_train} pages for training, {n_held} held out (every 8th page by sorted name) |
| training | {f['steps']} steps x batch {f['batch_size']} x {f['block_size']} tokens ({f['epochs']:.1f} epochs over {f['train_tokens']:,} tokens), AdamW lr {f['learning_rate']}, linear schedule, weight decay 0.01, seed {f['seed']}, transformers `Trainer` on CPU, {f['train_minutes']:.1f} minutes (torch {f['torch']}) |
| **held-out perplexity** | **{f['held_out_perplexity']:.1f}** on {f['held_out_tokens']:,} held-out tokens (untrained: {f['held_out_perplexity_untrained']:.0f}; vocabulary size {f['vocab_size']:,}) |

Rebuild exactly (deterministic by seed on the same torch build and thread count; it was built with one thread
on a CPU shared with other jobs, hence the minutes above; an idle laptop needs far less):

```
OMP_NUM_THREADS=1 {f['command']}
```

Load it offline: `AutoModelForCausalLM.from_pretrained(folder)`, `AutoTokenizer.from_pretrained(folder)`, or
`twdl_helpers.lm.load_model("bundled")`. Figures are in `pretraining.json`.
"""


def add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    """`twdl lm pretrain [--out DIR] [--steps N] ...`."""
    sub = parser.add_subparsers(dest="lm_command", metavar="ACTION")
    p = sub.add_parser("pretrain", help="train the bundled small OPT model and its tokenizer (a few CPU minutes)")
    p.add_argument("--out", default=str(BUNDLED_MODEL), help="output folder (default: the package's bundled model)")
    p.add_argument("--steps", type=int, default=400, help="optimiser steps")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)


def lm_main(args: argparse.Namespace) -> int:
    """Run the chosen `twdl lm` action."""
    if getattr(args, "lm_command", None) != "pretrain":
        print("usage: twdl lm pretrain [--out DIR] [--steps N] [--seed S]")
        return 2
    command = "twdl lm pretrain " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in vars(args).items()
        if k in ("steps", "vocab_size", "hidden", "layers", "batch_size", "learning_rate", "seed"))
    pretrain(args.out, args.steps, args.vocab_size, args.hidden, args.layers, 128, args.batch_size,
             args.learning_rate, args.seed, command)
    return 0
