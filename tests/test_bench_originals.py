"""The benchmarks' reproductions of the original course code (bench/original_*.py) behave as the original did."""
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import original_animal_faces  # noqa: E402
import original_covertype  # noqa: E402
import original_lora  # noqa: E402
import original_mnist  # noqa: E402


def _raw_covertype(n=60, seed=0) -> pd.DataFrame:
    """A raw table in the UCI layout: 10 numerics, one hot bit per block, labels 1..7."""
    rng = np.random.default_rng(seed)
    numeric = rng.integers(0, 3000, size=(n, 10))
    wilderness = np.eye(4, dtype=int)[rng.integers(0, 4, n)]
    soil = np.eye(40, dtype=int)[rng.integers(0, 40, n)]
    label = rng.integers(1, 8, size=(n, 1))
    return pd.DataFrame(np.hstack([numeric, wilderness, soil, label]))


def test_double_softmax_loss_floor_is_log_e_plus_6_minus_1():
    loss_fn = torch.nn.CrossEntropyLoss()
    perfect = torch.eye(7)  # a fully confident, correct softmax output for each class
    loss = loss_fn(perfect, torch.arange(7))
    assert loss.item() == pytest.approx(original_covertype.DOUBLE_SOFTMAX_FLOOR, abs=1e-6)
    assert original_covertype.DOUBLE_SOFTMAX_FLOOR == pytest.approx(1.1654, abs=1e-4)


def test_original_model_outputs_probabilities_so_its_loss_never_falls_below_the_floor():
    torch.manual_seed(0)
    model = original_covertype.OriginalBaseline()
    numeric = torch.randn(265, 10) * 100
    codes = torch.stack([torch.randint(0, 4, (265,)), torch.randint(0, 40, (265,))], dim=1)
    labels = torch.randint(0, 7, (265,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):  # memorise one batch as hard as it can
        optimizer.zero_grad()
        loss = torch.nn.CrossEntropyLoss()(model(numeric, codes), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    out = model(numeric, codes)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(265))
    assert torch.nn.CrossEntropyLoss()(out, labels).item() >= original_covertype.DOUBLE_SOFTMAX_FLOOR - 1e-6


def test_one_hot_undo_names_the_hot_column_and_shifts_the_label():
    raw = _raw_covertype()
    df = original_covertype.preprocess(raw)
    assert list(df.columns) == original_covertype.NUMERIC + ["Cover_Type", "Wilderness_Area", "Soil_Type"]
    first = raw.iloc[0].to_numpy()
    assert df["Wilderness_Area"][0] == f"Wilderness_Area{first[10:14].argmax() + 1}"
    assert df["Soil_Type"][0] == f"Soil_Type{first[14:54].argmax() + 1}"
    assert df["Cover_Type"].min() >= 0 and df["Cover_Type"].max() <= 6


def test_forest_dataset_fits_encoders_per_split_so_codes_differ_between_splits():
    train = pd.DataFrame({**{c: [1.0, 2.0, 3.0] for c in original_covertype.NUMERIC},
                          "Wilderness_Area": ["Wilderness_Area1", "Wilderness_Area2", "Wilderness_Area3"],
                          "Soil_Type": ["Soil_Type1", "Soil_Type2", "Soil_Type3"], "Cover_Type": [0, 1, 2]})
    test = train.iloc[1:].reset_index(drop=True)  # lacks Soil_Type1
    train_ds, test_ds = original_covertype.ForestDataset(train), original_covertype.ForestDataset(test)
    # Soil_Type2 is code 1 in train but code 0 in test: the same category, two codes
    assert train_ds[1][1].tolist()[1] == 1 and test_ds[0][1].tolist()[1] == 0
    assert train_ds.numeric.dtype == np.float32 and isinstance(train_ds.categorical[0], np.ndarray)


def test_forest_dataset_items_are_three_new_tensors_collated_into_batches_of_265():
    ds = original_covertype.ForestDataset(original_covertype.preprocess(_raw_covertype(600)))
    numeric, codes, label = ds[3]
    assert numeric.dtype == torch.float32 and numeric.shape == (10,)
    assert codes.dtype == torch.long and codes.shape == (2,)
    assert label.dtype == torch.long and label.ndim == 0
    batch = next(iter(original_covertype.make_loader(ds)))
    assert [tuple(t.shape) for t in batch] == [(265, 10), (265, 2), (265,)]


def test_original_mnist_is_torchvisions_class_with_per_sample_normalisation(mirror, tmp_path):
    from twdl_helpers.data.mnist import read_idx

    dataset = original_mnist.original_dataset(original_mnist.torchvision_root(tmp_path))
    assert type(dataset).__module__.startswith("torchvision") and len(dataset) == 60_000
    image, label = dataset[0]
    pixels = read_idx(mirror / "mnist" / "train-images-idx3-ubyte.gz")[0]
    torch.testing.assert_close(image[0], (torch.from_numpy(pixels.copy()).float() / 255 - 0.1307) / 0.3081)
    labels = read_idx(mirror / "mnist" / "train-labels-idx1-ubyte.gz")
    assert label == labels[0]
    if not torch.cuda.is_available():  # without CUDA the original's loader keeps the file's order
        _, first = next(iter(original_mnist.original_loader(dataset, 64)))
        assert first.tolist() == labels[:64].tolist()


def test_original_mnist_net_returns_log_probabilities():
    out = original_mnist.OriginalNet()(torch.randn(5, 1, 28, 28))
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(5))


