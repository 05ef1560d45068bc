"""Text for Module 4: WikiText-2 raw (path, mirror, cache, `datasets` download, a bundled real excerpt), your own text."""
from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write, cache_dir, display_path
from .errors import DataFileError, DataNotFoundError
from .fetch import DataFiles, RemoteFile, banner, resolve
from .samples import bundled_files
from .verify import remember_download, sha256_of

__all__ = ["TextCorpus", "load_wikitext2", "load_text", "read_wikitext", "split_text", "set_aside_tuning",
           "wikitext_dataset"]

HF_DATASET = ("Salesforce/wikitext", "wikitext-2-raw-v1")
SPLIT_FILES = {"train": "wiki.train.raw", "validation": "wiki.valid.raw", "test": "wiki.test.raw"}
FOLDER = "wikitext2/wikitext-2-raw"
UPSTREAM_ZIP = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip"


@dataclass
class TextCorpus:
    """Raw text cut into a training part, an optional tuning part (the text every choice is made on) and a held-out
    part (reported only, never used for a choice), with where it came from."""

    train: str
    held_out: str
    source: str  # "real" or "bundled sample" (both real text)
    description: str
    tuning: str = ""  # empty unless the loader was asked for a tuning part (`tuning_fraction`)

    @property
    def text(self) -> str:
        """All parts joined in their order in the text (training, tuning, held out)."""
        return self.train + self.tuning + self.held_out

    def __repr__(self) -> str:
        tuning = f"tuning={len(self.tuning):,} chars, " if self.tuning else ""
        return (f"TextCorpus(source={self.source!r}, train={len(self.train):,} chars, {tuning}"
                f"held_out={len(self.held_out):,} chars: {self.description})")


def split_text(text: str, held_out_fraction: float = 0.2, boundary: str = "\n") -> tuple[str, str]:
    """Cut `text` into (train, held_out): the last `held_out_fraction` of characters, at a `boundary` string."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be between 0 and 1 (exclusive), got {held_out_fraction}")
    if not text.strip():
        raise ValueError("the text is empty: nothing to split into training and held-out parts")
    target = int(len(text) * (1.0 - held_out_fraction))
    cut = text.find(boundary, target)
    if cut <= 0:  # no boundary after the target: take the last one before it
        cut = text.rfind(boundary, 0, target)
    if cut <= 0:
        cut = target
    return text[:cut], text[cut:]


def set_aside_tuning(train: str, fraction: float, boundary: str = "\n") -> tuple[str, str]:
    """Cut the last `fraction` of a training text off as the tuning text (at a `boundary`): (train, tuning).

    The one place a tuning split is made: hyperparameters are chosen on the tuning text, so the held-out text that
    perplexity is reported on is never used for a choice."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"tuning_fraction must be between 0 and 1 (exclusive), got {fraction}")
    return split_text(train, fraction, boundary)


def _with_tuning(corpus: "TextCorpus", fraction: float, said: str = "") -> "TextCorpus":
    """`corpus` with the end of its training part set aside as tuning text (nothing when fraction is 0)."""
    if not fraction:
        return corpus
    train, tuning = set_aside_tuning(corpus.train, fraction)
    said = said or f"the last {fraction:.0%} of the training part set aside for tuning"
    return TextCorpus(train, corpus.held_out, corpus.source, f"{corpus.description}; {said}", tuning)


