"""The one rule every loader uses to find its data: explicit path → mirror → cache → download → bundled sample.

`resolve(dataset, path, source)` applies it and returns the parsed data with where it came from:

- `path=` given: the files must be there (a folder holding them, or the file itself for a one-file dataset);
  otherwise `DataNotFoundError`, never a fallback. Files given this way are checked by format only.
- else each file is looked up in `TWDL_DATA_MIRROR`, then the cache (`TWDL_CACHE`), then downloaded (unless
  `TWDL_OFFLINE`); mirror and cache files are verified against their known hash (see `verify.py`).
- `source="auto"`: when the files are not found, the dataset's bundled real sample, announced by a banner;
  `source="full"`: never a sample, `DataNotFoundError` instead; `source="sample"`: the bundled sample only.
- A damaged file (checksum mismatch or a parse failure) raises `DataFileError`; a damaged CACHE file is moved
  aside and downloaded again first when downloads are allowed. Downloads are written atomically.
"""
from __future__ import annotations

import re

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_path, cache_dir, data_mirror, display_path, offline
from .errors import DataFileError, DataNotFoundError
from .verify import remember_download, sha256_of, verify_file

__all__ = ["RemoteFile", "DataFiles", "Found", "SOURCES", "resolve", "locate", "download", "check_source", "banner",
           "BANNER_DATASETS", "banner_lines", "quarantine", "local_candidates"]

SOURCES = ("auto", "full", "sample")


@dataclass(frozen=True)
class RemoteFile:
    """One data file: its name, the folder it sits in (mirror and cache), its URLs and its sha256 when known.

    `sha256` is the upstream file's hash, or for a file this project assembled reproducibly (the CIFAR animal
    zip) the hash its provenance publishes; None when no hash is published (then the format is checked).
    """

    name: str
    folder: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None


@dataclass(frozen=True)
class DataFiles:
    """What `resolve` needs to know about one dataset.

    `read(paths)` parses the files ({file name: path}) and raises `DataFileError` naming a bad file; `sample()`
    returns the bundled sample's files (read with `sample_read`, default `read`); `download(file)` fetches one file
    into the cache (default: its URLs in turn); `optional` files are used when found, never required.
    """

    title: str
    files: tuple[RemoteFile, ...]
    read: Callable[[dict[str, Path]], Any]
    optional: tuple[RemoteFile, ...] = ()
    sample: Callable[[], dict[str, Path]] | None = None
    sample_read: Callable[[dict[str, Path]], Any] | None = None
    download: Callable[[RemoteFile], Path] | None = None


@dataclass
class Found:
    """The parsed data (`value`) of one dataset and where each of its files came from."""

    value: Any
    dataset: DataFiles
    source: str  # "real" or "bundled sample"
    paths: dict[str, Path] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # file name -> "path" | "mirror" | "cache" | "download" | ...
    checks: dict[str, str] = field(default_factory=dict)  # file name -> how it was verified
    passed_over: list[str] = field(default_factory=list)  # why other places or datasets were not used

    def origin(self) -> str:
        """Where the files came from, for a banner: 'mnist/… from $TWDL_DATA_MIRROR/mnist (sha256 verified …)'."""
        if self.source == "bundled sample":
            return f"from the bundled sample ({', '.join(sorted(self.paths))})"
        folders = sorted({display_path(p.parent) for p in self.paths.values()})
        checks = sorted(set(self.checks.values()))
        return f"from {', '.join(folders)}" + (f" ({'; '.join(checks)})" if checks else "")


def check_source(source: str) -> str:
    """Validate a `source` argument ("auto" | "full" | "sample")."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return source


def _explicit_candidates(file: RemoteFile, path: Path, single: bool) -> list[Path]:
    if path.is_file() or (path.suffix and not path.is_dir()):
        return [path] if single or path.name == file.name else []
    return [path / file.name, path / file.folder / file.name]


def local_candidates(file: RemoteFile) -> list[tuple[Path, str]]:
    """The places looked at without an explicit path, in order: the mirror, then the cache."""
    places = []
    mirror = data_mirror()
    if mirror is not None:
        places += [(mirror / file.folder / file.name, "mirror"), (mirror / file.name, "mirror")]
    places.append((cache_dir() / file.folder / file.name, "cache"))
    return places


def quarantine(path: Path) -> Path:
    """Move a damaged cache file aside (`<name>.damaged-<time>`) so it is never used again; return the new path."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(target)
    print(f"moved the damaged file {display_path(path)} aside to {target.name}; downloading it again")
    return target


