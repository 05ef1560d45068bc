"""Where the course's files live and how they are written: atomic writes, the data mirror and cache, batch runs.

Both the students' runtime and the course tooling use this one module for: writing a file so that readers
never see half of it (`atomic_write`, `atomic_path`), finding the offline data mirror and the download cache,
knowing whether downloads are allowed, and the environment variables that tell a kernel it runs in a batch.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_write", "atomic_path", "data_mirror", "cache_dir", "offline", "in_batch_run", "BATCH_VARIABLE",
    "OFFLINE_ENVIRONMENT", "display_path",
]

BATCH_VARIABLE = "TWDL_BATCH"  # set to "1" by whoever executes a notebook without a person watching
# What an offline run sets: no downloads by the package, Hugging Face libraries never reach the hub.
OFFLINE_ENVIRONMENT = {"TWDL_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "TRANSFORMERS_OFFLINE": "1"}


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, never toggle it while threads write


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any error it is removed.

    For writers that want a file name (`fig.savefig`, `torch.save`, `zipfile`): an interrupted run leaves the
    previous good file, or nothing, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get ordinary permissions
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` through a temporary file and a rename; return `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def data_mirror() -> Path | None:
    """The offline mirror of upstream data files named by TWDL_DATA_MIRROR, if set."""
    value = os.environ.get("TWDL_DATA_MIRROR", "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: TWDL_CACHE, default ~/.cache/twdl."""
    return Path(os.environ.get("TWDL_CACHE", "~/.cache/twdl")).expanduser()


def offline() -> bool:
    """True when TWDL_OFFLINE (or HF_HUB_OFFLINE) asks not to try downloads."""
    return any(os.environ.get(k, "") not in ("", "0", "false") for k in ("TWDL_OFFLINE", "HF_HUB_OFFLINE"))


def in_batch_run() -> bool:
    """True when the notebook is executed in a batch (`twdl run`, `twdl grade`, references, tests)."""
    return os.environ.get(BATCH_VARIABLE, "") not in ("", "0", "false")


def display_path(path: str | Path) -> str:
    """`path` as people should see it in published output: relative to the data mirror, the cache or the current
    folder when inside one, so no machine's absolute paths end up in executed notebooks or the site."""
    path = Path(path)
    for root, label in ((data_mirror(), "$TWDL_DATA_MIRROR"), (cache_dir(), "$TWDL_CACHE"), (Path.cwd(), ".")):
        if root is None:
            continue
        try:
            return f"{label}/{path.resolve().relative_to(root.resolve())}"
        except ValueError:
            continue
    return str(path)
