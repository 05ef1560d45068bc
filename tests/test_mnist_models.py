"""The Module 2 networks: shapes, logits, the layers the spec puts where, and train/eval behaviour."""
import pytest
import torch
from torch import nn

import twdl_helpers as twdl
from twdl_helpers.memory import minibatch_memory

NETS = [twdl.ShallowNet, twdl.BNShallowNet, twdl.DeepNet, twdl.BNDeepNet, twdl.ResidualMLP, twdl.DeepMLP]


@pytest.mark.parametrize("net", NETS)
def test_networks_map_images_and_flat_rows_to_ten_logits(net):
    torch.manual_seed(0)
    model = net().eval()
    images = torch.randn(5, 1, 28, 28)
    out = model(images)
    assert out.shape == (5, 10)
    assert torch.allclose(out, model(images.reshape(5, 784)))
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # raw logits, not probabilities


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_layer_layout_matches_the_spec():
    assert [m.out_features for m in twdl.DeepNet().modules() if isinstance(m, nn.Linear)] == [128, 64, 32, 32, 10]
    assert _count(twdl.ShallowNet(), nn.BatchNorm1d) == 0 and _count(twdl.BNShallowNet(), nn.BatchNorm1d) == 1
    assert _count(twdl.BNDeepNet(), nn.BatchNorm1d) == 4
    assert twdl.DeepNet().dropout == twdl.BNDeepNet().dropout == 0.5
    # Fair comparison: the BN and plain variants differ only by BatchNorm layers.
    assert _count(twdl.ShallowNet(dropout=0.5), nn.Dropout) == _count(twdl.BNShallowNet(dropout=0.5), nn.Dropout) == 1
    block = twdl.ResidualBlock(784, 128)
    assert isinstance(block.shortcut, nn.Linear) and isinstance(twdl.ResidualBlock(64, 64).shortcut, nn.Identity)


@pytest.mark.parametrize("net", [twdl.BNShallowNet, twdl.BNDeepNet, twdl.ResidualMLP])
def test_batch_norm_nets_behave_differently_in_train_and_eval(net):
    torch.manual_seed(0)
    model = net(dropout=0.0) if net is not twdl.ResidualMLP else net()
    x = torch.randn(16, 1, 28, 28) * 3 + 1
    model.train()
    train_out = model(x)  # batch statistics; also updates the running averages
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    assert bn.num_batches_tracked.item() == 1
    model.eval()
    eval_out = model(x)  # running statistics
    assert not torch.allclose(train_out, eval_out, atol=1e-3)
    assert torch.allclose(model(x[:1]), eval_out[:1], atol=1e-5)  # eval: a row's output does not depend on the batch


def test_residual_block_adds_its_input_when_widths_match():
    block = twdl.ResidualBlock(8, 8).eval()
    for layer in block.body:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight), nn.init.zeros_(layer.bias)
    x = torch.randn(4, 8)
    assert torch.allclose(block(x), torch.relu(x + block.body(x)))
    assert torch.allclose(block(x), torch.relu(x + block.body[-1].bias))


def test_minibatch_memory_counts_the_real_model():
    table = minibatch_memory(twdl.ShallowNet(), batch_size=64, optimizer="adam").set_index("what")
    n_params = 784 * 128 + 128 + 128 * 10 + 10
    assert table.loc["parameters", "values"] == n_params == table.loc["gradients", "values"]
    assert table.loc["optimiser state (adam)", "values"] >= 2 * n_params
    assert table.loc["activations", "values"] == 64 * (128 + 128 + 10)  # linear, ReLU, output
    big = minibatch_memory(twdl.ShallowNet(), batch_size=128, optimizer="sgd").set_index("what")
    assert big.loc["activations", "values"] == 2 * table.loc["activations", "values"]
    assert big.loc["optimiser state (sgd)", "values"] == 0
    assert table.loc["total", "MiB"] == pytest.approx(table["MiB"].iloc[:-1].sum())


@pytest.mark.parametrize("plain, with_bn", [(twdl.ShallowNet, twdl.BNShallowNet), (twdl.DeepNet, twdl.BNDeepNet)])
def test_bn_pairs_built_with_one_seed_start_from_identical_linear_weights(plain, with_bn):
    a, b = plain(dropout=0.5, seed=3), with_bn(dropout=0.5, seed=3)
    linears_a = [m for m in a.modules() if isinstance(m, torch.nn.Linear)]
    linears_b = [m for m in b.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears_a) == len(linears_b) > 1
    for x, y in zip(linears_a, linears_b):
        assert torch.equal(x.weight, y.weight) and torch.equal(x.bias, y.bias)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in b.modules())
    other = next(m for m in plain(dropout=0.5, seed=4).modules() if isinstance(m, torch.nn.Linear))
    assert not torch.equal(linears_a[0].weight, other.weight)  # the seed, not luck, makes them equal


def test_deep_mlp_twins_share_their_weights_and_differ_only_by_identity_shortcuts():
    residual, plain = twdl.DeepMLP(depth=8, width=16, seed=3), twdl.DeepMLP(depth=8, width=16, shortcuts=False, seed=3)
    assert len(residual.layers) == 8 and {layer.in_features for layer in residual.layers} == {16}
    for a, b in zip(residual.parameters(), plain.parameters()):
        assert torch.equal(a, b)  # same seed: the same initial weights
    x = torch.randn(4, 784)
    h = residual.projection(x)
    expected = h
    for layer in residual.layers:
        expected = expected + layer(torch.relu(expected))  # h <- h + F(h): the identity path
    assert torch.allclose(residual(x), residual.head(torch.relu(expected)), atol=1e-5)
    assert not torch.allclose(residual(x), plain(x))
    assert twdl.ARCHITECTURES["DeepMLP"] is twdl.DeepMLP  # the grader may rebuild it
    assert twdl.construction(plain) == ("DeepMLP", {"depth": 8, "width": 16, "shortcuts": False, "seed": 3})
    with pytest.raises(ValueError, match="depth and width must be positive"):
        twdl.DeepMLP(depth=0)
