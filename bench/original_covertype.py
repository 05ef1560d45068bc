"""The original course's Covertype pipeline, rewritten from COURSE_SPEC.md's description for comparison only.

Defects kept on purpose: row-wise pandas `apply` to undo the one-hot blocks (D4), unscaled numerics (D2),
LabelEncoders fitted separately on train and on test (D3), a per-row Dataset `__getitem__` read by a
DataLoader (D4), softmax before CrossEntropyLoss (D1). The split is unseeded `np.random.rand` in the original
(D5); here the caller may pass the split rows so both pipelines see the same rows. Never imported by the package.
"""
from __future__ import annotations

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


def preprocess(raw: pd.DataFrame) -> pd.DataFrame:
    """Undo the one-hot blocks row by row (the original's `df.apply(..., axis=1)`), shift the label."""
    df = raw.copy()
    df.columns = COLUMNS
    df["Wilderness_Area"] = df[WILDERNESS].apply(lambda row: row.idxmax(), axis=1)
    df["Soil_Type"] = df[SOIL].apply(lambda row: row.idxmax(), axis=1)
    df = df.drop(columns=WILDERNESS + SOIL)
    df["Cover_Type"] = df["Cover_Type"] - 1
    return df


def split(df: pd.DataFrame, train_rows: np.ndarray | None = None, test_rows: np.ndarray | None = None):
    """The original's 85/15 split by an unseeded np.random.rand, unless explicit rows are given."""
    if train_rows is None:
        mask = np.random.rand(len(df)) < 0.85
        return df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True)
    return df.iloc[train_rows].reset_index(drop=True), df.iloc[test_rows].reset_index(drop=True)


class CovertypeDataset(Dataset):
    """Per-split dataset that fits its OWN LabelEncoders (D3) and builds tensors row by row (D4)."""

    def __init__(self, df: pd.DataFrame):
        self.df = df.copy()
        self.encoders = {}
        for col in ["Wilderness_Area", "Soil_Type"]:
            enc = LabelEncoder()
            self.df[col] = enc.fit_transform(self.df[col])
            self.encoders[col] = enc

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, i: int):
        row = self.df.iloc[i]
        numeric = torch.tensor(row[NUMERIC].values.astype(np.float32))
        categorical = torch.tensor([row["Wilderness_Area"], row["Soil_Type"]], dtype=torch.long)
        return numeric, categorical, torch.tensor(row["Cover_Type"], dtype=torch.long)


class OriginalBaseline(nn.Module):
    """The original's baseline: embeddings + [32, 32] Linear/BN/ReLU/Dropout layers, ending in a softmax (D1)."""

    def __init__(self, cardinalities=(4, 40), hidden=(32, 32), dropout=0.1, n_classes=7, softmax=True):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, int(np.sqrt(c))) for c in cardinalities)
        width = 10 + sum(int(np.sqrt(c)) for c in cardinalities)
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
    """One training epoch the original's way; returns (mean loss, rows seen)."""
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
    """Accuracy (%) over a DataLoader, the original's way."""
    model.eval()
    correct = n = 0
    for numeric, categorical, y in loader:
        correct += (model(numeric, categorical).argmax(1) == y).sum().item()
        n += len(y)
    return 100.0 * correct / n


def train_original(train_df: pd.DataFrame, test_df: pd.DataFrame, epochs: int = 50, batch_size: int = 265,
                   seed: int = 0, evaluate_every_epoch: bool = False) -> dict:
    """Train the original baseline; returns per-epoch losses, final test accuracy and seconds."""
    torch.manual_seed(seed)
    train_ds, test_ds = CovertypeDataset(train_df), CovertypeDataset(test_df)
    cards = (max(4, train_df["Wilderness_Area"].nunique()), max(40, train_df["Soil_Type"].nunique()))
    model = OriginalBaseline(cardinalities=cards)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_ds, batch_size=batch_size)
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
