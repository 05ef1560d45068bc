"""Penalties (and proximal L1), weight decay, pruning, the lottery ticket, distillation, early stopping and batch
augmentation."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import twdl_helpers as twdl
from twdl_helpers import regularization as reg
from twdl_helpers.augment import BatchAugment, flips, shift_images


def sgd(model, lr, momentum=0.0, weight_decay=0.0):
    return twdl.make_optimizer("sgd", model.parameters(), lr, momentum=momentum, weight_decay=weight_decay)


def tiny() -> nn.Module:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        model.bias.copy_(torch.tensor([-1.0, 3.0]))
    return model


def test_penalties_match_hand_computed_values():
    model = tiny()  # |w| sums to 1+2+0.5+0+1+3 = 7.5; w^2 sums to 1+4+0.25+0+1+9 = 15.25
    assert reg.l1_penalty(0.1)(model).item() == pytest.approx(0.75)
    assert reg.l2_penalty(0.1)(model).item() == pytest.approx(1.525)
    assert reg.elastic_penalty(0.1, 0.2)(model).item() == pytest.approx(0.75 + 3.05)
    assert twdl.frobenius_norm(model) == pytest.approx(15.25 ** 0.5)


def test_l2_penalty_equals_sgd_weight_decay_update():
    x, y = torch.randn(16, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 8)
    data = twdl.TensorData(x, y)
    a, b = tiny(), tiny()
    twdl.train(a, data, epochs=3, batch_size=4, optimizer=sgd(a, 0.1, 0.9), penalty=reg.l2_penalty(0.05),
               progress=False)
    twdl.train(b, data, epochs=3, batch_size=4, optimizer=sgd(b, 0.1, 0.9, weight_decay=0.1), progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    assert not torch.equal(a.weight, tiny().weight)


def test_prune_hits_sparsity_and_mask_survives_training():
    model = twdl.AnimalNet(seed=0)
    sparsity = reg.prune_magnitude(model, 0.5)
    assert set(sparsity) == {"layers.1", "layers.3", "layers.5"}
    assert all(v == pytest.approx(0.5, abs=1 / 96) for v in sparsity.values())
    masks = reg.pruning_masks(model)
    data = twdl.TensorData(torch.randn(32, 3, 32, 32), torch.randint(0, 3, (32,)))
    twdl.train(model, data, epochs=2, batch_size=8, optimizer=sgd(model, 0.1, 0.9), progress=False)
    for name, layer in model.named_modules():
        if name in masks:
            assert (layer.weight[masks[name] == 0] == 0).all()
    assert reg.layer_sparsity(model) == sparsity
    with pytest.raises(ValueError, match="fraction"):
        reg.prune_magnitude(model, 1.5)


def test_lottery_ticket_reuses_initial_weights_under_the_mask():
    data = twdl.TensorData(torch.randn(24, 3, 32, 32), torch.randint(0, 3, (24,)))
    result = reg.lottery_ticket(twdl.SmallAnimalNet, data, amount=0.4, epochs=2, retrain_epochs=0, batch_size=8,
                                lr=0.01, seed=5)
    init = result.initial_state
    ticket, control = result.ticket_model, result.random_model
    torch.testing.assert_close(ticket.layers[1].weight_orig, init["layers.1.weight"])
    torch.testing.assert_close(ticket.layers[1].weight, init["layers.1.weight"] * result.masks["layers.1"])
    assert not torch.allclose(control.layers[1].weight_orig, init["layers.1.weight"])
    assert torch.equal(control.layers[1].weight == 0, ticket.layers[1].weight == 0)
    assert result.sparsity["layers.1"] == pytest.approx(0.4, abs=1e-3)
    assert torch.equal(init["layers.1.weight"], twdl.SmallAnimalNet(seed=5, init="xavier").layers[1].weight)


def test_distillation_loss_formula_and_alpha_zero():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    T, alpha = 4.0, 0.7
    p, q = F.softmax(t / T, 1), F.softmax(s / T, 1)
    kl = (p * (p.log() - q.log())).sum(1).mean()  # summed over classes, averaged over the batch
    expected = (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * kl
    torch.testing.assert_close(reg.distillation_loss(s, t, y, alpha, T), expected)
    torch.testing.assert_close(reg.distillation_loss(s, t, y, 0.0, T), F.cross_entropy(s, y))
    loss_fn = reg.distillation(alpha, T)
    torch.testing.assert_close(loss_fn(s, (y, t)), expected)
    torch.testing.assert_close(loss_fn(s, y), F.cross_entropy(s, y))


def test_early_stopping_infers_its_direction_from_the_metric():
    assert twdl.EarlyStopping("val_accuracy").mode == "max" and twdl.EarlyStopping("tune_accuracy").mode == "max"
    assert twdl.EarlyStopping("val_loss").mode == "min" and twdl.EarlyStopping("val_accuracy", mode="min").mode == "min"
    with pytest.raises(ValueError, match="patience"):
        twdl.EarlyStopping(patience=0)


def test_early_stopping_restores_best_weights():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 3, 32, 32, generator=g), torch.randint(0, 3, (30,), generator=g)
    val = twdl.TensorData(torch.randn(30, 3, 32, 32, generator=g), torch.randint(0, 3, (30,), generator=g))
    model = twdl.AnimalNet(seed=0)
    stopper, snapshots = twdl.EarlyStopping("val_loss", patience=3), {}

    class Snapshot(twdl.Callback):
        def on_epoch_end(self, model, row, history):
            snapshots[int(row["epoch"])] = copy.deepcopy(model.state_dict())

    history = twdl.train(model, twdl.TensorData(x, y), epochs=40, batch_size=10, optimizer=sgd(model, 0.05, 0.9),
                         eval_data={"val": val}, callbacks=[Snapshot(), stopper], progress=False)
    best = history.best("val_loss", "min")
    assert stopper.best_epoch == best["epoch"] and history.stopped_early
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshots[stopper.best_epoch][key])
    assert twdl.evaluate(model, val)["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_flips_are_decided_per_sample_and_seeded():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).repeat(50, 1, 1, 1)
    out = flips(0.5, 0.0)(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all() and 20 < flipped.sum() < 80
    again = flips(0.5, 0.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_shift_moves_each_image_by_its_own_offset_with_reflect_padding():
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = shift_images(x, 2, torch.Generator().manual_seed(1))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for i in range(len(x)):  # each output is one 8x8 window of its own padded image (the test may loop; the code not)
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 10  # offsets are drawn per image, not once per batch
    assert torch.equal(out, shift_images(x, 2, torch.Generator().manual_seed(1)))  # a function of the generator
    assert torch.equal(shift_images(x, 0, torch.Generator()), x)


def test_label_preserving_augmentation_flips_horizontally_and_shifts_but_never_upside_down():
    aug = twdl.label_preserving_augmentation()
    assert (aug.hflip, aug.vflip, aug.shift, aug.crop_scale) == (0.5, 0.0, twdl.MAX_SHIFT, None)
    x = torch.randn(32, 3, 32, 32)
    out = aug(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(out, aug(x, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="shift"):
        BatchAugment(shift=-1)
    with pytest.raises(ValueError, match="smaller than the image"):
        BatchAugment(shift=4)(torch.randn(2, 3, 4, 4), torch.Generator())


def test_course_augmentation_is_the_courses_flips_only():
    aug = twdl.course_augmentation()
    assert (aug.hflip, aug.vflip, aug.shift, aug.crop_scale, aug.erase) == (0.1, 0.1, 0, None, 0.0)


def test_crop_and_erase_vary_between_groups_and_keep_shape():
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    aug = BatchAugment(hflip=0.0, crop_scale=(0.5, 0.9), erase=0.0, group_size=8)
    out = aug(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and not torch.equal(out, x)
    diffs = [(out[i:i + 8] - x[i:i + 8]).abs().mean().item() for i in range(0, 32, 8)]
    assert len({round(d, 5) for d in diffs}) > 1
    assert torch.equal(out, aug(x, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="N, C, H, W"):
        aug(x.flatten(1), torch.Generator())


def test_parameter_norm_of_a_pruned_model_counts_only_the_effective_weights():
    model = twdl.AnimalNet(seed=0)
    twdl.prune_magnitude(model, 0.7)
    naive = torch.sqrt(sum((p ** 2).sum() for p in model.parameters())).item()  # weight_orig: pruned ones too
    row = {}
    twdl.ParameterNorm().on_epoch_end(model, row, twdl.History())
    assert row["param_norm"] == pytest.approx(twdl.frobenius_norm(model), rel=1e-6)
    assert row["param_norm"] < naive
    effective = torch.cat([t.flatten() for t in twdl.effective_parameters(model)])
    assert row["param_norm"] == pytest.approx(effective.norm().item(), rel=1e-6)


def _l1_runs(callback_lam=0.0, penalty_lam=0.0):
    g = torch.Generator().manual_seed(0)
    data = twdl.TensorData(torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 3, (64,), generator=g))
    model = twdl.SmallAnimalNet(seed=0)
    opt = sgd(model, 0.05, 0.9)
    callbacks = [reg.ProximalL1(callback_lam, opt)] if callback_lam else []
    twdl.train(model, data, epochs=3, batch_size=16, optimizer=opt, callbacks=callbacks,
               penalty=reg.l1_penalty(penalty_lam) if penalty_lam else None, progress=False)
    return model


def test_proximal_l1_gives_exact_zeros_and_the_plain_penalty_reports_its_honest_count():
    proximal = reg.count_exact_zeros(_l1_runs(callback_lam=0.05))
    plain = reg.count_exact_zeros(_l1_runs(penalty_lam=0.05))
    assert proximal["weights"] == plain["weights"] == sum(p.numel() for p in twdl.SmallAnimalNet().parameters())
    assert proximal["exact_zeros"] > 0.5 * proximal["weights"]  # soft-thresholding makes real zeros
    assert plain["exact_zeros"] < 0.01 * plain["weights"]  # the subgradient step overshoots zero instead
    model = _l1_runs(penalty_lam=0.05)
    manual = sum(int((p == 0).sum()) for p in model.parameters())
    assert reg.count_exact_zeros(model)["exact_zeros"] == manual


def test_proximal_threshold_grows_with_momentum_like_the_penalty_gradient():
    model = tiny()
    assert reg.ProximalL1(0.1, sgd(model, 0.5)).threshold == pytest.approx(0.05)  # lr * lam
    assert reg.ProximalL1(0.1, sgd(model, 0.5, momentum=0.99)).threshold == pytest.approx(5.0)  # / (1 - 0.99)
    assert reg.momentum_gain(torch.optim.Adam(model.parameters())) == 1.0
    # the L1 penalty's gradient through SGD with momentum: its steady step tends to lr * lam / (1 - momentum)
    weight = nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([weight], lr=1e-4, momentum=0.9)  # 200 steps of 5e-4: far from 0
    for _ in range(200):
        opt.zero_grad()
        reg.l1_penalty(0.5)(nn.ParameterList([weight])).backward()
        before = weight.item()
        opt.step()
    assert before - weight.item() == pytest.approx(reg.ProximalL1(0.5, opt).threshold, rel=1e-3)


def test_proximal_step_is_soft_thresholding():
    model = tiny()
    opt = sgd(model, 0.5)
    reg.ProximalL1(1.0, opt).on_batch_end(model)  # threshold lr * lam = 0.5
    torch.testing.assert_close(model.weight, torch.tensor([[0.5, -1.5], [0.0, 0.0]]))
    torch.testing.assert_close(model.bias, torch.tensor([-0.5, 2.5]))
    with pytest.raises(ValueError, match="lam"):
        reg.ProximalL1(-1.0, opt)


def test_with_teacher_pairs_labels_with_the_teachers_logits():
    data = twdl.TensorData(torch.randn(10, 3, 32, 32), torch.randint(0, 3, (10,)))
    teacher = twdl.SmallAnimalNet(seed=1)
    soft = reg.with_teacher(data, teacher)
    assert torch.equal(soft.targets[0], data.labels)
    torch.testing.assert_close(soft.targets[1], twdl.predict(teacher, data.inputs))


def test_prune_and_retrain_reports_accuracy_before_after_and_keeps_the_mask():
    g = torch.Generator().manual_seed(2)
    train = twdl.TensorData(torch.randn(24, 3, 32, 32, generator=g), torch.randint(0, 3, (24,), generator=g))
    model = twdl.SmallAnimalNet(seed=0)
    before = twdl.evaluate(model, train)["accuracy"]
    result = reg.prune_and_retrain(model, 0.6, train, train, epochs=2, lr=0.05, batch_size=8)
    assert result.before == pytest.approx(before)
    assert all(v == pytest.approx(0.6, abs=0.01) for v in result.sparsity.values())
    assert result.retrained == pytest.approx(twdl.evaluate(model, train)["accuracy"])
    assert reg.layer_sparsity(model) == result.sparsity and len(result.history) == 2
