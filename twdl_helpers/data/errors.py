"""The two errors a data loader raises: a file it could not find, and a file it found but cannot trust or read."""
from __future__ import annotations

from pathlib import Path

from ..files import display_path

__all__ = ["DataError", "DataNotFoundError", "DataFileError"]


class DataError(Exception):
    """Base of every error the data layer raises on purpose (catch this to handle them all)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset file could not be found locally nor downloaded; the message says where to put it."""


class DataFileError(DataError, ValueError):
    """A data file exists but is damaged or of the wrong kind: wrong checksum, truncated, unreadable, wrong layout.

    The message names the file, says what is wrong and what to do; `.path`, `.problem` and `.fix` hold the parts.
    """

    def __init__(self, path: str | Path, problem: str, fix: str | None = None, url: str | None = None,
                 where: str | None = None) -> None:
        self.path, self.problem, self.where, self.url, self._given_fix = Path(path), problem, where, url, fix
        self.fix = fix or default_fix(self.path, where, url)
        super().__init__(f"{display_path(self.path)}: {problem}\n  Fix: {self.fix}")

    def found_in(self, where: str, url: str | None = None) -> "DataFileError":
        """The same error with the fix for where the file was found ("cache", "mirror", "package", "path")."""
        return DataFileError(self.path, self.problem, self._given_fix, url or self.url, where)


def default_fix(path: Path, where: str | None, url: str | None) -> str:
    """What to do about a damaged file, by where it was found: cache, mirror, the package, or a path you gave."""
    source = f"the file from {url}" if url else "a good copy of the file"
    if where == "cache":
        return (f"delete {path} (the next run downloads it again" + ("" if url else " if it can be downloaded")
                + f"), or replace it with {source}.")
    if where == "mirror":
        return (f"replace {path} with {source} (the mirror is shared: tell whoever maintains it), or unset "
                "TWDL_DATA_MIRROR to use the cache and downloads instead.")
    if where == "package":
        return "reinstall the course package (pip install --force-reinstall twdl-helpers); its bundled files changed."
    return f"replace it with {source}, or pass path= a folder holding the right file."
