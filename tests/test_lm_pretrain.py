"""The bundled small OPT model, its card, and the `twdl lm pretrain` command line."""
import json

import pytest

from twdl_tools.cli import build_parser
from twdl_helpers.lm import BUNDLED_MODEL, find_target_modules, load_model, load_tokenizer, resolve_model
from twdl_helpers.lm.load import ModelNotFoundError
from twdl_tools.lm_pretrain import corpus_documents


def test_bundled_model_is_small_loadable_with_auto_classes_and_opt_named():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    size = sum(p.stat().st_size for p in BUNDLED_MODEL.iterdir())
    assert size < 10 * 2**20
    model = AutoModelForCausalLM.from_pretrained(BUNDLED_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL)
    assert type(model).__name__ == "OPTForCausalLM" and len(tokenizer) == model.config.vocab_size
    assert find_target_modules(model) == ["k_proj", "out_proj", "q_proj", "v_proj"]
    assert tokenizer.pad_token_id == 1 and tokenizer("x")["input_ids"][0] == 2  # OPT's </s> prefix


def test_card_states_corpus_perplexity_vocabulary_and_command():
    facts = json.loads((BUNDLED_MODEL / "pretraining.json").read_text())
    card = (BUNDLED_MODEL / "MODEL_CARD.md").read_text()
    assert facts["held_out_perplexity"] < facts["vocab_size"] / 5  # genuinely pretrained
    assert f"{facts['held_out_perplexity']:.1f}" in card and "pydoc_data" in card and "twdl lm pretrain" in card


def test_held_out_pages_are_disjoint_from_training_pages():
    train, held = corpus_documents()
    assert held and not set(held) & set(train)


def test_lm_pretrain_command_parses():
    args = build_parser("lm").parse_args(["lm", "pretrain", "--out", "x", "--steps", "3"])
    assert args.lm_command == "pretrain" and args.steps == 3 and args.out == "x"
    assert args.handler.__name__ == "lm_main"


def test_missing_model_folder_error_says_how_to_stage(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(tmp_path)
    with pytest.raises(ModelNotFoundError, match="save_pretrained"):
        load_model("no-such-org/no-such-model-offline")


def test_bundled_tokenizer_loads_through_the_helper():
    assert load_tokenizer("bundled").pad_token == "<pad>"
