"""Module 4's defects measured (D19, D20, D22, D23, D26, D27): the original's code path (bench/original_lora.py)
against the helpers, with the bundled small OPT model and the mirror's real WikiText-2 test split.

D19 and D23 are recorded as 1 (the original's call fails with the stated error) or 0; the error text is in the row.
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_lora as original  # noqa: E402
from covertype import row  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers import lm  # noqa: E402


def _fails(call) -> str:
    """The exception a call raises, as "Type: message" ("" when it succeeds)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return ""


def _projections(model) -> tuple[int, int]:
    """(attention projections with a LoRA adapter, all attention projections) of a peft-wrapped OPT model."""
    names = [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "out_proj")]
    return sum(hasattr(model.get_submodule(n), "lora_A") for n in names), len(names)


def adapters() -> list[dict]:
    """D20 (targets), D26 (parameter count), D19 and D23 (removed APIs) on the bundled model."""
    import bitsandbytes as bnb

    ref = lm.resolve_model("bundled")
    rows = []
    model = original.original_lora(lm.load_model("bundled"))
    adapted, total = _projections(model)
    params_before = lm.count_parameters(model).trainable
    printed = model.print_trainable_parameters()
    fixed = lm.add_lora(lm.load_model("bundled"))
    adapted_after, _ = _projections(fixed)
    rows.append(row("d20_projections", "D20 attention projections adapted: targets q/k/v/o_proj (original, OPT has no "
                    "o_proj, no warning) vs found from the architecture", "projections", "count", adapted,
                    adapted_after, f"of {total}"))
    rows.append(row("d20_trainable", "D20 trainable LoRA parameters, r 8: original targets vs found targets",
                    "parameters", "count", params_before, lm.count_parameters(fixed).trainable, "exact"))
    qkv = _fails(lambda: original.original_lora(lm.load_model("bundled"), original.QLORA_EXAMPLE_TARGETS))
    rows.append(row("d20_qkv_raises", f"D20 the QLoRA example's target query_key_value on OPT raises ({qkv})",
                    "raises (1) / not (0)", "flag", float(bool(qkv)), 0.0, "exact"))
    rows.append(row("d26_printed_none", f"D26 print(model.print_trainable_parameters()) prints {printed!r}; "
                    "lm.count_parameters returns numbers", "returns None (1) / numbers (0)", "flag",
                    float(printed is None), 0.0, "exact"))
    load_4bit = _fails(lambda: original.original_load_4bit(ref))
    rows.append(row("d19_quantization_config", "D19 bitsandbytes has QuantizationConfig (original's 4-bit config)",
                    f"bitsandbytes {bnb.__version__}: present (1) / absent (0)", "flag",
                    float(hasattr(bnb, "QuantizationConfig")), float("nan"), "exact"))
    rows.append(row("d19_load_in_4bit", f"D19 from_pretrained(..., load_in_4bit=True) fails ({load_4bit})",
                    "fails (1) / works (0)", "flag", float(bool(load_4bit)), 0.0, "exact"))
    with tempfile.TemporaryDirectory() as tmp:
        eval_name = _fails(lambda: original.original_training_arguments(tmp))
    rows.append(row("d23_evaluation_strategy", f"D23 TrainingArguments(evaluation_strategy=...) fails ({eval_name})",
                    "fails (1) / works (0)", "flag", float(bool(eval_name)), 0.0, "exact"))
    return rows


def padding_and_perplexity(n_lines: int | None = None, perplexity_lines: int = 600) -> list[dict]:
    """D22: blank lines, padding share and truncated tokens of the original's per-line padding to 128; D27: the
    original's exp(mean of per-batch losses) vs the token-weighted perplexity on the first padded lines."""
    mirror = twdl.data_mirror()
    if mirror is None:
        raise SystemExit("lm_defects needs TWDL_DATA_MIRROR (the WikiText-2 test split with its line layout)")
    tokenizer = lm.load_tokenizer("bundled")
    rows_text = original.wikitext_rows(mirror)[:n_lines]
    blank = sum(1 for r in rows_text if not r.strip())
    padded = original.tokenize(tokenizer, rows_text)
    lengths = [len(ids) for ids in tokenizer(rows_text, add_special_tokens=True)["input_ids"]]
    truncated = sum(max(0, n - original.MAX_LENGTH) for n in lengths)
    padding = 100.0 * (1 - float(padded["attention_mask"].float().mean()))
    blocks = lm.make_blocks("".join(rows_text), tokenizer, original.MAX_LENGTH)
    what = f"WikiText-2 raw test, {len(rows_text):,} lines, bundled tokenizer"
    out = [row("d22_blank_lines", f"D22 blank lines (each an all-padding example in the original), {what}",
               "share of lines", "%", 100.0 * blank / len(rows_text), 0.0, "exact"),
           row("d22_blank_count", f"D22 blank lines, {what}", "lines", "count", blank, 0.0, "exact"),
           row("d22_padding", f"D22 padding share of all token positions: lines padded to 128 (original) vs "
               f"concatenated full blocks, {what}", "padding", "%", padding, 0.0, "exact"),
           row("d22_truncated", f"D22 tokens cut off by truncation at 128 (original) vs blocks, {what}", "tokens",
               "count", truncated, blocks.dropped_tokens, "exact"),
           row("d22_blocks", f"D22 full 128-token blocks from the same text, {what}", "blocks", "count",
               float("nan"), len(blocks), "exact")]
    model = lm.load_model("bundled")
    first = {k: v[:perplexity_lines] for k, v in padded.items()}
    losses = original.batch_losses(model, tokenizer, first, batch_size=2)
    scored = [(loss, n) for loss, n in losses if n]
    empty = len(losses) - len(scored)
    what = f"first {perplexity_lines} padded lines at batch 2, bundled model"
    out += [row("d27_perplexity", f"D27 perplexity: exp(mean of per-batch losses) (original) vs token-weighted, {what} "
                f"({empty} all-padding batches left out: the Trainer's mean would be NaN)", "perplexity", "ppl",
                original.original_perplexity(scored), original.token_weighted_perplexity(scored), "exact"),
            row("d27_empty_batches", f"D27 evaluation batches with no scored token (NaN loss in the original), {what}",
                "batches", "count", empty, 0.0, "exact")]
    return out


def run(quick: bool = False) -> pd.DataFrame:
    """The module 4 defect table (quick=True: the first 400 lines, 100 lines for D27)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = adapters() + padding_and_perplexity(400 if quick else None, 100 if quick else 600)
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run("--quick" in sys.argv).to_markdown(index=False, floatfmt=".4g"))
