# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 4 — Fine-tuning a language model with LoRA and QLoRA
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/thinking-with-deep-learning/twdl-week2/blob/main/notebooks/04_finetuning_lora.ipynb)
#
# A pretrained causal language model has learned one kind of text; here you teach it another without
# retraining it. You will measure perplexity before and after, freeze the model and train small low-rank
# adapters (LoRA), do the same on a 4-bit copy of the model (QLoRA), compare memory, speed and quality with
# fine-tuning only the last blocks and with full fine-tuning, tune the adapters' hyperparameters and
# regularise them. The smoke profile runs offline
# on a small OPT model bundled with the helpers; the full profile uses `facebook/galactica-125m` on WikiText-2.

# %% tags=["colab-setup"]
# Colab only: install the course helpers (keeping Colab's torch). Elsewhere: nothing.
import subprocess, sys
if "google.colab" in sys.modules:
    helpers = ("twdl-helpers @ git+"
               "https://github.com/thinking-with-deep-learning/twdl-week2")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", helpers], check=True)

# %%
import pandas as pd
import twdl_helpers as twdl
from twdl_helpers import lm

twdl.watch_parameters()  # the next cell's assignments are the declared parameters

# %% tags=["parameters"]
# Run size: "smoke" (bundled model, minutes on a CPU) or "full" (galactica-125m).
profile = "smoke"  # @param ["smoke", "full"]
device = "auto"  # @param ["auto", "cpu", "cuda", "mps"]
seed = 0  # @param {type:"integer"}
# WikiText-2: "auto" (real files if found, else the bundled real excerpt),
# "full" (real or fail), "sample" (the excerpt).
data_source = "auto"  # @param ["auto", "full", "sample"]
output_dir = "runs/04_finetuning_lora"  # @param {type:"string"}
# A Hugging Face id or a local model folder; "": the profile's (bundled in smoke).
model_name = ""  # @param {type:"string"}
# Optimiser steps per fine-tuning run; None: the profile's budget. [int >= 1 or None]
steps = None
# Mixed precision on a GPU: "auto" = bf16 where native, else fp16 with gradient scaling.
precision = "auto"  # @param ["auto", "bf16", "fp16", "fp32"]
# Homework: your own .txt file or folder ("" uses a real WikiText excerpt in its place).
# [existing path or one of ""]
text_path = ""  # @param {type:"string"}
completed = False  # @param {type:"boolean"}

# %%
P, dev = twdl.setup(globals())  # checks parameters, picks the device, seeds
display(twdl.runtime_estimate("04_finetuning_lora"))  # how long this notebook takes
model_ref = model_name or P.pick(smoke="bundled", full=lm.GALACTICA)
block_size = P.pick(smoke=64, full=128)
settings = lm.RunSettings(steps=steps or P.pick(smoke=20, full=1000),
                          batch_size=P.pick(smoke=8, full=2),
                          learning_rate=P.pick(smoke=1e-2, full=2e-4), r=8, alpha=32,
                          dropout=0.05, precision=precision, seed=seed)
print(f"model {model_ref}; {lm.choose_precision(dev, precision).reason}")
print(settings)

# %% [markdown]
# ## 1. Data as fixed blocks, and perplexity before adaptation
# A causal LM predicts each token from the ones before it. Its **perplexity** on held-out text is
#
# $$\mathrm{PPL} = \exp\Big(\frac{1}{N}\sum_{i=1}^{N} -\log p_\theta(x_i \mid x_{<i})\Big),$$
#
# the exponential of the mean negative log-likelihood over all $N$ scored tokens: every token weighs the
# same, however the batches are cut. A uniform guess over a vocabulary of $V$ tokens scores exactly $V$.
# We tokenise the text once, concatenate it and cut it into full blocks of equal length, so no example is
# padding or an empty line. We measure perplexity *before* training, to have something to compare with.

# %%
tokenizer = lm.load_tokenizer(model_ref)
corpus = twdl.load_wikitext2(source=data_source, seed=seed,
                             limit=P.pick(smoke=150_000, full=None))
