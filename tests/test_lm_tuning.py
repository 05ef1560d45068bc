"""Module 4's runs: each measured alone (earlier models freed), partial fine-tuning of the last blocks, the
mixed-precision decision (bf16 only where native, fp16 + scaler otherwise) and paged optimisers' availability."""
import gc
import weakref

import pandas as pd
import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from twdl_helpers import lm
from twdl_helpers.lm import tuning


def tiny_opt_folder(tmp_path, layers=3, hidden=64):
    torch.manual_seed(0)
    OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=layers, ffn_dim=2 * hidden,
                             num_attention_heads=2, max_position_embeddings=32,
                             word_embed_proj_dim=hidden)).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def blocks(n=8):
    return lm.Blocks(torch.randint(4, 64, (n, 16), generator=torch.Generator().manual_seed(0)), 0)


def test_a_second_measured_run_does_not_hold_the_first_runs_model(tmp_path, monkeypatch):
    folder, made = tiny_opt_folder(tmp_path), []
    prepare = tuning._prepare

    def spy(*args, **kwargs):
        model, megabytes = prepare(*args, **kwargs)
        made.append(weakref.ref(model))
        alive.append(sum(ref() is not None for ref in made[:-1]))  # earlier models alive while this one is measured
        return model, megabytes

    alive: list[int] = []
    monkeypatch.setattr(tuning, "_prepare", spy)
    settings = lm.RunSettings(steps=1, batch_size=2, learning_rate=1e-3)
    first = lm.finetune("lora", folder, blocks(), blocks(2), settings, progress=False)
    assert first.model is None and made[0]() is None  # not kept: freed before returning
    kept = lm.finetune("full", folder, blocks(), blocks(2), settings, progress=False, keep_model=True)
    assert kept.model is not None
    kept.release()
    gc.collect()
    lm.finetune("qlora", folder, blocks(), blocks(2), settings, progress=False)
    assert alive == [0, 0, 0]
    row = kept.row
    assert row["memory_increase_mb"] == pytest.approx(max(0.0, row["peak_memory_mb"] - row["memory_before_mb"]))


def test_last_blocks_trains_only_the_last_k_transformer_blocks(tmp_path):
    model = lm.load_model(tiny_opt_folder(tmp_path))
    assert lm.transformer_blocks(model) is model.model.decoder.layers
    lm.unfreeze_last_blocks(model, 2)
    trainable = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"1", "2"}
    with pytest.raises(ValueError, match="between 1 and"):
        lm.unfreeze_last_blocks(model, 4)
    row = lm.finetune("last_blocks", tmp_path / "base", blocks(), blocks(2), lm.RunSettings(steps=1, unfreeze_blocks=1),
                      progress=False).row
    lora_row = lm.finetune("lora", tmp_path / "base", blocks(), blocks(2), lm.RunSettings(steps=1), progress=False).row
    full_row = lm.finetune("full", tmp_path / "base", blocks(), blocks(2), lm.RunSettings(steps=1), progress=False).row
    assert lora_row["trainable_params"] < full_row["trainable_params"]
    assert 0 < row["trainable_params"] < full_row["trainable_params"]


@pytest.mark.parametrize("native, requested, expected", [
    (True, "auto", "bf16"), (False, "auto", "fp16"), (False, "fp16", "fp16"), (True, "fp16", "fp16"),
    (True, "bf16", "bf16"), (True, "fp32", "fp32"), (False, "fp32", "fp32")])
def test_precision_is_bf16_only_where_native_else_fp16_with_a_scaler(native, requested, expected):
    p = lm.choose_precision("cuda", requested, native_bf16=native)
    assert p.name == expected
    assert p.trainer_flags == {"bf16": expected == "bf16", "fp16": expected == "fp16"}
    assert p.compute_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[expected]


def test_precision_refuses_emulated_bf16_and_mixed_precision_on_a_cpu():
    with pytest.raises(ValueError, match="no native bf16"):
        lm.choose_precision("cuda", "bf16", native_bf16=False)
    assert lm.choose_precision("cpu").name == "fp32" and lm.choose_precision("cpu").autocast is None
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        lm.choose_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="one of"):
        lm.choose_precision("cuda", "int8")


def test_fp16_path_keeps_trainable_weights_fp32_and_refuses_fp16_trainable_weights(tmp_path):
    folder = tiny_opt_folder(tmp_path)
    base = lm.load_model_4bit(folder, "cpu", compute_dtype=torch.float16)  # the T4 QLoRA setting
    wrapped = lm.add_qlora(base, r=2, alpha=4)
    assert all(p.dtype == torch.float32 for p in wrapped.parameters() if p.requires_grad)
    half = lm.load_model(folder, dtype=torch.float16)
    with pytest.raises(ValueError, match="must be fp32"):
        lm.train_lm(half, blocks(), steps=1, progress=False)


