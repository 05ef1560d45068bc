"""Module 3 networks: shapes, explicit seeding without side effects, Xavier option."""
import pytest
import torch

from twdl_helpers.models import AnimalNet, AnimalNetDropout, BigAnimalNet, SmallAnimalNet

SIZES = {AnimalNet: [128, 32, 3], BigAnimalNet: [124, 64, 3], AnimalNetDropout: [248, 210, 3], SmallAnimalNet: [32, 3]}


@pytest.mark.parametrize("cls", list(SIZES))
def test_layer_widths_and_logits(cls):
    model = cls(seed=0)
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == SIZES[cls]
    out = model(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 3) and not torch.allclose(out.exp().sum(1), torch.ones(5))  # logits, not probabilities


def test_seed_is_explicit_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a = BigAnimalNet(seed=1)
    assert torch.equal(torch.rand(3), expected)
    b, c = BigAnimalNet(seed=1), BigAnimalNet(seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[1].weight, c.layers[1].weight)


def test_xavier_init():
    model = AnimalNet(seed=0, init="xavier")
    w = model.layers[1].weight
    bound = (6 / (3072 + 128)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and model.layers[1].bias.abs().sum() == 0
    with pytest.raises(ValueError, match="init"):
        AnimalNet(init="he")


def test_dropout_only_in_train_mode():
    model = AnimalNetDropout(seed=0)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
