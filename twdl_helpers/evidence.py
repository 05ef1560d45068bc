"""Evidence for a lesson: is a run healthy (no divergence, no exploded weights, above chance), and is a difference
between two arms over seeds real (a paired or Welch t-test with its critical value)? Every module's comparisons
use these, so that no verdict rests on a failed run or on fewer than three seeds."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .records import record
from .training import History

__all__ = [
    "Health", "chance_accuracy", "chance_margin", "near_chance", "run_health", "health_over_seeds", "Verdict", "paired_verdict",
    "welch_verdict", "describe_verdict", "verdicts_note", "record_health", "perplexity_health", "HEALTH_FAILED",
    "MIN_SEEDS",
]

MIN_SEEDS = 3  # no verdict from fewer seeds


@dataclass(frozen=True)
class Health:
    """Whether a run trained normally; `problems` says in words what went wrong when it did not."""

    ok: bool
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "trained normally" if self.ok else "failed: " + "; ".join(self.problems)


def chance_accuracy(n_classes: int) -> float:
    """The accuracy (%) of guessing one class among `n_classes` equally frequent ones."""
    return 100.0 / n_classes


def chance_margin(n_classes: int, n_images: int, z: float = 2.0) -> float:
    """How far (points) above chance a guesser's accuracy on `n_images` can land by luck: z binomial standard
    errors of the chance rate."""
    p = 1.0 / n_classes
    return 100.0 * z * math.sqrt(p * (1 - p) / max(n_images, 1))


def near_chance(accuracy: float, n_classes: int, n_images: int, z: float = 2.0) -> bool:
    """True when `accuracy` (%) is within `z` binomial standard errors above chance (or below it)."""
    return accuracy <= chance_accuracy(n_classes) + chance_margin(n_classes, n_images, z)


def run_health(history: History, *, n_classes: int, n_images: int, split: str = "val",
               final_accuracy: float | None = None, max_norm_growth: float = 100.0) -> Health:
    """Did this run train? It failed when a loss became NaN or infinite, when the parameter norm (the history's
    `param_norm`, if recorded) became non-finite or grew more than `max_norm_growth` times, or when its final
    `split` accuracy (or `final_accuracy`, e.g. after early stopping restored the best epoch) is within two
    binomial standard errors of chance on `n_images` images."""
    problems = []
    for column in ("running_loss", "train_loss", f"{split}_loss"):
        bad = [row["epoch"] for row in history.rows if column in row and not math.isfinite(row[column])]
        if bad:
            problems.append(f"{column.replace('_', ' ')} became NaN or infinite (epoch {int(bad[0])})")
            break
    norms = [row["param_norm"] for row in history.rows if "param_norm" in row]
    if norms:
        if not all(math.isfinite(n) for n in norms):
            problems.append("the weights became NaN or infinite")
        elif norms[0] > 0 and max(norms) > max_norm_growth * norms[0]:
            problems.append(f"the weights exploded (parameter norm {norms[0]:.3g} -> {max(norms):.3g})")
    accuracy = final_accuracy if final_accuracy is not None else history.last.get(f"{split}_accuracy")
    if accuracy is not None and (not math.isfinite(accuracy) or near_chance(accuracy, n_classes, n_images)):
        chance, margin = chance_accuracy(n_classes), chance_margin(n_classes, n_images)
        problems.append(f"{split} accuracy ended at {accuracy:.1f} %, within noise of chance "
                        f"({chance:.1f} % + {margin:.1f} points on {n_images} images)")
    return Health(not problems, tuple(problems))


HEALTH_FAILED = "failed:"  # how a failed run's health record starts (one a section expected starts otherwise)


def health_over_seeds(runs: Iterable[tuple[int, History, float | None]], *, n_classes: int, n_images: int,
                      split: str = "val") -> Health:
    """One arm's health over its seeds, from (seed, history, final accuracy or None) per run: healthy when every
    run is (`run_health`); else each failed run's problems, prefixed with its seed."""
    problems = tuple(f"seed {seed}: {problem}" for seed, history, final in runs
                     for problem in run_health(history, n_classes=n_classes, n_images=n_images, split=split,
                                               final_accuracy=final).problems)
    return Health(not problems, problems)


def perplexity_health(final_loss: float, perplexity: float, before: float | None = None) -> Health:
    """Did a language-model run train? It failed when its last training loss or its held-out perplexity is not
    finite, or when the perplexity did not fall below `before` (the same model's before any training)."""
    problems = []
    if not math.isfinite(final_loss):
        problems.append(f"its training loss ended at {final_loss}")
    if not math.isfinite(perplexity):
        problems.append(f"its held-out perplexity is {perplexity}")
    elif before is not None and perplexity >= before:
        problems.append(f"its held-out perplexity {perplexity:.4g} is not below {before:.4g} before training")
    return Health(not problems, tuple(problems))


def record_health(prefix: str, run: str, health: Health, *, expected_failure: bool | str = False,
                  show: bool = False) -> Health:
    """Record `<prefix>.health.<run>`: "trained normally", "failed: <why>", or, where the section expects the
    run may fail, "failed, <expected_failure>: <why>" (True: "as this section expects", for random labels, where
    chance is the point; a string says why, e.g. for a grid candidate that is named and never used as a
    baseline). The tests refuse a committed notebook with a "failed:" health record."""
    text = str(health)
    if not health.ok and expected_failure:
        why = "as this section expects" if expected_failure is True else str(expected_failure)
        text = f"failed, {why}: " + "; ".join(health.problems)
    record(f"{prefix}.health.{run.replace(' ', '_')}", text, show=show)
    return health


