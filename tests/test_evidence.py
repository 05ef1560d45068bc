"""Run health and verdicts over seeds (twdl_helpers/evidence.py)."""
import math

import pytest
from scipy import stats

import twdl_helpers as twdl
from twdl_helpers.training import History


def _history(val_acc, losses=None, norms=None):
    rows = []
    for i, acc in enumerate(val_acc):
        row = {"epoch": i + 1, "val_accuracy": acc, "val_loss": (losses or [1.0] * len(val_acc))[i],
               "running_loss": (losses or [1.0] * len(val_acc))[i]}
        if norms:
            row["param_norm"] = norms[i]
        rows.append(row)
    return History(rows)


def test_a_healthy_run_is_ok():
    health = twdl.run_health(_history([40, 55, 60], norms=[10, 11, 12]), n_classes=3, n_images=500)
    assert health.ok and str(health) == "trained normally"


def test_a_diverged_run_names_the_epoch_and_the_exploded_weights():
    health = twdl.run_health(_history([50, 40, 33], losses=[1.0, 5.0, math.nan], norms=[10, 1e6, math.nan]),
                             n_classes=3, n_images=500)
    assert not health.ok
    text = str(health)
    assert "NaN or infinite (epoch 3)" in text and "weights" in text and "chance" in text


def test_chance_band_follows_the_number_of_images():
    # 3 classes: chance 33.3 %, two binomial standard errors on 300 images = 5.4 points
    assert twdl.chance_margin(3, 300) == pytest.approx(200 * math.sqrt(2 / 9 / 300))
    assert twdl.near_chance(38.0, 3, 300) and not twdl.near_chance(39.0, 3, 300)
    assert not twdl.run_health(_history([38.0]), n_classes=3, n_images=300).ok
    assert twdl.run_health(_history([38.0]), n_classes=3, n_images=5000).ok


def test_final_accuracy_overrides_the_last_epoch():
    history = _history([60, 33])
    assert twdl.run_health(history, n_classes=3, n_images=1000, final_accuracy=60).ok
    assert not twdl.run_health(history, n_classes=3, n_images=1000).ok


def test_paired_verdict_uses_the_t_critical_value_of_its_seeds():
    base = [50.0, 52.0, 48.0]
    treat = [53.0, 54.0, 52.0]  # differences 3, 2, 4: mean 3, sd 1, se 0.577, t 5.2 > 4.30
    v = twdl.paired_verdict(treat, base)
    assert v.change == pytest.approx(3.0) and v.standard_error == pytest.approx(1 / math.sqrt(3))
    assert v.critical == pytest.approx(stats.t.ppf(0.975, 2))
    assert v.verdict == "helps" and "paired t-test" in v.test and "2 degrees" in v.test
    assert v.p_value == pytest.approx(stats.ttest_rel(treat, base).pvalue)
    # differences 3, 0, 6: mean 3, se 1.73, t 1.73 < 4.30
    assert twdl.paired_verdict([53.0, 52.0, 54.0], base).verdict == "within noise"
    assert twdl.paired_verdict(base, treat).verdict == "hurts"


def test_no_verdict_from_two_seeds_or_a_failed_baseline():
    v = twdl.paired_verdict([60.0, 61.0], [40.0, 41.0])
    assert v.verdict.startswith("too few seeds") and not v.decided
    v = twdl.paired_verdict([60.0, 61.0, 62.0], [33.0, 33.0, 33.0], failed="the baseline diverged")
    assert v.verdict == "no verdict: the baseline diverged"
    assert "no verdict" in twdl.describe_verdict("l2", "none", v)


def test_lower_is_better_flips_the_words():
    v = twdl.paired_verdict([10.0, 11.0, 10.5], [20.0, 21.0, 20.5], higher_is_better=False)
    assert v.verdict == "helps"


def test_welch_matches_scipy():
    a, b = [55.0, 57.0, 53.0, 56.0, 54.0], [50.0, 52.0, 47.0]
    v = twdl.welch_verdict(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert v.t == pytest.approx(ref.statistic) and v.p_value == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError, match="welch_verdict"):
        twdl.paired_verdict(a, b)


def test_verdicts_note_counts_tested_comparisons():
    vs = {"a": twdl.paired_verdict([53.0, 54.0, 52.0], [50.0, 52.0, 48.0]),
          "b": twdl.paired_verdict([50.0, 52.0, 48.5], [50.0, 52.0, 48.0]),
          "c": twdl.paired_verdict([1.0, 2.0], [0.0, 0.0])}
    note = twdl.verdicts_note(vs)
    assert note.startswith("2 comparisons were tested at the 5 % level and 1 gave a verdict")
    assert "about 0.1 of them" in note


def test_record_health_marks_expected_failures(monkeypatch):
    seen = {}
    monkeypatch.setattr("twdl_helpers.evidence.record", lambda name, value, show=True: seen.__setitem__(name, value))
    bad = twdl.Health(False, ("val accuracy ended at 33.0 %",))
    twdl.record_health("m3", "random labels", bad, expected_failure=True)
    twdl.record_health("m3", "none", bad)
    twdl.record_health("m3", "l2", twdl.Health(True))
    assert seen == {"m3.health.random_labels": "failed, as this section expects: val accuracy ended at 33.0 %",
                    "m3.health.none": "failed: val accuracy ended at 33.0 %",
                    "m3.health.l2": "trained normally"}
    assert seen["m3.health.none"].startswith(twdl.HEALTH_FAILED)
    assert not seen["m3.health.random_labels"].startswith(twdl.HEALTH_FAILED)


def test_a_language_model_run_failed_when_its_perplexity_is_not_finite_or_did_not_fall():
    from twdl_helpers.evidence import perplexity_health

    assert perplexity_health(4.0, 300.0, before=600.0).ok
    assert "not below" in str(perplexity_health(4.0, 700.0, before=600.0))
    assert str(perplexity_health(float("nan"), float("inf"))).startswith("failed: its training loss ended at nan")


def test_verdicts_note_says_one_comparison_in_the_singular():
    note = twdl.verdicts_note([twdl.paired_verdict([53.0, 54.0, 52.0], [50.0, 52.0, 48.0])])
    assert note.startswith("1 comparison was tested")


def test_record_health_says_why_a_failure_was_expected(monkeypatch):
    seen = {}
    monkeypatch.setattr("twdl_helpers.evidence.record", lambda name, value, show=True: seen.__setitem__(name, value))
    twdl.record_health("m3.lambda_grid", "l2 0.1", twdl.Health(False, ("at chance",)),
                       expected_failure="a grid candidate, not a baseline")
    assert seen == {"m3.lambda_grid.health.l2_0.1": "failed, a grid candidate, not a baseline: at chance"}


def test_health_over_seeds_names_each_failed_seed_and_uses_the_final_accuracy():
    runs = [(0, _history([55.0]), None), (1, _history([60.0, 33.0]), None), (2, _history([60.0, 33.0]), 58.0)]
    health = twdl.health_over_seeds(runs, n_classes=3, n_images=1000)
    assert not health.ok and len(health.problems) == 1 and health.problems[0].startswith("seed 1: val accuracy")
    assert twdl.health_over_seeds(runs[:1], n_classes=3, n_images=1000).ok
