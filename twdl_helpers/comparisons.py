"""Module 2's comparisons over seeds: train each arm (a model and its optimiser settings) once per seed, check each
run's health, summarise every arm by its mean and spread, and give each arm a paired verdict against its baseline
(evidence.py's tests; the seeds pair the arms: same seed, same initial weights where the models agree, same batches)."""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
from torch import nn

from .evidence import Health, Verdict, describe_verdict, paired_verdict, health_over_seeds, record_health, verdicts_note
from .optim import make_optimizer, make_schedule
from .records import record
from .training import History, train

__all__ = ["train_over_seeds", "arm_health", "summarize_arms", "arm_verdicts", "verdicts_markdown",
           "record_comparison"]


def train_over_seeds(build: Callable[[int], nn.Module], data: Any, seeds: Sequence[int], *, optimizer: str,
                     lr: float, epochs: int, batch_size: int = 64, schedule: str | None = None,
                     label: str = "") -> list[History]:
    """Train `build(seed)` on `data.train` once per seed (optimiser `optimizer` at `lr`, optional epoch schedule),
    measuring `data.test` after every epoch; one History per seed, in the order of `seeds`."""
    runs = []
    for seed in seeds:
        model = build(seed)
        opt = make_optimizer(optimizer, model.parameters(), lr=lr)
        scheduler = make_schedule(schedule, opt, epochs) if schedule else None
        runs.append(train(model, data.train, epochs=epochs, batch_size=batch_size, optimizer=opt,
                          scheduler=scheduler, eval_data={"test": data.test}, seed=seed,
                          progress=f"{label} seed {seed}".strip()))
    return runs


def arm_health(runs: Sequence[History], seeds: Sequence[int], *, n_classes: int, n_images: int,
               split: str = "test") -> Health:
    """One arm's health over its seeds: healthy when every run is (evidence.run_health); else each failed run's
    problems, prefixed with its seed."""
    return health_over_seeds(((seed, run, None) for seed, run in zip(seeds, runs)), n_classes=n_classes,
                             n_images=n_images, split=split)


def _finals(runs: Sequence[History], metric: str) -> list[float]:
    return [run.last[metric] for run in runs]


def summarize_arms(arms: Mapping[str, Sequence[History]], health: Mapping[str, Health],
                   metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per arm: the final `metric`'s mean, standard deviation, lowest and highest over seeds, the number of
    seeds and the arm's health in words."""
    rows = []
    for name, runs in arms.items():
        values = _finals(runs, metric)
        rows.append({"arm": name, "mean": statistics.fmean(values),
                     "SD": statistics.stdev(values) if len(values) > 1 else math.nan,
                     "lowest": min(values), "highest": max(values), "seeds": len(values),
                     "health": str(health[name])})
    table = pd.DataFrame(rows).set_index("arm")
    table.attrs["metric"] = metric
    return table


def arm_verdicts(arms: Mapping[str, Sequence[History]], pairs: Sequence[tuple[str, str]],
                 health: Mapping[str, Health], metric: str = "test_accuracy") -> dict[str, Verdict]:
    """Paired verdict (over seeds) of each (treatment, baseline) pair on the final `metric`; no verdict where
    either arm failed (named in the verdict)."""
    verdicts = {}
    for treatment, baseline in pairs:
        failed = [name for name in (treatment, baseline) if not health[name].ok]
        verdicts[treatment] = paired_verdict(
            _finals(arms[treatment], metric), _finals(arms[baseline], metric),
            higher_is_better=not metric.endswith(("_loss", "_error")),
            failed=" and ".join(failed) + " failed to train" if failed else None)
    return verdicts


def verdicts_markdown(verdicts: Mapping[str, Verdict], baselines: Mapping[str, str],
                      unit: str = "points of test accuracy") -> str:
    """Markdown: one line per verdict (evidence.describe_verdict), the multiple-comparisons sentence, and what
    "within noise" means here."""
    lines = [describe_verdict(name, baselines[name], verdict, unit) for name, verdict in verdicts.items()]
    lines += ["", verdicts_note(verdicts)]
    if any(v.verdict == "within noise" for v in verdicts.values()):
        lines.append("*Within noise* means that these seeds, images and epochs are too few to tell the difference "
                     "from seed-to-seed variation: it is not evidence that the idea has no effect, nor that it has "
                     "one.")
    return "\n".join(lines)


def record_comparison(prefix: str, arms: Mapping[str, Sequence[History]], health: Mapping[str, Health],
                      verdicts: Mapping[str, Verdict], metric: str = "test_accuracy") -> None:
    """Record `<prefix>.<arm>.<metric>` (mean over seeds), `<prefix>.health.<arm>` and `<prefix>.<arm>.verdict`."""
    for name, runs in arms.items():
        record(f"{prefix}.{name}.{metric}", round(statistics.fmean(_finals(runs, metric)), 4))
        record_health(prefix, name, health[name], show=True)
        if name in verdicts:
            record(f"{prefix}.{name}.verdict", verdicts[name].verdict)