def test_original_animal_faces_reads_image_files_through_imagefolder(mirror, tmp_path):
    folder = original_animal_faces.extract(mirror / "afhq" / "afhq_32x32.zip", tmp_path)
    dataset = original_animal_faces.original_dataset(folder / "afhq" / "train")
    assert dataset.classes == ["cat", "dog", "wild"] and len(dataset) == 28
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and -1.0 <= image.min() and image.max() <= 1.0
    out = original_animal_faces.AnimalNetOriginal()(image[None])
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(1))
    assert original_animal_faces.train_original(dataset, epochs=1, batch_size=8) == 28


def test_original_distillation_soft_term_is_smaller_by_the_number_of_classes():
    import twdl_helpers as twdl

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
    labels = torch.randint(0, 3, (16,), generator=g)
    before = original_animal_faces.original_distillation_loss(student, teacher, labels, alpha=1.0, T=4.0)
    after = twdl.distillation_loss(student, teacher, labels, alpha=1.0, T=4.0)
    assert (after / before).item() == pytest.approx(3.0, rel=1e-5)  # 'mean' also divides by the 3 classes


def test_original_lora_targets_miss_opts_out_proj_and_the_qlora_example_raises():
    from twdl_helpers import lm

    model = original_lora.original_lora(lm.load_model("bundled"))
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and n.endswith("_proj")]
    assert wrapped and not any(n.endswith("out_proj") for n in wrapped)  # o_proj matched nothing on OPT
    assert model.print_trainable_parameters() is None  # prints, returns nothing
    with pytest.raises(ValueError, match="query_key_value"):
        original_lora.original_lora(lm.load_model("bundled"), original_lora.QLORA_EXAMPLE_TARGETS)


def test_original_lora_pads_every_line_and_averages_batch_losses():
    from twdl_helpers import lm

    tokenizer = lm.load_tokenizer("bundled")
    rows = ["", " = Title = \n", "A short line .\n", ""]
    padded = original_lora.tokenize(tokenizer, rows)
    assert padded["input_ids"].shape == (4, original_lora.MAX_LENGTH)
    batch = original_lora.collate(tokenizer, padded["input_ids"][:2], padded["attention_mask"][:2])
    assert (batch["labels"][padded["attention_mask"][:2] == 0] == -100).all()
    losses = [(2.0, 10), (4.0, 30)]
    assert original_lora.original_perplexity(losses) == pytest.approx(math.exp(3.0))  # a plain mean of batch losses
    assert original_lora.token_weighted_perplexity(losses) == pytest.approx(math.exp(3.5))


def test_original_wikitext_rows_restore_the_blank_lines(mirror):
    rows = original_lora.wikitext_rows(mirror)
    assert len(rows) == 4_358 and sum(1 for r in rows if not r.strip()) == 1_467


def test_removed_apis_of_the_original_fail_in_current_libraries(tmp_path):
    with pytest.raises(TypeError, match="evaluation_strategy"):
        original_lora.original_training_arguments(str(tmp_path))
    from twdl_helpers import lm

    with pytest.raises(TypeError, match="load_in_4bit"):
        original_lora.original_load_4bit(lm.resolve_model("bundled"))

