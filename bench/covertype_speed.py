"""How fast one Covertype training epoch can go on one CPU thread (issue 12, part 3): each change measured.

Every variant trains the course's baseline (embeddings, [32, 32] Linear/BN/ReLU/Dropout(0.1), 7 logits) with Adam
lr 1e-3 at batch 265 for one epoch on the mirror's real rows replicated to 581,012 (85 % train). The variants
run round-robin (one epoch each per round), so all of them see the same machine load; the table gives medians.
- original: the original course's pipeline (bench/original_covertype.py: per-index tensors, DataLoader collate);
- step loop before this work: tensors indexed by the shuffled order every step, Adam's default (foreach)
  implementation, train accuracy summed every step;
- + fused Adam: the same with `fused=True` (what `make_optimizer` now picks);
- + one gather per epoch: the epoch's rows put in shuffled order once, batches are slices (what `train` now does);
- + no per-step accuracy: train accuracy left out of the step (measured separately, in eval mode, at epoch end);
- + torch.compile: the last variant with the model compiled (inductor), compile time excluded;
- twdl.train: the helpers' loop as shipped.
The per-step floor is the best variant's seconds per step; its split into forward, backward and optimizer step is
measured on one fixed batch.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import covertype as bench_covertype  # noqa: E402
import original_covertype as original  # noqa: E402
from _timing import CLOCK_NOTE, clock  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers.data.covertype import COVERTYPE_FULL_ROWS  # noqa: E402

BATCH = original.BATCH_SIZE
TARGET = 6.0


def step_loop(model, optimizer, data: twdl.TensorData, order: torch.Tensor, gather_per_step: bool,
              accuracy_per_step: bool) -> None:
    """One epoch of the training step with the given choices (the forward/backward/step is the same in all)."""
    (numeric, codes), labels = data.inputs, data.targets
    model.train()
    if not gather_per_step:
        numeric, codes, labels = numeric[order], codes[order], labels[order]
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    n = len(labels)
    for first in range(0, n, BATCH):
        if gather_per_step:
            index = order[first:first + BATCH]
            x, c, y = numeric[index], codes[index], labels[index]
        else:
            x, c, y = numeric[first:first + BATCH], codes[first:first + BATCH], labels[first:first + BATCH]
        outputs = model(x, c)
        loss = F.cross_entropy(outputs, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        if accuracy_per_step:
            with torch.no_grad():
                correct += (outputs.argmax(dim=1) == y).sum()
    loss_sum.item()


def _fresh(cardinalities: list[int], fused: bool, compiled: bool = False):
    twdl.set_seed(0)
    model = twdl.BaselineNet(10, cardinalities)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    return (torch.compile(model) if compiled else model), optimizer


def step_parts(data: twdl.TensorData, cardinalities: list[int], repeats: int = 2000) -> dict[str, float]:
    """Microseconds per step on one fixed batch: forward (with loss), backward, fused Adam step, and what the two
    Dropout(0.1) layers cost (the same step with p = 0, where torch skips dropout)."""
    model, optimizer = _fresh(cardinalities, fused=True)
    (numeric, codes), labels = data.inputs, data.targets
    x, c, y = numeric[:BATCH], codes[:BATCH], labels[:BATCH]
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    def timed(p: float) -> dict[str, float]:
        for m in dropouts:
            m.p = p
        parts = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        for i in range(repeats + 200):
            t0 = clock()
            loss = F.cross_entropy(model(x, c), y)
            t1 = clock()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t2 = clock()
            optimizer.step()
            t3 = clock()
            if i >= 200:
                parts["forward"] += t1 - t0
                parts["backward"] += t2 - t1
                parts["optimizer"] += t3 - t2
        return {k: 1e6 * v / repeats for k, v in parts.items()}

    with_dropout, without = timed(0.1), timed(0.0)
    for m in dropouts:
        m.p = 0.1
    return {**with_dropout, "dropout": sum(with_dropout.values()) - sum(without.values())}


def run(quick: bool = False, rounds: int | None = None, compile_model: bool | None = None) -> pd.DataFrame:
    """Rows/s of each variant (median over `rounds` round-robin epochs) and the per-step floor, one thread."""
    rounds = rounds or (1 if quick else 5)
    compile_model = (not quick) if compile_model is None else compile_model
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(quick, rounds, compile_model)
    finally:
        torch.set_num_threads(before)


def _measure(quick: bool, rounds: int, compile_model: bool) -> pd.DataFrame:
    n_rows = 8_000 if quick else COVERTYPE_FULL_ROWS
    raw = bench_covertype.raw_rows()
    big = raw[torch.arange(n_rows).numpy() % len(raw)]
    tabular = bench_covertype.helpers_preprocess(big)
    data, cards = tabular.train, tabular.cardinalities
    train_df, _ = bench_covertype.original_frames(big)
    orig_loader = original.make_loader(original.ForestDataset(train_df))
    n = len(data)
    variants = {
        "before": dict(fused=False, gather_per_step=True, accuracy_per_step=True),
        "fused": dict(fused=True, gather_per_step=True, accuracy_per_step=True),
        "epoch_gather": dict(fused=True, gather_per_step=False, accuracy_per_step=True),
        "no_step_accuracy": dict(fused=True, gather_per_step=False, accuracy_per_step=False),
    }
    state = {name: _fresh(cards, v["fused"]) for name, v in variants.items()}
    if compile_model:
        state["compiled"] = _fresh(cards, True, compiled=True)
        step_loop(*state["compiled"], data, torch.randperm(n), False, False)  # compile outside the timing
    torch.manual_seed(0)
    orig_model = original.OriginalBaseline()
    orig_opt = torch.optim.Adam(orig_model.parameters(), lr=1e-3)
    helpers_model, helpers_opt = _fresh(cards, fused=False)
    helpers_opt = twdl.make_optimizer("adam", helpers_model.parameters(), 1e-3)
    seconds: dict[str, list[float]] = {k: [] for k in ["original", *variants, *(["compiled"] if compile_model else []),
                                                       "twdl_train"]}
    for r in range(rounds):
        start = clock()
        original.run_epoch(orig_model, orig_loader, orig_opt, torch.nn.CrossEntropyLoss())
        seconds["original"].append(clock() - start)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(r))
        for name, v in variants.items():
            start = clock()
            step_loop(*state[name], data, order, v["gather_per_step"], v["accuracy_per_step"])
            seconds[name].append(clock() - start)
        if compile_model:
            start = clock()
            step_loop(*state["compiled"], data, order, False, False)
            seconds["compiled"].append(clock() - start)
        start = clock()
        twdl.train(helpers_model, data, epochs=1, batch_size=BATCH, optimizer=helpers_opt, seed=r, progress=False,
                   train_eval_rows=0)  # training only, as the original's epoch
        seconds["twdl_train"].append(clock() - start)
    rate = {k: len(train_df) / statistics.median(v) if k == "original" else n / statistics.median(v)
            for k, v in seconds.items()}
    label = f"{n_rows:,} rows (real rows replicated), {n:,} train rows, batch {BATCH}, 1 torch thread, {CLOCK_NOTE}"
    descriptions = {
        "before": "step loop before this work: per-step index gather, foreach Adam, per-step accuracy",
        "fused": "+ fused Adam",
        "epoch_gather": "+ one gather per epoch, batches are slices",
        "no_step_accuracy": "+ no per-step train accuracy",
        "compiled": "+ torch.compile(model) (not kept)",
        "twdl_train": "twdl.train as shipped (fused Adam, one gather per epoch, per-step accuracy)",
    }
    rows = [bench_covertype.row(key, f"{descriptions[key]}; {label}", "epoch throughput vs the original", "rows/s",
                                rate["original"], rate[key], f"{rounds} / {rounds} epochs", higher_is_better=True,
                                target_ratio=TARGET if key in ("no_step_accuracy", "twdl_train") else None)
            for key in descriptions if key in rate]
    best = max((k for k in rate if k not in ("original",)), key=rate.get)
    floor_us = 1e6 * BATCH / rate[best]
    parts = step_parts(data, cards, 200 if quick else 2000)
    rows.append(bench_covertype.row("step_floor", f"per-step time floor ({descriptions[best]}); {label}",
                                    "seconds per step of an epoch", "us", 1e6 * BATCH / rate["original"], floor_us,
                                    f"{rounds} / {rounds} epochs", higher_is_better=False))
    what = {"forward": "forward pass and loss", "backward": "zero_grad and backward", "optimizer": "fused Adam step",
            "dropout": "the two Dropout(0.1) layers (step with p=0.1 minus step with p=0)"}
    for part, us in parts.items():
        rows.append(bench_covertype.row(f"step_{part}", f"one fixed batch of {BATCH}: {what[part]}",
                                        "mean microseconds per step", "us", float("nan"), us,
                                        f"{200 if quick else 2000} steps"))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False, floatfmt=".4g"))
