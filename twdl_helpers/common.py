"""Seeds, devices and the smoke/full profiles that size every notebook's experiments."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["set_seed", "get_device", "Profile", "get_profile", "to_python", "PROFILES", "DEVICES"]

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


def get_profile(profile: str | Profile) -> Profile:
    """Return a Profile from its name (or pass one through)."""
    return profile if isinstance(profile, Profile) else Profile(str(profile))


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
