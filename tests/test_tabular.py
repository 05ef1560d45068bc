"""Module 1 models: output shapes, logits (not probabilities), the cross-layer formula, crossed wide features."""
import math

import pytest
import torch

import twdl_helpers as twdl

CARDS = [5, 41]


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 10, generator=g), torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDS], 1)


@pytest.mark.parametrize("cls", [twdl.BaselineNet, twdl.WideDeepNet, twdl.DeepCrossNet])
def test_models_return_unnormalised_logits(cls):
    torch.manual_seed(0)
    model = cls(10, CARDS, n_classes=7, hidden=(32, 16), dropout=0.1).eval()
    out = model(*_batch())
    assert out.shape == (16, 7)
    assert not torch.allclose(out.sum(1), torch.ones(16), atol=1e-3)  # softmax outputs would sum to 1
    assert (out < 0).any()


def test_embedding_widths_follow_sqrt_rule():
    model = twdl.BaselineNet(10, CARDS)
    assert [e.embedding_dim for e in model.inputs.embeddings] == [2, 6]
    assert model.inputs.out_features == 18
    assert twdl.embedding_width(1) == 1 and twdl.embedding_width(100) == 10


def test_cross_layer_hand_computed():
    layer = twdl.CrossLayer(2)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        layer.linear.bias.copy_(torch.tensor([0.5, -1.0]))
    x0, x = torch.tensor([[2.0, 3.0]]), torch.tensor([[1.0, -1.0]])
    # W x + b = [1-2+0.5, 3-4-1] = [-0.5, -2]; x0 * that = [-1, -6]; + x = [0, -7]
    assert torch.allclose(layer(x0, x), torch.tensor([[0.0, -7.0]]))


def test_deep_cross_has_one_cross_layer_per_hidden_layer():
    model = twdl.DeepCrossNet(10, CARDS, hidden=(32, 32, 8))
    assert len(model.cross) == 3 and model.cross[0].linear.weight.shape == (18, 18)


def test_wide_crossed_features_separate_combinations():
    model = twdl.WideDeepNet(10, CARDS, crossed=True).eval()
    assert model.crossed[0].num_embeddings == 5 * 41
    numeric, cats = _batch(4)
    before = model(numeric, cats)
    with torch.no_grad():
        model.crossed[0].weight[cats[0, 0] * 41 + cats[0, 1]] += 10.0
    after = model(numeric, cats)
    assert torch.allclose(after[0] - before[0], torch.full((7,), 10.0))
    same_combo = (cats[:, 0] == cats[0, 0]) & (cats[:, 1] == cats[0, 1])
    assert torch.allclose(after[~same_combo], before[~same_combo])
    assert len(twdl.WideDeepNet(10, CARDS, crossed=False).crossed) == 0


def test_softmax_before_loss_reproduces_d1():
    model = twdl.SoftmaxBeforeLoss(twdl.BaselineNet(10, CARDS)).eval()
    probs = model(*_batch())
    assert torch.allclose(probs.sum(1), torch.ones(16), atol=1e-5)
    # even a perfectly confident softmax output (a one-hot vector) fed to cross-entropy costs log(e + 6) - 1
    target = torch.arange(16) % 7
    perfect = torch.eye(7)[target]
    floor = math.log(math.e + 6) - 1
    assert torch.nn.functional.cross_entropy(perfect, target).item() == pytest.approx(floor, abs=1e-5)
    assert torch.nn.functional.cross_entropy(model(*_batch()), target).item() >= floor


def test_warmup_net_and_binary_helpers():
    model = twdl.WarmupNet(54)
    x = torch.randn(8, 54)
    out = model(x)
    assert out.shape == (8, 1)
    y = (out.squeeze(1) > 0).long()
    assert twdl.binary_accuracy(out, y).item() == 8
    assert twdl.binary_loss(out, y).item() > 0


def test_baseline_learns_on_the_bundled_real_sample():
    data = twdl.load_covertype(source="sample")
    twdl.set_seed(0)
    model = twdl.BaselineNet(10, data.cardinalities)
    history = twdl.train(model, data.train, epochs=3, batch_size=265, eval_data={"test": data.test}, progress=False)
    majority = torch.bincount(data.test.labels).max().item() / len(data.test) * 100
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history.last["test_accuracy"] > majority + 5  # beats "always predict the commonest class"