def _limit(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    end = text.rfind("\n", 0, limit)
    return text[: end + 1 if end > 0 else limit]


def _articles_split(text: str, held_out_fraction: float) -> tuple[str, str]:
    """Cut before the first article title (a line " = Title = ", not a section " = = ... = = ") past the target."""
    split_text(text, held_out_fraction)  # validates the arguments
    target = int(len(text) * (1.0 - held_out_fraction))
    titles = [m.start() + 1 for m in re.finditer(r"\n = [^=\n]", text)]
    after = [t for t in titles if t >= target] or [t for t in titles if t > 0][-1:]
    return split_text(text, held_out_fraction) if not after else (text[:after[0]], text[after[0]:])


def read_wikitext(path: str | Path) -> str:
    """The text of a WikiText raw file (plain or .gz); `DataFileError` if it is empty, cut off or not WikiText."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() reads
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(path, f"cannot be decompressed ({type(exc).__name__}: {exc}): it is truncated or "
                                  "damaged.", url=UPSTREAM_ZIP) from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"is not UTF-8 text ({exc}): it is damaged or not a WikiText raw file.",
                            url=UPSTREAM_ZIP) from exc
    if not text.strip():
        raise DataFileError(path, "is empty: there is no text to train on or score.", url=UPSTREAM_ZIP)
    if not text.endswith("\n"):
        raise DataFileError(path, "ends in the middle of a line: it is truncated (WikiText raw files end with a "
                                  "newline).", url=UPSTREAM_ZIP)
    if not re.search(r"^ = [^=\r\n][^\r\n]*=[ \r]*$", text, re.MULTILINE):
        raise DataFileError(path, "has no article title line (' = Title = '): it is not a WikiText raw file.",
                            url=UPSTREAM_ZIP)
    return text


def _download_all_splits(file: RemoteFile) -> Path:
    """Fetch WikiText-2 raw through `datasets` and write its three splits into the cache as wiki.*.raw files."""
    try:
        from datasets import load_dataset

        parts = load_dataset(*HF_DATASET)
    except Exception as exc:  # no network, hub errors of every kind
        raise DataNotFoundError(f"WikiText-2 raw {file.name!r} not found locally and `datasets.load_dataset"
                                f"{HF_DATASET}` failed ({type(exc).__name__}: {exc}). Fix: unzip {UPSTREAM_ZIP} and "
                                f"pass path=that folder, or set TWDL_DATA_MIRROR to a folder holding "
                                f"{FOLDER}/{file.name}, or use source='sample'.") from exc
    for split, name in SPLIT_FILES.items():
        target = atomic_write(cache_dir() / FOLDER / name, "".join(parts[split]["text"]))
        remember_download(target, sha256_of(target))
    return cache_dir() / FOLDER / file.name


def _file(split: str) -> RemoteFile:
    return RemoteFile(SPLIT_FILES[split], FOLDER, (UPSTREAM_ZIP,))


def _read(paths: dict[str, Path]) -> dict[str, str]:
    return {name: read_wikitext(path) for name, path in paths.items()}


def wikitext_dataset(split: str = "test") -> DataFiles:
    """The files `load_wikitext2` needs: `wiki.<split>.raw` (required) and `wiki.train.raw` (used when found)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    return DataFiles("WikiText-2 raw", (_file(split),), _read, optional=(_file("train"),) if split != "train" else (),
                   sample=lambda: bundled_files("wikitext2_sample.raw.gz"), download=_download_all_splits)


def load_wikitext2(
    path: str | Path | None = None, source: str = "auto", split: str = "test", held_out_fraction: float = 0.2,
    limit: int | None = None, seed: int = 0, tuning_fraction: float = 0.0,
) -> TextCorpus:
    """WikiText-2 raw as a TextCorpus: the train split for training and `split` held out, when both are found.

    Files are found by the one rule of `twdl_helpers.data.fetch`: `wiki.<split>.raw` at `path`, in
    TWDL_DATA_MIRROR (`wikitext2/wikitext-2-raw/`), the cache, else all splits downloaded through `datasets`
    (unless offline). When the train split is not there (the mirror has the test split only), the held-out file's
    articles are cut deterministically, the last `held_out_fraction` held out. source="auto" falls back to the
    bundled real excerpt (the first articles of the test split) with a banner, "full" never does, "sample" uses it.
    `limit` caps each part's characters. `tuning_fraction` > 0 sets the end of the training part aside as
    `tuning` text (`set_aside_tuning`). `seed` is accepted for a uniform loader signature (nothing is random).
    """
    del seed
    found = resolve(wikitext_dataset(split), path, source)
    texts = found.value
    train_name, held_name = SPLIT_FILES["train"], SPLIT_FILES[split]
    if found.source == "real" and train_name in texts and held_name in texts and split != "train":
        train, held = texts[train_name], texts[held_name]
        how = f"train split for training, {split} split held out, {found.origin()}"
    else:
        name, text = next(iter(texts.items()))
        train, held = _articles_split(text, held_out_fraction)
        what = "a real excerpt of the test split" if found.source == "bundled sample" else f"only {name}"
        how = (f"{what} ({found.origin()}); its articles cut into "
               f"{1 - held_out_fraction:.0%} training / {held_out_fraction:.0%} held out")
    corpus = TextCorpus(train, _limit(held, limit), found.source, f"WikiText-2 raw, {how}")
    corpus = _with_tuning(corpus, tuning_fraction)
    corpus = TextCorpus(_limit(corpus.train, limit), corpus.held_out, corpus.source, corpus.description,
                        _limit(corpus.tuning, limit))
    banner("WikiText-2", corpus.source, corpus.description)
    return corpus


def load_text(path: str | Path, held_out_fraction: float = 0.1, limit: int | None = None,
              tuning_fraction: float = 0.0) -> TextCorpus:
    """Your own text: a .txt file or a folder of .txt files (sorted, recursive), last `held_out_fraction` held out;
    with `tuning_fraction` > 0, that fraction of the whole text just before the held-out part is the tuning text
    (the held-out part stays the same as without it)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise DataNotFoundError(f"no .txt files in the folder {path}: put your text in one or more .txt files "
                                    "there")
    elif path.is_file():
        files = [path]
    else:
        raise DataNotFoundError(f"{path} does not exist: pass a .txt file or a folder holding .txt files")
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace").strip("\n") + "\n" for f in files)
    if not text.strip():
        raise DataFileError(path, f"is empty ({len(files)} file(s)): there is nothing to train on.",
                            fix="put some text in it (UTF-8 .txt), or pass another file or folder.")
    train, held = split_text(text, held_out_fraction)
    corpus = TextCorpus(train, _limit(held, limit), "real",
                        f"your text from {display_path(path)} ({len(files)} file(s), {len(text):,} characters), "
                        f"last {held_out_fraction:.0%} held out")
    if tuning_fraction and tuning_fraction + held_out_fraction >= 1.0:
        raise ValueError(f"tuning_fraction {tuning_fraction} + held_out_fraction {held_out_fraction} leave no "
                         "training text: make them smaller")
    corpus = _with_tuning(corpus, tuning_fraction / (1.0 - held_out_fraction),
                          f"the {tuning_fraction:.0%} before it set aside for tuning")
    corpus = TextCorpus(_limit(corpus.train, limit), corpus.held_out, corpus.source, corpus.description,
                        _limit(corpus.tuning, limit))
    banner("Your text", "real", corpus.description)
    return corpus
