"""Test settings: offline, headless, and the offline mirror of real data beside the checkout."""
import os
from pathlib import Path

import pytest

from twdl_tools.repo import batch_environment, configured_mirror

ROOT = Path(__file__).resolve().parents[1]

# Offline, the data mirror, the batch flag: the same environment `twdl run` gives a kernel (twdl_tools.repo).
os.environ.update(batch_environment(ROOT, offline=True, figures=False))
# The course nets are tiny: one CPU thread avoids OpenMP threads fighting over two cores (20-50x slowdowns seen).
os.environ.setdefault("OMP_NUM_THREADS", "1")
MIRROR = configured_mirror(ROOT)


def write_course(root: Path, stem: str, source: str) -> Path:
    """A one-module course in `root`: jupytext pairing and notebooks/<stem>.py; returns the notebooks folder."""
    (root / "jupytext.toml").write_text('formats = "ipynb,py:percent"\n')
    (root / "notebooks").mkdir()
    (root / "notebooks" / f"{stem}.py").write_text(source)
    return root / "notebooks"


@pytest.fixture
def mirror() -> Path:
    """The offline mirror of real upstream files (../shared/datasets); CI always has it."""
    if MIRROR is None:
        pytest.skip("offline data mirror not found (set TWDL_DATA_MIRROR or [tool.twdl] data-mirror)")
    return MIRROR


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """An empty TWDL_CACHE for one test."""
    monkeypatch.setenv("TWDL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"



@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test (UMAP/numba can reset torch's count); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
