"""Figures for Module 4: method comparison bars and sweep curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["plot_method_comparison", "plot_sweep"]


def plot_method_comparison(table: pd.DataFrame, before: float | None = None,
                           columns: tuple[str, ...] = ("perplexity", "tokens_per_second", "base_weight_memory_mb",
                                                       "memory_increase_mb", "trainable_params")) -> plt.Figure:
    """One bar chart per measure, one bar per method (a table of `finetune` rows indexed by method)."""
    measure = str(table["memory_measure"].iloc[0]) if "memory_measure" in table else "memory (MB)"
    labels = {"perplexity": "held-out perplexity", "tokens_per_second": "training tokens / s",
              "base_weight_memory_mb": "model weights (MB)", "trainable_params": "trainable parameters",
              "peak_memory_mb": f"peak, {measure}", "memory_increase_mb": f"increase during the run, {measure}"}
    fig, axes = plt.subplots(1, len(columns), figsize=(3.3 * len(columns), 3.2), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.bar(table.index.astype(str), table[col], color=[f"C{i}" for i in range(len(table))])
        if col == "perplexity" and before is not None:
            ax.axhline(before, color="k", ls="--", lw=1, label="before")
            ax.legend(fontsize="small")
        ax.set_title(labels.get(col, col), fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sweep(table: pd.DataFrame, before: float | None = None) -> plt.Figure:
    """Tuning perplexity against each swept setting (a `sweep` table: one panel per setting, the defaults run at
    its default value in each, log x for the learning rate)."""
    settings = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.0), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], settings):
        part = table[table["setting"] == name]
        ax.plot(part["value"], part["tuning_perplexity"], marker="o")
        if name == "learning_rate":
            ax.set_xscale("log")
        if before is not None:
            ax.axhline(before, color="k", ls="--", lw=1)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("tuning perplexity")
    fig.tight_layout()
    return fig
