"""Tabular feature building (encoders, stratified splits, tensors from a DataFrame) and learned-feature views."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from .training import TensorData, Tensors, predict

__all__ = [
    "CategoryEncoder", "TabularData", "build_tabular", "stratified_split", "stratified_sample", "tabular_tensors",
    "test_only_codes", "per_split_code_mismatch_percent",
    "one_hot_features", "layer_activations", "project_2d", "plot_projections", "PROJECTION_METHODS",
    "classification_scores",
]

PROJECTION_METHODS = ("pca", "tsne", "umap")


@dataclass
class CategoryEncoder:
    """Maps raw category values to codes 1..K learned from training rows; code 0 is reserved for "unknown"."""

    categories: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> "CategoryEncoder":
        """Learn the sorted distinct values of `values` (call it on training rows only)."""
        return cls(np.unique(np.asarray(values)))

    @property
    def cardinality(self) -> int:
        """Number of codes, the reserved unknown code included."""
        return len(self.categories) + 1

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Codes for `values` (vectorised); values never seen in training get code 0."""
        values = np.asarray(values)
        pos = np.searchsorted(self.categories, values)
        pos_clipped = np.minimum(pos, len(self.categories) - 1)
        known = (pos < len(self.categories)) & (self.categories[pos_clipped] == values)
        return np.where(known, pos_clipped + 1, 0).astype(np.int64)


@dataclass
class TabularData:
    """A tabular dataset split into train/test tensors: inputs = (numeric float32 [N, d], categorical long [N, c])."""

    train: TensorData
    test: TensorData
    numeric_names: list[str]
    categorical_names: list[str]
    cardinalities: list[int]
    encoders: dict[str, CategoryEncoder]
    mean: torch.Tensor
    std: torch.Tensor
    task: str = "classification"
    classes: list = field(default_factory=list)
    source: str = "real"
    description: str = ""
    test_raw: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # raw categorical values, test rows

    @property
    def n_classes(self) -> int:
        """Number of classes (1 for regression: a single linear output)."""
        return len(self.classes) if self.task == "classification" else 1

    def summary(self) -> pd.DataFrame:
        """Rows, columns and source as a one-row table."""
        return pd.DataFrame([{"train rows": len(self.train), "test rows": len(self.test),
                              "numeric": len(self.numeric_names), "categorical": len(self.categorical_names),
                              "cardinalities": self.cardinalities, "task": self.task, "source": self.source}])


