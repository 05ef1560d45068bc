"""Test settings: offline, headless, and the offline mirror of real data beside the checkout."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "datasets"

os.environ.setdefault("TWDL_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TWDL_BATCH", "1")  # notebooks run here in batch: "Try it" cells draw their default
# The course nets are tiny: one CPU thread avoids OpenMP threads fighting over two cores (20-50x slowdowns seen).
os.environ.setdefault("OMP_NUM_THREADS", "1")
if MIRROR.is_dir():
    os.environ.setdefault("TWDL_DATA_MIRROR", str(MIRROR))


@pytest.fixture
def mirror() -> Path:
    """The offline mirror of real upstream files (../shared/datasets); CI always has it."""
    path = Path(os.environ.get("TWDL_DATA_MIRROR", MIRROR))
    if not path.is_dir():
        pytest.skip(f"offline data mirror not found at {path}")
    return path


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
