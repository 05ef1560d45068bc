"""Covertype (module 1): the original pipeline (bench/original_covertype.py) vs the helpers, same rows and model.

Parts (`--part`, default all):
- throughput: preprocessing seconds, training rows/s per epoch and end-to-end seconds on the mirror's real rows
  replicated to the full table's 581,012 rows (timing only: duplicated rows say nothing about accuracy). The
  two pipelines' epochs alternate, so both see the same load on a shared machine.
- accuracy: on the real rows, wall time for the helpers' baseline (course settings) to reach the original
  course's reported 73.15 % test accuracy vs the original code's time for its 50 epochs; both final test
  accuracies and train losses on the same stratified split.
- defects: what D1 (softmax before the loss), D2 (no scaling), D3 (per-split encoders) and D7 (no crossed wide
  features) cost on the real rows, with the notebook's seeding (`set_seed(seed)` before building each model,
  `train(..., seed=seed)`), so the numbers match the module 1 notebook's full profile.
Both sides run with the same number of torch threads (`TWDL_BENCH_THREADS`, default 1) and batch size 265.
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_covertype as original  # noqa: E402
from _timing import CLOCK_NOTE, clock  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers.data.covertype import COVERTYPE_FILE, COVERTYPE_FULL_ROWS, decode_covertype  # noqa: E402
from twdl_helpers.features import build_tabular, stratified_split  # noqa: E402

REPORTED_ACCURACY = 73.15  # the original course's reported Covertype test accuracy
BATCH = original.BATCH_SIZE
EPOCHS = 50
SEED = 0


def raw_rows() -> np.ndarray:
    """The real Covertype rows the mirror (or cache) holds, raw [N, 55]."""
    return pd.read_csv(twdl.locate(COVERTYPE_FILE), header=None).to_numpy()


def _replicate(raw: np.ndarray, n: int) -> np.ndarray:
    return raw[np.arange(n) % len(raw)]


def helpers_preprocess(raw: np.ndarray, seed: int = SEED) -> twdl.TabularData:
    """The helpers' preprocessing: vectorised one-hot decode, seeded stratified split, train-fitted codes, scaling."""
    numeric, wilderness, soil, label = decode_covertype(raw)
    train_rows, test_rows = stratified_split(label, 0.15, seed)
    return build_tabular(numeric, {"Wilderness_Area": wilderness, "Soil_Type": soil}, label, train_rows, test_rows,
                         [f"x{i}" for i in range(10)], task="classification", classes=list(range(7)),
                         device="cpu", source="real", description="benchmark")


