"""Perplexity = exp(token-weighted mean negative log-likelihood) over fixed blocks or sliding windows."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .blocks import Blocks

__all__ = ["perplexity", "token_nll", "generate_text"]


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out


@torch.no_grad()
def token_nll(model: torch.nn.Module, windows: torch.Tensor, score_from: int = 1, batch_size: int = 16,
              device: torch.device | str | None = None) -> tuple[float, int]:
    """Sum of next-token NLL over `windows` (n, L), scoring target positions >= score_from of each; and the count."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, windows.shape[0], batch_size):
            ids = windows[start:start + batch_size].to(device)
            logits = _logits(model, ids)[:, :-1].float()
            targets = ids[:, 1:].clone()
            targets[:, : max(score_from - 1, 0)] = -100  # context-only positions of a sliding window
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=-100, reduction="sum").item()
            count += int((targets != -100).sum())
    finally:
        model.train(was_training)
    return total, count


def perplexity(model: torch.nn.Module, blocks: Blocks | torch.Tensor, batch_size: int = 16, stride: int | None = None,
               device: torch.device | str | None = None) -> float:
    """exp(total NLL / total scored tokens): each token weighs the same, whatever batch it sits in.

    With `stride` (< block size) windows of the block size slide over the concatenated tokens by `stride`; the
    first window scores all its tokens, later ones only their last `stride` tokens, each with up to
    block_size - stride tokens of context (Hugging Face's recipe, vectorised).
    """
    ids = blocks.input_ids if isinstance(blocks, Blocks) else blocks
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"expected blocks of shape (n, block_size >= 2), got {tuple(ids.shape)}")
    size = ids.shape[1]
    if stride is None or stride >= size:
        total, count = token_nll(model, ids, 1, batch_size, device)
    else:
        if stride < 1:
            raise ValueError(f"stride must be between 1 and the block size {size}, got {stride}")
        windows = ids.reshape(-1).unfold(0, size, stride)
        first_total, first_count = token_nll(model, windows[:1], 1, batch_size, device)
        rest_total, rest_count = token_nll(model, windows[1:], size - stride, batch_size, device)
        total, count = first_total + rest_total, first_count + rest_count
    return math.exp(total / count)


@torch.no_grad()
def generate_text(model: torch.nn.Module, tokenizer, prompt: str, max_new_tokens: int = 30, seed: int = 0,
                  n: int = 1, temperature: float = 0.8, top_k: int = 40) -> list[str]:
    """`n` sampled continuations of `prompt` (seeded, so reruns give the same text)."""
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    enc = tokenizer([prompt] * n, return_tensors="pt").to(device)
    was_training = model.training
    model.eval()
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_k=top_k,
                         pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    return [tokenizer.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]
