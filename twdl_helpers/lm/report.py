"""Module 4's sentences and tables rendered from its runs: the run's settings, each method's health, the memory
counted by kind beside the measured, and what a choice on the tuning blocks can and cannot say."""
from __future__ import annotations

import pandas as pd

from ..evidence import Health, describe_verdict, paired_verdict
from .load import describe_pretraining
from .meter import MEMORY_PARTS
from .tuning import Choice, RunSettings

__all__ = ["describe_run", "describe_methods", "memory_table", "describe_memory", "describe_choice",
           "describe_regularizers"]


def describe_run(profile: str, model_ref: str, settings: RunSettings, block_size: int) -> str:
    """What the model learned from, and this run's model, budget, batch, rate and seed."""
    text = (f"{describe_pretraining(model_ref)}\n\nThis run ({profile} profile): `{model_ref}`, {settings.steps} "
            f"optimiser steps of batch {settings.batch_size} × {block_size} tokens for each method, learning rate "
            f"{settings.learning_rate:g} for the adapters (a tenth of it for the last blocks and full fine-tuning), "
            f"seed {settings.seed}.")
    if model_ref == "bundled":
        text += (" The bundled model is small and its pretraining text is far from WikiText's, so smoke uses a "
                 "larger rate and fewer steps than the full profile's 125M-parameter model: a quick run of the same "
                 "code, not a miniature of the full run's numbers.")
    return text


def describe_methods(comparison: pd.DataFrame, before: float, health: dict[str, Health], steps: int) -> str:
    """Each method's held-out perplexity against the model's before training, naming any run that failed."""
    failed = [f"{method} ({h})" for method, h in health.items() if not h.ok]
    after = ", ".join(f"{m} {comparison.loc[m, 'perplexity']:.1f}" for m in comparison.index)
    verdict = ("**Runs that failed** (not used as a comparison): " + "; ".join(failed) + "." if failed else
               "Every run trained (finite losses, held-out perplexity below the model's before training).")
    return (f"Held-out perplexity before training: {before:.1f}. After {steps} steps: {after}. {verdict} "
            "One seed each: the order of close perplexities can change with the seed.")


def memory_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The memory counted by kind (MB, from `finetune`'s counted_* columns), bytes per parameter, and the
    measured peak and increase beside them; one row per method."""
    parts = [*MEMORY_PARTS, "total_mb"]
    table = comparison[[f"counted_{p}" for p in parts]].set_axis(parts, axis=1)
    table["bytes_per_trainable_param"] = comparison["counted_trainable_bytes_per_param"]
    frozen = comparison["counted_frozen_bytes_per_param"].round(3).astype(object)
    table["bytes_per_frozen_param"] = frozen.where(table["frozen_weights_mb"] > 0, "— (none frozen)")
    table["measured_peak_mb"] = comparison["peak_memory_mb"]
    table["measured_increase_mb"] = comparison["memory_increase_mb"]
    return table


def describe_memory(comparison: pd.DataFrame, batch_size: int, block_size: int) -> str:
    """Full fine-tuning's gradients + optimiser state against LoRA's (counted), activations, and what the measured
    columns are on this device."""
    table = memory_table(comparison)
    grad_opt = table["gradients_mb"] + table["optimizer_state_mb"]
    measure = str(comparison["memory_measure"].iloc[0])
    seen = (": on this CPU they include everything the process holds, so they are not the lesson's numbers."
            if measure.startswith("CPU") else ": tensors on the GPU only, near the counted total.")
    return (f"Counted: full fine-tuning's gradients and optimiser state take {grad_opt['full']:.2f} MB, LoRA's "
            f"{grad_opt['lora']:.3f} MB ({grad_opt['full'] / grad_opt['lora']:.0f} times less: "
            f"{table.loc['lora', 'bytes_per_trainable_param']:.0f} bytes for each of "
            f"{comparison.loc['lora', 'trainable_params']:,} trainable parameters instead of "
            f"{comparison.loc['full', 'trainable_params']:,}). Activations for one batch of {batch_size} × "
            f"{block_size} tokens: {table.loc['full', 'activations_mb']:.1f} MB (full), "
            f"{table.loc['lora', 'activations_mb']:.1f} MB (LoRA). The measured columns are **{measure}**{seen}")


def _edge_note(choice: Choice, grid: dict[str, list], settings: RunSettings) -> str:
    """Which of the chosen values lie at the edge of the values tried (a value beyond might do better)."""
    changed = [n for n in grid if getattr(choice.settings, n) != getattr(settings, n)] or list(grid)
    edges = []
    for name in changed:
        values = sorted({*grid[name], getattr(settings, name)})
        if getattr(choice.settings, name) in (values[0], values[-1]):
            edges.append(f"{name} = {getattr(choice.settings, name):g}")
    return ("at the edge of the values tried: " + ", ".join(edges) + "; a value beyond might do better" if edges
            else "inside the values tried")


def describe_choice(choice: Choice, grid: dict[str, list], settings: RunSettings) -> str:
    """The setting chosen on the tuning blocks, against the defaults, its held-out perplexity, and why one seed
    gives no verdict."""
    table, chosen = choice.table, choice.chosen
    defaults = table.loc["defaults", "tuning_perplexity"]
    if chosen == "defaults":
        against = f"no change scored below the defaults' {defaults:.1f}"
    else:
        verdict = paired_verdict([table.loc[chosen, "tuning_perplexity"]], [defaults], higher_is_better=False)
        against = (f"tuning perplexity {table.loc[chosen, 'tuning_perplexity']:.1f} against the defaults' "
                   f"{defaults:.1f} ({verdict.verdict})")
    return (f"{len(table)} runs of {settings.steps} steps (batch {settings.batch_size}, seed {settings.seed}). "
            f"Chosen on the tuning blocks: **{chosen}** ({_edge_note(choice, grid, settings)}); {against}. Its "
            f"perplexity on the held-out blocks, which no choice saw: **{choice.held_out_perplexity:.1f}**. One "
            "seed cannot separate settings whose perplexities differ by less than what another seed would change, "
            "so this choice is the best *of this run*, not evidence that one setting is better.")


def describe_regularizers(choice: Choice, settings: RunSettings) -> str:
    """Each regulariser against none on the tuning blocks (no verdict from fewer than 3 seeds), and the best one's
    held-out perplexity."""
    table = choice.table
    none = table.loc["none", "tuning_perplexity"]
    lines = [describe_verdict(name, "none", paired_verdict([row["tuning_perplexity"]], [none],
                                                           higher_is_better=False), unit="tuning perplexity")
             for name, row in table.drop(index="none").iterrows()]
    gap = float((table["final_train_loss"] - table["final_train_loss"].min()).max())
    return (f"Lowest tuning perplexity: **{choice.chosen}**; its held-out perplexity is "
            f"**{choice.held_out_perplexity:.1f}**. Against no regulariser (seed {settings.seed} only):\n\n"
            + "\n".join(lines) + f"\n\nWith one seed and {settings.steps} steps no regulariser can be told apart "
            "from none: a verdict needs the same comparison over at least 3 seeds. Regularisers act against "
            "over-fitting, and a run this short has barely fitted the training blocks (its final training losses "
            f"differ by at most {gap:.2f}).")
