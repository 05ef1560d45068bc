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
from IPython.display import Markdown
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
Markdown(lm.describe_run(P.name, model_ref, settings, block_size))

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
#
# The text has **three** parts: training blocks, **tuning** blocks (the end of the training text, set aside:
# every choice below, of rank, rate or regulariser, is made on them) and **held-out** blocks, on which
# perplexity is reported and which no choice ever sees. A setting picked because it scored best on some
# blocks is flattered by them; only blocks it was not picked on say how good it is.

# %%
tokenizer = lm.load_tokenizer(model_ref)
corpus = twdl.load_wikitext2(source=data_source, seed=seed, tuning_fraction=0.1,
                             limit=P.pick(smoke=150_000, full=None))
twdl.record("m4.data.source", corpus.source)
train_blocks = lm.make_blocks(corpus.train, tokenizer, block_size,
                              max_blocks=P.pick(smoke=400, full=None))
tuning_blocks = lm.make_blocks(corpus.tuning, tokenizer, block_size,
                               max_blocks=P.pick(smoke=64, full=None))
held_blocks = lm.make_blocks(corpus.held_out, tokenizer, block_size,
                             max_blocks=P.pick(smoke=64, full=None))
base = lm.load_model(model_ref, dev)
ppl_before = twdl.record("m4.ppl.before", lm.perplexity(base, held_blocks))
print("train", train_blocks, "tuning", tuning_blocks, "held out", held_blocks,
      f"vocabulary {len(tokenizer)}", sep="\n")
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
# libraries included): the next subsection says what each can see, and counts the memory by kind.

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
health = {m: twdl.record_health("m4", m, twdl.perplexity_health(
    row["final_train_loss"], row["perplexity"], before=ppl_before))
    for m, row in comparison.iterrows()}
display(Markdown(lm.describe_methods(comparison, ppl_before, health, settings.steps)))
fig = lm.plot_method_comparison(comparison, before=ppl_before)
twdl.save_figure(fig, output_dir, "methods")
shown = ["perplexity", "trainable_params", "trainable_percent", "base_weight_memory_mb",
         "peak_memory_mb", "memory_increase_mb", "tokens_per_second", "seconds"]
comparison[shown].round(2)

# %% [markdown]
# Throughput is counted after the first step (which pays one-time start-up costs); on a shared machine it
# is noisy, so compare orders of magnitude, not decimals.
#
# ### Where the memory goes: counted by kind, beside what was measured
# A training step holds four kinds of memory. **Weights**: every parameter at its stored size (fp32: 4 bytes;
# bf16/fp16: 2; NF4: half a byte plus its blocks' scales). **Gradients**: one per *trainable* weight, in its
# dtype. **Optimiser state**: AdamW keeps two moments per trainable weight (8 bytes in fp32), so a trainable
# fp32 weight costs 4 + 4 + 8 = 16 bytes and a frozen one 4 (or about 0.5 in NF4). **Activations**: what the
# forward pass saves for the backward pass; they grow with batch size × block length and do not shrink with
# LoRA (the frozen layers must still pass gradients back to the adapters below them).
#
# The table counts each kind from the model itself (`lm.memory_breakdown`: parameters by dtype and
# trainability, and the tensors autograd saved during one training step, counted with saved-tensor hooks),
# beside what the meter measured. The two measurements see different things:
# - **CUDA peak allocated** (on a GPU) sees every tensor the run allocated on the GPU, so it should land near
#   the counted total; it cannot see the CUDA context, the allocator's cache or anything in CPU memory.
# - **CPU RSS** (on a CPU) sees the whole process: Python, the libraries, file buffers from loading, and the
#   allocator's heap. Memory an earlier run freed stays in the heap and is reused without RSS growing, so the
#   increase during a run depends on what ran before it, and it cannot tell weights from gradients from
#   activations at all. On a CPU, read the counted columns; the measured ones only bound them.

# %%
memory = lm.memory_table(comparison)
for method, row in memory.iterrows():
    twdl.record(f"m4.memory.{method}.grad_optimizer_mb",
                row["gradients_mb"] + row["optimizer_state_mb"])
    twdl.record(f"m4.memory.{method}.counted_total_mb", row["total_mb"])
Markdown(lm.describe_memory(comparison, settings.batch_size, block_size))

# %%
memory.round(3)

