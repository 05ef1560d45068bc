"""Regularisation experiments as data: one runner over seeds, one summary, one selection, the lambda grid."""
import pandas as pd
import pytest
import torch

import twdl_helpers as twdl


def faces(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return twdl.TensorData(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 3, (n,), generator=g))


def test_run_experiments_trains_each_experiment_per_seed_and_measures_the_final_model():
    train, val = faces(), faces(12, 1)
    experiments = {"plain": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=2),
                   "early": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=6, patience=1),
                   "batch 4": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1, batch_size=4)}
    results = twdl.run_experiments(experiments, train, val, seeds=[0, 1], batch_size=8, progress=False)
    assert list(results) == list(experiments) and all(len(runs) == 2 for runs in results.values())
    assert [r.seed for r in results["plain"]] == [0, 1]
    plain = results["plain"][0]
    assert len(plain.history) == 2 and plain.history.last["batches"] == 3  # 24 rows / batch 8
    assert results["batch 4"][0].history.last["batches"] == 6
    assert plain.val == twdl.evaluate(plain.model, val) and plain.train == twdl.evaluate(plain.model, train)
    early = results["early"][0]
    assert early.best_epoch is not None and early.tune is None
    # the final measurements are the RESTORED model's (the best validation ACCURACY by default), not the last epoch's
    best = early.history.best("val_accuracy")
    assert early.best_epoch == best["epoch"]
    assert early.val["accuracy"] == pytest.approx(best["val_accuracy"])
    assert early.val["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
    table = twdl.summarize_runs(results)
    assert list(table.index) == list(experiments)
    assert table.loc["plain", "val_accuracy"] == pytest.approx(sum(r.val["accuracy"] for r in results["plain"]) / 2)
    assert table.loc["plain", "gap"] == pytest.approx(table.loc["plain", "train_accuracy"] - table.loc["plain", "val_accuracy"])
    assert set(twdl.histories(results)) == set(experiments)


def test_select_best_takes_the_best_mean_then_its_best_seed():
    def run(name, seed, acc):
        return twdl.Run(name, seed, None, twdl.History(), {"accuracy": 0.0}, {"accuracy": acc})

    results = {"a": [run("a", 0, 90.0), run("a", 1, 10.0)], "b": [run("b", 0, 60.0), run("b", 1, 70.0)]}
    best = twdl.select_best(results)  # a has the best single run, b the best mean
    assert (best.name, best.seed) == ("b", 1)
    with pytest.raises(ValueError, match="no runs"):
        twdl.select_best({})


def test_compare_regularizers_uses_the_same_runner_and_tests_one_model():
    train, val = faces(), faces(12, 1)
    table = twdl.compare_regularizers(twdl.SmallAnimalNet, train, val, ["l1", "weight_decay", "augmentation"],
                                      epochs=2, batch_size=8, seeds=[0, 1], test_data=val)
    assert list(table.index) == ["none", "l1", "weight_decay", "augmentation"]
    assert {"train_accuracy", "val_accuracy", "val_accuracy_std", "param_norm", "test_accuracy"} <= set(table.columns)
    assert table["test_accuracy"].notna().sum() == 1
    models = table.attrs["models"]  # one trained model per seed and technique, giving the table's mean
    assert [len(models[t]) for t in table.index] == [2, 2, 2, 2]
    mean = sum(twdl.evaluate(m, val)["accuracy"] for m in models["l1"]) / 2
    assert mean == pytest.approx(table.loc["l1", "val_accuracy"])
    with pytest.raises(ValueError, match="technique"):
        twdl.compare_regularizers(twdl.SmallAnimalNet, train, val, ["magic"], epochs=1)


def test_technique_weight_decay_is_twice_lambda_and_augmentation_preserves_labels():
    wd = twdl.technique_experiment("weight_decay", twdl.SmallAnimalNet, epochs=1, lr=0.1, lam=0.03)
    assert wd.weight_decay == pytest.approx(0.06) and wd.penalty is None
    aug = twdl.technique_experiment("augmentation", twdl.SmallAnimalNet, epochs=1, lr=0.1).augment
    assert (aug.hflip, aug.vflip, aug.shift) == (0.5, 0.0, twdl.MAX_SHIFT)  # no upside-down animals
    course = twdl.technique_experiment("course_flips", twdl.SmallAnimalNet, epochs=1, lr=0.1).augment
    assert course.hflip == course.vflip == twdl.AUGMENT_PROBABILITY == 0.1 and course.shift == 0
    stop = twdl.technique_experiment("early_stopping", twdl.SmallAnimalNet, epochs=1, lr=0.1, monitor="tune_accuracy")
    assert (stop.patience, stop.monitor) == (20, "tune_accuracy")


def test_early_stopping_watches_the_tuning_images_and_the_run_is_scored_on_validation():
    train, val, tune = faces(), faces(12, 1), faces(12, 2)
    stop = twdl.Experiment(twdl.SmallAnimalNet, lr=0.05, momentum=0.9, epochs=8, patience=3, monitor="tune_accuracy")
    (run,) = twdl.run_experiments({"stop": stop}, train, val, tune_data=tune, batch_size=8, progress=False)["stop"]
    best = run.history.best("tune_accuracy")  # the first epoch with the best tuning accuracy is the one kept
    assert run.best_epoch == best["epoch"]
    assert run.tune == twdl.evaluate(run.model, tune) and run.val == twdl.evaluate(run.model, val)
    assert run.val["accuracy"] == pytest.approx(best["val_accuracy"])
    table = twdl.summarize_runs({"stop": [run]})
    assert table.loc["stop", "tune_accuracy"] == pytest.approx(run.tune["accuracy"])
    with pytest.raises(KeyError, match="tune_accuracy"):  # no tuning images given: the error names the column
        twdl.run_experiments({"stop": stop}, train, val, batch_size=8, progress=False)


def test_same_seed_in_one_process_gives_identical_histories_with_dropout_and_augmentation():
    train, val = faces(), faces(12, 1)
    experiments = {"dropout": twdl.Experiment(twdl.AnimalNetDropout, lr=0.01, momentum=0.9, epochs=3),
                   "augmentation": twdl.Experiment(twdl.AnimalNet, lr=0.01, momentum=0.9, epochs=3,
                                                   augment=twdl.label_preserving_augmentation())}

    def histories(seeds):
        results = twdl.run_experiments(experiments, train, val, seeds=seeds, batch_size=8, progress=False)
        return {name: [r.history.to_frame().drop(columns="seconds") for r in runs] for name, runs in results.items()}

    first = histories([0, 1])
    torch.rand(100)  # the global random stream moves between the two calls
    second = histories([0, 1])
    for name in experiments:
        for a, b in zip(first[name], second[name]):
            pd.testing.assert_frame_equal(a, b)
        assert not first[name][0].equals(first[name][1])  # another seed: another run


def test_lambda_grid_rows_best_lambda_and_log_plot():
    train, val = faces(), faces(12, 1)
    base = twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1)
    table = twdl.lambda_grid(base, train, val, [1e-3, 1e-1], kinds=("l2", "l1"), batch_size=8)
    assert list(zip(table["kind"], table["lambda"])) == [("l2", 1e-3), ("l2", 1e-1), ("l1", 1e-3), ("l1", 1e-1)]
    assert table.attrs["chosen_on"] == "val_accuracy"
    for kind, part in table.groupby("kind"):
        assert table.attrs["best"][kind] == part.loc[part["val_accuracy"].idxmax(), "lambda"]
    assert 0 <= table.attrs["unregularized"] <= 100
    tuned = twdl.lambda_grid(base, train, val, [1e-3, 3.0], kinds=("l2",), batch_size=8, tune_data=faces(12, 2))
    assert tuned.attrs["chosen_on"] == "tune_accuracy"  # lambda chosen on the tuning images, scored on validation
    assert tuned.attrs["best"]["l2"] == tuned.loc[tuned["tune_accuracy"].idxmax(), "lambda"]
    assert twdl.plot_lambda_grid(tuned).axes[0].get_ylabel() == "tuning accuracy (%)"
    fig = twdl.plot_lambda_grid(table)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="positive"):
        twdl.lambda_grid(base, train, val, [0.0])


