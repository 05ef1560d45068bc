"""Check found data files against the best hash known for them, hashing each file once (size and mtime remembered).

The expected sha256 of a file is, in order: the upstream hash of the file (`RemoteFile.sha256`); for a file in
the cache without one, the hash recorded when this package downloaded it; for a file in the data mirror that
differs from upstream (a documented subset, like the mirror's 10,000-row Covertype), the hash the mirror's own
`SHA256SUMS` lists for it. A file for which no hash is known is checked by its loader's format checks only.
Files given by an explicit `path=` are the user's own copies (possibly subsets): they get the format checks only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..files import atomic_write, cache_dir, data_mirror
from .errors import DataFileError

__all__ = ["sha256_of", "file_sha256", "verify_file", "remember_download", "mirror_checksum"]

_CHUNK = 1 << 20


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
    return cache_dir() / "verified" / f"{path.name}.{key}.json"


def _read_stamp(path: Path) -> dict:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_stamp(path: Path, stamp: dict) -> None:
    try:
        atomic_write(_stamp_path(path), json.dumps(stamp, indent=1))
    except OSError:  # a read-only cache only costs hashing the file again next time
        pass


def _identity(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, remembered in the cache by size, mtime and inode so it is computed once."""
    path = Path(path)
    identity, stamp = _identity(path), _read_stamp(path)
    if stamp.get("sha256") and all(stamp.get(k) == v for k, v in identity.items()):
        return stamp["sha256"]
    digest = sha256_of(path)
    _write_stamp(path, {**stamp, **identity, "sha256": digest})
    return digest


def remember_download(path: str | Path, sha256: str) -> None:
    """Record that `path` was downloaded with content hash `sha256`, so later damage to it is recognised."""
    path = Path(path)
    _write_stamp(path, {**_identity(path), "sha256": sha256, "downloaded_sha256": sha256})


def mirror_checksum(path: Path) -> str | None:
    """The sha256 that the mirror's SHA256SUMS (at its root or beside the file) lists for `path`, if any."""
    mirror = data_mirror()
    if mirror is None:
        return None
    for sums in (mirror / "SHA256SUMS", path.parent / "SHA256SUMS"):
        try:
            lines = sums.read_text().splitlines()
            relative = path.resolve().relative_to(sums.parent.resolve()).as_posix()
        except (OSError, ValueError):
            continue
        for line in lines:
            digest, _, name = line.strip().partition(" ")
            if name.strip().lstrip("*").removeprefix("./") == relative:
                return digest.lower()
    return None


def verify_file(path: Path, upstream_sha256: str | None, where: str, url: str | None = None) -> str:
    """Check a file found in the "mirror" or "cache" (or given by "path") against the best known hash.

    Returns how it was checked (shown in the loader's description); raises `DataFileError` on a mismatch.
    """
    if where == "path":
        return "your file (format checked)"
    digest = file_sha256(path) if (upstream_sha256 or where in ("mirror", "cache")) else None
    if upstream_sha256 and digest == upstream_sha256:
        return "sha256 verified against the known hash"
    if where == "cache":
        recorded = _read_stamp(path).get("downloaded_sha256")
        expected, what = (upstream_sha256, "the expected one") if upstream_sha256 else (recorded, "the one "
                                                                                       "recorded at download")
        if expected is None:
            return "format checked (no checksum known)"
        if digest != expected:
            raise DataFileError(path, f"its sha256 {digest[:12]}… differs from {what} ({expected[:12]}…): the file "
                                      "is damaged, truncated or another file.", url=url, where="cache")
        return "sha256 verified against the download record"
    listed = mirror_checksum(path)
    if listed is not None:
        if digest != listed:
            raise DataFileError(path, f"its sha256 {digest[:12]}… differs from the one the mirror's SHA256SUMS lists "
                                      f"({listed[:12]}…): the mirror copy is damaged.", url=url, where="mirror")
        return ("sha256 verified against the mirror's SHA256SUMS (it differs from the upstream file: a documented "
                "subset)"
                if upstream_sha256 else "sha256 verified against the mirror's SHA256SUMS")
    if upstream_sha256:
        raise DataFileError(path, f"its sha256 {digest[:12]}… differs from the expected one ({upstream_sha256[:12]}…) "
                                  "and the mirror's SHA256SUMS does not list it: the file is damaged, truncated or "
                                  "another file.", url=url, where="mirror")
    return "format checked (no checksum known)"
