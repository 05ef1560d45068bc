"""Text for Module 4: WikiText-2 raw (online, offline mirror, or a synthetic stand-in) and "your own text" files."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .fetch import DataNotFoundError, RemoteFile, banner, check_source, local_candidates, offline
from ..files import display_path

__all__ = ["TextCorpus", "load_wikitext2", "load_text", "wikitext_stand_in", "split_text"]

HF_DATASET = ("Salesforce/wikitext", "wikitext-2-raw-v1")
SPLIT_FILES = {"train": "wiki.train.raw", "validation": "wiki.valid.raw", "test": "wiki.test.raw"}
FOLDER = "wikitext2/wikitext-2-raw"
UPSTREAM_ZIP = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip"


@dataclass
class TextCorpus:
    """Raw text cut into a training part and a held-out part, with where it came from."""

    train: str
    held_out: str
    source: str  # "real", "bundled sample" or "synthetic stand-in"
    description: str

    @property
    def text(self) -> str:
        """Both parts joined (training part first)."""
        return self.train + self.held_out

    def __repr__(self) -> str:
        return (f"TextCorpus(source={self.source!r}, train={len(self.train):,} chars, "
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


def _find_local(split: str, path: str | Path | None) -> Path | None:
    file = RemoteFile(SPLIT_FILES[split], FOLDER, (UPSTREAM_ZIP,))
    places = local_candidates(file, path)
    for place in places[:2] if path is not None else places:  # an explicit path is never silently replaced
        if place.is_file():
            return place
    return None


def _from_datasets(split: str) -> tuple[str, str]:
    from datasets import load_dataset

    parts = load_dataset(*HF_DATASET)
    return "".join(parts["train"]["text"]), "".join(parts[split]["text"])


def load_wikitext2(
    path: str | Path | None = None, source: str = "auto", split: str = "test", held_out_fraction: float = 0.2,
    limit: int | None = None, seed: int = 0,
) -> TextCorpus:
    """WikiText-2 raw as a TextCorpus: train split + `split` (online), else a local raw file cut in two, else a stand-in.

    Looks for `wiki.<split>.raw` at `path`, in TWDL_DATA_MIRROR (`wikitext2/wikitext-2-raw/`) and the cache; else
    downloads through `datasets` (unless offline). When only one split is available (the mirror has the test split
    only), its articles are cut deterministically: the last `held_out_fraction` held out. `limit` caps each part's
    characters. `source="sample"` returns the synthetic stand-in; `"full"` raises instead of falling back.
    """
    check_source(source)
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    if source != "sample":
        local = _find_local(split, path)
        if local is None and split != "test":
            local = _find_local("test", path)
        if local is not None:
            text = local.read_text(encoding="utf-8")
            train, held = _articles_split(text, held_out_fraction)
            corpus = TextCorpus(_limit(train, limit), _limit(held, limit), "real",
                                f"WikiText-2 raw, only {local.name} available ({local}); its articles cut into "
                                f"{1 - held_out_fraction:.0%} training / {held_out_fraction:.0%} held out")
            banner("WikiText-2", "real", corpus.description)
            return corpus
        errors = []
        if path is None and not offline():
            try:
                train, held = _from_datasets(split)
                corpus = TextCorpus(_limit(train, limit), _limit(held, limit), "real",
                                    f"WikiText-2 raw through `datasets` ({HF_DATASET[0]}): train split and {split} split")
                banner("WikiText-2", "real", corpus.description)
                return corpus
            except Exception as exc:  # no network, hub error: fall back below
                errors.append(f"datasets.load_dataset{HF_DATASET}: {type(exc).__name__}: {exc}")
        if source == "full":
            tried = "; ".join(errors) or "downloads disabled (TWDL_OFFLINE / HF_HUB_OFFLINE set)"
            raise DataNotFoundError(
                f"WikiText-2 raw {SPLIT_FILES[split]!r} not found (path={path}, TWDL_DATA_MIRROR, cache) and not "
                f"downloadable: {tried}. Fix: unzip {UPSTREAM_ZIP} into a folder and pass path=that folder, or set "
                f"TWDL_DATA_MIRROR to a folder holding {FOLDER}/{SPLIT_FILES[split]}, or use source='sample'.")
    text = wikitext_stand_in(seed=seed)
    train, held = _articles_split(text, held_out_fraction)
    corpus = TextCorpus(_limit(train, limit), _limit(held, limit), "synthetic stand-in",
                        "generated WikiText-style articles (made in code, not real WikiText): numbers measured "
                        "on it say nothing about real WikiText")
    banner("WikiText-2", corpus.source, corpus.description)
    return corpus


def load_text(path: str | Path, held_out_fraction: float = 0.1, limit: int | None = None) -> TextCorpus:
    """Your own text: a .txt file or a folder of .txt files (sorted, recursive), last `held_out_fraction` held out."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no .txt files in the folder {path}: put your text in one or more .txt files there")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path} does not exist: pass a .txt file or a folder holding .txt files")
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace").strip("\n") + "\n" for f in files)
    if not text.strip():
        raise ValueError(f"the text at {path} is empty ({len(files)} file(s)): nothing to train on")
    train, held = split_text(text, held_out_fraction)
    corpus = TextCorpus(_limit(train, limit), _limit(held, limit), "real",
                        f"your text from {display_path(path)} ({len(files)} file(s), {len(text):,} characters), "
                        f"last {held_out_fraction:.0%} held out")
    banner("Your text", "real", corpus.description)
    return corpus


_SUBJECTS = ["The river", "The cathedral", "The regiment", "The album", "The storm", "The railway", "The species",
             "The novel", "The governor", "The festival", "The expedition", "The bridge", "The club", "The treaty"]
_VERBS = ["was completed in", "was first recorded in", "was rebuilt after", "was renamed in", "reached its peak in",
          "was described by critics in", "was abandoned during", "was expanded in", "was released in"]
_OBJECTS = ["the northern province", "the early morning", "the following season", "a series of floods",
            "the second campaign", "the local council", "a small village", "the main station", "the coastal region"]
_NAMES = ["Alder", "Brennan", "Castell", "Dunmore", "Elswick", "Fairholt", "Garrow", "Hollins", "Inverey", "Jessop"]
_SECTIONS = ["History", "Background", "Reception", "Design", "Legacy", "Description", "Career", "Geography"]


def _sentence(rng: random.Random) -> str:
    year = rng.randint(1790, 2012)
    clause = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {year}"
    extra = rng.random()
    if extra < 0.35:
        clause += f" , near {rng.choice(_OBJECTS)} of {rng.choice(_NAMES)}"
    elif extra < 0.6:
        clause += f" , when {rng.randint(2, 900)} @,@ {rng.randint(100, 999)} people attended"
    elif extra < 0.75:
        clause += f" ( {rng.randint(1, 99)} @.@ {rng.randint(0, 9)} km )"
    return clause + " ."


def wikitext_stand_in(n_articles: int = 160, seed: int = 0) -> str:
    """Deterministic WikiText-style raw text (titles, sections, @-@ tokens) made in code; not real WikiText."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_articles):
        title = f"{rng.choice(_NAMES)} {rng.choice(['Bridge', 'Hall', 'Street', 'Park', 'Abbey', 'Line'])}"
        lines.append(f" = {title} = \n")
        for section in rng.sample(_SECTIONS, k=rng.randint(1, 3)):
            lines.append(f" = = {section} = = \n")
            for _ in range(rng.randint(1, 3)):
                lines.append(" " + " ".join(_sentence(rng) for _ in range(rng.randint(2, 6))) + " \n")
    return "".join(lines)
