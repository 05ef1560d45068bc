"""Animal Faces (AFHQ) 32x32: cat / dog / wild images from the upstream zip, or a synthetic stand-in."""
from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..training import TensorData
from .fetch import DataNotFoundError, RemoteFile, banner, cache_dir, check_source, locate
from ..files import display_path

__all__ = ["AnimalFaces", "load_animal_faces", "animal_faces_standin", "decode_afhq_zip", "ANIMAL_CLASSES",
           "AFHQ_ZIP", "LABEL_KINDS"]

ANIMAL_CLASSES = ("cat", "dog", "wild")
LABEL_KINDS = ("true", "random", "partial")
PARTIAL_FRACTION = 0.15
# The upstream sha256 is not published and the file could not be fetched from here, so it is not verified.
AFHQ_ZIP = RemoteFile(
    name="afhq_32x32.zip", folder="afhq",
    urls=("https://github.com/arashash/AnimalFaces32x32/raw/main/afhq_32x32.zip",), sha256=None,
)
_ENTRY = re.compile(r"(?:^|/)(train|val)/([^/]+)/[^/]+\.(?:png|jpe?g)$", re.IGNORECASE)


@dataclass
class AnimalFaces:
    """Train / validation subsets of AFHQ `train/`, the real `val/` folder as test, and where they came from.

    Images are float32 (N, 3, 32, 32), each channel normalised as (x/255 - 0.5) / 0.5; labels are int64
    class indices into `classes`. `labels` says which label variant the TRAIN split carries ("true",
    "random" or "partial"); validation and test always keep the true labels.
    """

    train: TensorData
    val: TensorData
    test: TensorData
    classes: tuple[str, ...]
    source: str
    description: str
    labels: str = "true"
    true_train_labels: torch.Tensor | None = None

    def with_labels(self, kind: str, seed: int = 0) -> "AnimalFaces":
        """The same images with train labels "true", "random" (all permuted) or "partial" (15 % permuted)."""
        if kind not in LABEL_KINDS:
            raise ValueError(f"labels must be one of {LABEL_KINDS}, got {kind!r}")
        true = self.true_train_labels if self.true_train_labels is not None else self.train.labels
        new = shuffle_labels(true, 1.0 if kind == "random" else PARTIAL_FRACTION if kind == "partial" else 0.0, seed)
        return replace(self, train=TensorData(self.train.inputs, new), labels=kind, true_train_labels=true)

    def summary(self) -> str:
        """One line: counts per split and the source."""
        return (f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test images, classes "
                f"{list(self.classes)}, {self.labels} train labels ({self.source})")


