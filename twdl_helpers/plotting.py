"""Plots shared by every module: learning curves from History objects, and saving figures safely."""
from __future__ import annotations

from pathlib import Path
import statistics
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from .files import atomic_path
from .training import History, TensorData

__all__ = ["plot_histories", "plot_over_seeds", "save_figure", "show_images"]

LABELS = {
    "train_loss": "train loss (eval mode, end of epoch)", "val_loss": "validation loss", "test_loss": "test loss",
    "running_loss": "running train loss (mean over the epoch, train mode)",
    "train_accuracy": "train accuracy (%, eval mode)", "val_accuracy": "validation accuracy (%)",
    "test_accuracy": "test accuracy (%)", "param_norm": "parameter norm (Frobenius)", "lr": "learning rate",
    "train_error": "train error (%)", "test_error": "test error (%)", "val_error": "validation error (%)",
}


def _series(history: History, metric: str) -> list[float]:
    if metric.endswith("_error"):  # error (%) is 100 - accuracy, from the same history (never 100 - loss)
        return [100.0 - a for a in history[metric.replace("_error", "_accuracy")]]
    return history[metric]


def plot_histories(
    histories: dict[str, History], metrics: Sequence[str] = ("train_loss", "val_accuracy"),
    title: str | None = None, log_scale: Sequence[str] = (),
) -> plt.Figure:
    """One panel per metric, one line per labelled History, epochs on the x axis."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, history in histories.items():
            ax.plot(history["epoch"], _series(history, metric), label=label, marker="o" if len(history) < 12 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(LABELS.get(metric, metric))
        if metric in log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_over_seeds(
    arms: Mapping[str, Sequence[History]], metrics: Sequence[str] = ("train_loss", "test_accuracy"),
    title: str | None = None, log_scale: Sequence[str] = (),
) -> plt.Figure:
    """One panel per metric: each arm's mean over its seeds with error bars of one standard deviation. Runs of
    several epochs are drawn as lines over the epochs; one-epoch runs as one point per arm (no line: one epoch is
    not a curve)."""
    epochs = {len(run) for runs in arms.values() for run in runs}
    one_epoch = epochs == {1}
    seeds = sorted({len(runs) for runs in arms.values()})
    spread = f"mean ± 1 SD over {' or '.join(map(str, seeds))} seeds"
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for position, (label, runs) in enumerate(arms.items()):
            series = [_series(run, metric) for run in runs]
            length = min(len(s) for s in series)
            mean = [statistics.fmean(s[i] for s in series) for i in range(length)]
            sd = [statistics.stdev(s[i] for s in series) if len(series) > 1 else 0.0 for i in range(length)]
            if one_epoch:
                ax.errorbar([position], mean, yerr=sd, fmt="o", capsize=4, label=label)
            else:
                ax.errorbar(runs[0]["epoch"][:length], mean, yerr=sd, marker="o", capsize=3, label=label)
        if one_epoch:
            ax.set_xticks(range(len(arms)), list(arms), rotation=30, ha="right")
            ax.set_xlabel("after the one epoch")
        else:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(LABELS.get(metric, metric))
        if metric in log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small", title=f"bars: {spread}", title_fontsize="small")
    fig.suptitle(f"{title}: {spread}" if title else spread)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, output_dir: str | Path, name: str) -> Path:
    """Save `fig` as output_dir/name.png through a temporary file, so no half-written image is left behind."""
    target = Path(output_dir) / f"{name}.png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return target


def show_images(data: TensorData, classes: Sequence[str], n: int = 8, mean: float = 0.5, std: float = 0.5) -> plt.Figure:
    """The first `n` images of `data` (N, C, H, W, normalised with `mean`/`std`) titled with their class names."""
    n = min(n, len(data))
    images = data.inputs[:n].detach().cpu() * std + mean
    fig, axes = plt.subplots(1, n, figsize=(1.5 * n, 1.8), squeeze=False)
    for ax, image, label in zip(axes[0], images, data.labels[:n].tolist()):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(classes[label])
        ax.axis("off")
    return fig