@dataclass(frozen=True)
class Verdict:
    """A comparison of two arms over seeds: mean change (treatment - baseline), its standard error, the test and
    its critical value, and the verdict in words ("helps", "hurts", "within noise", or why there is none)."""

    change: float
    standard_error: float
    seeds: int
    t: float
    critical: float
    p_value: float
    verdict: str
    test: str

    @property
    def decided(self) -> bool:
        """True when the test said "helps" or "hurts"."""
        return self.verdict in ("helps", "hurts")


def _t_critical(level: float, dof: float) -> float:
    from scipy import stats  # scipy comes with scikit-learn

    return float(stats.t.ppf(1 - level / 2, dof))


def _t_p_value(t: float, dof: float) -> float:
    from scipy import stats

    return float(2 * stats.t.sf(abs(t), dof)) if math.isfinite(t) else 0.0


def _decide(change: float, error: float, dof: float, n: int, test: str, level: float, higher_is_better: bool,
            failed: str | None) -> Verdict:
    if failed:
        return Verdict(change, error, n, math.nan, math.nan, math.nan, f"no verdict: {failed}", test)
    if n < MIN_SEEDS:
        return Verdict(change, error, n, math.nan, math.nan, math.nan,
                       f"too few seeds to tell ({n}; a verdict needs {MIN_SEEDS})", test)
    critical = _t_critical(level, dof)
    t = change / error if error > 0 else (0.0 if change == 0 else math.copysign(math.inf, change))
    better = t > critical if higher_is_better else t < -critical
    worse = t < -critical if higher_is_better else t > critical
    verdict = "helps" if better else "hurts" if worse else "within noise"
    test = f"{test}, two-sided {100 * level:g} %, {dof:.3g} degrees of freedom (critical t {critical:.2f})"
    return Verdict(change, error, n, t, critical, _t_p_value(t, dof), verdict, test)


def paired_verdict(treatment: Sequence[float], baseline: Sequence[float], *, level: float = 0.05,
                   higher_is_better: bool = True, failed: str | None = None) -> Verdict:
    """Paired t-test on per-seed differences of two arms that share seeds (and data): the verdict is "helps" when
    the mean difference is above the two-sided critical t times its standard error, "hurts" when below minus it.
    Fewer than MIN_SEEDS pairs give no verdict; so does `failed` (e.g. "the baseline diverged")."""
    if len(treatment) != len(baseline):
        raise ValueError(f"a paired test needs one treatment value per baseline value (one per seed): got "
                         f"{len(treatment)} and {len(baseline)}; use welch_verdict for arms with other seeds")
    diffs = [float(a) - float(b) for a, b in zip(treatment, baseline)]
    n = len(diffs)
    change = sum(diffs) / n if n else math.nan
    sd = math.sqrt(sum((d - change) ** 2 for d in diffs) / (n - 1)) if n > 1 else math.nan
    error = sd / math.sqrt(n) if n > 1 else math.nan
    return _decide(change, error, n - 1, n, "paired t-test over seeds", level, higher_is_better, failed)


def welch_verdict(treatment: Sequence[float], baseline: Sequence[float], *, level: float = 0.05,
                  higher_is_better: bool = True, failed: str | None = None) -> Verdict:
    """Welch's t-test for two arms that do not share seeds (unequal counts or spreads allowed), with the
    Welch-Satterthwaite degrees of freedom. Fewer than MIN_SEEDS values in either arm give no verdict."""
    a, b = [float(x) for x in treatment], [float(x) for x in baseline]
    n = min(len(a), len(b))
    change = (sum(a) / len(a) - sum(b) / len(b)) if a and b else math.nan
    if n < 2:
        return _decide(change, math.nan, 0, n, "Welch's t-test", level, higher_is_better, failed)
    va = sum((x - sum(a) / len(a)) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - sum(b) / len(b)) ** 2 for x in b) / (len(b) - 1) / len(b)
    error = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else n - 1
    return _decide(change, error, dof, n, "Welch's t-test", level, higher_is_better, failed)


def describe_verdict(name: str, baseline: str, verdict: Verdict, unit: str = "points of validation accuracy") \
        -> str:
    """One Markdown line: the change, its standard error, the verdict and the test that gave it."""
    if not verdict.decided and verdict.verdict != "within noise":
        return f"- **{name}** against {baseline}: {verdict.change:+.1f} {unit}: **{verdict.verdict}**"
    return (f"- **{name}** against {baseline}: {verdict.change:+.1f} {unit}, standard error "
            f"{verdict.standard_error:.1f} over {verdict.seeds} seeds: **{verdict.verdict}** ({verdict.test}, "
            f"p = {verdict.p_value:.2g})")


def verdicts_note(verdicts: Mapping[str, Verdict] | Sequence[Verdict], level: float = 0.05) -> str:
    """A sentence on multiple comparisons: how many verdicts were tested and how many could pass by chance alone
    if no technique had any effect."""
    tested = [v for v in (verdicts.values() if isinstance(verdicts, Mapping) else verdicts)
              if v.decided or v.verdict == "within noise"]
    decided = sum(v.decided for v in tested)
    comparisons = f"{len(tested)} comparison{'s were' if len(tested) != 1 else ' was'}"
    return (f"{comparisons} tested at the {100 * level:g} % level and {decided} gave a verdict; "
            f"if no technique had any effect, about {level * len(tested):.1f} of them would pass by chance alone.")
