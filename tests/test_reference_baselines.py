"""Module 3's committed smoke reference rests on healthy baselines: the runs its lessons are measured against
trained (>= 40 % validation accuracy, chance is 33 %), no run failed outside the section that expects it, and every
verdict comes from at least three seeds."""
from pathlib import Path

from twdl_helpers.records import read_records

REFERENCE = Path(__file__).resolve().parents[1] / "notebooks" / "03_regularization.ipynb"
BASELINES = ("unregularized", "no_dropout_same_width", "no_augmentation")


def test_module_3_baselines_trained_and_no_unexpected_failure():
    records = read_records(REFERENCE)
    for name in BASELINES:
        value = records.get(f"m3.{name}.val_accuracy")
        assert value is not None, f"{REFERENCE.name} records no m3.{name}.val_accuracy: re-execute the reference"
        assert value >= 40.0, f"the {name} baseline reached only {value:.1f} % validation accuracy (needs >= 40 %)"
    health = {k: v for k, v in records.items() if ".health." in k}
    assert any(k.startswith("m3.health.") for k in health), "no run health recorded (twdl.check_runs)"
    failed = {k: v for k, v in health.items() if str(v).startswith("failed:")}
    assert not failed, f"runs flagged failed outside the sections that expect it: {failed}"
    settings = records["m3.settings"]
    assert len(settings["seeds"]) >= 3 and len(settings["more_seeds"]) >= 3
    assert records["m3.data.val_images"] >= 500
