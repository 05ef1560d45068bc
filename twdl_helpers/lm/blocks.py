"""Token blocks for causal-LM training: tokenise once, concatenate, cut into full fixed-length blocks (no padding)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Blocks", "make_blocks", "BlockDataset"]


@dataclass
class Blocks:
    """Full blocks of token ids, shape (n_blocks, block_size); no padding anywhere, labels are the inputs."""

    input_ids: torch.Tensor
    dropped_tokens: int  # tokens at the end that did not fill a last block

    @property
    def block_size(self) -> int:
        """Tokens per block."""
        return int(self.input_ids.shape[1])

    @property
    def n_tokens(self) -> int:
        """Tokens held in all blocks."""
        return int(self.input_ids.numel())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def take(self, n: int | None) -> "Blocks":
        """The first `n` blocks (all when n is None)."""
        return self if n is None or n >= len(self) else Blocks(self.input_ids[:n], self.dropped_tokens)

    def stream(self) -> torch.Tensor:
        """All tokens as one 1-D sequence (for sliding-window perplexity)."""
        return self.input_ids.reshape(-1)

    def __repr__(self) -> str:
        return f"Blocks({len(self)} x {self.block_size} tokens, {self.dropped_tokens} trailing tokens dropped)"


def make_blocks(text: str | list[str], tokenizer, block_size: int = 128, max_blocks: int | None = None) -> Blocks:
    """Tokenise `text` (one string or a list of documents) once, concatenate, and cut into full blocks.

    Empty lines add no examples and no block holds padding. Each document starts with the tokenizer's
    own special prefix if it has one (OPT: `</s>`). The tokenizer's pad token is never needed here.
    """
    docs = [text] if isinstance(text, str) else list(text)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ValueError("no text to tokenise: every document is empty")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2 (one input and one target token), got {block_size}")
    encoded = tokenizer(docs, add_special_tokens=True, verbose=False)["input_ids"]
    ids = torch.tensor([t for doc in encoded for t in doc], dtype=torch.long)
    n_blocks = ids.numel() // block_size
    if max_blocks is not None:
        n_blocks = min(n_blocks, max_blocks)
    if n_blocks == 0:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than one block of {block_size}: "
                         "give more text or a smaller block_size")
    used = n_blocks * block_size
    return Blocks(ids[:used].view(n_blocks, block_size).clone(), int(ids.numel() - used))


class BlockDataset(torch.utils.data.Dataset):
    """Blocks as the dict examples the transformers Trainer expects (input_ids, attention_mask, labels)."""

    def __init__(self, blocks: Blocks):
        self.input_ids = blocks.input_ids
        self.attention_mask = torch.ones_like(self.input_ids)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.input_ids[i]
        return {"input_ids": ids, "attention_mask": self.attention_mask[i], "labels": ids}
