"""Load a causal LM and its tokenizer (hub id or local folder, the bundled small OPT by default), fp32 or 4-bit NF4."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .precision import choose_precision

__all__ = ["BUNDLED_MODEL", "GALACTICA", "GALACTICA_125M_CONFIG", "resolve_model", "load_tokenizer", "load_model",
           "nf4_config", "load_model_4bit", "model_weight_megabytes", "save_random_model", "describe_pretraining"]

BUNDLED_MODEL = Path(__file__).resolve().parent / "small_opt"
GALACTICA = "facebook/galactica-125m"
# facebook/galactica-125m's config.json values (OPT architecture), written out so that its memory and speed can be
# measured offline on RANDOM weights of the same shapes (they do not depend on the weights' values). Not re-checked
# against the hub file in this offline project: compare with
# https://huggingface.co/facebook/galactica-125m/blob/main/config.json
GALACTICA_125M_CONFIG = dict(
    vocab_size=50000, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
    max_position_embeddings=2048, word_embed_proj_dim=768, do_layer_norm_before=True, activation_function="gelu",
    dropout=0.1, attention_dropout=0.1, enable_bias=True, layer_norm_elementwise_affine=True, learnable_pos_emb=True,
    scale_embedding=False,
    pad_token_id=1, bos_token_id=0, eos_token_id=2, tie_word_embeddings=True)


class ModelNotFoundError(FileNotFoundError):
    """A model id could not be resolved offline; the message says how to stage a model folder."""


def resolve_model(name: str | Path | None = None) -> str:
    """Return a loadable model reference: the bundled folder for None/"bundled", a local folder, or a hub id."""
    if name is None or str(name) in ("bundled", "small_opt", str(BUNDLED_MODEL)):
        if not (BUNDLED_MODEL / "config.json").is_file():
            raise ModelNotFoundError(f"the bundled model is missing at {BUNDLED_MODEL}; rebuild it with "
                                     f"`twdl lm pretrain --out {BUNDLED_MODEL}`")
        return str(BUNDLED_MODEL)
    folder = Path(str(name)).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"{folder} is a folder but holds no config.json: stage a model with "
                                     "`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`")
        return str(folder)
    return str(name)


def _offline_hint(name: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Could not load the model {name!r} ({type(exc).__name__}: {exc}).\n"
        f"Offline mode is {'ON' if os.environ.get('HF_HUB_OFFLINE') else 'off'}. To use it offline, stage a folder "
        f"on a machine with internet:\n"
        f"  from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"  AutoModelForCausalLM.from_pretrained({name!r}).save_pretrained('models/{Path(name).name}')\n"
        f"  AutoTokenizer.from_pretrained({name!r}).save_pretrained('models/{Path(name).name}')\n"
        f"then pass model_name='models/{Path(name).name}' (copy the folder over), or use model_name='bundled' "
        f"for the small model shipped with the helpers ({BUNDLED_MODEL}).")


def load_tokenizer(name: str | Path | None = None):
    """The tokenizer, with a pad token set once here (eos when it has none, so no embedding resize is needed)."""
    from transformers import AutoTokenizer

    ref = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
    except OSError as exc:
        raise _offline_hint(ref, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str | Path | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32):
    """A causal LM in `dtype` (fp32 by default, so adapters and the optimiser stay fp32) on `device`."""
    from transformers import AutoModelForCausalLM

    ref = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype)  # `dtype=`: `torch_dtype=` is deprecated
    except OSError as exc:
        raise _offline_hint(ref, exc) from exc
    return model.to(device)


def nf4_config(compute_dtype: torch.dtype | None = None):
    """4-bit NF4 with double quantisation through transformers' BitsAndBytesConfig (current bitsandbytes has no
    QuantizationConfig)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype or torch.float32)


def load_model_4bit(name: str | Path | None = None, device: torch.device | str = "cpu",
                    compute_dtype: torch.dtype | None = None):
    """The model with its linear layers quantised to 4-bit NF4 (bitsandbytes Linear4bit), on CPU or CUDA."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    if compute_dtype is None:  # bf16 where the GPU has it natively, fp16 on older GPUs (a T4), fp32 on CPU
        compute_dtype = choose_precision(device).compute_dtype
    ref = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            ref, quantization_config=nf4_config(compute_dtype), dtype=torch.float32,
            device_map={"": device.index or 0} if device.type == "cuda" else {"": "cpu"})
    except OSError as exc:
        raise _offline_hint(ref, exc) from exc
    return model


def model_weight_megabytes(model: torch.nn.Module) -> float:
    """Memory held by the model's parameters and buffers, in MB (4-bit weights counted at their packed size)."""
    return model.get_memory_footprint() / 2**20


def save_random_model(config: dict, folder: str | Path, seed: int = 0) -> Path:
    """Save an OPT causal LM with `config` (e.g. GALACTICA_125M_CONFIG) and random weights to `folder`."""
    from transformers import OPTConfig, OPTForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        OPTForCausalLM(OPTConfig(**config)).save_pretrained(folder)
    return Path(folder)


# What a hub model learned from, in one sentence (from its own model card), for the models the course names.
KNOWN_PRETRAINING = {GALACTICA: "Meta AI's GALACTICA (Taylor et al., 2022): pretrained on 106 billion tokens of "
                                "scientific text (papers, reference material, knowledge bases, code), not on "
                                "Wikipedia articles like WikiText's"}


def describe_pretraining(name: str | Path | None = None) -> str:
    """One Markdown paragraph on what model `name` learned from: for a folder with a `pretraining.json` (the
    bundled model), its corpus (the model card's corpus row), tokens, steps and held-out perplexity, read from
    those files; for a hub model the course names, its model card's summary; otherwise, where to look."""
    ref = resolve_model(name)
    folder, figures = Path(ref), Path(ref) / "pretraining.json"
    if figures.is_file():
        import json
        import re

        facts = json.loads(figures.read_text())
        card = (folder / "MODEL_CARD.md").read_text() if (folder / "MODEL_CARD.md").is_file() else ""
        corpus = re.search(r"^\| corpus \| (.+?) \|\s*$", card, re.MULTILINE)
        return (f"**What this model learned from.** `{folder.name}` ({facts['parameters']:,} parameters, "
                f"{facts['layers']} layers, hidden size {facts['hidden']}, vocabulary {facts['vocab_size']:,}) "
                f"was pretrained from scratch on "
                f"{corpus.group(1) if corpus else 'the text its MODEL_CARD.md names'}. It saw "
                f"{facts['train_tokens']:,} training tokens, {facts['steps']} steps of batch {facts['batch_size']} "
                f"({facts['epochs']:.1f} epochs), reaching a perplexity of {facts['held_out_perplexity']:.1f} on "
                f"{facts['held_out_tokens']:,} "
                f"held-out tokens of that text (untrained: {facts['held_out_perplexity_untrained']:.0f}).")
    if ref in KNOWN_PRETRAINING:
        return f"**What this model learned from.** `{ref}` is {KNOWN_PRETRAINING[ref]}."
    return (f"**What this model learned from.** `{ref}`: see its model card (README.md on the hub or in its folder); "
            "this course has no record of its pretraining text.")
