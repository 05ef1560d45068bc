"""The Animal Faces loader: AFHQ (the mirror's 43 real images), the CIFAR-10 substitute, the bundled sample, labels."""
import pickle
import zipfile

import pytest
import torch

from twdl_helpers.data import animal_faces as af
from twdl_helpers.data import DataFileError, DataNotFoundError


def test_afhq_zip_real_images_and_the_decoded_cache(mirror, isolated_cache, capsys):
    data = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5, seed=3)
    assert data.source == "real" and data.dataset == "afhq" and data.classes == ("cat", "dog", "wild")
    assert (len(data.train), len(data.val), len(data.test)) == (10, 5, 15)
    assert data.train.inputs.shape == (10, 3, 32, 32) and data.train.inputs.dtype == torch.float32
    assert data.train.inputs.min() >= -1 and data.train.inputs.max() <= 1
    assert data.test.labels.bincount().tolist() == [5, 5, 5]
    assert "AFHQ 32x32" in capsys.readouterr().out
    assert list(isolated_cache.rglob("decoded/afhq_32x32.*.safetensors")), "decoded tensors should be cached"
    again = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5, seed=3)  # from the cache
    assert torch.equal(again.train.inputs, data.train.inputs)


def test_split_sizes_computed_and_capped(mirror, isolated_cache):
    data = af.load_animal_faces(dataset="afhq", n_train=100, n_val=100)  # the mirror's AFHQ holds 28 train images
    assert len(data.train) + len(data.val) == 28 and len(data.train) == 14
    assert "holds only 28" in data.description
    whole = af.load_animal_faces(dataset="afhq")
    assert (len(whole.train), len(whole.val)) == (26, 2)  # all but a tenth
    ids = lambda d: {tuple(x.flatten()[:40].tolist()) for x in d.inputs}  # noqa: E731
    assert not ids(data.train) & ids(data.val), "train and validation must not share images"


def test_auto_passes_over_a_partial_afhq_for_the_cifar_substitute_and_says_so(mirror, isolated_cache, capsys):
    data = af.load_animal_faces(n_train=250, n_val=1000, seed=0)
    assert data.dataset == "cifar_animals" and data.source == "real" and data.classes == ("cat", "deer", "dog")
    assert (len(data.train), len(data.val), len(data.test)) == (250, 1000, 3000)  # test = CIFAR's official test split
    assert data.test.labels.bincount().tolist() == [1000] * 3
    out = capsys.readouterr().out
    assert "CIFAR-10 substitute" in out and "not AFHQ" in out and "only 28 train" in out
    assert "CIFAR-10" in data.summary()
    fewer = af.load_animal_faces(n_train=100, n_val=500, n_test=1200, seed=0)
    assert len(fewer.test) == 1200


def test_cifar_decoding_is_cached_and_fast_the_second_time(mirror, isolated_cache):
    import time
    af.load_animal_faces(dataset="cifar_animals", n_train=10, n_val=10)
    start = time.perf_counter()
    af.load_animal_faces(dataset="cifar_animals", n_train=10, n_val=10)
    assert time.perf_counter() - start < 2.0, "18,000 JPEGs must come from the decoded cache, not be decoded again"


def test_a_changed_zip_is_decoded_again(tmp_path, mirror, isolated_cache):
    copy = tmp_path / "afhq_32x32.zip"
    copy.write_bytes((mirror / "afhq" / "afhq_32x32.zip").read_bytes())
    first = af.load_animal_faces(path=copy, dataset="afhq")
    with zipfile.ZipFile(copy) as source:  # the same zip without the wild class
        members = [(n, source.read(n)) for n in source.namelist() if "/wild/" not in n]
    with zipfile.ZipFile(copy, "w") as out:
        for name, data in members:
            out.writestr(name, data)
    second = af.load_animal_faces(path=copy, dataset="afhq")
    assert first.classes == ("cat", "dog", "wild") and second.classes == ("cat", "dog")


def test_a_damaged_decoded_cache_is_replaced_not_used(mirror, isolated_cache, capsys):
    first = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5)
    (cached,) = isolated_cache.rglob("decoded/afhq_32x32.*.safetensors")
    cached.write_bytes(cached.read_bytes()[:100])
    again = af.load_animal_faces(path=mirror / "afhq", n_train=10, n_val=5)
    assert torch.equal(again.train.inputs, first.train.inputs) and "decoding again" in capsys.readouterr().out
    assert cached.stat().st_size > 1000


def test_the_decoded_cache_loads_without_unpickling(mirror, isolated_cache, monkeypatch):
    """The cache is safetensors: the grader's scorer (no torch.load, no unpickling) reads it instead of decoding."""
    first = af.decoded_image_zip(mirror / "afhq" / "afhq_32x32.zip")

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(af, "decode_image_zip", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    again = af.decoded_image_zip(mirror / "afhq" / "afhq_32x32.zip")
    assert again.keys() == first.keys()
    for split, (images, labels, classes) in first.items():
        assert torch.equal(again[split][0], images) and torch.equal(again[split][1], labels)
        assert again[split][2] == classes and again[split][0].dtype == torch.uint8


def test_sample_is_the_real_cifar_substitute_and_deterministic(isolated_cache, capsys):
    a = af.load_animal_faces(source="sample", n_train=100, n_val=500)
    b = af.load_animal_faces(source="sample", n_train=100, n_val=500)
    assert a.source == "bundled sample" and a.dataset == "cifar_animals"
    assert "bundled sample" in capsys.readouterr().out
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.train.labels, b.train.labels)
    assert set(a.train.labels.tolist()) == {0, 1, 2} and len(a.test) == 300


def test_auto_falls_back_offline_to_the_sample_but_full_and_afhq_raise(isolated_cache, monkeypatch):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    assert af.load_animal_faces(source="auto", n_train=20, n_val=10).source == "bundled sample"
    with pytest.raises(DataNotFoundError, match="cifar10_cat_dog_deer_32x32.zip"):
        af.load_animal_faces(source="full")
    with pytest.raises(DataNotFoundError, match="no bundled sample"):
        af.load_animal_faces(dataset="afhq")  # the course's dataset has no bundled sample: never a silent substitute
    with pytest.raises(ValueError, match="dataset must be one of"):
        af.load_animal_faces(dataset="cifar10")


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


def test_bad_zip_layout_gives_the_named_error(tmp_path, isolated_cache):
    bad = tmp_path / "afhq_32x32.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("afhq/readme.txt", "nothing")
    with pytest.raises(DataFileError, match="train/<class>"):
        af.load_animal_faces(path=bad)


def test_a_partial_afhq_alone_is_not_the_full_dataset(tmp_path, mirror, isolated_cache, monkeypatch):
    (tmp_path / "mirror" / "afhq").mkdir(parents=True)
    (tmp_path / "mirror" / "afhq" / "afhq_32x32.zip").symlink_to(mirror / "afhq" / "afhq_32x32.zip")
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataNotFoundError, match="only 28 train / 15 val images"):
        af.load_animal_faces(source="full")
    data = af.load_animal_faces(n_train=50, n_val=50)
    assert data.source == "bundled sample" and "only 28 train" in data.description
    assert af.load_animal_faces(dataset="afhq", source="full").dataset == "afhq"  # asked for by name: used
