"""The shared training loop: history, shuffling, callbacks, determinism."""
import pytest
import torch
from torch import nn

import twdl_helpers as twdl


def toy_data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return twdl.TensorData(x, y)


def toy_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))


def test_history_has_one_row_per_epoch_with_losses_metrics_and_seconds():
    data = toy_data()
    h = twdl.train(toy_model(), data, epochs=3, batch_size=64, eval_data={"val": data}, progress=False)
    assert len(h) == 3 and h["epoch"] == [1, 2, 3]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr"):
        assert key in h.last
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert 0 <= h.last["val_accuracy"] <= 100
    assert list(h.to_frame().index) == [1, 2, 3]


def test_same_seed_same_metrics_and_different_seed_different_order():
    data = toy_data()
    run = lambda s: twdl.train(toy_model(), data, epochs=2, batch_size=32, seed=s, progress=False)["train_loss"]  # noqa: E731
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_batches_follow_the_seeded_permutation_of_each_epoch():
    n, batch = 10, 4
    x = torch.arange(n, dtype=torch.float32)[:, None]
    y = torch.zeros(n, dtype=torch.long)
    seen = []

    class Record(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 2)

        def forward(self, inputs):
            seen.append(inputs[:, 0].long().tolist())
            return self.lin(inputs)

    twdl.train(Record(), twdl.TensorData(x, y), epochs=2, batch_size=batch, seed=3, progress=False,
               train_eval_rows=0)  # no epoch-end pass over the training rows: only the batches are seen
    generator = torch.Generator().manual_seed(3)
    expected = []
    for _ in range(2):
        order = torch.randperm(n, generator=generator).tolist()
        expected += [order[i:i + batch] for i in range(0, n, batch)]
    assert seen == expected  # every row once per epoch, in the seeded order, the last batch smaller


def test_tuple_inputs_and_targets_are_sliced_together():
    x_num, x_cat = torch.randn(100, 3), torch.randint(0, 4, (100, 1))
    y = x_cat[:, 0] % 2
    seen = []

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lin = nn.Embedding(4, 2), nn.Linear(5, 2)

        def forward(self, num, cat):
            seen.append((num.shape[0], cat.shape[0]))
            return self.lin(torch.cat([num, self.emb(cat[:, 0])], dim=1))

    h = twdl.train(Two(), twdl.TensorData((x_num, x_cat), y), epochs=1, batch_size=30, progress=False)
    assert all(a == b for a, b in seen) and h.last["train_accuracy"] >= 0


def test_mismatched_rows_raise_a_clear_error():
    with pytest.raises(ValueError, match="same number of rows"):
        twdl.TensorData(torch.zeros(3, 2), torch.zeros(4))


def test_evaluate_matches_manual_accuracy():
    data = toy_data()
    model = toy_model()
    out = twdl.evaluate(model, data, batch_size=100)
    manual = (model(data.inputs).argmax(1) == data.targets).float().mean().item() * 100
    assert out["accuracy"] == pytest.approx(manual)
    assert twdl.predict(model, data.inputs, batch_size=77).shape == (512, 2)


def test_penalty_and_scheduler_are_used():
    data = toy_data()
    model = toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e)
    calls = []

    def penalty(m):
        calls.append(1)
        return 0.0 * sum(p.sum() for p in m.parameters())

    h = twdl.train(model, data, epochs=3, batch_size=128, optimizer=opt, scheduler=sched, penalty=penalty,
                   progress=False)
    assert h["lr"] == [0.1, 0.05, 0.025]
    assert len(calls) == 3 * 4