twdl.record("m4.data.source", corpus.source)
train_blocks = lm.make_blocks(corpus.train, tokenizer, block_size,
                              max_blocks=P.pick(smoke=400, full=None))
held_blocks = lm.make_blocks(corpus.held_out, tokenizer, block_size,
                             max_blocks=P.pick(smoke=64, full=None))
base = lm.load_model(model_ref, dev)
ppl_before = twdl.record("m4.ppl.before", lm.perplexity(base, held_blocks))
print(train_blocks, held_blocks, f"vocabulary {len(tokenizer)}", sep="\n")
sliding = lm.perplexity(base, held_blocks, stride=block_size // 2)
print("sliding window (stride half a block):", round(sliding, 1))

# %%
prompt = " = Robert Boulter = \n"
for text in lm.generate_text(base, tokenizer, prompt, max_new_tokens=30, seed=seed,
                             n=2):
    print(repr(text))
del base  # every run below loads its own copy and is measured alone

# %% [markdown]
# *Think:* the sliding window gives each scored token more context than a fixed block does. Why does that
# lower perplexity, and which number should you report when comparing two models?
#
# ## 2. LoRA: a low-rank update on a frozen model
# LoRA keeps each chosen weight $W \in \mathbb{R}^{d\times k}$ frozen and learns
#
# $$W' = W + \frac{\alpha}{r} B A,\qquad B\in\mathbb{R}^{d\times r},\ A\in\mathbb{R}^{r\times k},\ r \ll \min(d,k),$$
#
# with $B$ starting at zero, so training starts exactly from the pretrained model. The helper finds the
# attention projections from the architecture itself (for OPT: `q_proj`, `k_proj`, `v_proj` and the output
# `out_proj`), counts the trainable parameters and trains with the transformers `Trainer` for a fixed budget
# of steps. On a GPU it computes in bf16 where the GPU has native bf16 (Ampere and newer) and otherwise in
# fp16 with a gradient scaler (a T4); the adapters always stay fp32 (the original
# trained fp16 weights under fp16 mixed precision, and the `Trainer` stopped when it unscaled their gradients).
#
# Each run is **measured alone**: the meter starts with no other model in memory (earlier ones freed, caches
# emptied, the peak reset) and reports the run's peak and its increase over what was held before.

# %%
print("LoRA targets:", lm.find_target_modules(lm.load_model(model_ref)))
lora = lm.finetune("lora", model_ref, train_blocks, held_blocks, settings, dev,
                   keep_model=True)  # kept for generating, saving and merging
count = lm.count_parameters(lora.model)
twdl.record("m4.lora.trainable_params", count.trainable)
twdl.record("m4.lora.trainable_percent", count.percent)
twdl.record("m4.ppl.lora", lora.row["perplexity"])
twdl.record("m4.lora.peak_memory_mb", lora.row["peak_memory_mb"])
twdl.record("m4.lora.memory_increase_mb", lora.row["memory_increase_mb"])
twdl.record("m4.lora.tokens_per_second", lora.row["tokens_per_second"])
print(count, "|", lora.row["memory_measure"], "| precision", lora.row["precision"])

# %%
for text in lm.generate_text(lora.model, tokenizer, prompt, max_new_tokens=30,
                             seed=seed, n=2):
    print(repr(text))
adapter_dir = lm.save_adapter(lora.model, f"{output_dir}/lora_adapter")
adapter_mb = twdl.record("m4.lora.adapter_mb", lm.folder_megabytes(adapter_dir))
reloaded = lm.load_adapter(lm.load_model(model_ref, dev), adapter_dir)
twdl.record("m4.lora.reloaded_ppl", lm.perplexity(reloaded, held_blocks))
merged = lm.merge_adapter(reloaded)
twdl.record("m4.lora.merged_ppl", lm.perplexity(merged, held_blocks))
print(f"saved adapter: {adapter_mb:.3f} MB")
del reloaded, merged
lora.release()  # free the LoRA model before the next measured run

# %% [markdown]
# The saved adapter holds only $A$ and $B$ (its size, recorded above, depends on the model: a larger model
# has wider projections); reloaded onto a fresh base it gives the same perplexity, and merging folds
# $\frac{\alpha}{r}BA$ into $W$ so inference costs nothing extra.
# *Think:* why must $B$ (and not $A$) start at zero?
#
# ## 3. QLoRA: the same adapters on a 4-bit base
# QLoRA stores the frozen base weights as 4-bit NormalFloat (NF4) numbers in blocks of 64, each block with
# its own scale; double quantisation stores those scales in 8 bits too. Weights are dequantised on the fly
# for each matrix product (in bf16 or fp16 on a GPU, fp32 on a CPU), while the LoRA adapters train in fp32.
# Same targets, same budget.

# %%
qlora = lm.finetune("qlora", model_ref, train_blocks, held_blocks, settings, dev)
for key in ("peak_memory_mb", "memory_increase_mb", "tokens_per_second"):
    twdl.record(f"m4.qlora.{key}", qlora.row[key])
twdl.record("m4.ppl.qlora", qlora.row["perplexity"])
ratio = qlora.row["base_weight_memory_mb"] / lora.row["base_weight_memory_mb"]
twdl.record("m4.qlora.weight_memory_ratio", ratio)
q_mb, fp32_mb = qlora.row["base_weight_memory_mb"], lora.row["base_weight_memory_mb"]
print(f"{qlora.row['4bit_layers']} Linear4bit layers; base weights {q_mb:.2f} MB vs "
      f"{fp32_mb:.2f} MB in fp32: {ratio:.1%} of the fp32 size for {model_ref}")

# %% [markdown]
# The ratio is not 4/32 = 12.5 %: only the linear layers are quantised, and the embeddings, layer norms and
# biases stay in full precision, so the ratio depends on how much of the model those hold (the bundled model
# is small, with a relatively large embedding).
#
# ## 4. LoRA vs QLoRA vs the last blocks vs full fine-tuning
# Two reference points beside the adapters: **fine-tuning only the last $k$ transformer blocks** (every
# other weight frozen; `unfreeze_blocks`, 2 by default) and **full fine-tuning** (every weight; it needs a
# smaller learning rate). On a GPU the memory columns come from the CUDA allocator
# (`torch.cuda.max_memory_allocated`); on a CPU from the whole process's resident memory (Python and the
# libraries included), so there the base-weight column is the fairer comparison.

# %%
small_lr = settings.with_(learning_rate=settings.learning_rate / 10)
last = lm.finetune("last_blocks", model_ref, train_blocks, held_blocks, small_lr, dev)
full = lm.finetune("full", model_ref, train_blocks, held_blocks, small_lr, dev)
rows = [r.row for r in (lora, qlora, last, full)]
comparison = pd.DataFrame(rows).set_index("method")
for method in ("last_blocks", "full"):
    row = comparison.loc[method]
    twdl.record(f"m4.ppl.{method}", row["perplexity"])
    twdl.record(f"m4.{method}.trainable_params", row["trainable_params"])
fig = lm.plot_method_comparison(comparison, before=ppl_before)
twdl.save_figure(fig, output_dir, "methods")
shown = ["perplexity", "trainable_params", "trainable_percent", "base_weight_memory_mb",
         "peak_memory_mb", "memory_increase_mb", "tokens_per_second", "seconds"]
comparison[shown].round(2)

# %% [markdown]
# Throughput is counted after the first step (which pays one-time start-up costs); on a shared machine it
# is noisy, so compare orders of magnitude, not decimals.
# *Think:* QLoRA's base weights take a fraction of the memory (the ratio above), but every forward pass must
# dequantise them first. Where does that extra work go, and when is the trade worth it?
#
# ### Paged optimisers
# Adam keeps two numbers per trainable weight. A *paged* optimiser (bitsandbytes' paged AdamW, the third
# ingredient of QLoRA) keeps that state in CUDA unified memory, which the driver pages out to CPU memory when
# the GPU runs short (e.g. during a long sequence's memory spike) instead of failing with "out of memory".
# It only exists on CUDA GPUs.

# %%
paged_ok, why = lm.paged_optimizer_support(dev)
if paged_ok:
    paged = lm.finetune("qlora", model_ref, train_blocks, held_blocks,
                        settings.with_(optimizer="paged_adamw_32bit"), dev)
    twdl.record("m4.paged.perplexity", paged.row["perplexity"])
    twdl.record("m4.paged.peak_memory_mb", paged.row["peak_memory_mb"])
    print(pd.Series(paged.row)[["perplexity", "peak_memory_mb", "tokens_per_second"]])
else:
    print(f"paged AdamW skipped: {why}")

# %% [markdown]
# ## 5. Tuning r, alpha, dropout and the learning rate
# One setting at a time around the defaults (r 8, alpha 32, dropout 0.05), each run with the same smaller
# budget. Note that the update is scaled by $\alpha/r$: changing $r$ alone also changes the effective step.

# %%
sweep_settings = settings.with_(steps=P.pick(smoke=10, full=300),
                                batch_size=P.pick(smoke=4, full=2))
grid = P.pick(smoke={"r": [16], "alpha": [8], "dropout": [0.2],
                     "learning_rate": [3e-3]},
              full={"r": [4, 8, 16], "alpha": [16, 32, 64], "dropout": [0.0, 0.05, 0.2],
                    "learning_rate": [1e-4, 2e-4, 5e-4]})
sweep = lm.sweep(model_ref, train_blocks, held_blocks, grid, sweep_settings, device=dev)
fig = lm.plot_sweep(sweep, before=ppl_before)
twdl.save_figure(fig, output_dir, "sweep")
twdl.record("m4.sweep.best_ppl", float(sweep["perplexity"].min()))
sweep.round(3)

# %% [markdown]
# ## 6. Regularising the adapters
# Three ways to keep adapters from over-fitting a small text: AdamW's decoupled **weight decay**, **LoRA
# dropout** on the adapter's input, and an explicit **L2 penalty** added to the loss,
# $\mathcal{L} + \lambda \sum_\ell (\lVert A_\ell\rVert_F^2 + \lVert B_\ell\rVert_F^2)$ (a Trainer subclass).

# %%
regularizers = lm.compare_lora_regularizers(model_ref, train_blocks, held_blocks,
                                            sweep_settings, device=dev)
twdl.record("m4.reg.best", str(regularizers["perplexity"].idxmin()))
regularizers.round(3)

# %% [markdown]
# *Think:* with so few steps, do the regularisers matter? What would you change to see over-fitting first?
#
# ## Homework
# 1. Adapt the model to **your own text** (`text_path`) with LoRA: perplexity before and after.
# 2. Repeat with QLoRA and compare memory, speed and perplexity with LoRA (section 4 shows how).
# 3. Tune r, lora_alpha, lora_dropout and the learning rate on your text. 4. Compare the regularisers.

# %%
if not text_path:  # a real WikiText excerpt (the held-out articles) stands in for yours
    text_path = twdl.atomic_write(f"{output_dir}/sample_text.txt", corpus.held_out)

# %% tags=["homework"] question="q1" points=4 title="LoRA on your own text: perplexity before and after"
# Hint: result = lm.adapt(model_ref, text_path, settings=settings,
#   block_size=block_size, device=dev); record its perplexities.
### BEGIN SOLUTION
result = lm.adapt(model_ref, text_path, settings=settings, block_size=block_size,
                  max_blocks=200, device=dev)
twdl.record("m4.homework.ppl_before", result["perplexity_before"])
twdl.record("m4.homework.ppl_after", result["perplexity_after"])
print(pd.Series(result["row"]).to_string())
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check(
    "q1", required=True, hint="result = lm.adapt(...) trains LoRA adapters on your text"
)
def adapters_only_are_trained(result):
    """`result["model"]` carries LoRA adapters, and only they are trainable"""
    names = twdl.each((n for n, p in result["model"].named_parameters() if p.requires_grad),
                      at_least=1, what="trainable weights")
    assert all(
        "lora_" in n for n in names
    ), f"trainable weights besides the adapters: {names[:3]}"


@twdl.question_check(
    "q1", required=True, hint="keep the dict lm.adapt returned, unchanged"
)
def after_is_the_adapted_models_perplexity(result):
    """the adapted model, evaluated on the held-out blocks, gives
    `result["perplexity_after"]`"""
    measured = twdl.lm.perplexity(result["model"], result["held_blocks"].input_ids)
    reported = result["perplexity_after"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check("q1")
def perplexity_fell(result):
    """the perplexity after adaptation is below the perplexity before"""
    before, after = result["perplexity_before"], result["perplexity_after"]
    assert after < before, (
        f"after {after:.4g} is not below before {before:.4g}: more steps, or another"
        " rate?"
    )


@twdl.question_check(
    "q1",
    hint=(
        "twdl.record('m4.homework.ppl_before', ...) and ('m4.homework.ppl_after', ...)"
    ),
)
def perplexities_are_recorded(result, records):
    """m4.homework.ppl_before and m4.homework.ppl_after are recorded from `result`"""
    for name, key in (
        ("m4.homework.ppl_before", "perplexity_before"),
        ("m4.homework.ppl_after", "perplexity_after"),
    ):
        twdl.assert_recorded(records, name, result[key], 1e-9 * max(1.0, result[key]),
                             f"result[{key!r}] is")


twdl.check("q1")

# %% tags=["hidden-checks"]
@twdl.question_check("q1", required=True, time_limit=120)
def perplexities_hold_on_blocks_the_grader_rebuilds(result):
    """from the held-out text itself, the grader rebuilds the held-out blocks; a fresh base model and the adapted
    one give the reported perplexities there"""
    import torch

    built, model = result["built_from"], result["model"]
    base_name = model.base_model.model.config.name_or_path  # the grader's own copy of the base model
    tokenizer = twdl.lm.load_tokenizer(base_name)
    held = twdl.lm.make_blocks(built["held_out_text"], tokenizer, built["block_size"], built["max_blocks"]).input_ids
    assert torch.equal(held.cpu(), result["held_blocks"].input_ids.cpu()), "the held-out blocks are not the text's"
    base = twdl.lm.load_model(base_name, next(model.parameters()).device)
    for label, net, reported in (("before", base, result["perplexity_before"]), ("after", model, result["perplexity_after"])):
        measured = twdl.lm.perplexity(net, held)
        assert abs(measured - reported) <= 1e-3 * reported, f"{label}: reported {reported:.4g}, measured {measured:.4g}"

# %% [markdown] question="q2" points=2 title="QLoRA vs LoRA, tuning and regularisers on your text"
# **Questions 2-4.** Repeat the adaptation with QLoRA (`method="qlora"`), tune r, lora_alpha, lora_dropout and the
# learning rate, and compare the regularisers on your text (sections 3-6 show how). In a few sentences: how do
# QLoRA and LoRA compare in memory, speed and perplexity, which setting mattered most, and did any regulariser help?
#
# *Your answer:* (write it here, with the numbers you measured.)
# ### BEGIN SOLUTION
# Rubric (2 points). 1 point: compares QLoRA with LoRA on all three of memory (base-weight memory is the fair
# measure on a CPU), speed and perplexity, with the student's own numbers. 1 point: names the setting that
# moved perplexity most in their sweep and says whether a regulariser helped, aware that a short run with few
# steps rarely over-fits.
# ### END SOLUTION

# %% [markdown]
# ## Summary

# %%
twdl.record("m4.completed", completed)
twdl.records_table("m4.")