def test_paged_optimizers_are_refused_off_cuda_with_the_reason():
    ok, why = lm.paged_optimizer_support("cpu")
    assert not ok and "nothing to page" in why
    with pytest.raises(ValueError, match="cannot run here"):
        lm.train_lm(torch.nn.Linear(2, 2), blocks(), steps=1, optimizer="paged_adamw_32bit", progress=False)


def test_adapt_returns_the_adapted_model_for_the_checks(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("The cat sat on the mat. The dog sat on the log.\n" * 60)
    result = lm.adapt(None, text, settings=lm.RunSettings(steps=2, batch_size=2), block_size=16, max_blocks=8)
    trainable = [n for n, p in result["model"].named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    measured = lm.perplexity(result["model"], result["held_blocks"].input_ids)
    assert measured == pytest.approx(result["perplexity_after"], rel=1e-3)


def test_compare_lora_regularizers_gives_one_row_per_regularizer_under_its_own_name(tmp_path):
    table = lm.compare_lora_regularizers(tiny_opt_folder(tmp_path, layers=1), blocks(), blocks(2),
                                         lm.RunSettings(steps=1, batch_size=2, learning_rate=1e-3))
    assert list(table.index) == ["none", "weight decay 0.1", "LoRA dropout 0.2", "adapter L2 0.001"]
    assert table["tuning_perplexity"].gt(0).all()
    assert "compare_regularizers" not in lm.__all__  # module 3's image-model helper keeps that name alone


def test_counted_memory_puts_full_fine_tunings_gradients_and_optimizer_state_above_loras(tmp_path):
    folder = tiny_opt_folder(tmp_path)
    settings = lm.RunSettings(steps=1, batch_size=2, learning_rate=1e-3)
    rows = {m: lm.finetune(m, folder, blocks(), blocks(2), settings, progress=False).row for m in ("lora", "full")}
    grad_opt = {m: r["counted_gradients_mb"] + r["counted_optimizer_state_mb"] for m, r in rows.items()}
    assert grad_opt["full"] > 4 * grad_opt["lora"] > 0  # tiny model, rank 8: about 9 times here
    for m, row in rows.items():  # fp32 AdamW: 4 (weight) + 4 (gradient) + 8 (two moments) bytes per trainable one
        assert row["counted_trainable_bytes_per_param"] == 16.0
        assert row["counted_gradients_mb"] * 2**20 == pytest.approx(4 * row["trainable_params"])
        assert row["counted_activations_mb"] > 0
    assert rows["full"]["counted_frozen_weights_mb"] == 0 and rows["lora"]["counted_frozen_weights_mb"] > 0
    table = lm.memory_table(pd.DataFrame(rows.values()).set_index("method"))
    assert (table["gradients_mb"] + table["optimizer_state_mb"]).idxmax() == "full"  # the table the notebook shows
    assert table.loc["full", "bytes_per_frozen_param"] == "— (none frozen)"
    text = lm.describe_memory(pd.DataFrame(rows.values()).set_index("method"), 2, 16)
    assert f"{grad_opt['full']:.2f} MB" in text and "CPU RSS" in text
    model = lm.load_model_4bit(folder, "cpu", torch.float32)
    four_bit = lm.memory_breakdown(lm.add_qlora(model, 4, 8, 0.0), blocks(2).input_ids)
    assert 0.5 <= four_bit["frozen_bytes_per_param"] < 4.0  # NF4 linears beside fp32 embeddings and norms


def test_choose_picks_on_the_tuning_blocks_and_reports_that_model_on_the_held_out_ones(tmp_path):
    folder, settings = tiny_opt_folder(tmp_path, layers=1), lm.RunSettings(steps=2, batch_size=2, learning_rate=1e-2)
    candidates = lm.grid_settings({"learning_rate": [1e-3, 1e-2]}, settings)
    assert list(candidates) == ["defaults", "learning_rate=0.001"]  # the default value is the defaults run
    tuning, held = lm.Blocks(torch.randint(4, 64, (4, 16), generator=torch.Generator().manual_seed(1)), 0), blocks(3)
    choice = lm.choose(folder, blocks(), tuning, held, candidates, keep_model=True)
    assert choice.chosen == choice.table["tuning_perplexity"].idxmin()
    assert lm.perplexity(choice.model, tuning) == pytest.approx(choice.table.loc[choice.chosen, "tuning_perplexity"])
    assert lm.perplexity(choice.model, held) == pytest.approx(choice.held_out_perplexity)
    rows = lm.sweep_rows(choice.table, {"learning_rate": [1e-3]}, settings)
    assert list(rows["candidate"]) == ["learning_rate=0.001", "defaults"]


def test_the_bundled_models_pretraining_is_described_from_its_own_record():
    import json

    facts = json.loads((lm.BUNDLED_MODEL / "pretraining.json").read_text())
    text = lm.describe_pretraining("bundled")
    assert f"{facts['train_tokens']:,}" in text and f"{facts['held_out_perplexity']:.1f}" in text
    assert "pydoc_data" in text  # the corpus, from the model card
    assert "scientific" in lm.describe_pretraining(lm.GALACTICA)
