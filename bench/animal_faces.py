"""Animal Faces (module 3): the original input pipeline vs the helpers on real images, and D15's scale error.

The offline mirror holds only 43 real AFHQ images, so the timing uses module 3's real offline substitute: the
15,000 CIFAR-10 cat / dog / deer training images (32x32 JPEG, ../shared/datasets/cifar10_animals), about the size
of AFHQ's train/ (14,630). Original (bench/original_animal_faces.py): the zip unpacked, torchvision's ImageFolder
decoding one file per sample with ToTensor + Normalize, a shuffled DataLoader at batch 128. Helpers: the zip
decoded once into a uint8 tensor (`decode_image_zip`), batches sliced by `twdl.train`. Same MLP (3072-128-32-3) and
SGD (lr 5e-3, momentum 0.9), one CPU thread; the two pipelines' epochs alternate.
Parts: "throughput" and "defects" (D15: the distillation KL term's reduction).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_animal_faces as original  # noqa: E402
from _timing import CLOCK_NOTE, clock  # noqa: E402
from covertype import row  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers.data.animal_faces import CIFAR_ANIMALS_ZIP as CIFAR_ZIP, decode_image_zip  # noqa: E402
from twdl_helpers.data.fetch import locate  # noqa: E402

BATCH = 128


def prepare(folder: Path, limit: int | None) -> tuple[Path, Path, int]:
    """Unpack the CIFAR train images for ImageFolder and write the same images as an AFHQ-layout zip.

    Returns (the ImageFolder root, the zip for the helpers' decoder, the number of training images)."""
    source = locate(CIFAR_ZIP)
    with zipfile.ZipFile(source) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        train = [n for n in names if "/train/" in n]
        if limit:
            per_class = {}
            for n in train:
                per_class.setdefault(n.split("/")[-2], []).append(n)
            train = [n for files in per_class.values() for n in files[: limit // len(per_class)]]
        test = [n for n in names if "/test/" in n][:30]
        with zipfile.ZipFile(folder / "animals_32x32.zip", "w", zipfile.ZIP_STORED) as out:
            for n in train:
                data = archive.read(n)
                target = folder / "unpacked" / n
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                out.writestr(n.replace("cifar10/train/", "animals/train/"), data)
            for n in test:
                out.writestr(n.replace("cifar10/test/", "animals/val/"), archive.read(n))
    return folder / "unpacked" / "cifar10" / "train", folder / "animals_32x32.zip", len(train)


def throughput(quick: bool) -> list[dict]:
    """Images/s per training epoch (alternating) and load + epochs end to end."""
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root, archive, n = prepare(Path(tmp), 1_200 if quick else None)
        start = clock()
        dataset = original.original_dataset(root)
        torch.manual_seed(90108)
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
        orig_model = original.AnimalNetOriginal()
        orig_opt = torch.optim.SGD(orig_model.parameters(), lr=5e-3, momentum=0.9)
        orig_setup = clock() - start
        start = clock()
        images, labels, _ = decode_image_zip(archive)["train"]
        data = twdl.TensorData((images.float() / 255 - 0.5) / 0.5, labels)
        decode = clock() - start
        model = twdl.AnimalNet(seed=0)
        optimizer = twdl.make_optimizer("sgd", model.parameters(), 5e-3, momentum=0.9)
        orig_s, help_s = [], []
        for r in range(rounds):
            start = clock()
            original.train_epoch(orig_model, loader, orig_opt)
            orig_s.append(clock() - start)
            start = clock()
            # a training epoch only, as the original's: no epoch-end measurement pass over the training rows
            twdl.train(model, data, epochs=1, batch_size=BATCH, optimizer=optimizer, seed=r, progress=False,
                       train_eval_rows=0)
            help_s.append(clock() - start)
    label = (f"{n:,} real CIFAR-10 cat/dog/deer training images (module 3's offline AFHQ substitute), batch {BATCH}, "
             f"{CLOCK_NOTE}")
    o, h = statistics.median(orig_s), statistics.median(help_s)
    return [
        row("epoch", f"Animal Faces-style training epoch, {label}, 1 torch thread", "training throughput",
            "images/s", n / o, n / h, f"{rounds} / {rounds} epochs", higher_is_better=True),
        row("end_to_end", f"load + 3 epochs, {label}", "seconds (original: ImageFolder scan + 3 epochs; helpers: "
            "decode the zip once + 3 epochs)", "s", orig_setup + 3 * o, decode + 3 * h, f"{rounds} / {rounds}",
            higher_is_better=False),
    ]


def defects(seed: int = 0, temperature: float = 40.0, n_classes: int = 3, batch: int = 128) -> list[dict]:
    """D15: the original's KLDivLoss() ('mean' over batch x classes) vs 'batchmean', alpha = 1, T = 40."""
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, n_classes, generator=generator) * 10
    teacher = torch.randn(batch, n_classes, generator=generator) * 10
    labels = torch.randint(0, n_classes, (batch,), generator=generator)
    before = float(original.original_distillation_loss(student, teacher, labels, alpha=1.0, T=temperature))
    after = float(twdl.distillation_loss(student, teacher, labels, alpha=1.0, T=temperature))
    what = (f"distillation soft term, alpha 1, T {temperature:g}, {batch} random logit pairs (std 10, seed {seed}), "
            f"{n_classes} classes")
    return [row("d15_soft_term", f"D15 KLDivLoss() 'mean' (original) vs 'batchmean', {what}", "T^2 x KL", "loss",
                before, after, "exact"),
            row("d15_ratio", f"D15 how many times too small the original's soft term is, {what}", "after / before",
                "x", float("nan"), after / before, "exact")]


def run(quick: bool = False, parts: tuple[str, ...] = ("throughput", "defects")) -> pd.DataFrame:
    """The Animal Faces table (quick=True: 1,200 images, one round)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = (throughput(quick) if "throughput" in parts else []) + (defects() if "defects" in parts else [])
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run("--quick" in sys.argv).to_markdown(index=False, floatfmt=".4g"))
