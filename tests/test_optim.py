"""Optimiser and schedule factories."""
import pytest
import torch
from torch import nn

import twdl_helpers as twdl
from twdl_helpers.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule, schedule_factors


def _step(opt: torch.optim.Optimizer, model: nn.Module) -> None:
    opt.zero_grad()
    model(torch.ones(4, 3)).pow(2).sum().backward()
    opt.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_builds_steps_and_uses_the_given_lr(name):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    before = model.weight.detach().clone()
    opt = make_optimizer(name, model.parameters(), lr=0.0123)
    assert opt.param_groups[0]["lr"] == 0.0123  # no optimiser falls back to a hard-coded rate
    _step(opt, model)
    assert not torch.equal(before, model.weight)


def test_optimizer_variants_have_the_documented_settings():
    params = [nn.Parameter(torch.zeros(2))]
    assert make_optimizer("momentum", params, lr=0.1).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("nesterov", params, lr=0.1).param_groups[0]["nesterov"] is True
    assert make_optimizer("sgd", params, lr=0.1).param_groups[0]["momentum"] == 0
    assert make_optimizer("rmsprop", params, lr=0.1).param_groups[0]["alpha"] == 0.9
    assert make_optimizer("momentum", params, lr=0.1, momentum=0.8).param_groups[0]["momentum"] == 0.8
    assert isinstance(make_optimizer("AdamW", params, lr=0.1), torch.optim.AdamW)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fused_kernel_is_used_where_torch_has_one_and_the_caller_did_not_choose(name):
    params = [nn.Parameter(torch.zeros(2))]
    group = make_optimizer(name, params, lr=0.1).param_groups[0]
    assert bool(group.get("fused")) is (name != "rmsprop")  # RMSprop has no fused kernel
    assert not make_optimizer(name, params, lr=0.1, foreach=True).param_groups[0].get("fused")
    if name != "rmsprop":
        assert not make_optimizer(name, params, lr=0.1, fused=False).param_groups[0].get("fused")


def test_fused_and_unfused_adam_take_the_same_steps():
    models = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = nn.Linear(3, 2)
        opt = make_optimizer("adam", model.parameters(), lr=0.01, fused=fused)
        for _ in range(5):
            _step(opt, model)
        models.append(model.weight.detach())
    torch.testing.assert_close(models[0], models[1])


def test_train_builds_a_fused_adam_when_no_optimizer_is_given(monkeypatch):
    model = nn.Linear(3, 2)
    data = twdl.TensorData(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    fused_flags = []
    original_step = torch.optim.Adam.step

    def spy_step(self, *args, **kwargs):
        fused_flags.append(self.param_groups[0]["fused"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy_step)
    twdl.train(model, data, epochs=1, batch_size=4, progress=False)
    assert fused_flags == [True, True]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="adagrad.*rmsprop.*adam"):
        make_optimizer("lbfgs", [nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="constant, linear, sqrt, exp"):
        schedule_factors("cosine", 10)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        make_optimizer("adam", [nn.Parameter(torch.zeros(1))], lr=0)


def test_schedule_factors_match_the_spec_formulas():
    epochs = range(10)
    assert schedule_factors("constant", 10) == [1.0] * 10
    assert schedule_factors("linear", 10) == pytest.approx([max(1e-7, 1 - 0.1 * e) for e in epochs])
    assert schedule_factors("sqrt", 10) == pytest.approx([(e + 1) ** -0.5 for e in epochs])
    assert schedule_factors("exp", 10) == pytest.approx([0.1 ** e for e in epochs], rel=1e-12)
    assert SCHEDULES["linear"](10, 10) == 1e-7  # floored, never exactly zero
    assert schedule_factors("linear", 5) == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])  # spread over the run


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_make_schedule_sets_the_learning_rate_of_each_epoch(name):
    param = nn.Parameter(torch.zeros(1))
    opt = make_optimizer("momentum", [param], lr=0.01)
    scheduler = make_schedule(name, opt, epochs=10)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert seen == pytest.approx([0.01 * f for f in schedule_factors(name, 10)], rel=1e-9, abs=1e-20)


def test_train_history_lr_column_follows_the_schedule():
    torch.manual_seed(0)
    data = twdl.TensorData(torch.randn(32, 3), torch.randint(0, 2, (32,)))
    model = nn.Linear(3, 2)
    opt = make_optimizer("sgd", model.parameters(), lr=0.5)
    history = twdl.train(model, data, epochs=3, batch_size=8, optimizer=opt,
                         scheduler=make_schedule("exp", opt, 3), progress=False)
    assert history["lr"] == pytest.approx([0.5, 0.05, 0.005])


def test_schedule_formula_states_what_the_run_uses():
    assert twdl.schedule_formula("linear", 10) == "max(1e-7, 1 - t/10)"  # the spec's 1 - 0.1 t
    assert twdl.schedule_formula("linear", 3) == "max(1e-7, 1 - t/3)"
    factors = twdl.schedule_factors("linear", 3)
    assert factors == pytest.approx([1 - t / 3 for t in range(3)])
    assert twdl.schedule_formula("exp", 5) == "0.1^t"