def download(file: RemoteFile, retries: int = 1) -> Path:
    """Download `file` into the cache from its URLs in turn, verifying its sha256; return the cache path.

    The bytes go to a temporary file beside the target (`atomic_path`) and are renamed into place only after the
    checksum matched, so an interrupted or corrupt download never leaves a file that looks complete.
    """
    from pooch import HTTPDownloader

    if not file.urls:
        raise DataNotFoundError(_missing_message(file, [], "it has no download address"))
    target = cache_dir() / file.folder / file.name
    errors = []
    for url in file.urls:
        for _attempt in range(retries + 1):
            try:
                with atomic_path(target) as tmp:  # pooch shows a progress bar once the server answers
                    HTTPDownloader(progressbar=True, timeout=60)(url, str(tmp), None)
                    digest = sha256_of(tmp)
                    if file.sha256 and digest != file.sha256:
                        raise _ChecksumMismatch(f"checksum mismatch: the downloaded bytes have sha256 {digest[:12]}…, "
                                                f"expected {file.sha256[:12]}…")
                remember_download(target, digest)
                return target
            except _ChecksumMismatch as exc:
                errors.append(f"{url}: {exc}")
                break  # the same URL will serve the same wrong bytes: try the next one
            except Exception as exc:  # network errors of every kind: retry, then the next URL
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
    raise DataNotFoundError(_missing_message(file, errors))


class _ChecksumMismatch(Exception):
    pass


def _missing_message(file: RemoteFile, errors: list[str], why: str | None = None) -> str:
    mirror = data_mirror()
    tried = "\n  ".join(errors) if errors else f"(none: {why or 'downloads are off (TWDL_OFFLINE is set)'})"
    where = f"{cache_dir() / file.folder / file.name}" + (f" or {mirror / file.folder / file.name}" if mirror else
                                                          f" (or set TWDL_DATA_MIRROR to a folder holding "
                                                          f"{file.folder}/{file.name})")
    get = f"download it from {file.urls[0]} and put it at" if file.urls else "put a copy at"
    return (f"Could not find {file.name!r}.\n"
            f"Looked in: {', '.join(str(p) for p, _ in local_candidates(file))}\n"
            f"Download attempts:\n  {tried}\n"
            f"Fix: {get} {where}, pass path=... to the loader, or use source='sample' for the bundled sample.")


def locate(file: RemoteFile, path: str | Path | None = None) -> Path:
    """Find one file by the one rule (explicit path, else mirror, cache, download), verified; return its path."""
    return _locate(file, path)[0]


def _locate(file: RemoteFile, path: str | Path | None = None, single: bool = True,
            fetch: Callable[[RemoteFile], Path] | None = None) -> tuple[Path, str, str]:
    """Find one file: (path, where, how verified). Explicit path, else mirror, cache (verified), download.

    A damaged cache file is moved aside and downloaded again when downloads are allowed, else `DataFileError`.
    """
    url = file.urls[0] if file.urls else None
    if path is not None:
        path = Path(path).expanduser()
        for place in _explicit_candidates(file, path, single):
            if place.is_file():
                return place, "path", verify_file(place, file.sha256, "path", url)
        raise DataNotFoundError(f"{file.name!r} not found at the path given: {path} (expected the file itself or a "
                                f"folder holding it){f'. Upstream: {url}' if url else ''}. An explicit path is never "
                                "replaced by other data: fix the path, or leave it out to search the mirror and cache.")
    can_download = not offline() and (fetch is not None or bool(file.urls))
    for place, where in local_candidates(file):
        if place.is_file():
            try:
                return place, where, verify_file(place, file.sha256, where, url)
            except DataFileError:
                if where != "cache" or not can_download:
                    raise
                quarantine(place)
                break
    if not can_download:
        why = None if file.urls or fetch else "it has no download address"
        raise DataNotFoundError(_missing_message(file, [], why))
    got = (fetch or download)(file)
    return got, "download", verify_file(got, file.sha256, "cache", url)


def _parse(dataset: DataFiles, found: dict[str, tuple[Path, str, str]]) -> Any:
    """`dataset.read` on the found files; its `DataFileError` gets the fix that fits where the bad file was found."""
    try:
        return dataset.read({name: p for name, (p, _, _) in found.items()})
    except DataFileError as exc:
        where = next((w for p, w, _ in found.values() if p == exc.path), None)
        if exc.where is not None or where is None:
            raise
        file = next((f for f in dataset.files + dataset.optional if found.get(f.name, (None,))[0] == exc.path), None)
        url = file.urls[0] if file is not None and file.urls else None
        raise exc.found_in("cache" if where == "download" else where, url) from exc


def _read(dataset: DataFiles, found: dict[str, tuple[Path, str, str]], path: Path | None, single: bool) -> Any:
    """Parse the found files; a cache file that fails to parse is moved aside and fetched again once, if allowed."""
    try:
        return _parse(dataset, found)
    except DataFileError as exc:
        name = next((n for n, (p, w, _) in found.items() if p == exc.path and w == "cache"), None)
        file = next((f for f in dataset.files + dataset.optional if f.name == name), None)
        if file is None or offline() or not (file.urls or dataset.download):
            raise
        quarantine(found[name][0])
        found[name] = _locate(file, path, single, dataset.download)
        return _parse(dataset, found)


