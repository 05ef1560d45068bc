"""MNIST (module 2) on the real 60,000 training images: the original pipeline vs the helpers, and D8-D12.

Parts (`--part`, default all):
- throughput: images/s of one training epoch at batch 64 and 1024, the original's own code path
  (bench/original_mnist.py: torchvision's MNIST class, per-sample PIL + ToTensor + Normalize, its DataLoader)
  vs `twdl.train` on the loader's tensors; same 784-128-10 net, SGD lr 0.01 momentum 0.9. The two pipelines'
  epochs alternate, so both see the same machine load.
- defects: before/after numbers for D8 (no shuffling on CPU), D9 (100 - loss plotted as an error), D10
  (RMSprop's hard-coded rate), D11 (the batch-norm losses that were never plotted) and D12 (the exp schedule).
On CPU both pipelines use one torch thread; on CUDA the device name is recorded in the rows.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_mnist as original  # noqa: E402
from _timing import CLOCK_NOTE, clock  # noqa: E402
from covertype import row  # noqa: E402

import twdl_helpers as twdl  # noqa: E402

TARGET_AT_64 = 8.0
SEED = 1


def _device_label(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name()}), wall time"
    return f"cpu, {torch.get_num_threads()} torch thread(s), {CLOCK_NOTE}"


def helpers_epoch_seconds(model, optimizer, data: twdl.TensorData, batch_size: int, seed: int) -> float:
    """Seconds (see _timing.py) of one `twdl.train` epoch."""
    device = next(model.parameters()).device
    start = clock(device)
    twdl.train(model, data, epochs=1, batch_size=batch_size, optimizer=optimizer, seed=seed, progress=False,
               train_eval_rows=0)  # training only, as the original's epoch
    return clock(device) - start


def step_seconds(model, optimizer, data: twdl.TensorData, batch_size: int, repeats: int) -> float:
    """Seconds of one training step (forward, loss, backward, optimizer) on one fixed batch: the compute that the
    original and the helpers share, without any data handling."""
    x, y = data.inputs[:batch_size], data.targets[:batch_size]
    loss_fn = torch.nn.functional.cross_entropy
    for i in range(repeats + 20):
        if i == 20:
            start = clock(x.device)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (clock(x.device) - start) / repeats


def throughput(quick: bool, device: str, folder: Path) -> list[dict]:
    """Images/s per training epoch at batch 64 and 1024, alternating original and helpers epochs."""
    n = 6_000 if quick else None
    dataset = original.original_dataset(original.torchvision_root(folder))
    if n is not None:
        dataset = torch.utils.data.Subset(dataset, range(n))
    data = twdl.load_mnist(source="full", limit_train=n, limit_test=100, device=device)
    rounds = 1 if quick else 3
    rows = []
    for batch_size in (64, 1024):
        twdl.set_seed(SEED)
        model = twdl.ShallowNet().to(device)
        optimizer = twdl.make_optimizer("momentum", model.parameters(), lr=0.01)
        orig, helpers = [], []
        for r in range(rounds):
            orig.append(len(dataset) / original.original_epoch_seconds(dataset, batch_size, device,
                                                                       lambda: clock(device)))
            helpers.append(len(data.train) / helpers_epoch_seconds(model, optimizer, data.train, batch_size, r))
        step = step_seconds(model, optimizer, data.train, batch_size, 50 if quick else 300)
        per_step_original = batch_size / statistics.median(orig)
        rows.append(row(
            f"step_{batch_size}", f"MNIST batch {batch_size}: one training step of the same net on one fixed batch "
            f"(no data handling; the compute both pipelines share) vs the original's time per step, "
            f"{_device_label(device)}", "seconds per step", "ms", 1e3 * per_step_original, 1e3 * step,
            f"{rounds} epochs / {50 if quick else 300} steps", higher_is_better=False))
        rows.append(row(
            f"epoch_{batch_size}",
            f"MNIST training epoch, batch {batch_size}, 784-128-10 net, {len(data.train):,} real training images, "
            f"{_device_label(device)}: torchvision MNIST (per-sample PIL, ToTensor, Normalize) + DataLoader vs "
            "twdl.train on tensors", "epoch throughput", "images/s", statistics.median(orig),
            statistics.median(helpers), f"{rounds} / {rounds} epochs", higher_is_better=True,
            target_ratio=TARGET_AT_64 if batch_size == 64 else None))
    return rows


def _fit(data, optimizer: str, lr: float, epochs: int, batch_size: int = 64, schedule: str | None = None,
         model: torch.nn.Module | None = None):
    twdl.set_seed(SEED)
    model = model if model is not None else twdl.ShallowNet()
    opt = twdl.make_optimizer(optimizer, model.parameters(), lr=lr)
    scheduler = twdl.make_schedule(schedule, opt, epochs) if schedule else None
    return twdl.train(model, data.train, epochs=epochs, batch_size=batch_size, optimizer=opt, scheduler=scheduler,
                      eval_data={"test": data.test}, seed=SEED, progress=False)


def defects(quick: bool, folder: Path) -> list[dict]:
    """Before/after numbers for D8-D12 on the real MNIST files (see docs/fixes_m2.md)."""
    limit = 2_000 if quick else None
    data = twdl.load_mnist(source="full", limit_train=limit, limit_test=limit)
    epochs = 2 if quick else 10
    size = f"{len(data.train):,} train / {len(data.test):,} test real images, seed {SEED}"
    rows = []
    # D8: on a CPU the original's loader keeps the file's order every epoch; the helpers reshuffle every epoch
    dataset = original.original_dataset(original.torchvision_root(folder))
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(limit))
    torch.manual_seed(SEED)
    model = original.OriginalNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)  # original_loader on a machine without CUDA (D8)
    for _ in range(3):
        original.train_epoch(model, loader, opt)
    file_order = twdl.evaluate(model, data.test)["accuracy"]
    shuffled = _fit(data, "momentum", 0.01, 3, batch_size=32).last["test_accuracy"]
    rows.append(row("d8_test_accuracy", f"D8 file order (original loader on CPU) vs reshuffled each epoch, 3 epochs, "
                    f"batch 32, {size}", "test accuracy", "%", file_order, shuffled, "1 / 1", higher_is_better=True))
    sgd = _fit(data, "sgd", 0.01, epochs)
    rows.append(row("d9_error", f"D9 'test error' of plain SGD after {epochs} epochs: 100 - test loss (original) vs "
                    f"100 - test accuracy, {size}", "test error", "%", 100 - sgd.last["test_loss"],
                    100 - sgd.last["test_accuracy"], "1 / 1"))
    hard_coded = _fit(data, "rmsprop", 1e-3, epochs).last["test_accuracy"]
    configured = _fit(data, "rmsprop", 0.01, epochs).last["test_accuracy"]
    rows.append(row("d10_error", f"D10 RMSprop configured with lr 0.01: runs at 1e-3 (original) vs at 0.01, "
                    f"{epochs} epochs, {size}", "test error", "%", 100 - hard_coded, 100 - configured, "1 / 1"))
    nets = {"shallow": lambda: twdl.ShallowNet(dropout=0.5), "bn_shallow": lambda: twdl.BNShallowNet(dropout=0.5),
            "deep": lambda: twdl.DeepNet(dropout=0.5), "bn_deep": lambda: twdl.BNDeepNet(dropout=0.5)}
    for name, build in nets.items():
        twdl.set_seed(SEED)
        history = _fit(data, "momentum", 0.01, epochs, model=build())
        rows.append(row(f"d11_{name}_test_loss", f"D11 batch-norm experiment, {name} (dropout 0.5, SGD 0.01 momentum "
                        f"0.9, batch 64, {epochs} epochs): recorded but never plotted in the original, {size}",
                        "final test loss", "loss", float("nan"), history.last["test_loss"], "1 / 1"))
    exp = _fit(data, "momentum", 0.01, epochs, schedule="exp")
    sqrt = _fit(data, "momentum", 0.01, epochs, schedule="sqrt")
    rows.append(row("d12_lr", f"D12 learning rate in the last epoch: exp schedule (original) vs sqrt, {size}",
                    "learning rate", "lr", exp.last["lr"], sqrt.last["lr"], "1 / 1"))
    rows.append(row("d12_error", f"D12 test error after {epochs} epochs: exp schedule (original) vs sqrt, {size}",
                    "test error", "%", 100 - exp.last["test_accuracy"], 100 - sqrt.last["test_accuracy"], "1 / 1"))
    rows.append(row("d12_stall", f"D12 exp schedule: test-error change from epoch 2 to epoch {epochs}, {size}",
                    "points", "points", exp["test_accuracy"][1] - exp["test_accuracy"][-1], float("nan"), "1 / 1"))
    return rows


def run(quick: bool = False, cpu_threads: int | None = 1,
        parts: tuple[str, ...] = ("throughput", "defects")) -> pd.DataFrame:
    """The MNIST table; on CPU with `cpu_threads` torch threads (None keeps torch's default)."""
    device = str(twdl.get_device("auto"))
    before = torch.get_num_threads()
    if device == "cpu" and cpu_threads:
        torch.set_num_threads(cpu_threads)
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = []
            if "throughput" in parts:
                rows += throughput(quick, device, Path(folder))
            if "defects" in parts:
                rows += defects(quick, Path(folder))
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--part", choices=["throughput", "defects"], action="append", default=None)
    args = parser.parse_args()
    print(run(quick=args.quick, parts=tuple(args.part or ("throughput", "defects"))).to_markdown(index=False,
                                                                                                floatfmt=".4g"))
