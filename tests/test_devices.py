"""Data and model on different devices, on a CPU-only machine: every helper must move each batch to the MODEL's
device (module 3 crashed on a GPU because `evaluate` used the data's device).

Two stand-ins for "another device": PyTorch's `meta` device (shapes only: a forward pass with CPU inputs raises a
device error unless the helper moved them, but nothing can be read back) and PyTorch's lazy TorchScript backend
(`torch._lazy`), a real second device that computes on the CPU, so whole training runs can be checked."""
import pytest
import torch
from torch import nn

import twdl_helpers as twdl


def _lazy_device() -> str | None:
    try:
        import torch._lazy
        import torch._lazy.ts_backend

        torch._lazy.ts_backend.init()
        torch.ones(1, device="lazy").sum().item()
        return "lazy"
    except Exception:  # a torch build without the lazy backend: the meta tests still run
        return None


LAZY = _lazy_device()
needs_lazy = pytest.mark.skipif(LAZY is None, reason="this torch build has no lazy TorchScript backend")


def images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return twdl.TensorData(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 3, (n,), generator=g))


def test_meta_model_really_refuses_cpu_inputs():
    model = twdl.SmallAnimalNet(device="meta")
    with pytest.raises(RuntimeError, match="device"):
        model(torch.zeros(2, 3, 32, 32))  # what a helper that forgot the move would hit


def test_forward_predict_and_layer_activations_move_batches_to_a_meta_model():
    data = images()
    model = twdl.SmallAnimalNet(device="meta")
    assert twdl.model_device(model).type == "meta"
    assert twdl.forward(model, data.inputs).device.type == "meta"
    out = twdl.predict(model, data.inputs, batch_size=10)
    assert out.device.type == "meta" and out.shape == (24, 3)
    features = twdl.layer_activations(model, data.inputs, "layers.2", batch_size=10)
    assert features.device.type == "meta" and features.shape == (24, 32)
    numeric, categorical = torch.randn(5, 3), torch.randint(0, 4, (5, 2))
    tabular = twdl.BaselineNet(3, [4, 4], n_classes=2, device="meta")
    assert twdl.predict(tabular, (numeric, categorical)).shape == (5, 2)


def test_models_are_built_on_the_device_they_are_given_with_the_same_weights():
    builders = [lambda d: twdl.AnimalNet(seed=3, device=d), lambda d: twdl.ShallowNet(seed=3, device=d),
                lambda d: twdl.ResidualMLP(seed=3, device=d), lambda d: twdl.BaselineNet(3, [4], seed=3, device=d),
                lambda d: twdl.WideDeepNet(3, [4, 5], seed=3, device=d),
                lambda d: twdl.DeepCrossNet(3, [4], seed=3, device=d), lambda d: twdl.WarmupNet(6, seed=3, device=d)]
    for build in builders:
        on_meta, on_cpu, again = build("meta"), build("cpu"), build(None)
        assert all(p.device.type == "meta" for p in on_meta.parameters())
        assert all(p.device.type == "cpu" for p in on_cpu.parameters())
        for p, q in zip(on_cpu.parameters(), again.parameters()):
            assert torch.equal(p, q)  # seeded: same weights whatever the device