def _per_class_take(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask choosing round(fraction * n_c) rows of every class c, at random."""
    chosen = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        k = int(round(fraction * len(rows)))
        chosen[rng.permutation(rows)[:k]] = True
    return chosen


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: returns (train_rows, test_rows), each class split test_fraction / rest."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    is_test = _per_class_take(np.asarray(labels), test_fraction, np.random.default_rng(seed))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def stratified_sample(labels: np.ndarray | torch.Tensor, size: int, seed: int) -> np.ndarray:
    """Row numbers of a seeded sample of about `size` rows keeping each class's share (all rows if fewer)."""
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    return np.flatnonzero(_per_class_take(labels, size / len(labels), np.random.default_rng(seed)))


def tabular_tensors(
    df: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], target: str,
    task: str = "classification", test_fraction: float = 0.15, seed: int = 0,
    device: str | torch.device = "cpu", source: str = "real", description: str = "",
) -> TabularData:
    """Build train/test tensors from any DataFrame: standardised numerics, encoded categoricals, a target.

    Classification targets become codes 0..K-1 and the split is stratified per class; regression targets stay
    float32 and the split is a seeded random one. Encoders and mean/std are fitted on the training rows only.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    missing = [c for c in [*numeric, *categorical, target] if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the DataFrame; it has {list(df.columns)}")
    y_raw = df[target].to_numpy()
    if task == "classification":
        classes = np.unique(y_raw)
        y = np.searchsorted(classes, y_raw).astype(np.int64)
        train_rows, test_rows = stratified_split(y, test_fraction, seed)
    else:
        classes, y = np.array([]), y_raw.astype(np.float32)
        order = np.random.default_rng(seed).permutation(len(df))
        n_test = int(round(test_fraction * len(df)))
        train_rows, test_rows = np.sort(order[n_test:]), np.sort(order[:n_test])
    num = df[list(numeric)].to_numpy(dtype=np.float32) if numeric else np.zeros((len(df), 0), np.float32)
    cats = {c: df[c].to_numpy() for c in categorical}
    return build_tabular(num, cats, y, train_rows, test_rows, list(numeric), task=task,
                         classes=classes.tolist(), device=device, source=source, description=description)


def build_tabular(
    numeric: np.ndarray, categorical: dict[str, np.ndarray], targets: np.ndarray,
    train_rows: np.ndarray, test_rows: np.ndarray, numeric_names: list[str], *, task: str,
    classes: list, device: str | torch.device, source: str, description: str,
) -> TabularData:
    """Fit encoders and standardisation on `train_rows` only, apply them to both splits, return TabularData."""
    encoders = {name: CategoryEncoder.fit(values[train_rows]) for name, values in categorical.items()}
    codes = (np.stack([encoders[n].transform(v) for n, v in categorical.items()], axis=1)
             if categorical else np.zeros((len(targets), 0), np.int64))
    mean = numeric[train_rows].mean(axis=0)
    std = numeric[train_rows].std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    scaled = ((numeric - mean) / std).astype(np.float32)

    def split(rows: np.ndarray) -> TensorData:
        return TensorData((torch.from_numpy(scaled[rows]).to(device), torch.from_numpy(codes[rows]).to(device)),
                          torch.from_numpy(targets[rows]).to(device))

    return TabularData(split(train_rows), split(test_rows), numeric_names, list(categorical),
                       [e.cardinality for e in encoders.values()], encoders, torch.from_numpy(mean),
                       torch.from_numpy(std), task, classes, source, description,
                       {name: np.asarray(values)[test_rows] for name, values in categorical.items()})


def test_only_codes(data: TabularData) -> torch.Tensor:
    """The categorical codes of the test rows as the original's per-split encoders gave them (one category, two codes).

    An encoder fitted on the test rows alone numbers the test split's own sorted distinct values 1..K_test (on the
    same 1-based scale as the train-fitted codes, where 0 is "unseen in training"). Wherever the two splits do
    not hold exactly the same values, the same code then names different categories in train and test.
    """
    if not data.test_raw:
        raise ValueError("this TabularData keeps no raw test values; build it with tabular_tensors/build_tabular")
    columns = [np.unique(data.test_raw[name], return_inverse=True)[1] + 1 for name in data.categorical_names]
    codes = torch.from_numpy(np.stack(columns, axis=1).astype(np.int64))
    return codes.to(data.test.inputs[1].device)


def per_split_code_mismatch_percent(data: TabularData) -> dict[str, float]:
    """Per categorical column: the percentage of test rows whose per-split (test-only) code differs from the
    train-fitted code, counting every row whose value training never saw (the shared encoder's code 0)."""
    shared, own = data.test.inputs[1].cpu(), test_only_codes(data).cpu()
    return {name: 100.0 * float((shared[:, i] != own[:, i]).float().mean())
            for i, name in enumerate(data.categorical_names)}


def one_hot_features(numeric: torch.Tensor, categorical: torch.Tensor, cardinalities: Sequence[int]) -> torch.Tensor:
    """One dense float matrix: the numeric columns followed by a one-hot block per categorical column."""
    blocks = [numeric] + [nn.functional.one_hot(categorical[:, i], c).to(numeric.dtype)
                          for i, c in enumerate(cardinalities)]
    return torch.cat(blocks, dim=1)


def layer_activations(
    model: nn.Module, inputs: Tensors, layer: str | nn.Module, capture: str = "output", batch_size: int = 4096,
) -> torch.Tensor:
    """Activations of one layer (by name, e.g. "deep" or "output", or the module) for all rows, via a forward hook.

    capture="output" returns what the layer produces; capture="input" what it receives (for the "output" layer
    that is the penultimate representation). Runs in eval mode without gradients; the hook is always removed.
    """
    if capture not in ("output", "input"):
        raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
    if isinstance(layer, str):
        names = dict(model.named_modules())
        if layer not in names:
            raise KeyError(f"model has no layer {layer!r}; its named layers are {[n for n in names if n]}")
        module = names[layer]
    else:
        module = layer
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        captured.append((args[0] if capture == "input" else output).detach())

    handle = module.register_forward_hook(hook)
    try:
        predict(model, inputs, batch_size)  # batched, eval mode, no gradients, on the model's device
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"layer {layer!r} was never called by the model's forward pass")
    rows = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
    return torch.cat(captured).reshape(rows, -1)


def project_2d(features: torch.Tensor | np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """A 2-D embedding [N, 2] of `features` with "pca", "tsne" or "umap" (seeded)."""
    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    x = x.astype(np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
    if method == "umap":
        import warnings

        import umap
        threads = torch.get_num_threads()  # umap's numba start-up resets torch's CPU thread count: keep ours
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # umap warns that a fixed random_state disables parallelism
                reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1))
                return reducer.fit_transform(x)
        finally:
            torch.set_num_threads(threads)
    raise ValueError(f"method must be one of {PROJECTION_METHODS}, got {method!r}")


def plot_projections(
    features: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
    methods: Sequence[str] = PROJECTION_METHODS, seed: int = 0, class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """One panel per projection method, points coloured by class."""
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    fig, axes = plt.subplots(1, len(methods), figsize=(4.6 * len(methods), 4.2), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, method in zip(axes[0], methods):
        points = project_2d(features, method, seed)
        for k in np.unique(labels):
            mask = labels == k
            name = class_names[int(k)] if class_names is not None else str(k)
            ax.scatter(points[mask, 0], points[mask, 1], s=5, alpha=0.6, color=cmap(int(k) % 10), label=name)
        ax.set_title(method.upper() if method != "tsne" else "t-SNE")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][-1].legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def classification_scores(model: nn.Module, split: TensorData, class_names: Sequence[str]) -> dict:
    """Accuracy (%), macro-F1 (the unweighted mean of per-class F1, so a rare class counts as much as a common
    one) and the classes `model` never predicts on `split`."""
    from sklearn.metrics import f1_score

    predicted = predict(model, split.inputs).argmax(1).cpu().numpy()
    truth = split.labels.cpu().numpy()
    labels = list(range(len(class_names)))
    return {"accuracy": 100.0 * float((predicted == truth).mean()),
            "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
            "never_predicted": [class_names[k] for k in labels if not (predicted == k).any()]}