def original_frames(raw: np.ndarray, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original's preprocessing, split on the same rows as the helpers' (so accuracies are comparable)."""
    df = original.preprocess(pd.DataFrame(raw))
    train_rows, test_rows = stratified_split(df["Cover_Type"].to_numpy(), 0.15, seed)
    return original.split(df, train_rows, test_rows)


def _original_preprocess(raw: np.ndarray):
    train_df, test_df = original_frames(raw)
    return original.ForestDataset(train_df), original.ForestDataset(test_df)


def _timed(fn, runs: int):
    times, result = [], None
    for _ in range(runs):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return statistics.median(times), result


def row(key, comparison, measure, unit, orig, helpers, runs, higher_is_better=None, target_ratio=None) -> dict:
    """One table row; the ratio says how many times better the helpers are (None: no ratio, e.g. a loss floor)."""
    if higher_is_better is None or not orig or not helpers:
        ratio = float("nan")
    else:
        ratio = (helpers / orig) if higher_is_better else (orig / helpers)
    target = f">= {target_ratio:g}x" if target_ratio else ""
    met = bool(ratio >= target_ratio) if target_ratio else None
    return {"key": key, "comparison": comparison, "measure": measure, "unit": unit, "original": orig,
            "helpers": helpers, "ratio": ratio, "target": target, "met": met, "runs": runs}


def throughput(raw: np.ndarray, n_rows: int, epochs: int, helper_runs: int) -> list[dict]:
    """Preprocessing, rows/s per epoch (alternating epochs) and end-to-end seconds on `n_rows` replicated rows."""
    big = _replicate(raw, n_rows)
    label = f"{n_rows:,} rows (real rows replicated), batch {BATCH}"
    t_orig_pre, (train_ds, _) = _timed(lambda: _original_preprocess(big), 1)
    t_help_pre, data = _timed(lambda: helpers_preprocess(big), helper_runs)
    torch.manual_seed(SEED)
    orig_model = original.OriginalBaseline()
    orig_opt = torch.optim.Adam(orig_model.parameters(), lr=1e-3)
    orig_loader, loss_fn = original.make_loader(train_ds), torch.nn.CrossEntropyLoss()
    twdl.set_seed(SEED)
    help_model = twdl.BaselineNet(10, data.cardinalities)
    help_opt = twdl.make_optimizer("adam", help_model.parameters(), 1e-3)
    orig_epochs, help_epochs = [], []
    for epoch in range(epochs):
        start = clock()
        original.run_epoch(orig_model, orig_loader, orig_opt, loss_fn)
        orig_epochs.append(clock() - start)
        for _ in range(helper_runs):
            start = clock()
            twdl.train(help_model, data.train, epochs=1, batch_size=BATCH, optimizer=help_opt, seed=epoch,
                       progress=False, train_eval_rows=0)  # training only, as the original's epoch
            help_epochs.append(clock() - start)
    n_train = len(data.train)
    help_total = statistics.median(help_epochs) * epochs
    return [
        row("preprocessing", f"preprocessing, {label}", "decode one-hot + split + encode (+ scale)", "s",
            t_orig_pre, t_help_pre, f"1 / {helper_runs}", higher_is_better=False),
        row("epoch", f"training epoch, {label}", "training throughput (median epoch)", "rows/s",
            n_train / statistics.median(orig_epochs), n_train / statistics.median(help_epochs),
            f"{epochs} / {len(help_epochs)} epochs", higher_is_better=True, target_ratio=6),
        row("end_to_end", f"end to end, {label}", f"preprocessing + {epochs} epochs", "s",
            t_orig_pre + sum(orig_epochs), t_help_pre + help_total, f"1 / {helper_runs}", higher_is_better=False),
    ]


class StopAt(twdl.Callback):
    """Stop training once the test accuracy reaches `target` (%)."""

    def __init__(self, target: float):
        self.target = target

    def on_epoch_end(self, model, row, history) -> bool:
        return row["test_accuracy"] >= self.target


def time_to_accuracy(raw: np.ndarray, epochs: int, helper_runs: int) -> list[dict]:
    """Helpers' wall time to reach 73.15 % vs the original's time for its epochs, real rows, same split."""
    start = clock()
    train_df, test_df = original_frames(raw)
    result = original.train_original(train_df, test_df, epochs=epochs, seed=SEED)
    t_original = clock() - start

    def helpers_run():
        begin = clock()
        data = helpers_preprocess(raw)
        twdl.set_seed(SEED)
        model = twdl.BaselineNet(10, data.cardinalities)
        history = twdl.train(model, data.train, epochs=epochs, batch_size=BATCH, lr=1e-3, seed=SEED,
                             eval_data={"test": data.test}, callbacks=[StopAt(REPORTED_ACCURACY)], progress=False)
        return clock() - begin, history

    runs = [helpers_run() for _ in range(helper_runs)]
    t_helpers = statistics.median(t for t, _ in runs)
    history = runs[0][1]
    reached = history.last["test_accuracy"] >= REPORTED_ACCURACY
    n = len(raw)
    rows = [row("time_to_accuracy", f"time to {REPORTED_ACCURACY} % test accuracy, {n:,} real rows",
                f"original: {epochs} epochs; helpers: until reached (epoch {len(history)}"
                + ("" if reached else ", NOT reached") + "), preprocessing included", "s", t_original, t_helpers,
                f"1 / {helper_runs}", higher_is_better=False, target_ratio=20)]
    if not reached:
        rows[0]["met"] = False
    twdl.set_seed(SEED)
    data = helpers_preprocess(raw)
    model = twdl.BaselineNet(10, data.cardinalities)
    full = twdl.train(model, data.train, epochs=epochs, batch_size=BATCH, lr=1e-3, seed=SEED,
                      eval_data={"test": data.test}, progress=False)
    rows.append(row("final_accuracy", f"test accuracy after {epochs} epochs, {n:,} real rows, same split",
                    "baseline, course settings", "%", result["test_accuracy"], full.last["test_accuracy"], "1 / 1",
                    higher_is_better=True))
    rows.append(row("final_train_loss", f"final train loss after {epochs} epochs (D1 floor "
                    f"{original.DOUBLE_SOFTMAX_FLOOR:.3f})", "baseline, course settings", "loss",
                    result["train_loss"][-1], full.last["running_loss"], "1 / 1", higher_is_better=False))
    return rows


def defects(epochs: int = EPOCHS, seed: int = SEED) -> list[dict]:
    """Before/after of D1, D2, D3 and D7 on the real rows with the module 1 notebook's seeding and settings."""
    data = twdl.load_covertype(source="full", seed=seed)

    def fit(build, train=data.train, test=data.test):
        twdl.set_seed(seed)
        model = build()
        history = twdl.train(model, train, epochs=epochs, batch_size=BATCH, lr=1e-3, eval_data={"test": test},
                             seed=seed, progress=False)
        return model, history

    n_num, cards = len(data.numeric_names), data.cardinalities
    baseline, logits = fit(lambda: twdl.BaselineNet(n_num, cards))
    _, double = fit(lambda: twdl.SoftmaxBeforeLoss(twdl.BaselineNet(n_num, cards)))
    unscale = lambda d: twdl.TensorData((d.inputs[0] * data.std + data.mean, d.inputs[1]), d.targets)  # noqa: E731
    _, unscaled = fit(lambda: twdl.BaselineNet(n_num, cards), unscale(data.train), unscale(data.test))
    # D3: the original fitted a LabelEncoder per split; compare the codes a test-only encoder gives each test row
    # with the train-fitted ones, and feed those codes to the baseline trained on train-fitted codes.
    codes = twdl.test_only_codes(data)  # what the original's per-split (test-only) encoders assign
    per_split = twdl.evaluate(baseline, twdl.TensorData((data.test.inputs[0], codes), data.test.targets))["accuracy"]
    wrong_code = twdl.per_split_code_mismatch_percent(data)["Soil_Type"]
    _, plain = fit(lambda: twdl.WideDeepNet(n_num, cards, crossed=False))
    _, crossed = fit(lambda: twdl.WideDeepNet(n_num, cards, crossed=True))
    n = f"{len(data.train) + len(data.test):,} real rows, {epochs} epochs, seed {seed}"
    last = lambda h, k: h.last[k]  # noqa: E731
    return [
        row("d1_floor", "D1 loss floor of softmax before CrossEntropyLoss, 7 classes: log(e + 6) - 1", "formula",
            "loss", original.DOUBLE_SOFTMAX_FLOOR, float("nan"), "exact"),
        row("d1_train_loss", f"D1 softmax before the loss vs logits, {n}", "baseline final train loss", "loss",
            last(double, "train_loss"), last(logits, "train_loss"), "1 / 1", higher_is_better=False),
        row("d1_test_accuracy", f"D1 softmax before the loss vs logits, {n}", "baseline test accuracy", "%",
            last(double, "test_accuracy"), last(logits, "test_accuracy"), "1 / 1", higher_is_better=True),
        row("d2_test_accuracy", f"D2 raw vs standardised numerics, {n}", "baseline test accuracy", "%",
            last(unscaled, "test_accuracy"), last(logits, "test_accuracy"), "1 / 1", higher_is_better=True),
        row("d3_wrong_code_rows", f"D3 test rows whose Soil_Type code differs under a test-only encoder, {n}",
            "share of test rows", "%", wrong_code, 0.0, "1 / 1"),
        row("d3_test_accuracy", f"D3 per-split vs train-fitted encoders (same trained baseline), {n}",
            "baseline test accuracy", "%", per_split, last(logits, "test_accuracy"), "1 / 1", higher_is_better=True),
        row("d7_test_accuracy", f"D7 wide path without vs with crossed wilderness x soil features, {n}",
            "Wide & Deep test accuracy", "%", last(plain, "test_accuracy"), last(crossed, "test_accuracy"), "1 / 1",
            higher_is_better=True),
    ]


def run(quick: bool = False, threads: int | None = None, n_rows: int | None = None, epochs: int | None = None,
        parts: tuple[str, ...] = ("throughput", "accuracy", "defects")) -> pd.DataFrame:
    """Run the Covertype comparisons and return the table (quick=True: small sizes, about a minute).

    `n_rows` / `epochs` override the timing table's size (default 581,012 rows, 5 epochs).
    """
    threads = threads or int(os.environ.get("TWDL_BENCH_THREADS", "1"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        raw = raw_rows()
        rows = []
        if "throughput" in parts:
            rows += throughput(raw, n_rows or (4_000 if quick else COVERTYPE_FULL_ROWS),
                               epochs=epochs or (1 if quick else 5), helper_runs=1 if quick else 3)
        if "accuracy" in parts:
            rows += time_to_accuracy(raw if not quick else raw[:2000], epochs=2 if quick else EPOCHS,
                                     helper_runs=1 if quick else 3)
        if "defects" in parts:
            rows += defects(epochs=2 if quick else EPOCHS)
    finally:
        torch.set_num_threads(before)
    table = pd.DataFrame(rows)
    table["comparison"] = table["comparison"] + f" [torch threads={threads}; {CLOCK_NOTE}]"
    return table


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the replicated timing table (581,012)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the throughput run (5)")
    parser.add_argument("--part", choices=["throughput", "accuracy", "defects"], action="append", default=None)
    args = parser.parse_args()
    print(run(quick=args.quick, n_rows=args.rows, epochs=args.epochs,
              parts=tuple(args.part or ("throughput", "accuracy", "defects"))).to_markdown(index=False))
