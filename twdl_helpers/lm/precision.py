"""How a language-model run computes: bf16 only where the GPU has it natively, else fp16 with a gradient scaler
and fp32 trainable weights (the scaler cannot unscale fp16 gradients), fp32 on a CPU. A pure decision, testable
without a GPU."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import bf16_native

__all__ = ["PRECISIONS", "Precision", "choose_precision", "paged_optimizer_support"]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Precision:
    """The Trainer's mixed-precision flags, the autocast dtype, QLoRA's 4-bit compute dtype, and why."""

    name: str  # "bf16", "fp16" or "fp32"
    autocast: torch.dtype | None  # None: no autocast, fp32 throughout
    compute_dtype: torch.dtype  # dtype of QLoRA's dequantised matrix products
    reason: str

    @property
    def trainer_flags(self) -> dict[str, bool]:
        """`bf16=` / `fp16=` for transformers' TrainingArguments (fp16 turns on its gradient scaler)."""
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16"}


def choose_precision(device: torch.device | str, requested: str = "auto",
                     native_bf16: bool | None = None) -> Precision:
    """Pick the precision for `device`. "auto": bf16 where the GPU computes it natively (Ampere and newer),
    fp16 + gradient scaling on older GPUs (a T4: its bf16 is emulated, slow), fp32 on CPU/MPS.

    `native_bf16` defaults to what the GPU reports (`bf16_native`); tests pass it to check the logic anywhere.
    "bf16" on a GPU without native bf16 and "bf16"/"fp16" on a CPU are refused with what to use instead.
    """
    device = torch.device(device)
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            raise ValueError(f"precision={requested!r} needs a CUDA GPU; on {device.type} use 'auto' or 'fp32'")
        return Precision("fp32", None, torch.float32, f"{device.type}: fp32 (mixed precision is for CUDA GPUs)")
    native = bf16_native(device) if native_bf16 is None else native_bf16
    if requested == "fp32":
        return Precision("fp32", None, torch.float32, "fp32 requested")
    if requested == "bf16" and not native:
        raise ValueError("precision='bf16' was asked for but this GPU has no native bf16 (e.g. a T4 only emulates "
                         "it, slowly); use 'fp16' or 'auto'")
    if requested == "bf16" or (requested == "auto" and native):
        return Precision("bf16", torch.bfloat16, torch.bfloat16, "native bf16 on this GPU")
    why = "fp16 requested" if requested == "fp16" else "this GPU has no native bf16"
    return Precision("fp16", torch.float16, torch.float16,
                     f"{why}: fp16 autocast with a gradient scaler, trainable weights kept fp32 (the scaler "
                     "cannot unscale fp16 gradients)")


def paged_optimizer_support(device: torch.device | str) -> tuple[bool, str]:
    """Whether bitsandbytes' paged AdamW can run here, and why not when it cannot."""
    device = torch.device(device)
    if device.type != "cuda":
        return False, (f"paged optimisers page optimiser state between GPU and CPU memory (CUDA unified memory); "
                       f"this run is on {device.type}, so there is nothing to page")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        return False, f"bitsandbytes is not installed ({exc}); pip install bitsandbytes"
    return True, "bitsandbytes paged AdamW on CUDA"