def test_effect_over_seeds_is_a_paired_t_test_over_seeds():
    scores = {"base": [50.0, 52.0, 48.0], "big": [56.0, 58.5, 53.5], "small": [51.0, 51.0, 51.0],
              "pair": [50.0, 52.0], "pbase": [49.0, 50.0]}
    effects = twdl.effect_over_seeds(scores, {"big": "base", "small": "base", "pair": "pbase"})
    expected = twdl.paired_verdict(scores["big"], scores["base"])
    assert effects.loc["big", "val_accuracy_change"] == pytest.approx(6.0)
    assert effects.loc["big", "standard_error"] == pytest.approx(expected.standard_error)
    assert effects.loc["big", "p_value"] == pytest.approx(expected.p_value)
    # the arms differ by 6 points on every seed: paired, that is far beyond the noise, though the seeds spread by 2
    assert effects["verdict"].to_dict() == {"big": "helps", "small": "within noise",
                                           "pair": "too few seeds to tell (2; a verdict needs 3)"}
    assert "paired t-test" in twdl.verdicts_of(effects)[0].test
    assert twdl.effect_over_seeds(scores, {"base": "big"}).loc["base", "verdict"] == "hurts"
    against_failed = twdl.effect_over_seeds(scores, {"big": "base"}, failed={"base": "base failed (diverged)"})
    assert against_failed.loc["big", "verdict"].startswith("no verdict: the baseline base failed")
    with pytest.raises(ValueError, match="paired"):
        twdl.effect_over_seeds(scores, {"pair": "base"})


