"""LoRA and QLoRA with peft: target modules found from the model's architecture (a fixed list of names can match
nothing), parameter counts returned as numbers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["ParameterCount", "find_target_modules", "lora_config", "add_lora", "add_qlora", "count_parameters",
           "save_adapter", "load_adapter", "merge_adapter", "is_4bit_linear", "count_4bit_layers", "transformer_blocks",
           "unfreeze_last_blocks", "folder_megabytes"]


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameter counts, and the trainable share in percent (numbers to keep, not a printout)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        """Trainable parameters as a percentage of all parameters."""
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.percent:.3f} %)"


def _is_linear(module: torch.nn.Module) -> bool:
    # nn.Linear, bitsandbytes Linear4bit/8bit (subclasses of nn.Linear) and GPT-2's Conv1D (a transposed linear)
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def find_target_modules(model: torch.nn.Module, scope: str = "attention") -> list[str] | str:
    """LoRA targets for this architecture: every linear projection inside attention blocks, including the output one.

    Works from the model itself, not from a name list: OPT -> q_proj, k_proj, v_proj, out_proj; Llama -> q/k/v/o_proj;
    GPT-2 -> c_attn, attn.c_proj; GPT-NeoX -> query_key_value, attention.dense. A name also used outside attention
    (GPT-2's c_proj, NeoX's dense) is qualified by its parent so the MLP is not touched. scope="all-linear" returns
    peft's "all-linear" (every linear layer except the output head).
    """
    if scope == "all-linear":
        return "all-linear"
    if scope != "attention":
        raise ValueError(f"scope must be 'attention' or 'all-linear', got {scope!r}")
    attention, elsewhere = set(), set()
    for name, module in model.named_modules():
        if not _is_linear(module) or "." not in name:
            continue
        parent_name, leaf = name.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        if "attention" in type(parent).__name__.lower() or "attn" in type(parent).__name__.lower():
            attention.add((parent_name.rsplit(".", 1)[-1], leaf))
        else:
            elsewhere.add(leaf)
    if not attention:
        raise ValueError(f"found no linear layers inside attention modules of {type(model).__name__}; pass "
                         "target_modules=[...] yourself (see print(model)) or use scope='all-linear'")
    return sorted({f"{parent}.{leaf}" if leaf in elsewhere else leaf for parent, leaf in attention})


def lora_config(model: torch.nn.Module, r: int = 8, alpha: int = 32, dropout: float = 0.05,
                scope: str = "attention", target_modules: list[str] | str | None = None):
    """A peft LoraConfig for causal LM training (the original's r 8, alpha 32, dropout 0.05, bias none)."""
    from peft import LoraConfig

    targets = target_modules if target_modules is not None else find_target_modules(model, scope)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=targets)


def _adapters_fp32(model: torch.nn.Module) -> None:
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # fp32: the gradient scaler cannot unscale fp16 gradients


def add_lora(model: torch.nn.Module, r: int = 8, alpha: int = 32, dropout: float = 0.05, scope: str = "attention",
             target_modules: list[str] | str | None = None):
    """Wrap `model` with LoRA adapters (base frozen, adapters trainable and fp32); returns the peft model."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(model, r, alpha, dropout, scope, target_modules))
    _adapters_fp32(peft_model)
    return peft_model


def add_qlora(model_4bit: torch.nn.Module, r: int = 8, alpha: int = 32, dropout: float = 0.05,
              scope: str = "attention", gradient_checkpointing: bool = False):
    """QLoRA: prepare a 4-bit model for training (prepare_model_for_kbit_training) and add the same LoRA adapters."""
    from peft import prepare_model_for_kbit_training

    if count_4bit_layers(model_4bit) == 0:
        raise ValueError("the model has no 4-bit layers: load it with load_model_4bit(...) first")
    model = prepare_model_for_kbit_training(model_4bit, use_gradient_checkpointing=gradient_checkpointing)
    return add_lora(model, r, alpha, dropout, scope)


def is_4bit_linear(module: torch.nn.Module) -> bool:
    """True for a bitsandbytes Linear4bit layer (also when wrapped as a LoRA base layer)."""
    import bitsandbytes as bnb

    return isinstance(module, bnb.nn.Linear4bit)


def count_4bit_layers(model: torch.nn.Module) -> int:
    """How many bitsandbytes Linear4bit layers the model holds."""
    return sum(is_4bit_linear(m) for m in model.modules())


def count_parameters(model: torch.nn.Module) -> ParameterCount:
    """Trainable and total parameters; 4-bit packed weights are counted as the parameters they stand for."""
    if hasattr(model, "get_nb_trainable_parameters"):  # peft: unpacks 4-bit weights for the total
        trainable, total = model.get_nb_trainable_parameters()
        return ParameterCount(int(trainable), int(total))
    total = trainable = 0
    for p in model.parameters():
        n = p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return ParameterCount(trainable, total)


def save_adapter(peft_model: torch.nn.Module, folder: str | Path) -> Path:
    """Save only the adapter weights and config to `folder` (its size: `folder_megabytes(folder)`)."""
    folder = Path(folder)
    peft_model.save_pretrained(folder)
    return folder


def load_adapter(base_model: torch.nn.Module, folder: str | Path, trainable: bool = False):
    """Attach a saved adapter to a freshly loaded base model."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)


def merge_adapter(peft_model: torch.nn.Module) -> torch.nn.Module:
    """Fold the adapters into the base weights (W + B A * alpha / r) and return a plain model for inference."""
    return peft_model.merge_and_unload()


def transformer_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's stack of transformer blocks: the ModuleList of same-type modules holding the most parameters
    (OPT: model.decoder.layers, GPT-2: transformer.h, Llama: model.layers)."""
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0
              and len({type(block) for block in m}) == 1]
    if not stacks:
        raise ValueError(f"found no stack of transformer blocks in {type(model).__name__}")
    return max(stacks, key=lambda m: sum(p.numel() for p in m.parameters()))


def unfreeze_last_blocks(model: torch.nn.Module, k: int) -> torch.nn.Module:
    """Partial fine-tuning: freeze every weight, then make the last `k` transformer blocks trainable (in place)."""
    blocks = transformer_blocks(model)
    if not 1 <= k <= len(blocks):
        raise ValueError(f"k must be between 1 and the model's {len(blocks)} blocks, got {k}")
    model.requires_grad_(False)
    for block in blocks[len(blocks) - k:]:
        block.requires_grad_(True)
    return model


def folder_megabytes(folder: str | Path) -> float:
    """Size of the files in `folder` (e.g. a saved adapter), in MB."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20
