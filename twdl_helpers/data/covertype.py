"""UCI Covertype: read covtype.data.gz (or the bundled real sample), decode its one-hot blocks, split and scale."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..features import TabularData, build_tabular, stratified_sample, stratified_split
from .errors import DataFileError
from .fetch import DataFiles, RemoteFile, banner, resolve
from .samples import bundled_files

__all__ = ["load_covertype", "read_covertype_raw", "decode_covertype", "COVERTYPE_FILE",
           "COVERTYPE_NUMERIC", "COVERTYPE_CLASSES", "COVERTYPE_FULL_ROWS"]

COVERTYPE_FILE = RemoteFile(
    name="covtype.data.gz",
    folder="covertype",
    urls=("https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/covtype.data.gz",
          "https://ndownloader.figshare.com/files/5976039"),
    # the hash scikit-learn's fetch_covtype checks for this exact upstream file
    sha256="614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771",
)
COVERTYPE_NUMERIC = [
    "Elevation", "Aspect", "Slope", "Horizontal_Distance_To_Hydrology", "Vertical_Distance_To_Hydrology",
    "Horizontal_Distance_To_Roadways", "Hillshade_9am", "Hillshade_Noon", "Hillshade_3pm",
    "Horizontal_Distance_To_Fire_Points",
]
COVERTYPE_CLASSES = ["Spruce/Fir", "Lodgepole Pine", "Ponderosa Pine", "Cottonwood/Willow", "Aspen",
                     "Douglas-fir", "Krummholz"]
COVERTYPE_FULL_ROWS = 581_012
_N_WILDERNESS, _N_SOIL = 4, 40


def read_covertype_raw(path: str | Path) -> np.ndarray:
    """The raw integer table [N, 55] of a covtype.data(.gz) file (no header); `DataFileError` if it is not one."""
    path = Path(path)
    try:
        table = pd.read_csv(path, header=None, dtype=np.int32, compression="infer").to_numpy()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"cannot be decompressed ({type(exc).__name__}: {exc}): it is truncated or "
                                  "damaged.", url=COVERTYPE_FILE.urls[0]) from exc
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFileError(path, f"is not the UCI covtype layout of 55 comma-separated integer columns "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0]}).", url=COVERTYPE_FILE.urls[0]) \
            from exc
    if table.ndim != 2 or table.shape[1] != 55:
        raise DataFileError(path, f"expected 55 comma-separated integer columns (UCI covtype layout), found "
                                  f"{table.shape[1] if table.ndim == 2 else 0}: is this the right file?",
                            url=COVERTYPE_FILE.urls[0])
    return table


def decode_covertype(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a raw [N, 55] table into numeric [N, 10], Wilderness_Area 1..4, Soil_Type 1..40 and label 0..6.

    The one-hot blocks become category numbers by an arg-max over each block (vectorised, no row-wise apply).
    """
    numeric = raw[:, :10].astype(np.float32)
    wilderness_block, soil_block = raw[:, 10:14], raw[:, 14:54]
    bad = (wilderness_block.sum(1) != 1) | (soil_block.sum(1) != 1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows do not have exactly one Wilderness_Area bit and one Soil_Type bit "
                         f"(first bad row: {int(np.flatnonzero(bad)[0])}); the file is not in the UCI layout")
    wilderness = wilderness_block.argmax(axis=1) + 1
    soil = soil_block.argmax(axis=1) + 1
    label = raw[:, 54].astype(np.int64) - 1
    if label.min() < 0 or label.max() > 6:
        raise ValueError(f"Cover_Type must be 1..7, found values {sorted(set(np.unique(label + 1)))[:10]}")
    return numeric, wilderness, soil, label


def _read(paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path = next(iter(paths.values()))
    try:
        return decode_covertype(read_covertype_raw(path))
    except DataFileError:
        raise
    except ValueError as exc:
        raise DataFileError(path, str(exc), url=COVERTYPE_FILE.urls[0]) from exc


COVERTYPE = DataFiles("Covertype", (COVERTYPE_FILE,), _read,
                      sample=lambda: bundled_files("covtype_sample.data.gz"))


def load_covertype(
    path: str | Path | None = None, source: str = "auto", limit: int | None = None, seed: int = 0,
    test_fraction: float = 0.15, device: str | torch.device = "cpu",
) -> TabularData:
    """Covertype as train/test tensors: inputs (numeric standardised [N,10], codes [N,2]), targets labels 0..6.

    Files are found by the one rule of `twdl_helpers.data.fetch` (path, TWDL_DATA_MIRROR, cache, download);
    source="auto" falls back to the bundled real sample (3,999 rows) with a banner, "full" never does, "sample"
    uses it. `limit` keeps a seeded stratified subset of rows before the seeded stratified train/test split.
    Wilderness_Area and Soil_Type codes and the numeric mean/std are fitted on the training rows only; code 0
    means "not seen in training".
    """
    found = resolve(COVERTYPE, path, source)
    numeric, wilderness, soil, label = found.value
    rows = len(label)
    if limit is not None and limit < rows:
        keep = stratified_sample(label, limit, seed)
        numeric, wilderness, soil, label = numeric[keep], wilderness[keep], soil[keep], label[keep]
    train_rows, test_rows = stratified_split(label, test_fraction, seed)
    what = ("" if rows == COVERTYPE_FULL_ROWS else f" (a subset of the {COVERTYPE_FULL_ROWS:,})")
    detail = (f"{rows:,} real rows{what} {found.origin()}; using {len(label):,} ({len(train_rows):,} train / "
              f"{len(test_rows):,} test, stratified, seed {seed})")
    banner("Covertype", found.source, detail)
    return build_tabular(numeric, {"Wilderness_Area": wilderness, "Soil_Type": soil}, label, train_rows, test_rows,
                         list(COVERTYPE_NUMERIC), task="classification", classes=list(COVERTYPE_CLASSES),
                         device=device, source=found.source, description=f"UCI Covertype: {detail}")
