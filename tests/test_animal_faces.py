"""The Animal Faces loader on the mirror's real zip, on the synthetic stand-in, and its label variants."""
import os

import pytest
import torch

from twdl_helpers.data import animal_faces as af
from twdl_helpers.data.fetch import DataNotFoundError


def test_mirror_zip_real_images(mirror, isolated_cache, capsys):
    data = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5, seed=3)
    assert data.source == "real" and data.classes == ("cat", "dog", "wild")
    assert (len(data.train), len(data.val), len(data.test)) == (10, 5, 15)
    assert data.train.inputs.shape == (10, 3, 32, 32) and data.train.inputs.dtype == torch.float32
    assert data.train.inputs.min() >= -1 and data.train.inputs.max() <= 1
    assert data.test.labels.bincount().tolist() == [5, 5, 5]
    assert "AFHQ 32x32" in capsys.readouterr().out
    assert list(isolated_cache.rglob("*.decoded.*.pt")), "decoded tensor should be cached"
    again = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5, seed=3)  # from the cache
    assert torch.equal(again.train.inputs, data.train.inputs)


def test_split_sizes_computed_and_capped(mirror, isolated_cache):
    data = af.load_animal_faces(n_train=100, n_val=100)  # the mirror holds 28 train images
    assert len(data.train) + len(data.val) == 28 and len(data.train) == 14
    assert "holds only 28" in data.description
    whole = af.load_animal_faces()
    assert (len(whole.train), len(whole.val)) == (26, 2)  # all but a tenth
    ids = lambda d: {tuple(x.flatten()[:40].tolist()) for x in d.inputs}  # noqa: E731
    assert not ids(data.train) & ids(data.val), "train and validation must not share images"


def test_sample_is_labelled_and_deterministic(isolated_cache, capsys):
    a = af.load_animal_faces(source="sample", n_train=60, n_val=30)
    b = af.load_animal_faces(source="sample", n_train=60, n_val=30)
    assert a.source == "synthetic stand-in" and "synthetic stand-in" in capsys.readouterr().out
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.train.labels, b.train.labels)
    assert set(a.train.labels.tolist()) == {0, 1, 2}


def test_auto_falls_back_offline_but_full_raises(isolated_cache, monkeypatch):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    assert af.load_animal_faces(source="auto", n_train=20, n_val=10).source == "synthetic stand-in"
    with pytest.raises(DataNotFoundError, match="afhq_32x32.zip"):
        af.load_animal_faces(source="full")


@pytest.mark.parametrize("kind, low, high", [("random", 0.4, 1.0), ("partial", 0.02, 0.15)])
def test_label_variants(kind, low, high, isolated_cache):
    true = af.load_animal_faces(source="sample", n_train=600, n_val=50)
    noisy = af.load_animal_faces(source="sample", n_train=600, n_val=50, labels=kind)
    assert torch.equal(noisy.train.inputs, true.train.inputs)
    assert torch.equal(noisy.true_train_labels, true.train.labels)
    assert torch.equal(noisy.val.labels, true.val.labels), "validation keeps its true labels"
    changed = (noisy.train.labels != true.train.labels).float().mean().item()
    assert low <= changed <= high
    assert noisy.train.labels.bincount().tolist() == true.train.labels.bincount().tolist()  # a permutation
    assert torch.equal(true.with_labels(kind, seed=0).train.labels, noisy.train.labels)


def test_bad_zip_gives_clear_error(tmp_path, isolated_cache):
    import zipfile
    bad = tmp_path / "afhq_32x32.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("afhq/readme.txt", "nothing")
    with pytest.raises(DataNotFoundError, match="train/<class>"):
        af.load_animal_faces(path=bad)
