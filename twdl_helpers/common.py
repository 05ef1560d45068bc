"""Seeds, devices and the smoke/full profiles that size every notebook's experiments, and the one setup call."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from .params import validate_parameters

__all__ = ["PROFILES", "DEVICES", "DEVICE_LOG_VARIABLE", "start_device_run", "log_device_run", "set_seed", "seeded",
           "get_device", "model_device", "bf16_native", "describe_device", "Profile", "setup", "to_python"]

T = TypeVar("T")
PROFILES = ("smoke", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA), prefer deterministic kernels, return a CPU generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: an op without a deterministic CUDA kernel warns instead of crashing the lesson.
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded(seed: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block with torch's random stream started at `seed`, then restore the caller's stream.

    The CPU stream always, and the stream of `device` too when it is a CUDA device. Models draw their initial
    weights in it; `train` draws its dropout masks in it (None: the current stream, unchanged).
    """
    if seed is None:
        yield
        return
    device = torch.device(device) if device is not None else None
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def get_device(name: str = "auto") -> torch.device:
    """Return the torch device for "auto" | "cpu" | "cuda" | "mps", with a clear error when unavailable."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device='mps' was asked for but Apple's MPS backend is not available; use 'auto' or 'cpu'.")
    return torch.device(name)


@dataclass(frozen=True)
class Profile:
    """A run size: "smoke" (minutes on a laptop CPU, for CI and grading) or "full" (the course's settings)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.name!r}")

    @property
    def is_smoke(self) -> bool:
        """True for the small CI/grading profile."""
        return self.name == "smoke"

    def pick(self, smoke: T, full: T) -> T:
        """Return the value for this profile: `epochs = profile.pick(smoke=2, full=50)`."""
        return smoke if self.is_smoke else full


def model_device(model: nn.Module) -> torch.device:
    """The device a model computes on: that of its first parameter (or buffer); CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def bf16_native(device: torch.device | str = "cuda") -> bool:
    """True only where the GPU computes bf16 in hardware (Ampere and newer); never for emulated bf16 (a T4)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no `including_emulation`: native bf16 needs compute capability >= 8.0
        return torch.cuda.get_device_capability(device)[0] >= 8


DEVICE_LOG_VARIABLE = "TWDL_DEVICE_LOG"  # a .jsonl file: one line per training run (set by scripts/gpu_check.py)


def start_device_run(device: torch.device | str) -> float:
    """Mark the start of a training run for `log_device_run`: resets CUDA's peak-memory counter when logging."""
    device = torch.device(device)
    if os.environ.get(DEVICE_LOG_VARIABLE) and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    import time

    return time.perf_counter()


def log_device_run(label: str, device: torch.device | str, started: float,
                   peak_memory_mb: float | None = None) -> None:
    """When TWDL_DEVICE_LOG names a file, append one JSON line for a finished run: its label, device, seconds and
    peak memory (CUDA's max_memory_allocated since `start_device_run`, unless given). Does nothing otherwise."""
    path = os.environ.get(DEVICE_LOG_VARIABLE)
    if not path:
        return
    import json
    import time
    from pathlib import Path

    from .files import atomic_write

    device = torch.device(device)
    if peak_memory_mb is None and device.type == "cuda":
        peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
    entry = {"label": label, "device": str(device), "seconds": round(time.perf_counter() - started, 3),
             "peak_memory_mb": peak_memory_mb}
    log = Path(path)
    before = log.read_text() if log.is_file() else ""
    atomic_write(log, before + json.dumps(entry) + "\n")


def describe_device(device: torch.device | str) -> str:
    """A one-line description for people: the GPU's name and whether it computes bf16 natively."""
    device = torch.device(device)
    if device.type == "cuda":
        return (f"cuda ({torch.cuda.get_device_name(device)}, "
                f"native bf16: {'yes' if bf16_native(device) else 'no, fp16 mixed precision is used'})")
    return device.type


def setup(namespace: dict[str, Any], *, cpu_threads: int | None = None) -> tuple[Profile, torch.device]:
    """The one setup call at the top of every notebook: `P, dev = twdl.setup(globals())`.

    Validates the parameters cell against what each parameter declares (`validate_parameters`), returns the run's Profile and the device every model
    of the notebook is built on (`device=dev`; the helpers move each batch to the model's device), seeds
    Python/NumPy/torch with `seed`, and on a CPU limits torch to `cpu_threads` threads when given (the course's
    networks are tiny: extra threads cost more in waiting than they save).
    """
    validate_parameters(namespace)
    profile = Profile(namespace.get("profile", "smoke"))
    device = get_device(namespace.get("device", "auto"))
    seed = namespace.get("seed", 0)
    set_seed(seed)
    if cpu_threads is not None and device.type == "cpu":
        torch.set_num_threads(cpu_threads)
    threads = f", {torch.get_num_threads()} CPU thread(s)" if device.type == "cpu" else ""
    print(f"profile {profile.name}, device {describe_device(device)}{threads}, seed {seed}")
    return profile, device


def to_python(value: Any) -> Any:
    """Convert NumPy/torch scalars and arrays to plain Python values (for JSON and display)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value
