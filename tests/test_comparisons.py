"""Module 2's comparisons over seeds: one run per seed, health per arm, paired verdicts, mean ± SD plots."""
import math

import matplotlib
import pytest
import torch

import twdl_helpers as twdl

matplotlib.use("Agg")


class Digits:
    """A tiny learnable stand-in for MNIST: the class sets the mean of the image."""
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (200,))
    images = torch.randn(200, 1, 28, 28) * 0.3 + labels.view(-1, 1, 1, 1).float() / 5
    train = twdl.TensorData(images[:150], labels[:150])
    test = twdl.TensorData(images[150:], labels[150:])


def _history(accuracies, loss=1.0):
    return twdl.History([{"epoch": i + 1, "train_loss": loss, "test_loss": loss, "test_accuracy": a}
                         for i, a in enumerate(accuracies)])


def test_train_over_seeds_trains_one_deterministic_run_per_seed():
    build = lambda s: twdl.ShallowNet(seed=s)  # noqa: E731
    runs = twdl.train_over_seeds(build, Digits, [0, 1, 2], optimizer="adam", lr=1e-3, epochs=2, batch_size=32,
                                 schedule="linear")
    again = twdl.train_over_seeds(build, Digits, [0], optimizer="adam", lr=1e-3, epochs=2, batch_size=32,
                                  schedule="linear")
    assert len(runs) == 3 and all(len(run) == 2 for run in runs)
    assert runs[0]["test_accuracy"] == again[0]["test_accuracy"]
    assert runs[0]["lr"][1] == pytest.approx(0.5e-3)  # the schedule ran
    assert runs[0]["test_accuracy"] != runs[1]["test_accuracy"]


def test_an_arm_fails_when_any_seed_fails_and_then_gives_no_verdict():
    healthy = [_history([60.0 + s]) for s in range(3)]
    one_failed = [_history([70.0]), _history([10.0]), _history([72.0])]
    health = {"good": twdl.arm_health(healthy, [0, 1, 2], n_classes=10, n_images=1000),
              "bad": twdl.arm_health(one_failed, [0, 1, 2], n_classes=10, n_images=1000)}
    assert health["good"].ok and not health["bad"].ok
    assert health["bad"].problems[0].startswith("seed 1: test accuracy ended at 10.0 %")
    verdicts = twdl.arm_verdicts({"good": healthy, "bad": one_failed}, [("bad", "good")], health)
    assert verdicts["bad"].verdict == "no verdict: bad failed to train"
    table = twdl.summarize_arms({"good": healthy}, health)
    assert table.loc["good", "mean"] == pytest.approx(61.0) and table.loc["good", "SD"] == pytest.approx(1.0)
    assert table.loc["good", "health"] == "trained normally"


def test_paired_verdicts_and_their_text():
    base = [_history([80.0 + d]) for d in (0.0, 1.0, -1.0)]
    better = [_history([85.0 + d]) for d in (0.1, 1.2, -0.9)]
    same = [_history([80.0 + d]) for d in (0.5, 0.2, -0.4)]
    arms = {"base": base, "better": better, "same": same}
    health = {name: twdl.arm_health(runs, [0, 1, 2], n_classes=10, n_images=1000) for name, runs in arms.items()}
    verdicts = twdl.arm_verdicts(arms, [("better", "base"), ("same", "base")], health)
    assert verdicts["better"].verdict == "helps" and verdicts["same"].verdict == "within noise"
    text = twdl.verdicts_markdown(verdicts, {"better": "base", "same": "base"})
    assert "**better** against base: +5.1 points of test accuracy" in text and "*Within noise* means" in text
    assert "2 comparisons were tested" in text


def test_plot_over_seeds_draws_one_epoch_runs_as_points_and_longer_runs_as_lines():
    one = twdl.plot_over_seeds({"a": [_history([50.0]), _history([52.0])], "b": [_history([60.0])] * 2},
                               ["test_accuracy"])
    ax = one.axes[0]
    assert all(line.get_linestyle() == "None" for line in ax.lines)  # points with error bars, no line
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert "mean ± 1 SD over 2 seeds" in one.texts[0].get_text() or "mean ± 1 SD" in ax.get_legend().get_title().get_text()
    many = twdl.plot_over_seeds({"a": [_history([50.0, 55.0])] * 3}, ["test_accuracy", "test_error"])
    assert any(line.get_linestyle() == "-" for line in many.axes[0].lines)
    assert math.isclose(many.axes[1].lines[0].get_ydata()[1], 45.0)
