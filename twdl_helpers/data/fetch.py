"""Find a dataset's files: explicit path, offline mirror, cache, then a verified download with fallbacks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..files import cache_dir, data_mirror, offline

__all__ = ["SOURCES", "RemoteFile", "DataNotFoundError", "check_source", "local_candidates", "download", "locate",
           "banner"]

SOURCES = ("auto", "full", "sample")


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: its name, the folder it sits in (mirror and cache), its URLs and sha256."""

    name: str
    folder: str
    urls: tuple[str, ...]
    sha256: str | None = None


class DataNotFoundError(FileNotFoundError):
    """A dataset file could not be found locally nor downloaded; the message says where to put it."""


def check_source(source: str) -> str:
    """Validate a `source` argument ("auto" | "full" | "sample")."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return source


def local_candidates(file: RemoteFile, path: str | Path | None = None) -> list[Path]:
    """The places looked at, in order: explicit path (file or folder), the mirror, the cache."""
    places = _explicit_candidates(file, path)
    mirror = data_mirror()
    if mirror is not None:
        places += [mirror / file.folder / file.name, mirror / file.name]
    places.append(cache_dir() / file.folder / file.name)
    return places


def _explicit_candidates(file: RemoteFile, path: str | Path | None) -> list[Path]:
    if path is None:
        return []
    path = Path(path).expanduser()
    return [path] if path.suffix and not path.is_dir() else [path / file.name, path / file.folder / file.name]


def download(file: RemoteFile, retries: int = 2) -> Path:
    """Download `file` into the cache from its URLs in turn, verifying sha256; return the path.

    pooch writes to a temporary name and renames only after the hash matched, so an interrupted or corrupt
    download never leaves a file that looks complete.
    """
    import pooch

    target = cache_dir() / file.folder
    errors = []
    for url in file.urls:
        try:
            fetcher = pooch.create(path=target, base_url="", registry={file.name: _known_hash(file)},
                                   urls={file.name: url}, retry_if_failed=retries)
            return Path(fetcher.fetch(file.name, progressbar=True))
        except ValueError as exc:  # hash mismatch: pooch removed the temporary file
            errors.append(f"{url}: checksum mismatch ({exc})")
        except Exception as exc:  # network errors of every kind: try the next mirror
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
    raise DataNotFoundError(_missing_message(file, errors))


def _known_hash(file: RemoteFile) -> str | None:
    return f"sha256:{file.sha256}" if file.sha256 else None


def _missing_message(file: RemoteFile, errors: list[str]) -> str:
    mirror = data_mirror()
    tried = "\n  ".join(errors) if errors else "(downloads disabled: TWDL_OFFLINE is set)"
    return (
        f"Could not find {file.name!r}.\n"
        f"Looked in: {', '.join(str(p) for p in local_candidates(file))}\n"
        f"Download attempts:\n  {tried}\n"
        f"Fix: download it from {file.urls[0]} and put it at {cache_dir() / file.folder / file.name}"
        + (f" or {mirror / file.folder / file.name}" if mirror else " (or set TWDL_DATA_MIRROR to a folder holding "
           f"{file.folder}/{file.name})")
        + ", pass path=... to the loader, or use source='sample' for the bundled sample."
    )


def locate(file: RemoteFile, path: str | Path | None = None) -> Path:
    """Return a local path for `file`: explicit path, mirror, cache, else download (unless offline)."""
    candidates = local_candidates(file, path)
    if path is not None and not any(p.is_file() for p in _explicit_candidates(file, path)):
        raise DataNotFoundError(f"{file.name!r} not found at the path given: {Path(path)} "
                                f"(expected the file itself or a folder holding it). Upstream: {file.urls[0]}")
    for place in candidates:
        if place.is_file():
            return place
    if offline():
        raise DataNotFoundError(_missing_message(file, []))
    return download(file)


def banner(dataset: str, source: str, detail: str) -> None:
    """Print which data a loader returned, loudly when it is the bundled sample or a synthetic stand-in."""
    line = f"{dataset}: {detail}"
    if source != "real":
        line = f"*** {dataset}: using the {source} — {detail} ***"
    print(line)
