"""Measure one run alone: wall time, tokens per second, and its memory (peak, and increase over what was
already held), on the CUDA allocator or, on a CPU, the process's resident memory; and count, from the model itself,
the bytes a training step needs by kind (weights, gradients, optimiser state, activations: `memory_breakdown`)."""
from __future__ import annotations

import contextlib
import gc
import threading
import time
from dataclasses import dataclass, field

import torch

__all__ = ["ResourceMeter", "free_memory", "memory_breakdown", "MEMORY_PARTS"]

# The kinds of memory a training step holds, in the order the breakdown lists them (MB each).
MEMORY_PARTS = ("frozen_weights_mb", "trainable_weights_mb", "gradients_mb", "optimizer_state_mb", "activations_mb")


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


def _quant_state_bytes(p: torch.Tensor) -> int:
    """Bytes of a 4-bit weight's quantisation constants (its blocks' scales, double-quantised or not)."""
    state, total = getattr(p, "quant_state", None), 0
    while state is not None:
        total += sum(t.numel() * t.element_size() for t in (getattr(state, "absmax", None),
                                                              getattr(state, "code", None)) if t is not None)
        state = getattr(state, "state2", None)
    return total


def _optimizer_state_bytes(p: torch.Tensor, optimizer: str) -> int:
    """Adam's two moments per trainable weight: 1 byte each for 8-bit optimisers, else the weight's own dtype."""
    return 2 * p.numel() * (1 if "8bit" in optimizer else p.element_size())


def _activation_bytes(model: torch.nn.Module, batch: torch.Tensor, autocast: torch.dtype | None) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one training step on `batch` (each storage once,
    weights excluded): what a step holds between forward and backward, counted rather than sampled."""
    held = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in held:
            saved[ptr] = max(saved.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    was_training, device = model.training, batch.device
    model.train()
    context = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), context:
        loss = model(input_ids=batch, labels=batch).loss
    del loss  # the graph (and what it saved) is freed without a backward pass
    model.train(was_training)
    return sum(saved.values())


def memory_breakdown(model: torch.nn.Module, batch: torch.Tensor, optimizer: str = "adamw_torch",
                     autocast: torch.dtype | None = None) -> dict[str, float]:
    """What one training step of `model` on `batch` needs, counted from the model itself (MB, and bytes per
    parameter): frozen and trainable weights at their stored size (4-bit weights packed, with their scales),
    gradients (one per trainable weight, in its dtype), the optimiser's state (Adam: two moments per trainable
    weight) and the activations autograd saves for backward (counted with saved-tensor hooks on one batch).
    No allocator, cache or library memory is in it: it is what the lesson is about, not what a process holds."""
    frozen = trainable = frozen_bytes = trainable_bytes = optim_bytes = 0
    for p in model.parameters():
        n = p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)  # a 4-bit weight packs two per byte
        size = p.numel() * p.element_size() + _quant_state_bytes(p)
        if p.requires_grad:
            trainable, trainable_bytes = trainable + n, trainable_bytes + size
            optim_bytes += _optimizer_state_bytes(p, optimizer)
        else:
            frozen, frozen_bytes = frozen + n, frozen_bytes + size
    frozen_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    activations = _activation_bytes(model, batch, autocast)
    mb = 2.0 ** 20
    parts = {"frozen_weights_mb": frozen_bytes / mb, "trainable_weights_mb": trainable_bytes / mb,
             "gradients_mb": trainable_bytes / mb if trainable else 0.0, "optimizer_state_mb": optim_bytes / mb,
             "activations_mb": activations / mb}
    return {**parts, "total_mb": sum(parts.values()), "frozen_params": frozen, "trainable_params": trainable,
            "frozen_bytes_per_param": frozen_bytes / frozen if frozen else 0.0,
            "trainable_bytes_per_param": (2 * trainable_bytes + optim_bytes) / trainable if trainable else 0.0}