def test_plot_effects_draws_each_change_with_its_95_percent_interval_and_a_zero_line():
    effects = twdl.effect_over_seeds({"base": [50.0, 51.0, 52.0], "l2": [53.0, 54.5, 54.5],
                                      "flips": [50.0, 50.5, 52.0], "two": [1.0, 2.0]},
                                     {"l2": "base", "flips": "base"})
    ax = twdl.plot_effects(effects).axes[0]
    rows = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert rows["l2 (vs base)"] > rows["flips (vs base)"]  # the table's first row on top
    spans = sorted(tuple(seg[:, 0]) for coll in ax.collections for seg in coll.get_segments())
    expected = sorted((v.change - v.critical * v.standard_error, v.change + v.critical * v.standard_error)
                      for v in twdl.verdicts_of(effects))
    assert spans == [pytest.approx(e) for e in expected]
    assert "95 %" in ax.get_xlabel()
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())  # the zero line
    joined = twdl.join_effects(effects, effects.iloc[:1])
    assert len(joined) == 3 and twdl.verdicts_of(joined)[2] == twdl.verdicts_of(effects)[0]


def test_scores_use_the_last_epochs_or_the_kept_epoch_and_the_schedule_is_chosen_on_tuning():
    def run(name, seed, val, tune, best_epoch=None):
        history = twdl.History()
        for epoch, (v, t) in enumerate(zip(val, tune), 1):
            history.rows.append({"epoch": epoch, "val_accuracy": v, "tune_accuracy": t})
        return twdl.Run(name, seed, None, history, {"accuracy": 0.0}, {"accuracy": val[-1] if best_epoch is None
                                                                           else val[best_epoch - 1]},
                        best_epoch, {"accuracy": tune[-1]})

    a = [run("a", 0, [40, 50, 60, 40], [40, 70, 50, 40]), run("a", 1, [42, 52, 62, 44], [41, 69, 51, 41])]
    b = [run("b", 0, [45, 45, 45, 45], [60, 60, 60, 60], best_epoch=2), run("b", 1, [46] * 4, [61] * 4, best_epoch=2)]
    assert twdl.run_score(a[0]) == 40 and twdl.run_score(a[0], last=2) == 50
    assert twdl.run_score(b[0], last=3) == 45  # early stopping: the kept epoch's score
    assert twdl.seed_scores({"a": a}, last=2) == {"a": [50.0, 53.0]}
    assert twdl.tuned_epoch(a) == 2 and twdl.scores_at_epoch(a, 2) == [50, 52]
    assert twdl.tuned_schedule({"a": a, "b": b}) == ("a", 2)  # 69.5 % at epoch 2 beats 60.5 %
    assert twdl.select_best({"a": a, "b": b}, on="tune").name == "b"  # final tuning accuracy 60.5 vs 40.5
    assert twdl.select_best({"a": a, "b": b}).name == "b"
    with pytest.raises(ValueError, match="on must be"):
        twdl.select_best({"a": a}, on="test")


def test_check_runs_records_each_experiments_health():
    train, val = faces(), faces(12, 1)
    exp = twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=2)
    results = twdl.run_experiments({"plain (x)": exp}, train, val, seeds=[0, 1], batch_size=8, progress=False)
    failed = twdl.check_runs(results, "mtest", n_classes=3, n_images=1_000_000)
    assert twdl.recorded()["mtest.health.plain_x"].startswith("failed: seed 0: val accuracy ended")
    assert failed["plain (x)"].startswith("plain (x) failed (seed 0")
    twdl.check_runs(results, "mtest2", n_classes=3, n_images=1_000_000, expected_failure=True)
    assert twdl.recorded()["mtest2.health.plain_x"].startswith("failed, as this section expects")
    assert twdl.check_runs(results, "mtest3", n_classes=1000, n_images=1) == {}
    assert twdl.recorded()["mtest3.health.plain_x"] == "trained normally"


