"""Covertype loader: real mirror bytes, the bundled real sample, encoders fitted on train only, seeded splits."""
import gzip

import numpy as np
import pytest
import torch

import twdl_helpers as twdl
from twdl_helpers.data import DataFileError, DataNotFoundError, bundled_files
from twdl_helpers.data.covertype import decode_covertype, read_covertype_raw


def test_mirror_sample_loads_real_rows(mirror, capsys):
    data = twdl.load_covertype(source="full")
    assert data.source == "real"
    assert len(data.train) + len(data.test) == 10_000  # the mirror holds a 10,000-row real subset
    out = capsys.readouterr().out
    assert "10,000 real rows (a subset of the 581,012)" in out and "mirror's SHA256SUMS" in out
    numeric, categorical = data.train.inputs
    assert numeric.dtype == torch.float32 and numeric.shape[1] == 10
    assert categorical.dtype == torch.long and categorical.shape[1] == 2
    assert set(data.train.labels.unique().tolist()) == set(range(7))
    # standardised with train statistics: train columns have mean ~0 and std ~1
    assert torch.allclose(numeric.mean(0), torch.zeros(10), atol=1e-4)
    assert torch.allclose(numeric.std(0, unbiased=False), torch.ones(10), atol=1e-3)


def test_decode_matches_rowwise_definition(mirror):
    raw = read_covertype_raw(mirror / "covertype" / "covtype.data.gz")[:500]
    numeric, wilderness, soil, label = decode_covertype(raw)
    for row, w, s, y in zip(raw, wilderness, soil, label):
        assert row[10 + w - 1] == 1 and row[14 + s - 1] == 1 and row[54] == y + 1
    assert np.array_equal(numeric, raw[:, :10])


def test_split_is_stratified_and_reproducible(mirror):
    a = twdl.load_covertype(seed=3)
    b = twdl.load_covertype(seed=3)
    c = twdl.load_covertype(seed=4)
    assert torch.equal(a.test.inputs[0], b.test.inputs[0])
    assert not torch.equal(a.test.inputs[0], c.test.inputs[0])
    counts = torch.bincount(a.train.labels, minlength=7) + torch.bincount(a.test.labels, minlength=7)
    share = torch.bincount(a.test.labels, minlength=7) / counts
    assert torch.all((share - 0.15).abs() < 0.03), share  # every class split 85/15


def test_encoders_fitted_on_train_only(mirror):
    data = twdl.load_covertype(limit=600, seed=1)
    for i, (name, encoder) in enumerate(data.encoders.items()):
        codes = data.train.inputs[1][:, i]
        assert codes.min() >= 1, "every training value must have a known code"
        assert encoder.cardinality == len(torch.unique(codes)) + 1  # only train values, plus "unknown"
    soil = data.encoders["Soil_Type"]
    unseen = [s for s in range(1, 41) if s not in set(soil.categories.tolist())]
    assert unseen, "a 510-row train split should miss some of the 40 soil types"
    assert soil.transform(np.array(unseen)).tolist() == [0] * len(unseen)


def test_encoder_maps_unseen_to_zero():
    enc = twdl.CategoryEncoder.fit(np.array([7, 3, 3, 9]))
    assert enc.transform(np.array([3, 7, 9, 4, 100, -1])).tolist() == [1, 2, 3, 0, 0, 0]
    assert enc.cardinality == 4


def test_limit_keeps_class_shares(mirror):
    data = twdl.load_covertype(limit=2000, seed=0)
    assert abs(len(data.train) + len(data.test) - 2000) <= 7
    assert set(torch.cat([data.train.labels, data.test.labels]).unique().tolist()) == set(range(7))


def test_bundled_sample_is_real_rows_of_the_mirror_file(mirror, capsys):
    data = twdl.load_covertype(source="sample")
    assert data.source == "bundled sample" and "bundled sample" in capsys.readouterr().out
    sample = read_covertype_raw(bundled_files("covtype_sample.data.gz")["covtype_sample.data.gz"])
    real = {tuple(row) for row in read_covertype_raw(mirror / "covertype" / "covtype.data.gz")}
    assert 3_000 <= len(sample) <= 5_000 and all(tuple(row) in real for row in sample)  # real rows, not made up
    assert set(np.unique(sample[:, 54])) == set(range(1, 8))  # every cover type present
    assert len(data.train) + len(data.test) == len(sample)


def test_offline_without_mirror(monkeypatch, isolated_cache, capsys):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    monkeypatch.setenv("TWDL_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="covtype.data.gz"):
        twdl.load_covertype(source="full")
    assert twdl.load_covertype(source="auto").source == "bundled sample"
    assert "using the bundled sample" in capsys.readouterr().out


def test_bad_layout_is_reported(tmp_path):
    path = tmp_path / "covtype.data.gz"
    with gzip.open(path, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(DataFileError, match="55 comma-separated"):
        twdl.load_covertype(path=path)


def test_a_wrong_explicit_path_is_an_error_never_a_fallback(tmp_path):
    for source in ("auto", "full"):
        with pytest.raises(DataNotFoundError, match="not found at the path given"):
            twdl.load_covertype(path=tmp_path / "nonexistent" / "covtype.data.gz", source=source)
