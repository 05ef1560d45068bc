"""Measure one run alone: wall time, tokens per second, and its memory (peak, and increase over what was
already held), on the CUDA allocator or, on a CPU, the process's resident memory."""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field

import torch

__all__ = ["ResourceMeter", "free_memory"]


def free_memory(device: torch.device | str = "cpu") -> None:
    """Collect unreachable objects and, on CUDA, return cached blocks, so a measurement starts from what is held."""
    gc.collect()
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


@dataclass
class ResourceMeter:
    """`with ResourceMeter(device) as m: ...; m.tokens = n` then read m.seconds, m.tokens_per_second,
    m.peak_memory_mb and m.memory_increase_mb.

    Entering frees garbage and emptied caches and resets the peak, so the block is measured alone; anything the
    caller still holds (an earlier model) stays in `start_memory_mb` and in the peak, never in the increase.
    CUDA: memory = torch.cuda.memory_allocated / max_memory_allocated (tensors only), "CUDA allocated".
    CPU: memory = the process's resident set size sampled every `interval` s, "CPU RSS (whole process)": it
    includes Python, libraries and everything else already in memory.
    """

    device: torch.device | str = "cpu"
    interval: float = 0.02
    tokens: int = 0
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    start_memory_mb: float = 0.0
    memory_label: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)

    @property
    def tokens_per_second(self) -> float:
        """Tokens processed per wall-clock second (0 when no tokens were reported)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def memory_increase_mb(self) -> float:
        """Peak minus the memory held when the block started: what the block itself needed at most."""
        return max(0.0, self.peak_memory_mb - self.start_memory_mb)

    def _rss_mb(self) -> float:
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_memory_mb = max(self.peak_memory_mb, self._rss_mb())

    def __enter__(self) -> "ResourceMeter":
        free_memory(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_memory_mb = torch.cuda.memory_allocated(self.device) / 2**20
            self.memory_label = "CUDA allocated (MB)"
        else:
            self.start_memory_mb = self.peak_memory_mb = self._rss_mb()
            self.memory_label = "CPU RSS, whole process (MB)"
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0
        if self.device.type == "cuda":
            self.peak_memory_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak_memory_mb = max(self.peak_memory_mb, self._rss_mb())