def _find(dataset: DataFiles, path: Path | None) -> dict[str, tuple[Path, str, str]]:
    single = len(dataset.files) == 1
    found, missing = {}, []
    for f in dataset.files:  # every present file is verified, even when another one is missing
        try:
            found[f.name] = _locate(f, path, single, dataset.download)
        except DataNotFoundError as exc:
            missing.append(exc)
    if missing:
        raise missing[0]
    for f in dataset.optional:  # used when present locally (a download of the required files may have brought it)
        try:
            found[f.name] = _locate(f, path, False, None) if path is not None else _locate_local(f)
        except DataNotFoundError:
            pass
    return found


def _locate_local(file: RemoteFile) -> tuple[Path, str, str]:
    for place, where in local_candidates(file):
        if place.is_file():
            return place, where, verify_file(place, file.sha256, where, file.urls[0] if file.urls else None)
    raise DataNotFoundError(file.name)


def resolve(datasets: DataFiles | Sequence[DataFiles], path: str | Path | None = None, source: str = "auto",
            accept: Callable[[Found], str | None] | None = None) -> Found:
    """Apply the one resolution rule (module docstring) to one dataset, or to alternatives tried in order.

    With several datasets (e.g. AFHQ, then the CIFAR substitute) each is searched in turn; `accept(found)` may
    pass over a found dataset (it returns why, e.g. "only 28 images"), except one given by an explicit path.
    The bundled sample is that of the first dataset that has one.
    """
    check_source(source)
    datasets = [datasets] if isinstance(datasets, DataFiles) else list(datasets)
    path = Path(path).expanduser() if path is not None else None
    if source == "sample":
        if path is not None:
            raise ValueError("path= and source='sample' ask for different data: drop path= for the bundled sample, "
                             "or use source='auto' to read the files at path")
        return _sample(datasets, [])
    if path is not None and path.is_file():  # a file given for one of several datasets: the one it is named for
        datasets = sorted(datasets, key=lambda d: path.name not in {f.name for f in d.files})
    passed_over, missing = [], []
    for dataset in datasets:
        try:
            found_files = _find(dataset, path)
        except DataNotFoundError as exc:
            if path is not None and dataset is not datasets[-1]:
                continue
            if path is not None:
                raise DataNotFoundError(str(exc) if len(datasets) == 1 else
                                        f"none of {[d.title for d in datasets]} found at the path given: {path}; "
                                        f"{exc}") from None
            missing.append((dataset, exc))
            passed_over.append(f"{dataset.title}: {str(exc).splitlines()[0]}")
            continue
        found = Found(_read(dataset, found_files, path, len(dataset.files) == 1), dataset, "real",
                      {n: p for n, (p, _, _) in found_files.items()}, {n: w for n, (_, w, _) in found_files.items()},
                      {n: c for n, (_, _, c) in found_files.items()}, passed_over)
        reason = accept(found) if accept is not None and path is None else None
        if reason is None:
            return found
        passed_over.append(f"{dataset.title} {found.origin()}: {reason}")
    if source == "full":
        if len(datasets) == 1 and missing:
            raise missing[0][1]
        raise DataNotFoundError("source='full' found no complete dataset:\n  " + "\n  ".join(passed_over)
                                + ("\n" + str(missing[-1][1]) if missing else ""))
    return _sample(datasets, passed_over)


def _sample(datasets: list[DataFiles], passed_over: list[str]) -> Found:
    dataset = next((d for d in datasets if d.sample is not None), None)
    if dataset is None:
        raise DataNotFoundError(f"{datasets[0].title} has no bundled sample: " + ("; ".join(passed_over) or
                                "source='sample' needs one") + ". Put its files in the mirror or cache, or pass path=.")
    files = dataset.sample()
    try:
        value = (dataset.sample_read or dataset.read)(files)
    except DataFileError as exc:
        if exc.where is not None:
            raise
        raise exc.found_in("package") from exc
    return Found(value, dataset, "bundled sample", files, {n: "package" for n in files}, {}, passed_over)


# The datasets a loader announces with `banner` (tests/test_data.py checks every call names one): the site's page
# header (twdl execute-references --profile full) quotes these lines to say which data a page was run on.
BANNER_DATASETS = ("Covertype", "MNIST", "Animal Faces", "WikiText-2", "Your text")


def banner_lines(text: str) -> list[str]:
    """The lines of printed output that are loaders' banners, without the '***' of a non-real source."""
    names = "|".join(re.escape(name) for name in BANNER_DATASETS)
    found = re.findall(rf"^(?:\*\*\* )?((?:{names}): .*?)(?: \*\*\*)?$", text, re.M)
    return list(dict.fromkeys(found))  # in order, each once


def banner(dataset: str, source: str, detail: str) -> None:
    """Print which data a loader returned, loudly when it is not the real upstream dataset."""
    print(f"{dataset}: {detail}" if source == "real" else f"*** {dataset}: using the {source} — {detail} ***")
