"""Token blocks, perplexity and the meter, on hand-made cases and tiny models built in code."""
import math

import pytest
import torch

from twdl_helpers.lm import Blocks, ResourceMeter, make_blocks, perplexity


class TableModel(torch.nn.Module):
    """Logits depend only on the current token: row t of a fixed table (a hand-checkable bigram model)."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids):
        return self.table[input_ids]


class CharTokenizer:
    """One id per character, a fixed prefix id like OPT's </s>."""

    def __call__(self, docs, add_special_tokens=True, verbose=False):
        return {"input_ids": [[0] + [1 + ord(c) % 50 for c in d] for d in docs]}


def test_perplexity_of_uniform_model_is_vocabulary_size():
    model = TableModel(torch.zeros(7, 7))
    assert perplexity(model, torch.randint(0, 7, (3, 9))) == pytest.approx(7.0)


def test_perplexity_is_token_weighted_exp_mean_nll():
    logp = torch.log_softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    ids = torch.tensor([[0, 1, 2, 3, 0], [1, 1, 2, 0, 3]])
    nll = [-logp[row[i], row[i + 1]].item() for row in ids.tolist() for i in range(4)]
    expected = math.exp(sum(nll) / len(nll))
    assert perplexity(TableModel(logp), ids, batch_size=1) == pytest.approx(expected, rel=1e-6)


def test_sliding_window_scores_every_token_once():
    # For a context-free (bigram) model the sliding window must give exactly the non-overlapping answer on the
    # tokens it scores: here windows of 4 with stride 2 over 12 tokens score tokens 1..11, like one long block.
    logp = torch.log_softmax(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    stream = torch.randint(0, 5, (12,), generator=torch.Generator().manual_seed(2))
    expected = perplexity(TableModel(logp), stream.view(1, 12))
    assert perplexity(TableModel(logp), stream.view(3, 4), stride=2) == pytest.approx(expected, rel=1e-6)


def test_blocks_have_exact_lengths_and_no_padding():
    docs = ["hello world\n", "", "   \n", "a longer line of text that spans blocks\n"]
    blocks = make_blocks(docs, CharTokenizer(), block_size=8)
    n_tokens = sum(len(d) + 1 for d in docs if d.strip())
    assert blocks.input_ids.shape == (n_tokens // 8, 8)
    assert blocks.dropped_tokens == n_tokens % 8
    assert (blocks.input_ids == 0).sum() == 2  # the two non-empty documents' prefixes only: no empty examples
    assert blocks.take(2).input_ids.shape == (2, 8) and blocks.stream().numel() == blocks.n_tokens


def test_blocks_refuse_too_little_text():
    with pytest.raises(ValueError, match="fewer than one block"):
        make_blocks("abc", CharTokenizer(), block_size=64)
    with pytest.raises(ValueError, match="empty"):
        make_blocks(["", "  "], CharTokenizer())


def test_meter_reports_time_tokens_and_labelled_cpu_memory():
    with ResourceMeter("cpu") as meter:
        junk = torch.ones(2_000_000)  # ~8 MB
        meter.tokens = 1000
    del junk
    assert meter.seconds > 0 and meter.tokens_per_second == pytest.approx(1000 / meter.seconds)
    assert "CPU RSS" in meter.memory_label and meter.peak_memory_mb >= meter.start_memory_mb > 0
    assert meter.memory_increase_mb == pytest.approx(meter.peak_memory_mb - meter.start_memory_mb)


def test_meter_increase_excludes_what_was_held_before_and_a_freed_earlier_model_is_not_counted():
    earlier = torch.ones(64 * 2**20 // 4)  # a 64 MB "earlier model" still held by the caller
    with ResourceMeter("cpu") as held:
        work = torch.ones(16 * 2**20 // 4)  # this run's own 16 MB
    del work
    assert held.memory_increase_mb < 40  # the increase is this run's alone (RSS noise aside)
    assert held.start_memory_mb >= 64  # ... while the peak and start still see the held model
    del earlier
    with ResourceMeter("cpu") as alone:  # entering collects garbage: the freed model is gone
        work = torch.ones(16 * 2**20 // 4)
    del work
    assert alone.start_memory_mb < held.start_memory_mb - 40


def test_blocks_dataset_labels_are_inputs():
    from twdl_helpers.lm import BlockDataset

    item = BlockDataset(Blocks(torch.arange(12).view(3, 4), 0))[1]
    assert torch.equal(item["labels"], item["input_ids"]) and item["attention_mask"].sum() == 4