@needs_lazy
def test_evaluate_and_train_run_on_the_models_device_with_data_elsewhere():
    data, val = images(), images(12, 1)
    reference = twdl.AnimalNet(seed=0)
    model = twdl.AnimalNet(seed=0, device=LAZY)
    expected = twdl.evaluate(reference, val)
    got = twdl.evaluate(model, val)  # data on the CPU, model on the other device
    assert got["accuracy"] == expected["accuracy"] and got["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    sgd = lambda m: twdl.make_optimizer("sgd", m.parameters(), 0.01, momentum=0.9)  # noqa: E731
    h_other = twdl.train(model, data, epochs=2, batch_size=8, optimizer=sgd(model), eval_data={"val": val},
                         callbacks=[twdl.ParameterNorm()], progress=False)
    h_cpu = twdl.train(reference, data, epochs=2, batch_size=8, optimizer=sgd(reference), eval_data={"val": val},
                       callbacks=[twdl.ParameterNorm()], progress=False)
    assert twdl.model_device(model).type == LAZY  # train never moved the model
    for key in ("train_loss", "val_loss", "param_norm", "running_loss"):
        assert h_other.last[key] == pytest.approx(h_cpu.last[key], rel=1e-3), key


def test_train_warns_when_the_model_stayed_on_the_cpu_but_the_data_did_not():
    data = images(8).to("meta")
    with pytest.warns(UserWarning, match="Build the model on the notebook's device"):
        with pytest.raises(Exception):  # meta data cannot be copied to the CPU; the warning comes first
            twdl.train(twdl.SmallAnimalNet(), data, epochs=1, batch_size=4, progress=False)


@needs_lazy
def test_module_3_helpers_with_models_on_another_device_and_data_on_the_cpu():
    train, val = images(), images(12, 1)
    experiments = {"none": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1),
                   "proximal l1": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1, proximal_l1=0.01),
                   "early": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=2, patience=1),
                   "flips": twdl.Experiment(twdl.SmallAnimalNet, lr=0.01, epochs=1, augment=twdl.flips())}
    results = twdl.run_experiments(experiments, train, val, seeds=[0], batch_size=8, device=LAZY, progress=False)
    best = twdl.select_best(results)
    assert twdl.model_device(best.model).type == LAZY
    assert 0 <= twdl.evaluate(best.model, val)["accuracy"] <= 100
    assert twdl.summarize_runs(results).shape[0] == 4
    # (no penalty here: the lazy backend mis-types Python-float penalties; CUDA does not)
    table = twdl.compare_regularizers(twdl.SmallAnimalNet, train, val, ["weight_decay"], epochs=1, batch_size=8,
                                      test_data=val, device=LAZY)
    assert table["test_accuracy"].notna().sum() == 1
    lottery = twdl.lottery_ticket(twdl.SmallAnimalNet, train, amount=0.4, epochs=1, batch_size=8, lr=0.01,
                                  eval_data={"val": val}, device=LAZY)
    assert twdl.model_device(lottery.ticket_model).type == LAZY and "val_accuracy" in lottery.ticket.last
    teacher = twdl.SmallAnimalNet(seed=1, device=LAZY)
    soft = twdl.with_teacher(train, teacher)
    student = twdl.SmallAnimalNet(seed=2, device=LAZY)
    seen = []

    def probe_loss(outputs, targets):  # the lazy backend mis-types distillation's scalar maths, so check the targets
        seen.append({t.device.type for t in (targets if isinstance(targets, tuple) else (targets,))})
        return twdl.classification_loss(outputs, targets)

    twdl.train(student, soft, epochs=1, batch_size=8, loss_fn=probe_loss, eval_data={"val": val},
               optimizer=twdl.make_optimizer("sgd", student.parameters(), 0.01), progress=False)
    assert seen and all(devices == {LAZY} for devices in seen)  # labels AND teacher logits on the model's device


@needs_lazy
def test_module_2_comparison_builds_models_on_the_requested_device():
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    digits = SimpleNamespace(train=twdl.TensorData(torch.randn(32, 1, 28, 28, generator=g),
                                                   torch.randint(0, 10, (32,), generator=g)),
                             test=twdl.TensorData(torch.randn(16, 1, 28, 28, generator=g),
                                                  torch.randint(0, 10, (16,), generator=g)))
    table = twdl.compare_optimizers(twdl.ShallowNet, digits, optimizers=["sgd"], bn_model_fn=twdl.BNShallowNet,
                                    epochs=1, batch_size=8, device=LAZY)
    assert len(table) == 2 and table["test_accuracy"].between(0, 100).all()


@needs_lazy
def test_language_model_perplexity_follows_the_models_device():
    from transformers import OPTConfig, OPTForCausalLM

    from twdl_helpers import lm

    torch.manual_seed(0)
    model = OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, max_position_embeddings=32, word_embed_proj_dim=16))
    blocks = lm.Blocks(torch.randint(4, 64, (4, 16), generator=torch.Generator().manual_seed(0)), 0)
    on_cpu = lm.perplexity(model, blocks)
    assert lm.perplexity(model.to(LAZY), blocks) == pytest.approx(on_cpu, rel=1e-4)


def test_a_module_without_parameters_or_buffers_is_on_the_cpu():
    assert twdl.model_device(nn.ReLU()).type == "cpu"
    assert twdl.model_device(nn.BatchNorm1d(3, affine=False).to("meta")).type == "meta"


def test_each_helper_call_looks_up_the_models_device_once_not_once_per_batch(monkeypatch):
    import twdl_helpers.training as training

    lookups = []
    monkeypatch.setattr(training, "model_device", lambda model: lookups.append(model) or torch.device("cpu"))
    data, model = images(24), twdl.SmallAnimalNet(seed=0)
    for call in (lambda: twdl.evaluate(model, data, batch_size=4), lambda: twdl.predict(model, data.inputs, batch_size=4),
                 lambda: twdl.train(model, data, epochs=3, batch_size=4, eval_data={"val": data, "test": data},
                                    progress=False)):
        lookups.clear()
        call()
        assert len(lookups) == 1
