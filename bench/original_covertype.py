"""The original course's Covertype pipeline (module 1), reproduced for comparison only; never imported by the package.

It does what the original code did, no slower and no faster (COURSE_SPEC.md, D1-D5). Each class and function
names the section of the original it reproduces:
- the one-hot undo is a row-wise pandas `apply` (D4), the label is shifted to 0..6;
- the split is an unseeded `np.random.rand(len(df)) < 0.85` mask (D5); callers may pass explicit rows so that
  both pipelines see the same rows;
- `ForestDataset`: in `__init__` the numeric columns become ONE float32 numpy array, one `LabelEncoder` is fitted
  on the labels and one per categorical column ON THAT SPLIT (D3), the codes are kept as numpy arrays;
  `__getitem__(idx)` wraps `numeric[idx]`, the codes at `idx` and `labels[idx]` in three new tensors (D4);
  a `DataLoader(batch_size=265, shuffle=True)` collates them. No pandas access per row in the loader;
- the model ends in a softmax that `nn.CrossEntropyLoss` then log-softmaxes again (D1), numerics unscaled (D2).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import LabelEncoder
from torch import nn
from torch.utils.data import DataLoader, Dataset

NUMERIC = ["Elevation", "Aspect", "Slope", "Horizontal_Distance_To_Hydrology", "Vertical_Distance_To_Hydrology",
           "Horizontal_Distance_To_Roadways", "Hillshade_9am", "Hillshade_Noon", "Hillshade_3pm",
           "Horizontal_Distance_To_Fire_Points"]
WILDERNESS = [f"Wilderness_Area{i}" for i in range(1, 5)]
SOIL = [f"Soil_Type{i}" for i in range(1, 41)]
COLUMNS = NUMERIC + WILDERNESS + SOIL + ["Cover_Type"]
CATEGORICAL = ["Wilderness_Area", "Soil_Type"]
LABEL = "Cover_Type"
BATCH_SIZE = 265
# The loss a perfect one-hot softmax output still costs under CrossEntropyLoss with 7 classes (D1):
# -log(e / (e + 6)) = log(e + 6) - 1.
DOUBLE_SOFTMAX_FLOOR = math.log(math.e + 6) - 1


def preprocess(raw: pd.DataFrame) -> pd.DataFrame:
    """Original "Data preparation": name the columns, undo each one-hot block with a row-wise `apply` (D4),
    drop the one-hot columns and shift Cover_Type 1..7 to 0..6."""
    df = raw.copy()
    df.columns = COLUMNS
    df["Wilderness_Area"] = df[WILDERNESS].apply(lambda row: row.idxmax(), axis=1)
    df["Soil_Type"] = df[SOIL].apply(lambda row: row.idxmax(), axis=1)
    df = df.drop(columns=WILDERNESS + SOIL)
    df[LABEL] = df[LABEL] - 1
    return df


def split(df: pd.DataFrame, train_rows: np.ndarray | None = None, test_rows: np.ndarray | None = None):
    """Original "Train/test split": an unseeded `np.random.rand(len(df)) < 0.85` mask (D5), unless rows are given."""
    if train_rows is None:
        mask = np.random.rand(len(df)) < 0.85
        return df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True)
    return df.iloc[train_rows].reset_index(drop=True), df.iloc[test_rows].reset_index(drop=True)


class ForestDataset(Dataset):
    """Original `ForestDataset`: arrays built once per split with encoders fitted on that split (D3),
    three new tensors per index (D4)."""

    def __init__(self, df: pd.DataFrame, numeric_cols=NUMERIC, categorical_cols=CATEGORICAL, label_col=LABEL):
        self.numeric = df[numeric_cols].values.astype(np.float32)
        self.label_encoder = LabelEncoder()
        self.labels = self.label_encoder.fit_transform(df[label_col])
        self.encoders = {col: LabelEncoder() for col in categorical_cols}
        self.categorical = [self.encoders[col].fit_transform(df[col]) for col in categorical_cols]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int):
        numeric = torch.tensor(self.numeric[idx], dtype=torch.float32)
        categorical = torch.tensor([codes[idx] for codes in self.categorical], dtype=torch.long)
        label = torch.tensor(self.labels[idx], dtype=torch.long)
        return numeric, categorical, label


def make_loader(dataset: ForestDataset, shuffle: bool = True) -> DataLoader:
    """Original loaders: `DataLoader(dataset, batch_size=265, shuffle=True)` (single process)."""
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=shuffle)


class OriginalBaseline(nn.Module):
    """Original baseline model: one embedding per categorical column (width floor(sqrt(cardinality))) concatenated
    with the raw numerics, [32, 32] Linear -> BatchNorm1d -> ReLU -> Dropout(0.1), a linear output to 7 classes
    and a softmax (D1; `softmax=False` returns the logits instead)."""

    def __init__(self, cardinalities=(4, 40), n_numeric=10, hidden=(32, 32), dropout=0.1, n_classes=7,
                 softmax: bool = True):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, int(math.sqrt(c))) for c in cardinalities)
        width = n_numeric + sum(int(math.sqrt(c)) for c in cardinalities)
        layers = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, n_classes)
        self.softmax = softmax

    def forward(self, numeric, categorical):
        x = torch.cat([numeric] + [e(categorical[:, i]) for i, e in enumerate(self.embeddings)], dim=1)
        logits = self.out(self.body(x))
        return torch.softmax(logits, dim=1) if self.softmax else logits


def run_epoch(model, loader, optimizer, loss_fn) -> tuple[float, int]:
    """Original training loop body for one epoch: zero_grad, forward, CrossEntropyLoss, backward, Adam step,
    and a running loss read with `loss.item()` every step; returns (mean loss, rows seen)."""
    model.train()
    total, n = 0.0, 0
    for numeric, categorical, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(numeric, categorical), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        n += len(y)
    return total / n, n


@torch.no_grad()
def test_accuracy(model, loader) -> float:
    """Original evaluation: accuracy (%) of the arg-max over a DataLoader of the test ForestDataset."""
    model.eval()
    correct = n = 0
    for numeric, categorical, y in loader:
        correct += (model(numeric, categorical).argmax(1) == y).sum().item()
        n += len(y)
    return 100.0 * correct / n


def train_original(train_df: pd.DataFrame, test_df: pd.DataFrame, epochs: int = 50, seed: int = 0,
                   evaluate_every_epoch: bool = False) -> dict:
    """Original experiment: ForestDatasets per split, the baseline with its softmax, Adam lr 1e-3,
    CrossEntropyLoss, `epochs` epochs at batch 265; returns losses, test accuracy, seconds and the model."""
    torch.manual_seed(seed)
    train_ds, test_ds = ForestDataset(train_df), ForestDataset(test_df)
    model = OriginalBaseline(cardinalities=(4, 40))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    train_loader, test_loader = make_loader(train_ds), make_loader(test_ds, shuffle=False)
    start = time.perf_counter()
    losses, accs = [], []
    for _ in range(epochs):
        losses.append(run_epoch(model, train_loader, optimizer, loss_fn)[0])
        if evaluate_every_epoch:
            accs.append(test_accuracy(model, test_loader))
    seconds = time.perf_counter() - start
    acc = test_accuracy(model, test_loader)
    return {"train_loss": losses, "test_accuracy": acc, "epoch_test_accuracy": accs, "seconds": seconds,
            "model": model}
