"""Regularisation experiments as data: each is a model, its optimiser settings and what regularises it; one helper
runs them over seeds, one table summarises them, and one function picks the model to test."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from .evidence import Verdict, describe_verdict, paired_verdict, health_over_seeds, record_health
from .augment import BatchAugment, course_augmentation, label_preserving_augmentation
from .optim import DEFAULT_LEARNING_RATES, make_optimizer, optimizer_name
from .records import record
from .regularization import ProximalL1, count_exact_zeros, elastic_penalty, l1_penalty, l2_penalty
from .training import BatchCounter, EarlyStopping, History, LossFn, ModelsByRun, ParameterNorm, TensorData
from .training import classification_loss
from .training import evaluate, train
from .weights import frobenius_norm

__all__ = [
    "Experiment", "Run", "run_experiments", "record_key", "run_score", "seed_scores", "tuned_epoch",
    "scores_at_epoch", "summarize_runs", "summarize_accuracies", "check_runs", "effect_over_seeds", "join_effects",
    "verdicts_of", "tuned_schedule", "describe_effects", "record_effects", "plot_effects", "select_best", "histories",
    "plot_runs", "TECHNIQUES", "technique_experiment", "compare_regularizers", "lambda_grid", "plot_lambda_grid",
    "compare_optimizers",
]


@dataclass(frozen=True)
class Experiment:
    """One regularisation run as data. `model` is called as `model(seed=s, device=device)`; SGD with `lr`,
    `momentum` and `weight_decay`; optional `penalty(model)` added to the loss, `proximal_l1` (soft-thresholding
    after each step), `augment`, early stopping with `patience` epochs on `monitor` (a column of the history:
    "val_accuracy", "val_loss", or "tune_accuracy" when `run_experiments` is given tuning images; the best
    epoch's weights are restored); `batch_size`, `train_data` and `loss_fn` override the shared ones."""

    model: Callable[..., nn.Module]
    lr: float
    epochs: int
    momentum: float = 0.9
    weight_decay: float = 0.0
    penalty: Callable[[nn.Module], torch.Tensor] | None = None
    proximal_l1: float = 0.0
    augment: BatchAugment | None = None
    patience: int | None = None
    monitor: str = "val_accuracy"
    batch_size: int | None = None
    train_data: TensorData | None = field(default=None, repr=False)
    loss_fn: LossFn | None = None

    def with_(self, **changes) -> "Experiment":
        """A copy with some settings changed."""
        return replace(self, **changes)


@dataclass
class Run:
    """One trained model: its experiment name, seed, history, and its final train/validation measurements
    (taken after training, so after early stopping restored the best weights), and on the tuning images if any."""

    name: str
    seed: int
    model: nn.Module = field(repr=False)
    history: History = field(repr=False)
    train: dict[str, float]
    val: dict[str, float]
    best_epoch: int | None = None
    tune: dict[str, float] | None = None


def run_experiments(
    experiments: dict[str, Experiment], train_data: TensorData, val_data: TensorData, *,
    seeds: Sequence[int] = (0,), batch_size: int = 64, device: torch.device | str | None = None,
    tune_data: TensorData | None = None, progress: bool = True,
) -> dict[str, list[Run]]:
    """Train every experiment once per seed (same data, epochs and seeds unless the experiment overrides them).

    Models are built on `device`; each run records its History (train loss/accuracy in eval mode each epoch,
    validation, parameter norm, steps per epoch) and the final model's train and validation loss/accuracy.
    `tune_data` are images kept for choices (the epoch early stopping keeps, lambda): measured every epoch as
    `tune_loss` / `tune_accuracy`, so that a choice made on them can be scored on the validation images.
    """
    eval_data = {"val": val_data} | ({"tune": tune_data} if tune_data is not None else {})
    results: dict[str, list[Run]] = {}
    for name, exp in experiments.items():
        data = exp.train_data if exp.train_data is not None else train_data
        results[name] = []
        for seed in seeds:
            model = exp.model(seed=seed, device=device)
            optimizer = make_optimizer("sgd", model.parameters(), exp.lr, momentum=exp.momentum,
                                       weight_decay=exp.weight_decay)
            callbacks: list = [ParameterNorm(), BatchCounter()]
            if exp.proximal_l1 > 0:
                callbacks.append(ProximalL1(exp.proximal_l1, optimizer))
            stopper = EarlyStopping(exp.monitor, patience=exp.patience) if exp.patience else None
            callbacks += [stopper] if stopper else []
            loss_fn = exp.loss_fn or classification_loss
            history = train(model, data, epochs=exp.epochs, batch_size=exp.batch_size or batch_size,
                            optimizer=optimizer, loss_fn=loss_fn, eval_data=eval_data,
                            penalty=exp.penalty, augment=exp.augment, callbacks=callbacks, seed=seed,
                            progress=f"{name} (seed {seed})" if progress else False)
            results[name].append(Run(name, seed, model, history, evaluate(model, data, loss_fn),
                                     evaluate(model, val_data), stopper.best_epoch if stopper else None,
                                     evaluate(model, tune_data) if tune_data is not None else None))
    return results


def record_key(name: str) -> str:
    """An experiment's name as one word of a record name: lower case, every other character run an underscore
    ("no dropout (same width)" -> "no_dropout_same_width", "momentum 0.9" -> "momentum_0_9")."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def run_score(run: Run, last: int = 1) -> float:
    """The validation accuracy (%) a run is judged by: the restored model's when early stopping chose an epoch (on
    the tuning images), else the mean over its `last` epochs (one epoch's score jumps by a few points)."""
    if run.best_epoch is not None or last <= 1 or len(run.history) == 0:
        return float(run.val["accuracy"])
    values = run.history["val_accuracy"][-last:]
    return float(sum(values) / len(values))


def seed_scores(results: dict[str, list[Run]], last: int = 1) -> dict[str, list[float]]:
    """{experiment: [run_score per seed]}, in the order of the seeds, for `effect_over_seeds`."""
    return {name: [run_score(r, last) for r in runs] for name, runs in results.items()}


def tuned_epoch(runs: Sequence[Run], metric: str = "tune_accuracy") -> int:
    """The one epoch (1-based) at which the mean over seeds of `metric` (default: the tuning accuracy) peaks: a
    training schedule chosen on the tuning images, the same for every seed."""
    curves = [r.history[metric] for r in runs]
    n = min(len(c) for c in curves)
    if n == 0:
        raise ValueError(f"no {metric!r} in these runs' histories: run them with tune_data=")
    means = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
    return 1 + max(range(n), key=means.__getitem__)


def scores_at_epoch(runs: Sequence[Run], epoch: int, metric: str = "val_accuracy") -> list[float]:
    """Each seed's `metric` at `epoch` (1-based) of its history: the runs as if trained for that many epochs."""
    return [float(r.history[metric][epoch - 1]) for r in runs]


def summarize_runs(results: dict[str, list[Run]], last: int = 1) -> pd.DataFrame:
    """One row per experiment: train / validation accuracy (mean and std over seeds; validation by `run_score`, so
    over the `last` epochs or at the epoch early stopping kept), the train-validation gap, the parameter norm, the
    share of weights that are exactly zero, and the number of seeds; with tuning images, their accuracy too
    (`tune_accuracy`, `tune_accuracy_std`). Train accuracy, norm and zeros are the final model's."""
    rows = []
    for name, runs in results.items():
        val = torch.tensor([run_score(r, last) for r in runs], dtype=torch.float64)
        fit = torch.tensor([r.train["accuracy"] for r in runs], dtype=torch.float64)
        row = {"experiment": name, "train_accuracy": fit.mean().item(), "val_accuracy": val.mean().item(),
               "val_accuracy_std": val.std().item() if len(runs) > 1 else 0.0,
               "gap": (fit - val).mean().item(),
               "param_norm": sum(frobenius_norm(r.model) for r in runs) / len(runs),
               "exact_zero_percent": sum(count_exact_zeros(r.model)["percent"] for r in runs) / len(runs),
               "seeds": len(runs)}
        if all(r.tune is not None for r in runs):
            tune = torch.tensor([r.tune["accuracy"] for r in runs])
            row |= {"tune_accuracy": tune.mean().item(),
                    "tune_accuracy_std": tune.std().item() if len(runs) > 1 else 0.0}
        rows.append(row)
    return pd.DataFrame(rows).set_index("experiment")


def summarize_accuracies(accuracies: dict[str, Sequence[float]]) -> pd.DataFrame:
    """One row per name from its validation accuracies, one per seed: mean, std and number of seeds, for results
    that are not `Run`s (pruning, the lottery ticket)."""
    rows = [{"experiment": name, "val_accuracy": torch.tensor(values, dtype=torch.float64).mean().item(),
             "val_accuracy_std": torch.tensor(values, dtype=torch.float64).std().item() if len(values) > 1 else 0.0,
             "seeds": len(values)} for name, values in accuracies.items()]
    return pd.DataFrame(rows).set_index("experiment")


def check_runs(results: dict[str, list[Run]], prefix: str, *, n_classes: int, n_images: int, last: int = 1,
               expected_failure: bool | str = False, show: bool = True) -> dict[str, str]:
    """Judge every run's health (`evidence.run_health`, scored by `run_score`) and record one line per experiment
    as `<prefix>.health.<experiment>` (`evidence.record_health`); return {experiment: why} for those with a failed
    seed, which `effect_over_seeds(failed=...)` turns into "no verdict". `expected_failure`: the section expects
    these runs may fail (True: random labels; a string: why, e.g. a grid candidate), and the record says so. `show`: display each record (the health in words)."""
    failed = {}
    for name, runs in results.items():
        health = health_over_seeds(((r.seed, r.history, run_score(r, last)) for r in runs),
                                   n_classes=n_classes, n_images=n_images)
        record_health(prefix, record_key(name), health, expected_failure=expected_failure, show=show)
        if not health.ok:
            failed[name] = f"{name} failed ({health.problems[0]})"
    return failed


def effect_over_seeds(scores: Mapping[str, Sequence[float]], baselines: Mapping[str, str], *,
                      failed: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Each technique's change in validation accuracy against its own baseline, with a verdict.

    `scores` maps each experiment to its per-seed validation accuracies (`seed_scores`, `scores_at_epoch`), in the
    same seed order for every arm: the arms share seeds and images, so the verdict is a paired t-test on the
    per-seed differences (`evidence.paired_verdict`: "helps" / "hurts" beyond the two-sided 5 % critical t,
    "within noise" otherwise; no verdict from fewer than 3 seeds, nor against a baseline named in `failed`).
    `baselines` maps a technique to the experiment it differs from by that technique alone. The Verdicts are in
    `table.attrs["verdicts"]`, keyed by (technique, baseline); `verdicts_of(table)` lists them row by row."""
    rows, verdicts = [], {}
    for technique, baseline in baselines.items():
        why = (failed or {}).get(baseline)
        verdict = paired_verdict(scores[technique], scores[baseline],
                                 failed=f"the baseline {why}" if why else None)
        verdicts[(technique, baseline)] = verdict
        rows.append({"technique": technique, "baseline": baseline, "val_accuracy_change": verdict.change,
                     "standard_error": verdict.standard_error, "seeds": verdict.seeds,
                     "p_value": verdict.p_value, "verdict": verdict.verdict})
    table = pd.DataFrame(rows).set_index("technique")
    table.attrs["verdicts"] = verdicts
    return table


def join_effects(*tables: pd.DataFrame) -> pd.DataFrame:
    """Several `effect_over_seeds` tables as one (rows in order, their Verdicts joined), e.g. for `plot_effects`."""
    joined = pd.concat(tables)
    joined.attrs = {"verdicts": {key: v for table in tables for key, v in table.attrs["verdicts"].items()}}
    return joined


def verdicts_of(effects: pd.DataFrame) -> list[Verdict]:
    """The Verdicts of an `effect_over_seeds` (or `join_effects`) table, one per row, in row order."""
    return [effects.attrs["verdicts"][(t, b)] for t, b in zip(effects.index, effects["baseline"])]


def tuned_schedule(results: dict[str, list[Run]]) -> tuple[str, int]:
    """The training schedule the tuning images prefer: the experiment (e.g. a momentum) and the epoch at which its
    mean tuning accuracy over seeds is highest. Score it with `scores_at_epoch(results[name], epoch)`."""
    best = {name: tuned_epoch(runs) for name, runs in results.items()}
    def mean_tuning(name: str) -> float:
        return sum(scores_at_epoch(results[name], best[name], "tune_accuracy")) / len(results[name])

    name = max(best, key=mean_tuning)
    return name, best[name]


VERDICT_COLOURS = {"helps": "tab:green", "hurts": "tab:red"}


def describe_effects(effects: pd.DataFrame) -> str:
    """The verdicts of `effect_over_seeds` as Markdown, one line per technique (`evidence.describe_verdict`: the
    change, its standard error, the verdict, the test and its p-value)."""
    return "\n".join(describe_verdict(str(t), str(row["baseline"]), verdict)
                     for verdict, (t, row) in zip(verdicts_of(effects), effects.iterrows()))


def record_effects(effects: pd.DataFrame, prefix: str) -> Any:
    """Record each technique's verdict as `<prefix>.effect.<technique>`, its change, standard error and p-value as
    `<prefix>.effect_change.<technique>`, `<prefix>.effect_standard_error.<technique>` and
    `<prefix>.effect_p_value.<technique>` (the technique as `record_key`; a missing value is recorded as None); return
    the verdicts as Markdown (`describe_effects`), which a notebook cell displays."""
    from IPython.display import Markdown

    finite = lambda x: float(x) if math.isfinite(float(x)) else None  # noqa: E731
    for technique, row in effects.iterrows():
        key = record_key(technique)
        record(f"{prefix}.effect.{key}", row["verdict"])
        record(f"{prefix}.effect_change.{key}", finite(row["val_accuracy_change"]))
        record(f"{prefix}.effect_standard_error.{key}", finite(row["standard_error"]))
        record(f"{prefix}.effect_p_value.{key}", finite(row["p_value"]))
    return Markdown(describe_effects(effects))


def plot_effects(effects: pd.DataFrame, title: str = "Each technique's effect on validation accuracy") \
        -> plt.Figure:
    """Each technique's mean paired change in validation accuracy (points) from `effect_over_seeds`, with its 95 %
    confidence interval (critical t times the paired standard error: the verdict's threshold) and a line at zero:
    a bar that crosses zero is within noise. A comparison with no verdict gets a point and no bar."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(effects) + 1.5))
    positions = range(len(effects))[::-1]  # the first technique at the top
    for y, verdict, (_, row) in zip(positions, verdicts_of(effects), effects.iterrows()):
        colour = VERDICT_COLOURS.get(row["verdict"], "tab:grey")
        half = verdict.critical * verdict.standard_error
        ax.errorbar(row["val_accuracy_change"], y, xerr=half if math.isfinite(half) else None, fmt="o",
                    color=colour, capsize=4)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(list(positions), [f"{t} (vs {b})" for t, b in zip(effects.index, effects["baseline"])])
    ax.set(xlabel="validation accuracy change (points); bars: 95 % interval of the paired t-test", title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def select_best(results: dict[str, list[Run]], on: str = "val") -> Run:
    """The run to test: the experiment with the best mean accuracy on `on` ("val", or "tune": the tuning images,
    so that the validation images stay an honest score), then its best seed on the same images."""
    if not results or not any(results.values()):
        raise ValueError("no runs to choose from: run_experiments(...) returned nothing")
    if on not in ("val", "tune"):
        raise ValueError(f"on must be 'val' or 'tune', got {on!r}")
    if on == "tune" and any(r.tune is None for runs in results.values() for r in runs):
        raise ValueError("select_best(on='tune') needs runs trained with tune_data= (their .tune is None)")
    score = lambda r: getattr(r, on)["accuracy"]  # noqa: E731
    name = max((n for n in results if results[n]), key=lambda n: sum(map(score, results[n])) / len(results[n]))
    return max(results[name], key=score)


def histories(results: dict[str, list[Run]], seed_index: int = 0) -> dict[str, History]:
    """{experiment: History} of one seed's runs, for `plot_histories`."""
    return {name: runs[seed_index].history for name, runs in results.items() if len(runs) > seed_index}


def plot_runs(results: dict[str, list[Run]], metrics: Sequence[str] = ("train_accuracy", "val_accuracy"), *,
              title: str | None = None, log_scale: Sequence[str] = ()) -> plt.Figure:
    """One panel per metric, one line per experiment: the mean over its seeds, and a band from the lowest to the
    highest seed at each epoch (runs that stopped early count up to their last epoch)."""
    from .plotting import LABELS

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, runs in results.items():
            curves = [r.history[metric] for r in runs]
            n = min(len(c) for c in curves)
            columns = [[c[i] for c in curves] for i in range(n)]
            epochs = list(range(1, n + 1))
            (line,) = ax.plot(epochs, [sum(v) / len(v) for v in columns], label=f"{name} ({len(runs)} seeds)")
            if len(runs) > 1:
                ax.fill_between(epochs, [min(v) for v in columns], [max(v) for v in columns],
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.set(xlabel="epoch", ylabel=LABELS.get(metric, metric))
        if metric in log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"{title}: mean over seeds, band from lowest to highest seed" if title else
                 "mean over seeds, band from lowest to highest seed")
    fig.tight_layout()
    return fig


TECHNIQUES = ("none", "l1", "proximal_l1", "l2", "elastic", "weight_decay", "augmentation", "course_flips",
              "early_stopping")


def technique_experiment(technique: str, model_fn: Callable[..., nn.Module], *, epochs: int, lr: float,
                         momentum: float = 0.9, lam: float = 1e-3, patience: int = 20,
                         augment: BatchAugment | None = None, monitor: str = "val_accuracy") -> Experiment:
    """The Experiment for ONE named technique (see TECHNIQUES); everything else is the unregularised run.

    "weight_decay" uses SGD's weight_decay = 2 * lam (the same update as l2 with lam); "augmentation" uses
    `augment` or the label-preserving one (`label_preserving_augmentation()`: horizontal flip and a small
    shift); "course_flips" the course's horizontal and vertical flips; "early_stopping" watches `monitor`.
    """
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
    base = Experiment(model_fn, lr, epochs, momentum)
    return {
        "none": base,
        "l1": base.with_(penalty=l1_penalty(lam)),
        "proximal_l1": base.with_(proximal_l1=lam),
        "l2": base.with_(penalty=l2_penalty(lam)),
        "elastic": base.with_(penalty=elastic_penalty(lam, lam)),
        "weight_decay": base.with_(weight_decay=2 * lam),
        "augmentation": base.with_(augment=augment or label_preserving_augmentation()),
        "course_flips": base.with_(augment=course_augmentation()),
        "early_stopping": base.with_(patience=patience, monitor=monitor),
    }[technique]


def compare_regularizers(
    model_fn: Callable[..., nn.Module], train_data: TensorData, val_data: TensorData,
    techniques: Sequence[str] = ("l2", "augmentation", "early_stopping"), *, epochs: int = 30,
    batch_size: int = 64, lr: float = 5e-3, momentum: float = 0.9, seeds: Sequence[int] = (0,),
    lam: float = 1e-3, patience: int = 20, test_data: TensorData | None = None,
    tune_data: TensorData | None = None, device: torch.device | str | None = None, progress: bool = False,
) -> pd.DataFrame:
    """Train the unregularised model and each technique on the same data, epochs and seeds; one row per technique.

    Columns as `summarize_runs`; with `test_data`, the run `select_best` picks is evaluated on it, once
    (`test_accuracy`, filled in that technique's row only). Early stopping keeps the epoch of best accuracy on
    `tune_data` when given (then its validation accuracy is an honest score), else on `val_data` (then it is
    optimistic: the epoch was chosen on the very images that score it). The trained models (one per seed) are in
    `table.attrs["models"][technique]`.
    """
    names = ["none", *[t for t in techniques if t != "none"]]
    monitor = "tune_accuracy" if tune_data is not None else "val_accuracy"
    experiments = {t: technique_experiment(t, model_fn, epochs=epochs, lr=lr, momentum=momentum, lam=lam,
                                           patience=patience, monitor=monitor) for t in names}
    results = run_experiments(experiments, train_data, val_data, seeds=seeds, batch_size=batch_size,
                              device=device, tune_data=tune_data, progress=progress)
    table = summarize_runs(results).rename_axis("technique")
    if test_data is not None:
        best = select_best(results)
        table["test_accuracy"] = float("nan")
        table.loc[best.name, "test_accuracy"] = evaluate(best.model, test_data)["accuracy"]
    table.attrs["models"] = ModelsByRun({name: [r.model for r in runs] for name, runs in results.items()})
    return table


def lambda_grid(
    base: Experiment, train_data: TensorData, val_data: TensorData, lambdas: Sequence[float], *,
    kinds: Sequence[str] = ("l2", "l1"), seeds: Sequence[int] = (0,), batch_size: int = 64,
    device: torch.device | str | None = None, tune_data: TensorData | None = None,
    unregularized: Sequence[Run] | None = None, progress: bool = False,
) -> pd.DataFrame:
    """Choose lambda by grid search: `base` with each penalty kind ("l1", "l2", "proximal_l1") at each lambda.

    Returns one row per (kind, lambda) with the mean/std validation accuracy over seeds, the train accuracy and
    the parameter norm; `table.attrs["best"]` maps each kind to its lambda with the best accuracy on the
    images named by `table.attrs["chosen_on"]`: `tune_data` when given ("tune_accuracy", so the validation
    accuracy of the choice stays an honest score), else the validation images ("val_accuracy").
    `table.attrs["at_edge"]` says, per kind, whether that lambda is the grid's smallest or largest (the best may
    lie beyond it). `table.attrs["unregularized"]` holds the unregularised run's accuracy on those same images.
    The runs are kept in `table.attrs["runs"]` ({"none": [...], "l2 0.01": [...]}, one Run per seed);
    `unregularized` reuses runs of `base` already trained on the same data with the same seeds instead of training
    them again.
    """
    make = {"l1": lambda lam: base.with_(penalty=l1_penalty(lam)), "l2": lambda lam: base.with_(penalty=l2_penalty(lam)),
            "proximal_l1": lambda lam: base.with_(proximal_l1=lam)}
    unknown = sorted(set(kinds) - set(make))
    if unknown:
        raise ValueError(f"unknown penalty kind(s) {unknown}; choose from {sorted(make)}")
    if any(lam <= 0 for lam in lambdas):
        raise ValueError(f"lambdas must be positive (the plot's x axis is logarithmic), got {list(lambdas)}")
    if unregularized is not None and [r.seed for r in unregularized] != list(seeds):
        raise ValueError(f"the unregularized runs have seeds {[r.seed for r in unregularized]}, the grid {list(seeds)}")
    if unregularized is not None and tune_data is not None and any(r.tune is None for r in unregularized):
        raise ValueError("lambda is chosen on the tuning images, but the unregularized runs were trained without "
                         "them: pass the same tune_data to run_experiments")
    experiments = {} if unregularized is not None else {"none": base.with_(penalty=None, proximal_l1=0.0)}
    experiments |= {f"{kind} {lam:g}": make[kind](lam) for kind in kinds for lam in lambdas}
    results = run_experiments(experiments, train_data, val_data, seeds=seeds, batch_size=batch_size, device=device,
                              tune_data=tune_data, progress=progress)
    results = ({"none": list(unregularized)} if unregularized is not None else {}) | results
    summary = summarize_runs(results)
    rows = [{"kind": kind, "lambda": lam, **summary.loc[f"{kind} {lam:g}"].to_dict()}
            for kind in kinds for lam in lambdas]
    table = pd.DataFrame(rows)
    chosen_on = "tune_accuracy" if tune_data is not None else "val_accuracy"
    table.attrs["chosen_on"] = chosen_on
    table.attrs["best"] = {kind: float(part.loc[part[chosen_on].idxmax(), "lambda"])
                           for kind, part in table.groupby("kind", sort=False)}
    table.attrs["at_edge"] = {kind: lam in (min(lambdas), max(lambdas)) and len(lambdas) > 1
                              for kind, lam in table.attrs["best"].items()}
    table.attrs["unregularized"] = float(summary.loc["none", chosen_on])
    table.attrs["runs"] = ModelsByRun(results)
    return table


def plot_lambda_grid(table: pd.DataFrame) -> plt.Figure:
    """The accuracy lambda is chosen on (tuning or validation images) against lambda (log axis), mean over seeds
    with bars of one standard deviation over seeds, one line per penalty kind, the chosen lambda ringed, the
    unregularised run dashed."""
    metric = table.attrs.get("chosen_on", "val_accuracy")
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for kind, part in table.groupby("kind", sort=False):
        best = table.attrs.get("best", {}).get(kind)
        edge = " (grid edge)" if table.attrs.get("at_edge", {}).get(kind) else ""
        line = ax.errorbar(part["lambda"], part[metric], yerr=part[f"{metric}_std"], marker="o", capsize=3,
                           label=f"{kind}: mean, bars 1 SD over seeds" if best is None else
                           f"{kind}: mean, bars 1 SD over seeds; chosen lambda {best:g}{edge}")
        if best is not None:
            chosen = part[part["lambda"] == best]
            ax.plot(chosen["lambda"], chosen[metric], "o", ms=14, mfc="none", color=line[0].get_color())
    if "unregularized" in table.attrs:
        ax.axhline(table.attrs["unregularized"], color="grey", ls="--", label="no penalty (mean)")
    images = "tuning" if metric == "tune_accuracy" else "validation"
    ax.set(xscale="log", xlabel="lambda (log scale)", ylabel=f"{images} accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# Module 2: the homework's comparison of optimisers on one model, batch normalisation on one of them.


def compare_optimizers(
    model_fn: Callable[[], nn.Module], data: Any, optimizers: Iterable[str] = ("sgd", "momentum", "adam"),
    bn_model_fn: Callable[[], nn.Module] | None = None, bn_optimizer: str | None = None,
    learning_rates: dict[str, float] | None = None, epochs: int = 10, batch_size: int = 64, seed: int = 0,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Train `model_fn()` once per optimiser, and `bn_model_fn()` with `bn_optimizer` (default: the first one).

    `data` has `.train` and `.test` TensorData (e.g. `load_mnist(...)`). Returns one row per run with the final
    model's train and test accuracy and loss, both measured in eval mode (dropout off, BN running statistics);
    the per-run Histories are in `table.attrs["histories"]` for plotting, the trained models in
    `table.attrs["models"]` (keyed by the `run` column).
    """
    names = [optimizer_name(name) for name in optimizers]  # an unknown name fails before anything trains
    rates = {**DEFAULT_LEARNING_RATES, **(learning_rates or {})}
    runs: list[tuple[str, str, Callable[[], nn.Module]]] = [(name, "no", model_fn) for name in names]
    if bn_model_fn is not None:
        runs.append((optimizer_name(bn_optimizer or names[0]), "yes", bn_model_fn))
    rows, histories, models = [], {}, ModelsByRun()
    for name, batch_norm, build in runs:
        torch.manual_seed(seed)  # every run (and the BN twin) starts from the same linear weights
        model = build().to(device)
        history: History = train(model, data.train, epochs=epochs, batch_size=batch_size, seed=seed,
                                 optimizer=make_optimizer(name, model.parameters(), rates[name]),
                                 eval_data={"test": data.test}, progress=f"{name} BN={batch_norm}")
        label = name + (" + BN" if batch_norm == "yes" else "")
        histories[label], models[label] = history, model
        fit, last = evaluate(model, data.train), history.last
        rows.append({"run": label, "optimizer": name, "batch_norm": batch_norm, "lr": rates[name],
                     "train_accuracy": fit["accuracy"], "test_accuracy": last["test_accuracy"],
                     "train_loss": fit["loss"], "test_loss": last["test_loss"],
                     "gap": fit["accuracy"] - last["test_accuracy"],
                     "seconds": sum(history["seconds"])})
    table = pd.DataFrame(rows)
    table.attrs["histories"] = histories
    table.attrs["models"] = models
    return table
