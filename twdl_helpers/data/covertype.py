"""UCI Covertype: read covtype.data.gz (or a synthetic stand-in), decode its one-hot blocks, split and scale."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..features import TabularData, build_tabular, stratified_sample, stratified_split
from .fetch import DataNotFoundError, RemoteFile, banner, check_source, locate
from ..files import display_path

__all__ = ["load_covertype", "read_covertype_raw", "decode_covertype", "synthetic_covertype", "COVERTYPE_FILE",
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
    """The raw integer table [N, 55] of a covtype.data(.gz) file (no header)."""
    table = pd.read_csv(path, header=None, dtype=np.int32).to_numpy()
    if table.shape[1] != 55:
        raise ValueError(f"{path}: expected 55 comma-separated integer columns (UCI covtype layout), "
                         f"found {table.shape[1]}; is this the right file?")
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


def synthetic_covertype(n_rows: int = 10_000, seed: int = 2024) -> np.ndarray:
    """A deterministic SYNTHETIC stand-in in the raw UCI layout [N, 55]: same columns, ranges and 7 classes.

    Not real data: every class has its own elevation band, wilderness and soil preferences plus noise, so a
    model can learn something, but the numbers it reaches say nothing about the real dataset.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([0.365, 0.488, 0.062, 0.005, 0.016, 0.030, 0.034])
    label = rng.choice(7, size=n_rows, p=shares / shares.sum())
    elevation_mean = np.array([3130, 2920, 2390, 2220, 2790, 2420, 3360])
    numeric = np.column_stack([
        rng.normal(elevation_mean[label], 140),  # Elevation
        rng.uniform(0, 360, n_rows),  # Aspect
        rng.gamma(3.0, 3.0 + label, n_rows),  # Slope
        rng.gamma(1.5, 180, n_rows),  # Horizontal_Distance_To_Hydrology
        rng.normal(45, 55, n_rows),  # Vertical_Distance_To_Hydrology
        rng.gamma(2.0, 600 + 300 * (label < 2), n_rows),  # Horizontal_Distance_To_Roadways
        rng.normal(212, 27, n_rows), rng.normal(223, 20, n_rows), rng.normal(142, 38, n_rows),  # Hillshades
        rng.gamma(2.0, 500 + 250 * (label == 0), n_rows),  # Horizontal_Distance_To_Fire_Points
    ])
    low = np.array([1859, 0, 0, 0, -173, 0, 0, 0, 0, 0])
    high = np.array([3858, 360, 66, 1397, 601, 7117, 254, 254, 254, 7173])
    numeric = np.clip(np.rint(numeric), low, high).astype(np.int32)
    wilderness_pref = rng.dirichlet(np.full(_N_WILDERNESS, 0.6), size=7)
    soil_pref = rng.dirichlet(np.full(_N_SOIL, 0.15), size=7)
    u = rng.random((n_rows, 1))
    wilderness = (u > wilderness_pref[label].cumsum(1)).sum(1).clip(max=_N_WILDERNESS - 1)
    u = rng.random((n_rows, 1))
    soil = (u > soil_pref[label].cumsum(1)).sum(1).clip(max=_N_SOIL - 1)
    one_hot = np.zeros((n_rows, _N_WILDERNESS + _N_SOIL), dtype=np.int32)
    one_hot[np.arange(n_rows), wilderness] = 1
    one_hot[np.arange(n_rows), _N_WILDERNESS + soil] = 1
    return np.column_stack([numeric, one_hot, label + 1]).astype(np.int32)


def load_covertype(
    path: str | Path | None = None, source: str = "auto", limit: int | None = None, seed: int = 0,
    test_fraction: float = 0.15, device: str | torch.device = "cpu",
) -> TabularData:
    """Covertype as train/test tensors: inputs (numeric standardised [N,10], codes [N,2]), targets labels 0..6.

    source="auto" reads the real file (path, TWDL_DATA_MIRROR, cache, download) and falls back to the synthetic
    stand-in with a banner; "full" insists on the real file; "sample" uses the stand-in. `limit` keeps a seeded
    stratified subset of rows before the seeded stratified train/test split. Wilderness_Area and Soil_Type codes
    and the numeric mean/std are fitted on the training rows only; code 0 means "not seen in training".
    """
    check_source(source)
    raw, kind, origin = None, "synthetic stand-in", "generated in code (deterministic)"
    if source != "sample":
        try:
            file = locate(COVERTYPE_FILE, path)
            raw, kind, origin = read_covertype_raw(file), "real", f"read from {display_path(file)}"
        except DataNotFoundError:
            if source == "full":
                raise
    if raw is None:
        raw = synthetic_covertype()
    numeric, wilderness, soil, label = decode_covertype(raw)
    found = len(label)
    if limit is not None and limit < found:
        keep = stratified_sample(label, limit, seed)
        numeric, wilderness, soil, label = numeric[keep], wilderness[keep], soil[keep], label[keep]
    train_rows, test_rows = stratified_split(label, test_fraction, seed)
    partial = "" if kind != "real" or found == COVERTYPE_FULL_ROWS else f" (a subset: the full file has " \
                                                                       f"{COVERTYPE_FULL_ROWS:,} rows)"
    detail = (f"{found:,} rows {origin}{partial}; using {len(label):,} "
              f"({len(train_rows):,} train / {len(test_rows):,} test, stratified, seed {seed})")
    banner("Covertype", kind, detail)
    return build_tabular(numeric, {"Wilderness_Area": wilderness, "Soil_Type": soil}, label, train_rows, test_rows,
                         list(COVERTYPE_NUMERIC), task="classification", classes=list(COVERTYPE_CLASSES),
                         device=device, source=kind, description=f"UCI Covertype ({kind}): {detail}")
