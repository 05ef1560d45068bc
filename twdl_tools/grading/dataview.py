"""Data a profile's notebook never loads, kept from the sandbox so the grader can test models on it.

A check file may declare, per profile, data its notebook never loads: `WITHHELD = {"smoke": {"mnist": 2000}}`
(2,000 MNIST test digits) or `{"cifar_animals": 1500}` (1,500 images of the image zip's train/ folder, none of the
bundled sample's). Either is a seeded, class-stratified random draw (`WITHHELD_SEED`) from the pool the notebook
draws its evaluation data from (the test file; train/, where the validation images come from), so an honest model
scores the same on both within binomial noise. Before grading, `build_view` writes a data view: a copy of the data mirror (and of
the data cache's files) in which those files hold everything BUT the withheld part, with its own SHA256SUMS, and
a cache with the view's images already decoded. Each submission's kernel gets the view as its data mirror and
cache, and the sandbox shows only the view; the withheld part goes to a folder only the scorer reads
(`load_withheld`), where checks find it as `withheld["mnist"]` and compare a model's accuracy there with what the
notebook reported (a model that memorised the notebook's own test data collapses on it).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["WITHHOLDERS", "DataView", "build_view", "load_withheld", "withheld_for"]

VIEWS = ".twdl/views"  # under the grading's --out folder
WITHHELD_SEED = 20_24  # the seed of every withheld draw (fixed: the view is built once for all submissions)
SKIPPED_CACHE = ("decoded", "verified")  # derived files of the real cache never go into a view


def withheld_for(declared: dict[str, Any] | None, profile: Any) -> dict[str, int]:
    """The data a check file's WITHHELD declaration keeps from the sandbox for `profile` ({} for none)."""
    spec = (declared or {}).get(str(profile), {}) if isinstance(declared, dict) else {}
    unknown = set(spec) - set(WITHHOLDERS)
    if unknown or not all(isinstance(n, int) and n > 0 for n in spec.values()):
        raise ValueError(f"WITHHELD {spec!r}: datasets must be among {sorted(WITHHOLDERS)} with a positive count")
    return dict(spec)


@dataclass(frozen=True)
class DataView:
    """A built view: the mirror and cache the kernel sees, and the scorer's folder of withheld data."""

    mirror: Path
    cache: Path
    withheld: Path