def shuffle_labels(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Return a copy where a seeded `fraction` of the rows get their labels permuted among themselves."""
    generator = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    chosen = torch.randperm(n, generator=generator)[: int(round(fraction * n))]
    out = labels.clone()
    out[chosen] = labels[chosen[torch.randperm(len(chosen), generator=generator)].to(labels.device)]
    return out


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - 0.5) / 0.5


def decode_afhq_zip(zip_path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]]:
    """Decode every image of an AFHQ zip into uint8 tensors: {"train"|"val": (images NCHW, labels, classes)}."""
    from PIL import Image

    found: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist()):
            match = _ENTRY.search(name)
            if match:
                found[match.group(1).lower()].append((match.group(2), name))
        if not found["train"] or not found["val"]:
            raise DataNotFoundError(f"{zip_path} should hold <root>/train/<class>/*.png and <root>/val/<class>/*.png "
                                    f"but has {len(found['train'])} train and {len(found['val'])} val images. "
                                    "Re-download afhq_32x32.zip or use source='sample'.")
        classes = tuple(sorted({c for c, _ in found["train"]}))
        result = {}
        for split, entries in found.items():
            pixels = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB").resize((32, 32)))
                               for _, name in entries])
            labels = torch.tensor([classes.index(c) for c, _ in entries], dtype=torch.long)
            result[split] = (torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), labels, classes)
    return result


def _decoded(zip_path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]]:
    """Decode the zip once and keep the uint8 tensors in the cache (keyed by the zip's path, size and time)."""
    stat = zip_path.stat()
    key = hashlib.sha256(f"{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / AFHQ_ZIP.folder / f"afhq_32x32.decoded.{key}.pt"
    if target.is_file():
        try:
            return torch.load(target, weights_only=True)
        except Exception:  # a damaged cache file: decode again
            pass
    decoded = decode_afhq_zip(zip_path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        torch.save(decoded, tmp)
        os.replace(tmp, target)
    except OSError:  # a read-only cache only costs a re-decode next time
        pass
    return decoded


def split_sizes(available: int, n_train: int | None, n_val: int | None) -> tuple[int, int, str]:
    """Train/val sizes drawn from `available` images for a request (None = the rest / a tenth), capped with a note."""
    if available < 2:
        raise ValueError(f"need at least 2 images in train/ to make a train and a validation split, found {available}")
    want_val = n_val if n_val is not None else max(1, available // 10)
    want_train = n_train if n_train is not None else available - min(want_val, available - 1)
    if want_train < 1 or want_val < 1:
        raise ValueError(f"n_train and n_val must be at least 1, got n_train={n_train}, n_val={n_val}")
    if want_train + want_val <= available:
        return want_train, want_val, ""
    train = min(available - 1, max(1, int(available * want_train / (want_train + want_val))))
    note = (f"asked for {want_train} train + {want_val} validation images but train/ holds only {available}: "
            f"using {train} + {available - train} (same proportions)")
    return train, available - train, note


def _assemble(pool: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
              classes: tuple[str, ...], n_train: int | None, n_val: int | None, seed: int, device: str,
              source: str, origin: str) -> AnimalFaces:
    images, labels = pool
    train_n, val_n, note = split_sizes(images.shape[0], n_train, n_val)
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    pick = lambda idx: TensorData(_normalise(images[idx]).to(device), labels[idx].to(device))  # noqa: E731
    data = AnimalFaces(
        train=pick(order[:train_n]), val=pick(order[train_n:train_n + val_n]),
        test=TensorData(_normalise(test[0]).to(device), test[1].to(device)), classes=classes, source=source,
        description=(f"{origin}: {train_n} train + {val_n} validation images drawn (seed {seed}) from "
                     f"{images.shape[0]} in train/, {test[0].shape[0]} test images from val/"
                     + (f"; {note}" if note else "")))
    return data


def animal_faces_standin(n_pool: int = 1800, n_test: int = 300, seed: int = 1234) -> tuple[
        tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Synthetic stand-in for AFHQ 32x32 (uint8 NCHW, 3 balanced classes): smooth class templates plus noise.

    Each class has a fixed colour/shape template made of a few soft blobs; every image is its template, shifted
    by a few pixels, randomly mirrored, with a random brightness, smooth clutter and pixel noise, so a small MLP
    can learn it but also overfit it. Deterministic: the same `seed` gives the same bytes.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def blobs(count: int, k: int, width: tuple[float, float]) -> torch.Tensor:
        centres = 4 + 24 * torch.rand(count, k, 2, generator=g)
        sigma = width[0] + (width[1] - width[0]) * torch.rand(count, k, 1, 1, generator=g)
        colour = torch.rand(count, k, 3, generator=g) * 2 - 1
        bump = torch.exp(-((yy - centres[..., 0, None, None]) ** 2 + (xx - centres[..., 1, None, None]) ** 2)
                         / (2 * sigma ** 2))
        return torch.einsum("nkhw,nkc->nchw", bump, colour)

    templates = blobs(len(ANIMAL_CLASSES), 4, (3.0, 7.0))
    total = n_pool + n_test
    labels = torch.arange(total) % len(ANIMAL_CLASSES)
    labels = labels[torch.randperm(total, generator=g)]
    shift = torch.randint(-5, 6, (total, 2), generator=g)
    base = torch.stack([torch.roll(templates[c], (int(s[0]), int(s[1])), dims=(1, 2))
                        for c, s in zip(labels.tolist(), shift)])
    mirror = torch.rand(total, generator=g) < 0.5
    base = torch.where(mirror[:, None, None, None], base.flip(-1), base)
    brightness = 0.6 + 0.8 * torch.rand(total, 1, 1, 1, generator=g)
    clutter = blobs(total, 3, (2.0, 6.0))
    pixels = 0.5 + 0.28 * (brightness * base + 1.6 * clutter + 0.7 * torch.randn(total, 3, 32, 32, generator=g))
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    return (images[:n_pool], labels[:n_pool]), (images[n_pool:], labels[n_pool:])


def load_animal_faces(
    path: str | Path | None = None, source: str = "auto", n_train: int | None = None, n_val: int | None = None,
    labels: str = "true", seed: int = 0, device: str | torch.device = "cpu",
) -> AnimalFaces:
    """Load AFHQ 32x32 (train/val random subsets of `train/`, test = `val/`) or the synthetic stand-in.

    `source="auto"` finds `afhq_32x32.zip` (explicit path, TWDL_DATA_MIRROR, cache, download from
    github.com/arashash/AnimalFaces32x32; its sha256 is not published, so the download is not hash-checked)
    and falls back to the synthetic stand-in with a banner; "full" raises if the zip is missing; "sample"
    returns the stand-in. Split sizes come from the data: n_train/n_val (None = all but a tenth / a tenth)
    are capped by what train/ holds, with a note in `.description`. `labels` = "true" | "random" | "partial"
    permutes all or 15 % of the train labels with a seeded permutation (no extra download).
    """
    check_source(source)
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
    data: AnimalFaces | None = None
    if source != "sample":
        try:
            zip_path = locate(AFHQ_ZIP, path)
            decoded = _decoded(zip_path)
            train_images, train_labels, classes = decoded["train"]
            data = _assemble((train_images, train_labels), decoded["val"][:2], classes, n_train, n_val, seed,
                             device, "real", f"AFHQ 32x32 from {display_path(zip_path)}")
        except DataNotFoundError:
            if source == "full" or path is not None:
                raise
    if data is None:
        pool, test = animal_faces_standin()
        data = _assemble(pool, test, ANIMAL_CLASSES, n_train, n_val, seed, device, "synthetic stand-in",
                         "synthetic stand-in for AFHQ (generated in code, not real animal photos)")
    banner("Animal Faces", data.source, data.description)
    return data.with_labels(labels, seed) if labels != "true" else data
