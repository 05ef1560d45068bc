"""Text loaders: WikiText-2 raw from the mirror's real file, the bundled real excerpt, and "your own text"."""
import pytest

import re

from twdl_helpers.data import DataFileError, DataNotFoundError, bundled_files
from twdl_helpers.data.text import load_text, load_wikitext2, read_wikitext, split_text


def test_wikitext_from_mirror_is_real_and_split_at_an_article(mirror, isolated_cache):
    corpus = load_wikitext2(source="full")
    raw = (mirror / "wikitext2/wikitext-2-raw/wiki.test.raw").read_text(encoding="utf-8")
    assert corpus.source == "real"
    assert corpus.train + corpus.held_out == raw  # nothing lost, nothing invented
    assert corpus.held_out.startswith(" = ") and not corpus.held_out.startswith(" = = ")
    assert 0.15 < len(corpus.held_out) / len(raw) < 0.3
    assert "only wiki.test.raw" in corpus.description


def test_wikitext_validation_split_is_not_in_the_mirror_so_auto_uses_the_sample(mirror, isolated_cache):
    corpus = load_wikitext2(split="validation", limit=5_000)
    assert corpus.source == "bundled sample"
    assert len(corpus.train) <= 5_000 and len(corpus.held_out) <= 5_000
    with pytest.raises(DataNotFoundError, match="wiki.valid.raw"):
        load_wikitext2(split="validation", source="full")


def test_wikitext_train_split_is_used_for_training_when_found(tmp_path, mirror, isolated_cache):
    folder = tmp_path / "wikitext-2-raw"
    folder.mkdir()
    text = (mirror / "wikitext2/wikitext-2-raw/wiki.test.raw").read_text(encoding="utf-8")
    third_title = [m.start() + 1 for m in re.finditer(r"\n = [^=\n]", text)][2]
    (folder / "wiki.test.raw").write_text(text[:third_title], encoding="utf-8")
    (folder / "wiki.train.raw").write_text(text[third_title:], encoding="utf-8")
    corpus = load_wikitext2(path=folder)
    assert corpus.source == "real" and "train split for training" in corpus.description
    assert corpus.held_out == text[:third_title] and corpus.train == text[third_title:]


def test_wikitext_sample_is_a_real_excerpt_of_the_test_split(mirror, capsys):
    a, b = load_wikitext2(source="sample"), load_wikitext2(source="sample")
    assert a.source == "bundled sample" and a.train == b.train
    assert "bundled sample" in capsys.readouterr().out
    real = (mirror / "wikitext2/wikitext-2-raw/wiki.test.raw").read_text(encoding="utf-8")
    assert real.startswith(a.text) and len(a.text) > 200_000  # whole real articles, nothing generated
    assert read_wikitext(bundled_files("wikitext2_sample.raw.gz")["wikitext2_sample.raw.gz"]) == a.text


def test_wikitext_full_without_files_raises_with_instructions(monkeypatch, isolated_cache):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    with pytest.raises(DataNotFoundError, match="TWDL_DATA_MIRROR"):
        load_wikitext2(source="full")


def test_wikitext_explicit_path_is_not_silently_replaced(tmp_path):
    for source in ("auto", "full"):
        with pytest.raises(DataNotFoundError, match="not found at the path given"):
            load_wikitext2(path=tmp_path / "nowhere", source=source)


def test_load_text_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n" * 50)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second part\n" * 50)
    one = load_text(tmp_path / "a.txt", held_out_fraction=0.2)
    assert one.train.count("\n") + one.held_out.count("\n") == 50 and one.held_out.strip()
    both = load_text(tmp_path, held_out_fraction=0.5)
    assert "first line" in both.train and "second part" in both.held_out


def test_load_text_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(DataNotFoundError, match="no .txt files"):
        load_text(tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataFileError, match="empty"):
        load_text(tmp_path / "empty.txt")


def test_split_text_cuts_at_a_line_boundary():
    train, held = split_text("aaaa\nbbbb\ncccc\ndddd\n", 0.3)
    assert train + held == "aaaa\nbbbb\ncccc\ndddd\n" and held.startswith("\n")


def test_tuning_part_is_set_aside_from_training_and_leaves_the_held_out_part_as_it_was(tmp_path, mirror):
    text = tmp_path / "mine.txt"
    text.write_text("".join(f"line {i} of my text\n" for i in range(400)))
    plain, tuned = load_text(text, 0.1), load_text(text, 0.1, tuning_fraction=0.2)
    assert tuned.held_out == plain.held_out and not plain.tuning
    assert tuned.train + tuned.tuning == plain.train and tuned.text == plain.text
    assert 0.15 < len(tuned.tuning) / len(plain.text) < 0.25
    corpus = load_wikitext2(source="sample", tuning_fraction=0.1)
    assert corpus.tuning and corpus.tuning not in corpus.train and corpus.held_out not in corpus.tuning
    assert corpus.held_out == load_wikitext2(source="sample").held_out
    with pytest.raises(ValueError, match="leave no training text"):
        load_text(text, 0.5, tuning_fraction=0.5)
