"""Text loaders: WikiText-2 raw from the mirror's real file, the stand-in, and "your own text"."""
import pytest

from twdl_helpers.data import DataNotFoundError
from twdl_helpers.data.text import load_text, load_wikitext2, split_text, wikitext_stand_in


def test_wikitext_from_mirror_is_real_and_split_at_an_article(mirror, isolated_cache):
    corpus = load_wikitext2(source="full")
    raw = (mirror / "wikitext2/wikitext-2-raw/wiki.test.raw").read_text(encoding="utf-8")
    assert corpus.source == "real"
    assert corpus.train + corpus.held_out == raw  # nothing lost, nothing invented
    assert corpus.held_out.startswith(" = ") and not corpus.held_out.startswith(" = = ")
    assert 0.15 < len(corpus.held_out) / len(raw) < 0.3
    assert "only wiki.test.raw" in corpus.description


def test_wikitext_validation_request_falls_back_to_the_test_file_and_says_so(mirror, isolated_cache):
    corpus = load_wikitext2(split="validation", limit=5_000)
    assert corpus.source == "real" and "wiki.test.raw" in corpus.description
    assert len(corpus.train) <= 5_000 and len(corpus.held_out) <= 5_000


def test_wikitext_sample_is_a_labelled_deterministic_stand_in(capsys):
    a, b = load_wikitext2(source="sample"), load_wikitext2(source="sample")
    assert a.source == "synthetic stand-in" and a.train == b.train
    assert "synthetic stand-in" in capsys.readouterr().out
    assert a.held_out.startswith(" = ") and " @,@ " in a.text


def test_wikitext_full_without_files_raises_with_instructions(monkeypatch, isolated_cache):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    with pytest.raises(DataNotFoundError, match="TWDL_DATA_MIRROR"):
        load_wikitext2(source="full")


def test_wikitext_explicit_path_is_not_silently_replaced(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_wikitext2(path=tmp_path / "nowhere", source="full")


def test_load_text_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n" * 50)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second part\n" * 50)
    one = load_text(tmp_path / "a.txt", held_out_fraction=0.2)
    assert one.train.count("\n") + one.held_out.count("\n") == 50 and one.held_out.strip()
    both = load_text(tmp_path, held_out_fraction=0.5)
    assert "first line" in both.train and "second part" in both.held_out


def test_load_text_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="no .txt files"):
        load_text(tmp_path)


def test_split_text_cuts_at_a_line_boundary():
    train, held = split_text("aaaa\nbbbb\ncccc\ndddd\n", 0.3)
    assert train + held == "aaaa\nbbbb\ncccc\ndddd\n" and held.startswith("\n")
    assert wikitext_stand_in(3, seed=1) == wikitext_stand_in(3, seed=1) != wikitext_stand_in(3, seed=2)