def test_lambda_grid_reuses_the_unregularized_runs_and_keeps_its_runs():
    train, val = faces(), faces(12, 1)
    base = twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1)
    plain = twdl.run_experiments({"none": base}, train, val, seeds=[0, 1], batch_size=8, progress=False)["none"]
    table = twdl.lambda_grid(base, train, val, [1e-2], kinds=("l2",), seeds=[0, 1], batch_size=8,
                             unregularized=plain)
    runs = table.attrs["runs"]
    assert runs["none"] == plain and [r.seed for r in runs["l2 0.01"]] == [0, 1]
    assert table.attrs["unregularized"] == pytest.approx(sum(r.val["accuracy"] for r in plain) / 2)
    assert table.round(2).attrs["runs"]["none"][0] is plain[0]  # derived tables share the runs, never copy them
    with pytest.raises(ValueError, match="seeds"):
        twdl.lambda_grid(base, train, val, [1e-2], kinds=("l2",), seeds=[0], unregularized=plain)
    with pytest.raises(ValueError, match="tune_data"):
        twdl.lambda_grid(base, train, val, [1e-2], kinds=("l2",), seeds=[0, 1], unregularized=plain,
                         tune_data=faces(12, 2))


def test_summarize_accuracies_gives_mean_std_and_seeds():
    table = twdl.summarize_accuracies({"ticket": [50.0, 52.0, 54.0], "random": [49.0]})
    assert table.loc["ticket"].to_dict() == pytest.approx({"val_accuracy": 52.0, "val_accuracy_std": 2.0, "seeds": 3})
    assert table.loc["random", "val_accuracy_std"] == 0.0


def test_record_effects_records_verdict_change_error_and_p_value_and_describes_them():
    effects = twdl.effect_over_seeds({"none": [50.0, 51.0, 52.0], "early stopping": [53.0, 54.5, 55.0],
                                      "flips": [50.5, 50.0, 52.5], "two": [1.0], "one": [3.0]},
                                     {"early stopping": "none", "flips": "none", "two": "one"})
    text = twdl.record_effects(effects, "mtest").data
    records = twdl.recorded()
    assert records["mtest.effect.early_stopping"] == "helps" and records["mtest.effect.flips"] == "within noise"
    assert records["mtest.effect_change.early_stopping"] == pytest.approx(3.0 + 0.5 / 3)
    assert records["mtest.effect_p_value.flips"] == pytest.approx(effects.loc["flips", "p_value"])
    assert records["mtest.effect_standard_error.two"] is None  # one seed: nothing recorded as NaN
    lines = text.splitlines()
    assert "+3.2 points" in lines[0] and "**helps**" in lines[0] and "paired t-test" in lines[0]
    assert "**within noise**" in lines[1] and "p = " in lines[1]
    assert "too few seeds" in lines[2]


# Module 2: compare_optimizers


def test_compare_optimizers_returns_one_row_per_run_with_bn_last():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

    class Data:
        train = twdl.TensorData(x[:48], y[:48])
        test = twdl.TensorData(x[48:], y[48:])

    table = twdl.compare_optimizers(twdl.ShallowNet, Data, optimizers=["sgd", "adagrad", "adam"],
                                    bn_model_fn=twdl.BNShallowNet, bn_optimizer="adam", epochs=1, batch_size=16)
    assert isinstance(table, pd.DataFrame)
    assert list(table["run"]) == ["sgd", "adagrad", "adam", "adam + BN"]
    assert table[["train_accuracy", "test_accuracy"]].apply(lambda c: c.between(0, 100).all()).all()
    assert set(table.attrs["histories"]) == set(table["run"])
    models = table.attrs["models"]  # kept for checks: each model gives its row's test accuracy, and copies share them
    assert set(models) == set(table["run"]) and table.round(2).attrs["models"]["adam"] is models["adam"]
    for run, reported in zip(table["run"], table["test_accuracy"]):
        assert twdl.evaluate(models[run], Data.test)["accuracy"] == pytest.approx(reported)


def test_compare_optimizers_refuses_an_unknown_optimizer_before_training():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; choose one of sgd, momentum"):
        twdl.compare_optimizers(lambda: pytest.fail("nothing may be built"), None, optimizers=["sgd", "lbfgs"])
