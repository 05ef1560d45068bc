"""How the benchmarks time work: CPU seconds of this process on the CPU, synchronised wall seconds on CUDA.

On a shared machine other jobs stretch wall-clock time unevenly (load averages of 5-10 on 2 cores were common
while these tables were measured); the CPU time of the benchmark process counts only the work it did. Every CPU
pipeline compared here runs in one process on one thread (torch threads 1, DataLoader without workers), so on an
idle machine its CPU time equals its wall time. On CUDA the work is asynchronous and wall time is measured.
"""
from __future__ import annotations

import time

import torch

CLOCK_NOTE = "CPU time of the process (on CUDA: wall time)"


def clock(device: str | torch.device = "cpu") -> float:
    """Seconds for timing `device` work: process CPU time on the CPU, wall time after a synchronise on CUDA."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()