def _mnist(source: Path, target: Path, count: int, withheld: Path) -> None:
    """t10k files holding all but `count` test digits (a stratified draw; the rest keep their order); those go to
    `withheld/mnist.safetensors`."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from twdl_helpers.data.mnist import normalize_mnist, read_idx, stratified_indices

    images = read_idx(source / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(source / "t10k-labels-idx1-ubyte.gz")
    if count * 4 > len(labels):
        return
    drawn = stratified_indices(labels.astype(np.int64), count, WITHHELD_SEED)
    keep = np.setdiff1d(np.arange(len(labels)), drawn)
    for name, array, magic in (("t10k-images-idx3-ubyte.gz", images, 2051), ("t10k-labels-idx1-ubyte.gz", labels, 2049)):
        kept = np.ascontiguousarray(array[keep])
        header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in kept.shape)
        (target / name).write_bytes(gzip.compress(header + kept.tobytes(), compresslevel=6, mtime=0))
    save_file({"inputs": normalize_mnist(images[drawn]).contiguous(),
               "labels": torch.as_tensor(labels[drawn].astype(np.int64))}, str(withheld / "mnist.safetensors"))


def _image_zip(key: str):
    def withhold(source: Path, target: Path, count: int, withheld: Path) -> None:
        """The zip without `count` train/ images (a stratified draw, never one of the bundled sample's); those to the
        scorer."""
        import numpy as np
        import torch
        from safetensors.torch import save_file

        from twdl_helpers.data.animal_faces import ZIP_MEMBER, decode_image_zip, normalize_images
        from twdl_helpers.data.mnist import stratified_indices
        from twdl_helpers.data.samples import bundled_files

        with zipfile.ZipFile(source) as archive:
            names = sorted(archive.namelist())
            train = [n for n in names if (m := ZIP_MEMBER.search(n)) and m.group(1).lower() == "train"]
            sample = set()
            if key == "cifar_animals":
                with zipfile.ZipFile(next(iter(bundled_files("cifar10_animals_sample.zip").values()))) as bundled:
                    sample = {n.split("/", 1)[-1] for n in bundled.namelist()}
            eligible = [n for n in train if n.split("/", 1)[-1] not in sample]
            if count * 4 > len(eligible):
                return
            classes = np.array([ZIP_MEMBER.search(n).group(2) for n in eligible])
            chosen = {eligible[i] for i in stratified_indices(classes, count, WITHHELD_SEED).tolist()}
            with zipfile.ZipFile(target, "w") as out:
                for info in archive.infolist():
                    if info.filename not in chosen:
                        out.writestr(info, archive.read(info.filename))
        decoded = decode_image_zip(source)
        images, labels, _ = decoded["train"]
        index = torch.tensor([i for i, n in enumerate(train) if n in chosen])
        save_file({"inputs": normalize_images(images[index]).contiguous(), "labels": labels[index].contiguous()},
                  str(withheld / f"{key}.safetensors"))

    return withhold


# dataset -> (its folder and file in the mirror/cache, how to withhold part of it)
WITHHOLDERS: dict[str, tuple[str, str, Any]] = {
    "mnist": ("mnist", "", _mnist),  # a folder of four files: the t10k pair is rewritten
    "cifar_animals": ("cifar10_animals", "cifar10_cat_dog_deer_32x32.zip", _image_zip("cifar_animals")),
    "afhq": ("afhq", "afhq_32x32.zip", _image_zip("afhq")),
}


def _sources() -> dict[str, Path]:
    """relative path -> file, for every data file a kernel could find: the mirror's, then the cache's."""
    from twdl_helpers.files import cache_dir

    from ..repo import configured_mirror

    found: dict[str, Path] = {}
    cache = cache_dir()
    if cache.is_dir():
        for path in sorted(cache.rglob("*")):
            relative = path.relative_to(cache)
            if path.is_file() and relative.parts[0] not in SKIPPED_CACHE:
                found[relative.as_posix()] = path
    mirror = configured_mirror()
    if mirror is not None:
        for path in sorted(mirror.rglob("*")):
            if path.is_file() and path.name != "SHA256SUMS":
                found[path.relative_to(mirror).as_posix()] = path
    return found


def _key(spec: dict[str, int], sources: dict[str, Path]) -> str:
    digest = hashlib.sha256(json.dumps({"spec": spec, "draw": f"stratified-{WITHHELD_SEED}"}, sort_keys=True).encode())
    for relative, path in sorted(sources.items()):
        info = path.stat()
        digest.update(f"{relative}:{info.st_size}:{info.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links refused: a copy
        shutil.copyfile(source, target)


def build_view(spec: dict[str, int], out: str | Path) -> DataView | None:
    """The data view for `spec` under `out` (built once, then reused while the data files stay the same).

    None when `spec` is empty. Datasets that are not found, or too small to spare the count, are left whole.
    """
    if not spec:
        return None
    from twdl_helpers.data.animal_faces import decoded_image_zip
    from twdl_helpers.data.verify import sha256_of

    sources = _sources()
    root = Path(out).resolve() / VIEWS / _key(spec, sources)
    view = DataView(root / "mirror", root / "cache", root / "withheld")
    if (root / "ready").is_file():
        return view
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
    mirror, withheld = staging / "mirror", staging / "withheld"
    mirror.mkdir()
    withheld.mkdir()
    replaced: set[str] = set()
    for dataset, count in spec.items():
        folder, name, withhold = WITHHOLDERS[dataset]
        if dataset == "mnist":
            files = [f"{folder}/t10k-images-idx3-ubyte.gz", f"{folder}/t10k-labels-idx1-ubyte.gz"]
            if all(f in sources for f in files):
                (mirror / folder).mkdir(parents=True, exist_ok=True)
                withhold(sources[files[0]].parent, mirror / folder, count, withheld)
                replaced.update(f for f in files if (mirror / f).is_file())
        elif f"{folder}/{name}" in sources:
            (mirror / folder).mkdir(parents=True, exist_ok=True)
            withhold(sources[f"{folder}/{name}"], mirror / folder / name, count, withheld)
            replaced.update([f"{folder}/{name}"] if (mirror / folder / name).is_file() else [])
    for relative, path in sources.items():
        if relative not in replaced:
            _place(path, mirror / relative)
    sums = [f"{sha256_of(p)}  {p.relative_to(mirror).as_posix()}" for p in sorted(mirror.rglob("*")) if p.is_file()]
    (mirror / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    for relative in replaced:
        if relative.endswith(".zip"):
            decoded_image_zip(mirror / relative, cache=staging / "cache")
    (staging / "cache").mkdir(exist_ok=True)
    (staging / "ready").write_text(json.dumps({"withheld": spec, "replaced": sorted(replaced)}))
    try:
        staging.rename(root)
    except OSError:  # another grading built it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return view


def load_withheld(job: dict[str, Any] | None) -> dict[str, Any]:
    """dataset -> TensorData of the withheld part (in the scorer; {} when nothing was withheld)."""
    if not job or not job.get("folder"):
        return {}
    from safetensors.torch import load_file

    from twdl_helpers.training import TensorData

    found = {}
    for path in sorted(Path(job["folder"]).glob("*.safetensors")):
        tensors = load_file(str(path))
        found[path.stem] = TensorData(tensors["inputs"], tensors["labels"])
    return found
