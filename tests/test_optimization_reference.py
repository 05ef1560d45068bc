"""Module 2's committed smoke reference teaches from healthy runs: the homework example's four runs learn (at least
50 % test accuracy, chance is 10 %), every compared arm trained normally, and residual connections are compared
with their plain twin over at least three seeds with a verdict."""
from pathlib import Path

from twdl_helpers.evidence import HEALTH_FAILED, MIN_SEEDS
from twdl_helpers.records import read_records

REFERENCE = Path(__file__).resolve().parents[1] / "notebooks" / "02_optimization.ipynb"
HOMEWORK_RUNS = {"sgd", "momentum", "adam", "momentum_bn"}


def _records() -> dict:
    records = read_records(REFERENCE)
    assert records, "notebooks/02_optimization.ipynb has no recorded outputs: run `twdl execute-references 02`"
    return records


def test_the_homework_example_runs_learn_well_above_chance():
    records = _records()
    accuracy = {name.split(".")[2]: value for name, value in records.items()
                if name.startswith("m2.homework.") and name.endswith(".test_accuracy")}
    assert set(accuracy) == HOMEWORK_RUNS
    low = {run: value for run, value in accuracy.items() if value < 50}
    assert not low, f"homework runs below 50 % test accuracy in the reference: {low}"
    health = {run: records.get(f"m2.homework.health.{run}") for run in HOMEWORK_RUNS}
    assert all(value == "trained normally" for value in health.values()), health


def test_every_compared_arm_trained_normally():
    records = _records()
    health = {name: value for name, value in records.items() if ".health." in name}
    for section in ("m2.bn", "m2.optimizer", "m2.schedule", "m2.residual"):
        assert any(name.startswith(section + ".health.") for name in health), f"no health records for {section}"
    failed = {name: value for name, value in health.items() if str(value).startswith(HEALTH_FAILED)}
    assert not failed, f"runs flagged failed in the reference: {failed}"


def test_residual_connections_are_compared_with_their_plain_twin_over_seeds():
    records = _records()
    assert len(records["m2.seeds"]) >= MIN_SEEDS
    assert records["m2.residual.depth"] >= 8
    assert records["m2.residual.residual.verdict"] in ("helps", "hurts", "within noise")