# %% [markdown]
# *Think:* QLoRA's base weights take a fraction of the memory (the ratio above), but every forward pass must
# dequantise them first. Where does that extra work go, and when is the trade worth it? For a model of
# 7 billion parameters, work out the counted weights + gradients + optimiser state of full fine-tuning and of
# QLoRA with the bytes per parameter in the table.
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
# One setting at a time around the defaults, each run with the same smaller budget, **scored on the tuning
# blocks**. The run with the lowest tuning perplexity is chosen, and that same trained model is scored once
# on the held-out blocks (`lm.choose`). Note that the update is scaled by $\alpha/r$: changing $r$
# alone also changes the effective step.

# %%
sweep_settings = settings.with_(steps=P.pick(smoke=10, full=300),
                                batch_size=P.pick(smoke=4, full=2))
grid = P.pick(smoke={"r": [16], "alpha": [8], "learning_rate": [3e-3]},
              full={"r": [4, 8, 16], "alpha": [16, 32, 64], "dropout": [0.0, 0.05, 0.2],
                    "learning_rate": [1e-4, 2e-4, 5e-4]})
candidates = lm.grid_settings(grid, sweep_settings)
choice = lm.choose(model_ref, train_blocks, tuning_blocks, held_blocks, candidates,
                   device=dev)
fig = lm.plot_sweep(lm.sweep_rows(choice.table, grid, sweep_settings))
twdl.save_figure(fig, output_dir, "sweep")
twdl.record("m4.sweep.chosen", choice.chosen)
twdl.record("m4.sweep.chosen_tuning_ppl",
            float(choice.table.loc[choice.chosen, "tuning_perplexity"]))
twdl.record("m4.sweep.chosen_held_out_ppl", choice.held_out_perplexity)
display(choice.table[["tuning_perplexity", "final_train_loss", "seconds"]].round(3))
Markdown(lm.describe_choice(choice, grid, sweep_settings))

# %% [markdown]
# ## 6. Regularising the adapters
# Three ways to keep adapters from over-fitting a small text: AdamW's decoupled **weight decay**, **LoRA
# dropout** on the adapter's input, and an explicit **L2 penalty** added to the loss,
# $\mathcal{L} + \lambda \sum_\ell (\lVert A_\ell\rVert_F^2 + \lVert B_\ell\rVert_F^2)$ (a Trainer subclass).

# Each is scored on the tuning blocks; the best run's model is scored once on the held-out blocks.

# %%
reg_choice = lm.choose(model_ref, train_blocks, tuning_blocks, held_blocks,
                       lm.regularizer_settings(sweep_settings), device=dev)
twdl.record("m4.reg.best", reg_choice.chosen)
twdl.record("m4.reg.best_held_out_ppl", reg_choice.held_out_perplexity)
shown = ["weight_decay", "dropout", "adapter_l2", "tuning_perplexity",
         "final_train_loss"]
display(reg_choice.table[shown].round(3))
Markdown(lm.describe_regularizers(reg_choice, sweep_settings))

