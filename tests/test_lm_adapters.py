"""LoRA / QLoRA helpers on tiny randomly initialised models built in code (no downloads)."""
import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                          LlamaForCausalLM, OPTConfig, OPTForCausalLM)

from twdl_helpers.lm import Blocks, perplexity, train_lm
from twdl_helpers.lm.adapters import (add_lora, add_qlora, count_4bit_layers, count_parameters, find_target_modules,
                                      load_adapter, merge_adapter, save_adapter)
from twdl_helpers.lm.load import load_model, load_model_4bit


def tiny_opt(hidden: int = 16) -> OPTForCausalLM:
    torch.manual_seed(0)
    return OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=1, ffn_dim=2 * hidden,
                                    num_attention_heads=2, max_position_embeddings=32, word_embed_proj_dim=hidden))


ARCHITECTURES = {
    "opt": (tiny_opt, ["k_proj", "out_proj", "q_proj", "v_proj"]),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32,
                                                bos_token_id=0, eos_token_id=0)), ["attn.c_proj", "c_attn"]),
    "llama": (lambda: LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                                   max_position_embeddings=32)), ["k_proj", "o_proj", "q_proj", "v_proj"]),
    "gpt_neox": (lambda: GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                          num_hidden_layers=1, num_attention_heads=2,
                                                          max_position_embeddings=32)),
                 ["dense", "query_key_value"]),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_targets_are_every_attention_projection_including_the_output_one(arch):
    build, expected = ARCHITECTURES[arch]
    model = build()
    assert find_target_modules(model) == expected
    wrapped = add_lora(model, r=2, alpha=4)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in wrapped.named_modules() if n.endswith("lora_A")}
    assert len(adapted) == len(expected)  # one layer: each target adapted once, nothing in the MLP
    assert not any("mlp" in n or "fc" in n.rsplit(".", 1)[-1] for n in adapted)


def test_all_linear_scope_adds_mlp_layers():
    wrapped = add_lora(tiny_opt(), r=2, scope="all-linear")
    names = {n for n, _ in wrapped.named_modules() if n.endswith("lora_A")}
    assert any(".fc1." in n for n in names) and any(".out_proj." in n for n in names)
    assert not any("lm_head" in n for n in names)


def test_only_adapters_are_trainable_and_counts_are_numbers():
    wrapped = add_lora(tiny_opt(), r=2, alpha=4)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.float32 for n, p in wrapped.named_parameters() if p.requires_grad)
    count = count_parameters(wrapped)
    # 4 projections of 16x16, each with A (2x16) and B (16x2)
    assert count.trainable == 4 * (2 * 16 + 16 * 2)
    assert count.total == sum(p.numel() for p in wrapped.parameters())
    assert count.percent == pytest.approx(100 * count.trainable / count.total)


def test_training_moves_adapters_and_saved_adapter_reloads_identically(tmp_path):
    base_dir = tmp_path / "base"
    tiny_opt().save_pretrained(base_dir)
    wrapped = add_lora(load_model(base_dir), r=2, alpha=4, dropout=0.0)
    blocks = Blocks(torch.randint(4, 64, (8, 16), generator=torch.Generator().manual_seed(0)), 0)
    before = perplexity(wrapped, blocks)
    result = train_lm(wrapped, blocks, steps=3, batch_size=4, learning_rate=1e-2, progress=False)
    assert len(result.losses) == 3 and result.meter.tokens == 3 * 4 * 16
    assert perplexity(wrapped, blocks) != before
    save_adapter(wrapped, tmp_path / "adapter")
    reloaded = load_adapter(load_model(base_dir), tmp_path / "adapter")
    x = blocks.input_ids[:2]
    wrapped.eval()
    reloaded.eval()
    assert torch.equal(wrapped(input_ids=x).logits, reloaded(input_ids=x).logits)
    merged = merge_adapter(reloaded)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=x).logits, wrapped(input_ids=x).logits, atol=1e-5, rtol=1e-5)


def test_adapter_l2_penalty_shrinks_adapter_weights(tmp_path):
    from twdl_helpers.lm.trainer import adapter_l2_norm

    base_dir = tmp_path / "base"
    tiny_opt().save_pretrained(base_dir)
    blocks = Blocks(torch.randint(4, 64, (8, 16), generator=torch.Generator().manual_seed(0)), 0)
    norms = []
    for l2 in (0.0, 10.0):
        wrapped = add_lora(load_model(base_dir), r=2, alpha=4, dropout=0.0)
        train_lm(wrapped, blocks, steps=4, batch_size=4, learning_rate=5e-2, adapter_l2=l2, progress=False)
        norms.append(adapter_l2_norm(wrapped).item())
    assert norms[1] < norms[0]


def test_qlora_layers_are_4bit_nf4_and_train(tmp_path):
    base_dir = tmp_path / "base"
    tiny_opt(hidden=64).save_pretrained(base_dir)
    model = load_model_4bit(base_dir, "cpu")
    assert count_4bit_layers(model) == 6  # q, k, v, out_proj, fc1, fc2 of the one layer
    layer = model.model.decoder.layers[0].self_attn.q_proj
    assert layer.weight.quant_type == "nf4" and layer.weight.quant_state.nested  # double quantisation
    wrapped = add_qlora(model, r=2, alpha=4)
    assert count_4bit_layers(wrapped) == 6
    count = count_parameters(wrapped)
    assert count.trainable == 4 * (2 * 64 + 64 * 2)
    blocks = Blocks(torch.randint(4, 64, (4, 16), generator=torch.Generator().manual_seed(0)), 0)
    result = train_lm(wrapped, blocks, steps=2, batch_size=2, learning_rate=1e-2, progress=False)
    assert all(loss == loss for loss in result.losses)  # no NaN


def test_qlora_refuses_a_full_precision_model():
    with pytest.raises(ValueError, match="no 4-bit layers"):
        add_qlora(tiny_opt())