def test_early_stopping_stops_and_restores_best_weights():
    data = toy_data()
    model = toy_model()
    values = iter([3.0, 1.0, 2.0, 2.5, 2.7, 9.0])
    snapshots = {}

    class FakeMetric(twdl.Callback):
        def on_epoch_end(self, model, row, history):
            row["val_fake"] = next(values)
            snapshots[row["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    stopper = twdl.EarlyStopping("val_fake", patience=2, mode="min")
    h = twdl.train(model, data, epochs=6, batch_size=64, callbacks=[FakeMetric(), stopper], progress=False)
    assert h.stopped_early and len(h) == 4 and stopper.best_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[2][k])


def test_early_stopping_names_missing_metric():
    with pytest.raises(KeyError, match="eval_data"):
        twdl.train(toy_model(), toy_data(), epochs=1, batch_size=64, callbacks=[twdl.EarlyStopping()],
                   progress=False)


def test_parameter_norm_is_frobenius_over_all_parameters():
    model = toy_model()
    h = twdl.train(model, toy_data(), epochs=1, batch_size=64, callbacks=[twdl.ParameterNorm()], progress=False)
    expected = torch.sqrt(sum((p ** 2).sum() for p in model.parameters())).item()
    assert h.last["param_norm"] == pytest.approx(expected, rel=1e-5)


def test_regression_loss_and_augment_hook():
    x = torch.randn(64, 3)
    y = x.sum(1)
    model = nn.Linear(3, 1)
    seen = []
    aug = lambda xb, g: (seen.append(1), xb)[1]  # noqa: E731
    h = twdl.train(model, twdl.TensorData(x, y), epochs=2, batch_size=16, loss_fn=twdl.regression_loss,
                   metrics={}, augment=aug, progress=False)
    assert len(seen) == 8 and "train_accuracy" not in h.last


def test_accuracy_refuses_one_logit_outputs_and_points_to_binary_accuracy():
    with pytest.raises(ValueError, match="binary_accuracy"):
        twdl.accuracy(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    assert twdl.binary_accuracy(torch.tensor([[1.0], [-1.0]]), torch.tensor([1, 1])).item() == 1


def test_train_metrics_are_measured_at_epoch_end_in_eval_mode_without_augmentation():
    data = toy_data(96)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
    garbage = lambda x, g: torch.randn_like(x) * 10  # noqa: E731  (an augmentation that destroys the inputs)
    h = twdl.train(model, data, epochs=3, batch_size=16, augment=garbage, progress=False)
    fresh = twdl.evaluate(model, data)  # eval mode (dropout off), clean inputs, the final weights
    assert h.last["train_accuracy"] == pytest.approx(fresh["accuracy"])
    assert h.last["train_loss"] == pytest.approx(fresh["loss"], rel=1e-6)
    assert h.last["running_loss"] != pytest.approx(h.last["train_loss"])  # train-mode mean kept apart
    assert model.training  # the loop leaves the model in train mode


def test_train_metrics_use_a_fixed_seeded_subset_when_the_training_set_is_large():
    data = toy_data(300)
    model = toy_model()
    h = twdl.train(model, data, epochs=2, batch_size=50, train_eval_rows=100, seed=4, progress=False)
    chosen = torch.randperm(300, generator=torch.Generator().manual_seed(4))[:100].sort().values
    assert h.last["train_accuracy"] == pytest.approx(twdl.evaluate(model, data.subset(chosen))["accuracy"])
    skipped = twdl.train(toy_model(), data, epochs=1, batch_size=50, train_eval_rows=0, progress=False)
    assert "train_accuracy" not in skipped.last and "running_loss" in skipped.last


def test_batch_counter_counts_the_steps_of_each_epoch():
    h = twdl.train(toy_model(), toy_data(100), epochs=2, batch_size=30, callbacks=[twdl.BatchCounter()], progress=False)
    assert h["batches"] == [4, 4]


def test_dropout_runs_are_a_function_of_their_seed_alone():
    """Dropout masks come from the run's seed, not from torch's global stream: same seed, same history."""
    data = toy_data()

    def run(seed):
        with twdl.seeded(1234):  # the same weights every time, the global stream untouched
            model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                        torch.nn.Linear(32, 2))
        return twdl.train(model, data, epochs=2, batch_size=32, seed=seed, progress=False).rows

    first = run(0)
    torch.rand(100)  # the global stream moves on between the runs
    again = run(0)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(again) == strip(first)
    assert strip(run(1)) != strip(first)
    state = torch.get_rng_state()
    run(0)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is left as it was
