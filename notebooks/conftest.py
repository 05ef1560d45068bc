"""pytest settings for `pytest --nbval-lax notebooks/`: offline data, inline figures, tolerance-aware record checks.

Only the solution notebooks (the committed executed references) are checked by nbval; the student
versions are executed by tests/test_notebooks.py with papermill instead.
"""
import os
from pathlib import Path

from twdl_helpers.nbval_tolerance import pytest_runtest_call  # noqa: F401  (registers the record comparison)

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "datasets"

collect_ignore = ["student"]
for name in ("TWDL_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(name, "1")
if MIRROR.is_dir():
    os.environ.setdefault("TWDL_DATA_MIRROR", str(MIRROR))
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the references were made on CPU
os.environ.pop("MPLBACKEND", None)  # let the kernel use its inline backend, as when the references were made
