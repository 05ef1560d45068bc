"""The small real samples shipped inside the package (`data/bundled/`), checked against their SHA256SUMS.

They are made from the real files by `scripts/make_data_samples.py`; `data/bundled/README.md` gives their origin,
licence and citation. Each loader returns its sample when the full data cannot be found (`source="auto"`) or
when asked for it (`source="sample"`).
"""
from __future__ import annotations

from pathlib import Path

from .errors import DataFileError, DataNotFoundError
from .verify import file_sha256

__all__ = ["BUNDLED_DIR", "bundled_files"]

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def _listed() -> dict[str, str]:
    sums = BUNDLED_DIR / "SHA256SUMS"
    try:
        lines = sums.read_text().splitlines()
    except OSError as exc:
        raise DataNotFoundError(f"{sums} is missing: the package's bundled samples are incomplete. Reinstall "
                                "twdl-helpers, or run scripts/make_data_samples.py in a checkout.") from exc
    return {name.strip().lstrip("*"): digest for digest, _, name in (line.partition(" ") for line in lines if line)}


def bundled_files(*names: str) -> dict[str, Path]:
    """{name: path} of bundled sample files, each verified against `bundled/SHA256SUMS`."""
    listed, files = _listed(), {}
    for name in names:
        path = BUNDLED_DIR / name
        if name not in listed or not path.is_file():
            raise DataNotFoundError(f"the bundled sample {path} is missing. Reinstall twdl-helpers, or run "
                                    "scripts/make_data_samples.py in a checkout.")
        if file_sha256(path) != listed[name]:
            raise DataFileError(path, "its sha256 differs from the one bundled/SHA256SUMS lists: the package's "
                                      "sample file was changed or damaged.", where="package")
        files[name] = path
    return files