# %% [markdown]
# *Think:* with so few steps, do the regularisers matter? What would you change to see over-fitting first?
#
# ## Homework
# Four experiments on **your own text** (`text_path`), each with its own answer cell and points:
# 1. Adapt the model with LoRA: perplexity before and after (4 points, checked automatically).
# 2. Repeat with QLoRA and compare memory, speed and perplexity with LoRA (2 points checked, 1 written).
# 3. Tune a setting on your text's **tuning** part and report the choice on its **held-out** part
#    (2 points checked, 1 written).
# 4. Compare the regularisers the same way (1 point checked, 1 written).
#
# The held-out part is the same in all four (the last 10 % of your text); the tuning part (the 10 % before
# it) is where questions 3 and 4 make their choices. The checks re-measure your models' perplexities on
# blocks rebuilt from your text, so report what your runs returned.

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
    weights = result["model"].named_parameters()
    names = twdl.each((n for n, p in weights if p.requires_grad),
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

# %% tags=["homework"] question="q2" points=2 title="QLoRA on your text: the same adaptation on a 4-bit base"
# Hint: qlora_result = lm.adapt(..., method="qlora"), everything else as in
# question 1; record its perplexity after as m4.homework.qlora.ppl_after.
### BEGIN SOLUTION
qlora_result = lm.adapt(model_ref, text_path, method="qlora", settings=settings,
                        block_size=block_size, max_blocks=200, device=dev)
twdl.record("m4.homework.qlora.ppl_after", qlora_result["perplexity_after"])
pair = pd.DataFrame([result["row"], qlora_result["row"]]).set_index("method")
pair[["perplexity_before", "perplexity", "base_weight_memory_mb", "counted_total_mb",
      "counted_gradients_mb", "counted_optimizer_state_mb",
      "tokens_per_second"]].round(3)
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check(
    "q2", required=True, hint="qlora_result = lm.adapt(..., method='qlora')"
)
def qlora_adapters_on_a_4bit_base(qlora_result):
    """`qlora_result["model"]` has 4-bit (NF4) base layers, and only its LoRA adapters
    are trainable"""
    model = qlora_result["model"]
    assert twdl.lm.count_4bit_layers(model) > 0, "no 4-bit layers: was method='qlora'?"
    names = twdl.each((n for n, p in model.named_parameters() if p.requires_grad),
                      at_least=1, what="trainable weights")
    assert all("lora_" in n for n in names), f"not only adapters train: {names[:3]}"


@twdl.question_check(
    "q2", required=True, hint="keep the dict lm.adapt returned, unchanged"
)
def qlora_after_is_the_adapted_models_perplexity(qlora_result):
    """the QLoRA model, evaluated on its held-out blocks, gives
    `qlora_result["perplexity_after"]`"""
    held = qlora_result["held_blocks"].input_ids
    measured = twdl.lm.perplexity(qlora_result["model"], held)
    reported = qlora_result["perplexity_after"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check(
    "q2", hint="the same text_path, block_size and max_blocks as question 1"
)
def scored_on_the_same_blocks_as_lora(qlora_result, result):
    """QLoRA (question 2) and LoRA (question 1) are scored on the same held-out blocks,
    so their perplexities compare"""
    import torch

    mine, lora = qlora_result["held_blocks"].input_ids, result["held_blocks"].input_ids
    assert mine.shape == lora.shape and torch.equal(
        mine.cpu(), lora.cpu()
    ), "held-out blocks differ from question 1's: use the same text and block settings"


@twdl.question_check("q2", hint="twdl.record('m4.homework.qlora.ppl_after', ...)")
def qlora_perplexity_is_recorded(qlora_result, records):
    """m4.homework.qlora.ppl_after is recorded from `qlora_result`"""
    value = qlora_result["perplexity_after"]
    twdl.assert_recorded(records, "m4.homework.qlora.ppl_after", value,
                         1e-9 * max(1.0, value), "qlora_result['perplexity_after'] is")


twdl.check("q2")

# %% tags=["hidden-checks"]
@twdl.question_check("q2", required=True, time_limit=120)
def qlora_perplexity_holds_on_blocks_the_grader_rebuilds(qlora_result):
    """from the held-out text itself, the grader rebuilds the held-out blocks; the QLoRA model gives the
    reported perplexity there"""
    import torch

    built, model = qlora_result["built_from"], qlora_result["model"]
    tokenizer = twdl.lm.load_tokenizer(model.base_model.model.config.name_or_path)
    held = twdl.lm.make_blocks(built["held_out_text"], tokenizer, built["block_size"],
                               built["max_blocks"]).input_ids
    assert torch.equal(held.cpu(), qlora_result["held_blocks"].input_ids.cpu()), \
        "the held-out blocks are not the text's"
    measured, reported = twdl.lm.perplexity(model, held), qlora_result["perplexity_after"]
    assert abs(measured - reported) <= 1e-3 * reported, f"reported {reported:.4g}, measured {measured:.4g}"

# %% [markdown] question="q2_written" points=1 title="QLoRA against LoRA: memory, speed and perplexity"
# **Question 2, written.** From your two runs: how do QLoRA and LoRA compare in memory (say which
# measurement you use and what it can see: the counted breakdown, CPU RSS or CUDA allocated), in speed and
# in perplexity? Which kind of memory does QLoRA shrink, and which does it leave as it is?
#
# *Your answer:* (write it here, with the numbers you measured.)
# ### BEGIN SOLUTION
# Rubric (1 point). ½ point: compares QLoRA with LoRA on memory, speed and perplexity with the student's own
# numbers, naming the memory measure (on a CPU, RSS sees the whole process and is not the lesson's number; the
# counted breakdown or the base-weight size is). ½ point: says that QLoRA shrinks the frozen weights (about
# 0.5 byte per quantised weight instead of 4) while gradients, optimiser state and activations stay as in
# LoRA, and that QLoRA is usually slower because every forward pass dequantises the weights; one seed cannot tell a small
# perplexity difference from noise.
# ### END SOLUTION

# %% tags=["homework"] question="q3" points=2 title="Tuning on your text: choose on the tuning part, report on the held-out part"
# Hint: tuned = lm.choose_on_text(model_ref, text_path,
#   lm.grid_settings(grid, settings), ...) with a grid of at least one setting;
#   record tuned["chosen"] and tuned["perplexity_held_out"].
### BEGIN SOLUTION
homework_settings = settings.with_(steps=P.pick(smoke=10, full=150),
                                   batch_size=P.pick(smoke=4, full=2))
homework_grid = P.pick(smoke={"learning_rate": [3e-3]},
                       full={"learning_rate": [1e-4, 5e-4]})
tuned = lm.choose_on_text(model_ref, text_path,
                          lm.grid_settings(homework_grid, homework_settings),
                          block_size=block_size, max_blocks=P.pick(smoke=32, full=200),
                          device=dev)
twdl.record("m4.homework.tuning.chosen", tuned["chosen"])
twdl.record("m4.homework.tuning.ppl_held_out", tuned["perplexity_held_out"])
display(tuned["table"][["r", "learning_rate", "tuning_perplexity"]].round(4))
print(f"chosen on the tuning blocks: {tuned['chosen']}; "
      f"held-out perplexity {tuned['perplexity_held_out']:.2f}")
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check(
    "q3", required=True, hint="tuned = lm.choose_on_text(...), two candidates or more"
)
def choice_is_the_lowest_tuning_perplexity(tuned):
    """`tuned["chosen"]` is the candidate with the lowest tuning perplexity in
    `tuned["table"]`, among at least two candidates"""
    table = tuned["table"]
    assert len(table) >= 2, f"{len(table)} candidate(s): compare at least two settings"
    best = table["tuning_perplexity"].idxmin()
    assert tuned["chosen"] == best, f"chosen {tuned['chosen']!r}, lowest: {best!r}"


@twdl.question_check("q3", required=True, hint="keep what lm.choose_on_text returned")
def model_has_the_chosen_settings(tuned):
    """the returned model's adapters have the chosen candidate's rank, alpha and
    dropout"""
    config = tuned["model"].peft_config["default"]
    row = tuned["table"].loc[tuned["chosen"]]
    got = (config.r, float(config.lora_alpha), float(config.lora_dropout))
    want = (int(row["r"]), float(row["alpha"]), float(row["dropout"]))
    assert got == want, f"model (r, alpha, dropout) {got}, the chosen row {want}"


@twdl.question_check("q3", required=True, hint="keep what lm.choose_on_text returned")
def held_out_is_the_chosen_models_perplexity(tuned):
    """the chosen model, evaluated on the held-out blocks, gives
    `tuned["perplexity_held_out"]`"""
    measured = twdl.lm.perplexity(tuned["model"], tuned["held_blocks"].input_ids)
    reported = tuned["perplexity_held_out"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check(
    "q3", hint="twdl.record('m4.homework.tuning.chosen', ...), ('...ppl_held_out', ...)"
)
def tuning_choice_is_recorded(tuned, records):
    """m4.homework.tuning.chosen and m4.homework.tuning.ppl_held_out are recorded from
    `tuned`"""
    chosen = records.get("m4.homework.tuning.chosen")
    assert chosen == tuned["chosen"], f"recorded {chosen!r}, chosen {tuned['chosen']!r}"
    value = tuned["perplexity_held_out"]
    twdl.assert_recorded(records, "m4.homework.tuning.ppl_held_out", value,
                         1e-9 * max(1.0, value), "tuned['perplexity_held_out'] is")


twdl.check("q3")

# %% tags=["hidden-checks"]
@twdl.question_check("q3", required=True, time_limit=180)
def choice_was_made_on_tuning_text_the_held_out_never_saw(tuned):
    """from the texts themselves the grader rebuilds the tuning and held-out blocks: they are the returned
    ones, they differ, and the chosen model scores the table's tuning perplexity on the tuning blocks"""
    import torch

    built, model = tuned["built_from"], tuned["model"]
    assert built["tuning_text"].strip() and built["held_out_text"].strip(), "an empty tuning or held-out text"
    assert built["held_out_text"] not in built["tuning_text"], "the held-out text is inside the tuning text"
    tokenizer = twdl.lm.load_tokenizer(model.base_model.model.config.name_or_path)
    rebuilt = {part: twdl.lm.make_blocks(built[f"{part}_text"], tokenizer, built["block_size"],
                                         built["max_blocks"]).input_ids for part in ("tuning", "held_out")}
    assert torch.equal(rebuilt["tuning"].cpu(), tuned["tuning_blocks"].input_ids.cpu()), "tuning blocks differ"
    assert torch.equal(rebuilt["held_out"].cpu(), tuned["held_blocks"].input_ids.cpu()), "held-out blocks differ"
    measured = twdl.lm.perplexity(model, rebuilt["tuning"])
    reported = float(tuned["table"].loc[tuned["chosen"], "tuning_perplexity"])
    assert abs(measured - reported) <= 1e-3 * reported, f"tuning: table {reported:.4g}, model {measured:.4g}"

# %% [markdown] question="q3_written" points=1 title="Tuning: what the choice tells you"
# **Question 3, written.** Which setting did you choose, by how much did it beat the defaults on the tuning
# part, and what is its held-out perplexity? Why is the held-out number the one to report, and what would
# you need before saying the chosen setting is *better* than the defaults?
#
# *Your answer:* (write it here, with the numbers you measured.)
# ### BEGIN SOLUTION
# Rubric (1 point). ½ point: reports the chosen setting, its tuning perplexity against the defaults' and
# its held-out perplexity, from the student's run. ½ point: explains that the tuning part picked the
# setting and so flatters it, while the held-out part saw no choice; and that a claim of "better" needs the
# comparison repeated over at least 3 seeds (or data draws) with the difference beyond their spread; a
# chosen value at the edge of the grid calls for a wider grid.
# ### END SOLUTION

# %% tags=["homework"] question="q4" points=1 title="Regularisers on your text: choose on the tuning part"
# Hint: regs = lm.choose_on_text(model_ref, text_path,
#   lm.regularizer_settings(settings), ...); record regs["chosen"] as
#   m4.homework.reg.chosen.
### BEGIN SOLUTION
regs = lm.choose_on_text(model_ref, text_path,
                         lm.regularizer_settings(homework_settings),
                         block_size=block_size, max_blocks=P.pick(smoke=32, full=200),
                         device=dev)
twdl.record("m4.homework.reg.chosen", regs["chosen"])
twdl.record("m4.homework.reg.ppl_held_out", regs["perplexity_held_out"])
display(regs["table"][["weight_decay", "dropout", "adapter_l2",
                     "tuning_perplexity"]].round(4))
print(f"chosen: {regs['chosen']}; held-out perplexity "
      f"{regs['perplexity_held_out']:.2f}")
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check(
    "q4", required=True, hint="regs = lm.choose_on_text(..., lm.regularizer_settings())"
)
def every_regulariser_against_none(regs):
    """`regs["table"]` compares no regulariser ("none") with at least two
    regularisers, and `regs["chosen"]` is the lowest tuning perplexity"""
    table = regs["table"]
    assert "none" in table.index, "no 'none' row: compare against no regulariser"
    assert len(table) >= 3, f"{len(table)} rows: compare two regularisers or more"
    best = table["tuning_perplexity"].idxmin()
    assert regs["chosen"] == best, f"chosen {regs['chosen']!r}, lowest: {best!r}"


@twdl.question_check("q4", required=True, hint="keep what lm.choose_on_text returned")
def regularised_held_out_is_the_models_perplexity(regs):
    """the chosen model, evaluated on the held-out blocks, gives
    `regs["perplexity_held_out"]`"""
    measured = twdl.lm.perplexity(regs["model"], regs["held_blocks"].input_ids)
    reported = regs["perplexity_held_out"]
    assert (
        abs(measured - reported) <= 1e-3 * reported
    ), f"reported {reported:.4g}, the model gives {measured:.4g}"


@twdl.question_check("q4", hint="twdl.record('m4.homework.reg.chosen', regs['chosen'])")
def regulariser_choice_is_recorded(regs, records):
    """m4.homework.reg.chosen is recorded from `regs`"""
    chosen = records.get("m4.homework.reg.chosen")
    assert chosen == regs["chosen"], f"recorded {chosen!r}, chosen {regs['chosen']!r}"


twdl.check("q4")

# %% [markdown] question="q4_written" points=1 title="Regularisers: did any help?"
# **Question 4, written.** Which regulariser scored best on the tuning part, by how much against none, and
# its held-out perplexity? Can your run say that it helps? What would you change to see over-fitting, where
# regularisers have something to prevent?
#
# *Your answer:* (write it here, with the numbers you measured.)
# ### BEGIN SOLUTION
# Rubric (1 point). ½ point: reports the best regulariser's tuning perplexity against none's and its held-out
# perplexity, from the student's run. ½ point: says that one seed cannot separate a regulariser from none (a
# verdict needs at least 3 seeds and a difference beyond their spread) and that a short run rarely
# over-fits: more steps, a smaller text or a larger rank would show over-fitting first.
# ### END SOLUTION

# %% [markdown]
# ## Summary

# %%
twdl.record("m4.completed", completed)
twdl.records_table("m4.")
