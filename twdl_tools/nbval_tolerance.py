"""Tolerance-aware comparison of recorded metrics, and a pytest plugin that adds it to nbval's cell checks.

nbval (run with `--nbval-lax`) re-executes each committed reference notebook cell by cell and fails on
errors. This plugin then compares, cell by cell, the values recorded with `twdl.record` (MIME
`application/vnd.twdl.record+json`) in the fresh run against the committed outputs, within the
tolerances of `TOLERANCES` (first matching name pattern wins). Load it with
`-p twdl_tools.nbval_tolerance`: loading it also sets the environment the references were made in
(`twdl_tools.references.reference_environment`: offline, CPU only, the data mirror, batch flag) and skips the
student notebooks (the shared executor runs those instead).
"""
from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest

from twdl_helpers.records import records_in_outputs

__all__ = ["Tolerance", "TOLERANCES", "tolerance_for", "compare_values", "compare_records"]



@dataclass(frozen=True)
class Tolerance:
    """How close a fresh value must be to the reference: |fresh - ref| <= absolute + relative * |ref|."""

    pattern: str
    absolute: float = 0.0
    relative: float = 0.0
    skip: bool = False
    why: str = ""

    def allows(self, reference: float, fresh: float) -> bool:
        """True when `fresh` is within this tolerance of `reference`."""
        if math.isnan(reference) or math.isnan(fresh):
            return math.isnan(reference) and math.isnan(fresh)
        return abs(fresh - reference) <= self.absolute + self.relative * abs(reference) + 1e-12

    def describe(self) -> str:
        """Short text such as '±2 abs' or '±5 %'."""
        if self.skip:
            return "not compared"
        parts = ([f"±{self.absolute:g} abs"] if self.absolute else []) + ([f"±{self.relative:.0%}"] if self.relative else [])
        return " + ".join(parts) or "exact"


# One table for every notebook: record names are matched against these patterns in order (fnmatch).
TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance("*seconds*", skip=True, why="wall-clock timings depend on the machine"),
    Tolerance("*time*", skip=True, why="wall-clock timings depend on the machine"),
    Tolerance("*per_second*", skip=True, why="throughput depends on the machine"),
    Tolerance("*memory*", skip=True, why="memory use depends on the machine and allocator"),
    Tolerance("*speedup*", skip=True, why="ratios of timings"),
    Tolerance("*accuracy*", absolute=2.0, why="accuracy in percent: ±2 points"),
    Tolerance("*error*", absolute=2.0, why="error rate in percent: ±2 points"),
    Tolerance("*perplexity*", relative=0.05, why="perplexity: ±5 %"),
    Tolerance("*loss*", absolute=0.02, relative=0.05, why="losses: ±5 % (+0.02 near zero)"),
    Tolerance("*norm*", relative=0.05, why="parameter norms: ±5 %"),
    Tolerance("*epoch*", absolute=3, why="best epoch of early stopping can move a little"),
    Tolerance("*sparsity*", absolute=0.5, why="pruning sparsity in percent"),
    Tolerance("*", absolute=1e-6, relative=0.05, why="any other number: ±5 %"),
)


def tolerance_for(name: str, table: Iterable[Tolerance] = TOLERANCES) -> Tolerance:
    """Return the first tolerance whose pattern matches the record name."""
    for tolerance in table:
        if fnmatch.fnmatchcase(name, tolerance.pattern):
            return tolerance
    return Tolerance("<exact>")


def compare_values(name: str, reference: Any, fresh: Any, tolerance: Tolerance | None = None) -> list[str]:
    """Return the problems found comparing one recorded value (numbers within tolerance, the rest exactly)."""
    tolerance = tolerance or tolerance_for(name)
    if tolerance.skip:
        return []
    is_number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if is_number(reference) and is_number(fresh):
        if tolerance.allows(float(reference), float(fresh)):
            return []
        return [f"{name}: reference {reference!r}, fresh run {fresh!r} (allowed {tolerance.describe()}: {tolerance.why})"]
    if isinstance(reference, list) and isinstance(fresh, list):
        if len(reference) != len(fresh):
            return [f"{name}: reference has {len(reference)} values, fresh run {len(fresh)}"]
        return [p for i, (r, f) in enumerate(zip(reference, fresh)) for p in compare_values(f"{name}[{i}]", r, f, tolerance)]
    if isinstance(reference, dict) and isinstance(fresh, dict):
        if set(reference) != set(fresh):
            return [f"{name}: keys differ (reference {sorted(reference)}, fresh run {sorted(fresh)})"]
        return [p for k in reference for p in compare_values(f"{name}.{k}", reference[k], fresh[k], tolerance)]
    return [] if reference == fresh else [f"{name}: reference {reference!r}, fresh run {fresh!r} (must be equal)"]


def compare_records(reference: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Return every difference beyond tolerance, plus names recorded on one side only."""
    problems = [f"{n}: recorded in the reference but not in the fresh run" for n in reference if n not in fresh]
    problems += [f"{n}: recorded in the fresh run but not in the reference (run `make references`)"
                 for n in fresh if n not in reference]
    for name in reference:
        if name in fresh:
            problems += compare_values(name, reference[name], fresh[name])
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After nbval executed a cell, compare its fresh records with the committed reference's."""
    result = yield
    fresh_outputs = getattr(item, "test_outputs", None)
    cell = getattr(item, "cell", None)
    if fresh_outputs is not None and cell is not None and cell.get("execution_count") is not None:
        problems = compare_records(records_in_outputs(cell.get("outputs", [])), records_in_outputs(fresh_outputs))
        if problems:
            pytest.fail("recorded metrics differ from the committed reference beyond tolerance:\n  "
                        + "\n  ".join(problems) + "\nIf the change is intended, run `make references` and commit.",
                        pytrace=False)
    return result


def pytest_configure(config: pytest.Config) -> None:
    """The environment the references were made in: offline, the data mirror, CPU only, inline figures."""
    from .repo import batch_environment, find_root

    try:
        root = find_root()
    except FileNotFoundError:  # notebooks outside the repository (tests): TWDL_DATA_MIRROR comes from the caller
        root = None
    environment = batch_environment(root, offline=True, cpu_only=True, figures=True)
    os.environ.clear()
    os.environ.update(environment)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip notebooks/student/: the student versions are run by papermill, not compared by nbval."""
    return True if collection_path.name == "student" and collection_path.parent.name == "notebooks" else None
