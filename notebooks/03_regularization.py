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
# # Module 3 — Regularisation on Animal Faces
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/thinking-with-deep-learning/twdl-week2/blob/main/notebooks/03_regularization.ipynb)
#
# A network with far more weights than training images can fit anything, even labels drawn at random. In this lab
# you watch that happen on 32x32 photos of animals (the course's Animal Faces, or offline a real substitute from
# CIFAR-10), and then try the tools that push a model
# towards solutions that generalise: early stopping, L1 / L2 / elastic-net penalties (and why L2 is the same as
# weight decay), dropout, data augmentation, the batch size, magnitude pruning, the lottery ticket and knowledge
# distillation. Every comparison changes one thing only: same images, same epochs, same seed.

# %% tags=["colab-setup"]
# Colab only: install the course helpers (keeping Colab's torch). Elsewhere: nothing.
import subprocess, sys
if "google.colab" in sys.modules:
    helpers = ("twdl-helpers @ git+"
               "https://github.com/thinking-with-deep-learning/twdl-week2")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", helpers], check=True)

# %%
import copy
import dataclasses
import math
from functools import partial
from statistics import mean

from IPython.display import Markdown

import matplotlib.pyplot as plt
import pandas as pd
import twdl_helpers as twdl

twdl.watch_parameters()  # the next cell's assignments are the declared parameters

# %% tags=["parameters"]
# Run size: "smoke" (a minute on a laptop CPU) or "full" (the course's settings).
profile = "smoke"  # @param ["smoke", "full"]
# Where to train: "auto" picks a GPU when there is one.
device = "auto"  # @param ["auto", "cpu", "cuda", "mps"]
# Seed for data subsets, weights and minibatch order (the original used 90108).
seed = 0  # @param {type:"integer"}
# "auto": the real files if found (mirror, cache, download), else the bundled real
# sample; "full": real or fail; "sample": bundled.
data_source = "auto"  # @param ["auto", "full", "sample"]
# Which images: "afhq" (the course's Animal Faces), "cifar_animals" (CIFAR-10
# cat/deer/dog), "auto" (AFHQ if complete, else CIFAR).
dataset = "auto"  # @param ["auto", "afhq", "cifar_animals"]
# Folder for figures.
output_dir = "runs/03_regularization"  # @param {type:"string"}
# Epochs of the longest runs (None: the profile's value; shorter runs scale with it).
# [int >= 1 or None]
epochs = None
# Homework: tick when done.
completed = False  # @param {type:"boolean"}

# %%
P, dev = twdl.setup(globals(), cpu_threads=1)  # checks parameters, picks device, seeds
display(twdl.runtime_estimate("03_regularization"))  # how long this notebook takes
E = epochs or P.pick(smoke=60, full=200)  # the spec's 200-epoch runs
scale = lambda n: max(2, round(n * E / 200))  # noqa: E731  (60 -> 0.3 E, ...)
seeds = [seed + i for i in range(3)]  # a verdict needs at least 3 seeds
more_seeds = [seed + i for i in range(P.pick(smoke=3, full=5))]  # dropout, augmentation
# batch for the `medium` images: 2 SGD steps/epoch in either profile (100/50, 250/128)
batch = P.pick(smoke=50, full=128)
last = 5  # a run's score: its mean validation accuracy over its last 5 epochs
lr, momentum = 5e-3, 0.99  # the SGD of sections 2-6
# every experiment below: models built on `dev`, trained with these seeds and batch
run = partial(twdl.run_experiments, seeds=seeds, batch_size=batch, device=dev)
all_effects = []  # every verdict of the notebook, for the note on chance at the end

# %% [markdown]
# ## The data: train, validation, tuning and test
# The course uses Animal Faces (AFHQ) downscaled to 32x32: cats, dogs and wild animals, in `train/` and `val/`
# folders. When the complete AFHQ cannot be found or downloaded, the loader uses a real substitute instead and says
# so: CIFAR-10's cat, deer and dog photos (whole animals in scenes rather than aligned faces; deer stand in for
# "wild"), from the data mirror, or the small sample bundled with the helpers. `dataset` in the parameters picks
# one explicitly. The line printed below and the `m3.data.*` records say which images this run used.
#
# We draw our **training** and **validation** sets as random, disjoint subsets of `train/`, sized from what is
# actually there (the original hard-coded `[100, 100, 14430]`, which breaks on any other copy of the data). The
# training sets stay small, because small training sets are what over-fit: the first 100 training images
# (`small`) for memorisation, pruning, the lottery ticket and distillation, the first 250 (100 in the smoke
# profile: `medium`) for early stopping, the penalties, dropout and the batch size, and all of them for
# augmentation. The validation set is much larger, so that differences between techniques are not one or two
# images.
#
# Some techniques make a **choice** from data: early stopping picks an epoch, the grid search picks $\lambda$. A
# choice made on the validation images and then scored on the same images looks better than it is (the best of
# many noisy scores is high partly by luck). So we set apart a third group, the **tuning** images: they make the
# choices, and the validation images, never used for a choice, score every technique. The held-out folder (`val/`
# of AFHQ, `test/` of CIFAR-10) is our **test** set: we look at it once, at the very end, for the one model we
# pick. Every pixel is scaled to $[-1, 1]$: $x' = (x/255 - 0.5)/0.5$.

# %%
n_val, n_tune = P.pick(smoke=500, full=1000), P.pick(smoke=150, full=500)
faces = twdl.load_animal_faces(source=data_source, dataset=dataset,
                               n_train=P.pick(smoke=200, full=1000),
                               n_val=n_val + n_tune, seed=seed, device=dev)
# the last n_tune of the drawn validation images become the tuning images
tune = faces.val.subset(range(n_val, len(faces.val)))
faces = dataclasses.replace(faces, val=faces.val.subset(range(n_val)))
small = faces.train.subset(range(min(100, len(faces.train))))
medium = faces.train.subset(range(min(P.pick(smoke=100, full=250), len(faces.train))))
twdl.record("m3.data.source", faces.source)
twdl.record("m3.data.dataset", faces.dataset)
twdl.record("m3.data.train_images", len(faces.train))
twdl.record("m3.data.val_images", len(faces.val))
twdl.record("m3.data.tune_images", len(tune))
twdl.record("m3.data.test_images", len(faces.test))
print(faces.summary())
print(f"tuning {len(tune)} images; small {len(small)}; medium {len(medium)}")
fig = twdl.show_images(faces.train, faces.classes, n=8)
n_classes = len(faces.classes)
steps = math.ceil(len(medium) / batch)  # SGD steps per epoch on the medium images
twdl.record("m3.settings", {
    "profile": P.name, "epochs": E, "seeds": seeds, "more_seeds": more_seeds,
    "batch": batch, "steps_per_epoch": steps, "medium_images": len(medium),
    "lr": lr, "momentum": momentum, "score_epochs": last})
Markdown(
    f"**This run** ({P.name} profile): the long runs train {E} epochs; verdicts use "
    f"seeds {seeds} (dropout and augmentation: {more_seeds}); the {len(medium)} "
    f"`medium` images train with batch {batch}, so {steps} SGD steps per epoch, "
    f"learning rate {lr:g} and momentum {momentum:g}; the {len(small)} `small` images "
    f"train in one batch (one step per epoch); {len(faces.val)} validation, "
    f"{len(tune)} tuning and {len(faces.test)} test images. A run's score is its mean "
    f"validation accuracy over its last {last} epochs (or at the epoch early stopping "
    "kept).")

# %% [markdown]
# *Think:* why must the validation images never be used to fit weights, and why keep a third, untouched test set
# when we already have a validation set?
#
# ## How every experiment here runs
# Each experiment is **data**: a model, its SGD settings and what regularises it, e.g.
# `twdl.Experiment(twdl.AnimalNet, lr=5e-3, momentum=0.99, epochs=200, penalty=twdl.l2_penalty(0.03))`.
# `run(...)` (that is `twdl.run_experiments`) trains each one with every seed on the same images, builds
# each model on the notebook's device, and measures after every epoch, in evaluation mode: the training
# loss and accuracy (dropout off, no augmentation), the validation (and, when given, tuning) loss and accuracy and
# the parameter norm. (`running_loss` is the mean batch loss during the epoch, in training mode; it is kept apart.)
#
# **Is a difference real?** Two runs that differ only in their seed (initial weights, minibatch order, dropout
# masks) already end a point or two apart, and one epoch's validation accuracy jumps by a point or two from the
# next. So a run is scored by its mean validation accuracy over its last few epochs (or, with early stopping, at
# the epoch the tuning images chose), and every comparison trains both settings with the **same seeds on the same
# images**. Each seed then gives one difference $d_s$ between the two arms, and a **paired t-test** asks whether
# their mean $\bar d$ is far from zero compared with its standard error $s_d/\sqrt{n}$: "helps" or "hurts" when
# $|\bar d|$ exceeds the two-sided 5 % critical value of Student's t with $n - 1$ degrees of freedom times that
# standard error (4.30 with 3 seeds, 2.78 with 5: few seeds need a large, consistent effect), "within noise"
# otherwise (`twdl.effect_over_seeds`, built on `twdl.paired_verdict`). There is no verdict from fewer than 3
# seeds, and none against a baseline run that failed (its loss diverged, its weights exploded, or it ended within
# noise of chance: `twdl.check_runs` records each run's health as `m3.health.*`). Every verdict below is generated
# from this run's numbers; the smoke profile, with fewer images and epochs, may find nothing beyond noise.

# %% [markdown]
# ## 1. Memorisation: a network can fit random labels
# Zhang et al. (2017) showed that a large network reaches 100 % training accuracy even when every label is replaced
# by a random one. Here `Big_Animal_Net` (3072-124-64-3) is trained on the 100 `small` images with true labels,
# with fully permuted labels and with labels where 15 % were permuted; the permutations are seeded and made from
# the real labels. The validation labels stay true, so validation accuracy tells how much of what was learnt
# carries over. Every step here sees the whole training set (one batch of 100 images). On random labels the
# validation accuracy is expected to end near chance: that run's health record says so, as this section expects.

# %%
labels = {kind: faces.with_labels(kind, seed=seed).train.subset(range(len(small)))
          for kind in ("true", "random", "partial")}
small_batch = len(small)  # the whole set: one step per epoch
big = twdl.Experiment(twdl.BigAnimalNet, lr=5e-3, momentum=0.9, epochs=E)
memorise = run({kind: big.with_(train_data=data) for kind, data in labels.items()},
               small, faces.val, batch_size=small_batch)
check = partial(twdl.check_runs, n_classes=n_classes, n_images=len(faces.val),
                last=last)
failed = check({k: memorise[k] for k in ("true", "partial")}, "m3.memorize")
failed |= check({"random": memorise["random"]}, "m3.memorize", expected_failure=True)
remembered = twdl.summarize_runs(memorise, last=last)
for kind, row in remembered.iterrows():
    twdl.record(f"m3.memorize.{kind}.train_accuracy", row["train_accuracy"])
    twdl.record(f"m3.memorize.{kind}.val_accuracy", row["val_accuracy"])
fig = twdl.plot_runs(memorise, ["train_accuracy", "val_accuracy"],
                     title="Big_Animal_Net on true / random / 15 % random labels")
effects = twdl.effect_over_seeds(twdl.seed_scores(memorise, last),
                                 {"random": "true", "partial": "true"}, failed=failed)
all_effects.append(effects)
twdl.record_effects(effects, "m3.memorize")

# %% [markdown]
# *Think:* how close to 100 % does the training accuracy get for each label set? What does that tell you about
# using training accuracy alone to judge a model? Is the drop in validation accuracy from true to random labels
# larger than the spread over seeds?

# %% [markdown]
# ## 2. Model size and early stopping
# From here on, early stopping, the penalties and dropout train on the `medium` images for `E` epochs with the
# same SGD (the learning rate, momentum, batch and steps per epoch stated at the top), so that every comparison
# changes one thing only. (The original course used a different learning rate, momentum and number of epochs for
# each experiment, on 100 images for most.)
#
# **Two baselines.** A momentum of 0.99 for this many epochs over-trains on purpose: the unregularised network
# fits its training images early, and then its validation loss keeps climbing while its validation accuracy
# drifts down. A regulariser that "helps" against this run may only win back what the long schedule lost. So
# every technique is also compared with a **well-trained baseline**: the same unregularised network with its
# schedule chosen on the tuning images, as each regulariser's own settings are. We train it with momentum 0.99
# and with 0.9, and take the momentum and the number of epochs at which the mean tuning accuracy over seeds is
# highest (`twdl.tuned_schedule`); its score is each seed's validation accuracy at that epoch. The first gap
# measures what a technique adds to an over-trained run, the second what it adds to a sensible one.
#
# We measure the size of a network by the Frobenius norm of all its parameters,
# $\lVert\theta\rVert_F = \sqrt{\sum_i \theta_i^2}$ (`twdl.ParameterNorm()` adds it to every epoch's row).
# Watch in the figure how the validation accuracy and the parameter norm move once the training images are fitted.
# **Early stopping** watches a score on held-out images, stops once it has not improved for `patience` epochs and
# restores the weights of the best epoch. It watches the tuning **accuracy** (`monitor="tune_accuracy"`), not the
# loss: the validation loss also punishes confident mistakes, which keep growing, so its minimum can come well
# before the accuracy peaks, and a model restored at the loss minimum would give up accuracy. The printed line
# says where the two fell in this run.

# %%
base = twdl.Experiment(twdl.AnimalNet, lr=lr, momentum=momentum, epochs=E)
stopped = base.with_(patience=P.pick(smoke=10, full=20), monitor="tune_accuracy")
runs = run({"unregularized": base, "momentum 0.9": base.with_(momentum=0.9),
            "early stopping": stopped}, medium, faces.val, tune_data=tune)
failed |= check(runs, "m3")
scores = twdl.seed_scores(runs, last)  # each experiment's score per seed
# the well-trained baseline: the momentum and epoch the tuning images prefer
candidates = {k: runs[k] for k in ("unregularized", "momentum 0.9")}
schedule, fair_epoch = twdl.tuned_schedule(candidates)
scores["well-trained"] = twdl.scores_at_epoch(runs[schedule], fair_epoch)
if schedule in failed:
    failed["well-trained"] = failed[schedule]
twdl.record("m3.well_trained.schedule", schedule)
twdl.record("m3.well_trained.epoch", fair_epoch)
twdl.record("m3.well_trained.val_accuracy", mean(scores["well-trained"]))
twdl.record("m3.unregularized.score", mean(scores["unregularized"]))
kept = runs["early stopping"]
twdl.record("m3.early_stopping.best_epoch", [r.best_epoch for r in kept])
twdl.record("m3.early_stopping.epochs_run", [len(r.history) for r in kept])
plain = runs["unregularized"][0].history
lowest_loss = plain.best("val_loss", "min")["epoch"]
twdl.record("m3.early_stopping.val_loss_minimum_epoch", lowest_loss)
peak = plain.best("val_accuracy")
twdl.record("m3.early_stopping.val_accuracy_peak_epoch", peak["epoch"])
print(f"first seed: validation loss lowest at epoch {lowest_loss}, accuracy highest "
      f"at epoch {peak['epoch']} ({peak['val_accuracy']:.1f} %), "
      f"{plain.last['val_accuracy']:.1f} % at the last epoch; "
      f"early stopping kept epoch {kept[0].best_epoch}")
fig = twdl.plot_runs({k: runs[k] for k in ("unregularized", "momentum 0.9")},
                     ["val_loss", "val_accuracy", "param_norm"], title="Unregularised")
for ax in fig.axes:
    ax.axvline(fair_epoch, color="grey", ls="--")  # the well-trained baseline's epoch
Markdown(
    f"The tuning images prefer **{schedule}** stopped at **epoch {fair_epoch}** "
    f"(dashed line): this well-trained baseline scores "
    f"{mean(scores['well-trained']):.1f} % on the validation images, the over-trained "
    f"run {mean(scores['unregularized']):.1f} % over its last {last} epochs (means "
    f"over seeds {seeds}). Early stopping kept epochs {[r.best_epoch for r in kept]}, "
    "one per seed.")

# %%
def verdicts(pairs, prefix="m3"):
    """Paired verdicts of `pairs` {technique: baseline} from `scores`, recorded."""
    table = twdl.effect_over_seeds(scores, pairs, failed=failed)
    all_effects.append(table)
    display(twdl.record_effects(table, prefix))
    return table

effects = verdicts({"early stopping": "unregularized"})
fair = verdicts({"early stopping": "well-trained"}, "m3.vs_well_trained")

# %% [markdown]
# *Think:* early stopping chose its epochs on the tuning images, one per seed, and the well-trained baseline its
# epoch (the dashed line) on the same images. Why is the validation accuracy of either an honest estimate, and why
# would it not be if the validation images had chosen the epoch? What does the verdict against the well-trained
# baseline say early stopping adds to a run whose length was chosen well?

# %% [markdown]
# ## 3. L1, L2 and elastic-net penalties
# A penalty $R(\theta)$ is added to the loss: $\mathcal{L} = \mathrm{CE} + R(\theta)$, with
# $R_{L1} = \lambda \sum_i |\theta_i|$ (LASSO), $R_{L2} = \lambda \sum_i \theta_i^2$ (ridge) and the elastic net
# $R = \lambda_1 \sum_i |\theta_i| + \lambda_2 \sum_i \theta_i^2$. For L2 one SGD step becomes
# $\theta \leftarrow (1 - 2\eta\lambda)\theta - \eta\nabla\mathrm{CE}$: a proportional shrink. The sums run over
# all the weights (about 400,000), so the same $\lambda$ weighs very differently in L1 and L2: the numbers below
# compare each penalty of the initial network with its cross-entropy.
#
# ### Choosing lambda by grid search
# $\lambda$ is a hyperparameter: we train one model per value on a logarithmic grid, with every seed, and keep the
# value with the best **tuning** accuracy; the validation images then score the chosen model, and the test set is
# never looked at. The grid's runs train as long as the others: the penalty matters only once the unregularised
# network has started to over-fit.

# %%
start = twdl.AnimalNet(seed=seed, device=dev)
ce = twdl.evaluate(start, medium)["loss"]  # the untrained network's cross-entropy
size = {lam: (twdl.l1_penalty(lam)(start).item(), twdl.l2_penalty(lam)(start).item())
        for lam in (0.1, 1e-4)}
twdl.record("m3.penalty_at_init",
            {f"{lam:g}": {"l1": l1, "l2": l2} for lam, (l1, l2) in size.items()})
Markdown(f"At initialisation the cross-entropy is {ce:.2f} (about ln 3). " + " ".join(
    f"With $\\lambda = {lam:g}$ the L1 penalty is {l1:.3g} ({l1 / ce:.3g} times the "
    f"cross-entropy) and the L2 penalty {l2:.3g} ({l2 / ce:.3g} times)."
    for lam, (l1, l2) in size.items()))

# %%
lambdas = [1e-2, 3e-2, 1e-1]
grid = twdl.lambda_grid(base, medium, faces.val, lambdas, kinds=("l2",), seeds=seeds,
                        batch_size=batch, device=dev, tune_data=tune,
                        unregularized=runs["unregularized"])
lam2, edge = grid.attrs["best"]["l2"], grid.attrs["at_edge"]["l2"]
twdl.record("m3.lambda_grid.l2.best_lambda", lam2)
twdl.record("m3.lambda_grid.l2.at_edge", edge)
runs["l2"] = grid.attrs["runs"][f"l2 {lam2:g}"]  # the chosen lambda's runs
grid_note = "a grid candidate (too strong a penalty can stop learning), not a baseline"
failed |= check({f"l2 {lam:g}": grid.attrs["runs"][f"l2 {lam:g}"] for lam in lambdas},
                "m3.lambda_grid", expected_failure=grid_note)
failed |= check({"l2": runs["l2"]}, "m3")
scores["l2"] = twdl.seed_scores({"l2": runs["l2"]}, last)["l2"]
fig = twdl.plot_lambda_grid(grid)
Markdown(f"The tuning images chose $\\lambda_2$ = {lam2:g} (ringed in the figure) from "
         f"the grid {lambdas}" + (
             ": that is an **edge** of the grid, so a better value may lie beyond it "
             "and a wider grid would tell." if edge else
             ", inside the grid (not at an edge)."))

# %%
effects = verdicts({"l2": "unregularized"})
fair = verdicts({"l2": "well-trained"}, "m3.vs_well_trained")

# %% [markdown]
# Move the slider to rerun one short L2 experiment (in a batch run the default is shown).

# %%
def l2_experiment(lam=1e-2):
    (result,) = run({"l2": base.with_(epochs=scale(40), penalty=twdl.l2_penalty(lam))},
                    medium, faces.val, seeds=[seed], progress=False)["l2"]
    print(f"lambda={lam:g}: val accuracy {result.val['accuracy']:.1f} %, "
          f"parameter norm {result.history.last['param_norm']:.2f}")
    return result.val["accuracy"]

twdl.interactive_or_default(l2_experiment, lam=[1e-2, 0.0, 1e-3, 3e-2, 1e-1])

# %% [markdown]
# *Think:* the grid picks $\lambda$ on the tuning images. With three seeds per value, how large a difference
# between two $\lambda$ values would you trust? Did the chosen $\lambda$ help beyond the noise on the validation
# images (the verdict above)?

# %% [markdown]
# ### L1 and sparsity
# For L1 the (sub)gradient step is $\theta \leftarrow \theta - \eta(\nabla \mathrm{CE} + \lambda\,\mathrm{sign}
# (\theta))$: a constant pull towards zero that **overshoots** it, so a weight ends up jumping around zero rather
# than exactly on it. The **proximal** L1 step (soft-thresholding, as in ISTA) does land on zero: after each
# ordinary step, $\theta \leftarrow \mathrm{sign}(\theta)\max(|\theta| - t, 0)$ sets every weight within $t$ of
# zero to exactly zero (`proximal_l1=` below).
#
# Momentum changes what "the same $\lambda$" means. With momentum $\mu$ a gradient that stays the same is
# accumulated into steps of $\eta g/(1-\mu)$: with $\mu = 0.99$, a hundred times $\eta g$. The penalty's gradient
# $\lambda\,\mathrm{sign}(\theta)$ goes through the momentum like the loss's, but the proximal step happens after
# the optimiser, so `twdl.ProximalL1` uses $t = \eta\lambda/(1-\mu)$: the same pull per step as the penalty, and
# the same $\lambda$ means the same strength for both. We use $\lambda_1 = 10^{-4}$ for both L1 runs and for the
# elastic net (with the $\lambda_2$ the grid chose). The lesson here is the share of weights that are exactly zero;
# one seed is enough to see it, and these accuracies are not compared against the noise.

# %%
lam1 = 1e-4
sparse = run({"l1": base.with_(penalty=twdl.l1_penalty(lam1)),
              "proximal l1": base.with_(proximal_l1=lam1),
              "elastic": base.with_(penalty=twdl.elastic_penalty(lam1, lam2))},
             medium, faces.val, seeds=[seed])
sparsity = twdl.summarize_runs({"unregularized": runs["unregularized"][:1], **sparse})
for name, row in sparsity.iterrows():
    key = name.replace(" ", "_")
    twdl.record(f"m3.zeros.{key}.exact_zero_percent", row["exact_zero_percent"])
sparsity[["val_accuracy", "param_norm", "exact_zero_percent"]].round(2)

# %%
curves = ["train_accuracy", "val_accuracy", "param_norm"]
penalized = {"unregularized": runs["unregularized"][0].history,
             "l2": runs["l2"][0].history, **twdl.histories(sparse)}
fig = twdl.plot_histories(penalized, curves, log_scale=["param_norm"],
                          title=f"Penalties (first seed), l1 {lam1:g}, l2 {lam2:g}")

# %% [markdown]
# *Think:* which of the two L1 runs leaves exact zeros, and why not the other? What does a zero weight in the
# first layer say about the pixel it reads?

# %% [markdown]
# ### L2 penalty = weight decay
# The gradient of $\lambda\sum_i\theta_i^2$ is $2\lambda\theta$, so adding the penalty gives exactly the update of
# SGD with `weight_decay` $= 2\lambda$ (PyTorch adds `weight_decay * θ` to the gradient). We check it numerically:
# two identical networks, one epoch each, and compare every weight afterwards.

# %%
one = base.with_(epochs=1)
pair = run({"penalty": one.with_(penalty=twdl.l2_penalty(0.01)),
            "decay": one.with_(weight_decay=0.02)}, medium, faces.val, seeds=[seed],
           progress=False)
a, b = pair["penalty"][0].model, pair["decay"][0].model
def largest_difference(x, y):
    pairs = zip(x.parameters(), y.parameters())
    return max((p - q).abs().max().item() for p, q in pairs)

gap, moved = largest_difference(a, b), largest_difference(a, start)
twdl.record("m3.l2.weight_decay_max_difference", gap)
print(f"largest weight change in the epoch: {moved:.2e}; "
      f"largest difference between the two runs: {gap:.2e}")

# %% [markdown]
# ## 4. Dropout
# During training, dropout zeroes each unit with probability $p$ and scales the survivors by $1/(1-p)$, so no unit
# can rely on a particular partner; at evaluation time it is switched off (`model.eval()`, done by the loop). Since
# it removes capacity, the dropout net is wider: 3072-248-210-3 with $p$ = 0.5 and 0.3. To compare like with like,
# the baseline is the **same** wide network with $p = 0$, trained on the same images with the same SGD as above.
# Train accuracy is measured with dropout off, so the gap between train and validation accuracy is the real one.
# The masks are drawn from each run's seed, so a run is repeated exactly by running it again. The masks are one
# more thing that differs from seed to seed, so this comparison uses more seeds (`more_seeds`), to tell a small
# effect from the spread. Its well-trained baseline is the same wide network without dropout, stopped at the
# epoch where its mean tuning accuracy peaked.

# %%
wide = partial(twdl.AnimalNetDropout, p1=0.0, p2=0.0)
dropout = run({"no dropout (same width)": base.with_(model=wide),
               "dropout": base.with_(model=twdl.AnimalNetDropout)}, medium, faces.val,
              seeds=more_seeds, tune_data=tune)
runs |= dropout
failed |= check(dropout, "m3")
scores |= twdl.seed_scores(dropout, last)
drop_epoch = twdl.tuned_epoch(dropout["no dropout (same width)"])
plain_wide = dropout["no dropout (same width)"]
scores["no dropout, tuned epochs"] = twdl.scores_at_epoch(plain_wide, drop_epoch)
if "no dropout (same width)" in failed:
    failed["no dropout, tuned epochs"] = failed["no dropout (same width)"]
twdl.record("m3.well_trained.dropout_epoch", drop_epoch)
fig = twdl.plot_runs(dropout, curves, title="Dropout")
print(f"well-trained baseline: no dropout stopped at epoch {drop_epoch} (tuning)")
effects = verdicts({"dropout": "no dropout (same width)"})
fair = verdicts({"dropout": "no dropout, tuned epochs"}, "m3.vs_well_trained")

# %% [markdown]
# *Think:* where in a network would you put dropout, and why is it off at evaluation time?

# %% [markdown]
# ## 5. Data augmentation
# Each training batch is transformed on the device before the forward pass, with a fresh random draw for every
# image at every step (from the run's seed). A **label-preserving** augmentation changes a photo the way another
# photo of the same animal could differ: `twdl.label_preserving_augmentation()` mirrors each image left-right with
# probability 0.5 and moves it by up to `twdl.MAX_SHIFT` pixels in each direction (the border filled by
# reflection). The course's augmentation, `twdl.course_augmentation()`, flips horizontally **and vertically**, each
# with probability `twdl.AUGMENT_PROBABILITY` ($p = 0.1$). These runs use all the training images, for a third of
# the epochs, each against the same run without augmentation, and with more seeds (`more_seeds`): a fresh random
# draw per image and step makes these runs the noisiest of the notebook. Train accuracy is measured on the
# un-augmented images. The well-trained baseline is the run without augmentation stopped at the epoch where its
# mean tuning accuracy peaked.

# %%
shorter = base.with_(epochs=scale(60))
preserving, course = twdl.label_preserving_augmentation(), twdl.course_augmentation()
augmented = run({"no augmentation": shorter,
                 "augmentation": shorter.with_(augment=preserving),
                 "course flips": shorter.with_(augment=course)},
                faces.train, faces.val, seeds=more_seeds, tune_data=tune)
runs |= augmented
failed |= check(augmented, "m3")
scores |= twdl.seed_scores(augmented, last)
aug_epoch = twdl.tuned_epoch(augmented["no augmentation"])
plain_all = augmented["no augmentation"]
scores["no augmentation, tuned epochs"] = twdl.scores_at_epoch(plain_all, aug_epoch)
if "no augmentation" in failed:
    failed["no augmentation, tuned epochs"] = failed["no augmentation"]
twdl.record("m3.well_trained.augmentation_epoch", aug_epoch)
fig = twdl.plot_runs(augmented, curves,
                     title=f"Augmentation ({len(faces.train)} images)")
print(f"well-trained baseline: no augmentation stopped at epoch {aug_epoch} (tuning)")
effects = verdicts({"augmentation": "no augmentation",
                    "course flips": "no augmentation"})
fair = verdicts({"augmentation": "no augmentation, tuned epochs"}, "m3.vs_well_trained")
helped = effects.loc["augmentation", "verdict"] == "helps"
said = effects.loc["augmentation", "verdict"]
Markdown("Label-preserving augmentation " + (
    "helps beyond the seed noise in this run." if helped else
    f"does **not** stand out from the seed noise in this run ({said}): its effect "
    "depends on the draw of images and seeds, and another draw can tell otherwise."))

# %% [markdown]
# *Think:* a vertical flip turns an animal upside down, and a test photo is never upside down. Compare the two
# verdicts above: what does a transformation that does not preserve what the photos look like teach the network?

# %% [markdown]
# ## 6. Batch size as a regulariser
# Smaller batches give noisier gradient estimates; the noise can keep the network away from sharp minima. But a
# smaller batch also takes more steps per epoch: at a fixed learning rate and number of epochs, a quarter of the
# batch makes four times the updates, and the comparison would measure the extra training, not the noise. So we
# compare at a **scaled learning rate**: the rate is proportional to the batch (the linear scaling rule of Goyal et
# al., 2017), so every run covers about the same distance per epoch and the runs differ in gradient noise. Each run
# counts the steps it took per epoch (`batches`), so you can check the batch size that was really used; the
# verdicts compare each smaller batch with the largest, paired over the seeds.

# %%
sizes = (batch // 4, batch // 2, batch)
sized = base.with_(epochs=scale(60))
by_batch = run({f"batch {bs}": sized.with_(batch_size=bs, lr=lr * bs / batch)
                for bs in sizes}, medium, faces.val)
failed |= check(by_batch, "m3")
scores |= twdl.seed_scores(by_batch, last)
def batch_row(name, rs):
    per_seed = {f"seed {r.seed} (%)": v for r, v in zip(rs, scores[name])}
    return {"steps per epoch": rs[0].history.last["batches"],
            "learning rate": rs[0].history.last["lr"], **per_seed,
            "mean val accuracy (%)": mean(scores[name])}

table = pd.DataFrame({name: batch_row(name, rs) for name, rs in by_batch.items()})
table = table.T.rename_axis("batch size")
for name in by_batch:
    twdl.record(f"m3.batch_size.{name.split()[1]}.val_accuracy", mean(scores[name]))
display(table.round(2).assign(**{"learning rate": table["learning rate"]}))
effects = verdicts({f"batch {bs}": f"batch {batch}" for bs in sizes[:-1]})
per_seed = [max(by_batch, key=lambda n: scores[n][i]) for i in range(len(seeds))]
top = max(by_batch, key=lambda n: mean(scores[n]))
each = ", ".join(f"seed {s}: {n}" for s, n in zip(seeds, per_seed))
Markdown(f"With the rate scaled to the batch, **{top}** has the highest mean "
         f"validation accuracy; the best batch per seed: {each}. The verdicts above "
         "say whether the differences stand out from the seed noise.")

# %% [markdown]
# *Think:* with few training images, one batch may hold the whole set. What does that do to gradient noise? Why
# would a fixed learning rate and number of epochs favour the smallest batch?

# %% [markdown]
# ## 7. Pruning
# Magnitude pruning removes the weights with the smallest $|w|$. `twdl.prune_magnitude` calls
# `torch.nn.utils.prune.l1_unstructured` on every linear layer: the layer keeps `weight_orig` and a 0/1
# `weight_mask`, and computes `weight = weight_orig * weight_mask` before each forward pass, so a pruned weight
# stays zero while the network is retrained. The parameter norm counts what the forward pass uses: pruned
# weights count as zero. We prune the Big_Animal_Nets trained on the true labels in section 1 (one per seed) by
# half and retrain each briefly; the verdicts compare their validation accuracy with the same networks before
# pruning.

# %%
trained = memorise["true"]  # Big_Animal_Net on true labels, one per seed (section 1)
teacher = copy.deepcopy(trained[0].model)  # kept unpruned for distillation (section 9)
pruned = [twdl.prune_and_retrain(copy.deepcopy(r.model), 0.5, small, faces.val,
                                 epochs=scale(50), lr=5e-3, batch_size=small_batch,
                                 seed=r.seed) for r in trained]
twdl.record("m3.prune.sparsity_per_layer", pruned[0].sparsity)
stages = {stage: [getattr(p, stage) for p in pruned]
          for stage in ("before", "pruned", "retrained")}
twdl.record("m3.prune.val_accuracy", {s: mean(v) for s, v in stages.items()})
effects = twdl.effect_over_seeds(stages, {"pruned": "before", "retrained": "before"})
all_effects.append(effects)
twdl.record_effects(effects, "m3.prune")

# %%
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.bar(list(pruned[0].sparsity), list(pruned[0].sparsity.values()))
ax.set_ylabel("fraction of weights = 0"); ax.set_xlabel("layer")
ax.set_title("Sparsity per layer after retraining (first seed)");

# %% [markdown]
# ### How much can we prune?
# The sweep prunes copies of the first seed's trained network at growing fractions, retrains each briefly, and
# reports train and validation accuracy (each run's final epoch). Where even the **training** accuracy falls, the
# network no longer has the capacity to fit the data: it underfits. (One seed: the sweep shows a trend, not
# verdicts.)

# %%
sweep = {}
for fraction in (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.995):
    result = twdl.prune_and_retrain(copy.deepcopy(teacher), fraction, small, faces.val,
                                    epochs=scale(20), lr=5e-3, batch_size=small_batch,
                                    seed=seed)
    sweep[fraction] = {"train accuracy (%)": result.history.last["train_accuracy"],
                       "val accuracy (%)": result.retrained}
sweep = pd.DataFrame(sweep).T.rename_axis("prune fraction")
fit = sweep["train accuracy (%)"]
underfit = sweep.index[fit < 0.9 * fit.iloc[0]]
twdl.record("m3.prune.underfit_fraction", float(underfit[0]) if len(underfit) else None)
held = sweep["val accuracy (%)"]
worse = sweep.index[held < held.iloc[0] - 2]  # 2 points below the unpruned
twdl.record("m3.prune.val_drop_fraction", float(worse[0]) if len(worse) else None)
ax = sweep.plot(marker="o", figsize=(5, 3.2), ylabel="accuracy (%)",
                title="Prune and retrain (first seed)")
ax.grid(alpha=0.3)
def first(found):
    """Where a fall starts, in words."""
    return f"from a prune fraction of {found[0]:g}" if len(found) else "nowhere here"

order = ("" if not (len(worse) and len(underfit)) else
         " Validation accuracy falls first." if worse[0] < underfit[0] else
         " Training accuracy falls first." if underfit[0] < worse[0] else
         " Both fall at the same fraction.")
Markdown(f"In this sweep, validation accuracy falls more than 2 points below the "
         f"unpruned {held.iloc[0]:.1f} % {first(worse)}; training accuracy falls below "
         f"90 % of the unpruned {fit.iloc[0]:.1f} % {first(underfit)}.{order}")

# %%
def prune_experiment(fraction=0.5):
    model = copy.deepcopy(teacher)
    layers = twdl.prune_magnitude(model, fraction)
    accuracy = twdl.evaluate(model, faces.val)["accuracy"]
    print(f"pruned {fraction:.0%} of each layer (no retraining): "
          f"val accuracy {accuracy:.1f} %, sparsity {layers}")
    return accuracy

twdl.interactive_or_default(prune_experiment, fraction=[0.5, 0.2, 0.8, 0.9, 0.95, 0.99])

# %% [markdown]
# A verdict *within noise* for the pruned and retrained networks means that removing half of each layer's weights
# cost nothing this experiment can measure: most weights of a network this over-parameterised matter little. The
# sweep shows where that stops.
#
# *Think:* in the sweep above, which falls first, training or validation accuracy? Why might a pruned network
# lose what it generalises before it loses what it memorised?

# %% [markdown]
# ## 8. The lottery ticket
# Frankle & Carbin (2019): inside a randomly initialised dense network there is a sparse sub-network (a "winning
# ticket") that, trained from the **same initial weights**, does as well as the dense one. For each seed we train a
# Xavier-initialised Big_Animal_Net, prune 40 % by magnitude, then retrain the masked net (a) from its original
# initial weights and (b) from a fresh random initialisation under the same mask. Two measurements judge a ticket:
# how many epochs each masked net needs to reach the dense network's validation accuracy (its mean over its last
# epochs), and its accuracy **before any retraining**, the mask applied to the initial weights.

# %%
tickets = [twdl.lottery_ticket(twdl.BigAnimalNet, small, amount=0.4, epochs=E,
                               batch_size=small_batch, lr=1e-3, momentum=0.9,
                               eval_data={"val": faces.val}, seed=s, device=dev)
           for s in seeds]
tail = lambda history: mean(history["val_accuracy"][-last:])  # noqa: E731
final = {part: [tail(getattr(t, part)) for t in tickets]
         for part in ("dense", "ticket", "random")}
for part, values in final.items():
    twdl.record(f"m3.lottery.{part}.val_accuracy", mean(values))

def untrained(t, s, offset):
    """Validation accuracy of the masked network before any retraining."""
    model = twdl.BigAnimalNet(seed=s + offset, init="xavier", device=dev)
    if offset == 0:
        model.load_state_dict(t.initial_state)  # the ticket: its own initial weights
    twdl.apply_masks(model, t.masks)
    return twdl.evaluate(model, faces.val)["accuracy"]

def epochs_to(history, target):
    """The first epoch whose validation accuracy reaches `target`, or None."""
    reached = (int(r["epoch"]) for r in history.rows if r["val_accuracy"] >= target)
    return next(reached, None)

lottery = pd.DataFrame([{
    "seed": s, "dense (%)": d,
    "ticket before retraining (%)": untrained(t, s, 0),
    "random re-init before retraining (%)": untrained(t, s, 10_007),
    "ticket: epochs to dense": epochs_to(t.ticket, d) or "—",
    "random re-init: epochs to dense": epochs_to(t.random, d) or "—",
    "ticket (%)": k, "random re-init (%)": r}
    for s, t, d, k, r in zip(seeds, tickets, *final.values())
]).set_index("seed")
twdl.record("m3.lottery.epochs_to_dense", {
    part: [epochs_to(getattr(t, part), d) for t, d in zip(tickets, final["dense"])]
    for part in ("ticket", "random")})
before = {"ticket": lottery["ticket before retraining (%)"].tolist(),
          "random": lottery["random re-init before retraining (%)"].tolist()}
twdl.record("m3.lottery.before_retraining", {k: mean(v) for k, v in before.items()})
display(lottery.round(1))
print("— : never reached the dense accuracy within the epochs")
first_ticket = tickets[0]
fig = twdl.plot_histories({"dense": first_ticket.dense,
                           "ticket (same init)": first_ticket.ticket,
                           "random re-init": first_ticket.random},
                          ["train_accuracy", "val_accuracy"],
                          title="Lottery ticket, 40 % pruned (first seed)")
effects = twdl.effect_over_seeds(final, {"ticket": "random"})
early = twdl.effect_over_seeds(
    {"ticket before retraining": before["ticket"],
     "random re-init before retraining": before["random"]},
    {"ticket before retraining": "random re-init before retraining"})
all_effects += [effects, early]
display(twdl.record_effects(effects, "m3.lottery"))
twdl.record_effects(early, "m3.lottery")

# %%
chance = 100 / n_classes
Markdown(
    f"Before any retraining, the ticket (its mask on its own initial weights) scores "
    f"{mean(before['ticket']):.1f} % on the validation images and the random "
    f"re-initialisation under the same mask {mean(before['random']):.1f} % (chance "
    f"{chance:.1f} %). " + (
        "The mask alone, with no training after it, already lifts the ticket above "
        "the control (the verdict above): it was chosen from the trained weights, and "
        "it keeps the initial weights that training grew and drops the rest. Zhou et "
        "al. (2019) call such masks **supermasks**. A head start of this kind is the "
        "mask's, not a sign that the ticket learns better."
        if early.iloc[0]["verdict"] == "helps" else
        "In this run the mask alone does not lift the ticket above the control "
        "before retraining beyond the seed noise (the verdict above)."))

# %% [markdown]
# Frankle & Carbin found their winning tickets at high sparsity, with most weights pruned. With 40 % pruned, both
# masked networks keep most of their capacity. Compare the epochs each needs to reach the dense accuracy with the
# final verdict above: a ticket can start ahead and still end where the control ends.
#
# *Think:* the ticket and the control have the same mask. What, then, is the "winning" part of a winning ticket?
# If the final verdict says the two are within noise, what would you change to tell them apart?

# %% [markdown]
# ## 9. Knowledge distillation
# A small student learns from a big teacher's softened outputs (Hinton et al. 2015):
#
# $$\mathcal{L} = (1-\alpha)\,\mathrm{CE}(z_s, y) + \alpha\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\Vert\,\mathrm{softmax}(z_s/T)\big).$$
#
# The KL divergence is summed over classes and averaged over the batch (`batchmean`; the original's default `mean`
# also divided by the number of classes); $T^2$ keeps the soft term's gradients on the scale of the hard term. The
# teacher is the first seed's unpruned Big_Animal_Net of section 1; the student is Small_Animal_Net (3072-32-3),
# trained with $\alpha = 1, T = 40$ and compared with the same student on hard labels, over the seeds (the
# teacher stays the same).

# %%
student = twdl.Experiment(twdl.SmallAnimalNet, lr=5e-3, momentum=0.9, epochs=E)
soft = twdl.with_teacher(small, teacher)  # targets: (labels, teacher logits)
distilled = student.with_(train_data=soft, loss_fn=twdl.distillation(alpha=1.0, T=40.0))
students = run({"hard labels": student, "distilled": distilled}, small, faces.val,
               batch_size=small_batch)
failed |= check(students, "m3.distill")
taught = twdl.summarize_runs(students, last=last)
teacher_accuracy = twdl.evaluate(teacher, faces.val)["accuracy"]
twdl.record("m3.distill.teacher_val_accuracy", teacher_accuracy)
twdl.record("m3.distill.student_val_accuracy", taught.loc["distilled", "val_accuracy"])
twdl.record("m3.distill.hard_label_student_val_accuracy",
            taught.loc["hard labels", "val_accuracy"])
fig = twdl.plot_runs(students, ["train_accuracy", "val_accuracy"],
                     title="Student: distilled vs hard labels")
effects = twdl.effect_over_seeds(twdl.seed_scores(students, last),
                                 {"distilled": "hard labels"}, failed=failed)
all_effects.append(effects)
twdl.record_effects(effects, "m3.distill")

# %% [markdown]
# The student can only learn what the teacher knows: the teacher was trained on the same 100 images, and its
# validation accuracy is recorded above (`m3.distill.teacher_val_accuracy`). When the verdict says *within
# noise*, the teacher's soft labels carried little that the hard labels did not.
#
# *Think:* with $\alpha = 1$ the student never sees a true label. How can it still learn the right classes?

# %% [markdown]
# ## Homework
# 1. Apply three regularisation techniques to a model. `twdl.compare_regularizers` trains the unregularised model
#    and each technique on the same data, epochs and seeds with the runner used above, and returns one row per
#    technique. Here it is on the small real sample bundled with the helpers (CIFAR-10 cat/deer/dog, always
#    available offline), with one seed. Its early stopping keeps the epoch of best validation accuracy and is
#    scored on the same validation images, which flatters it; pass `tune_data=` (images used for nothing else)
#    to choose the epoch on those instead.

# %%
bundled = twdl.load_animal_faces(source="sample", n_train=P.pick(smoke=90, full=600),
                                 n_val=P.pick(smoke=60, full=300), seed=seed)
twdl.compare_regularizers(twdl.AnimalNet, bundled.train, bundled.val,
                          ["l2", "augmentation", "early_stopping"], epochs=scale(30),
                          batch_size=batch, lr=5e-3, momentum=0.9, lam=1e-3,
                          seeds=[seed], device=dev)

# %% tags=["homework"] question="q1" points=4 title="three regularisation techniques on one model"
# Hint: homework = twdl.compare_regularizers(model_fn, faces.train, faces.val,
#   [three of twdl.TECHNIQUES], ...); record each val accuracy.
### BEGIN SOLUTION
homework = twdl.compare_regularizers(twdl.AnimalNet, faces.train, faces.val,
                                     ["l1", "weight_decay", "augmentation"],
                                     epochs=scale(30), batch_size=batch, lr=5e-3,
                                     momentum=0.9, lam=1e-4, seeds=seeds, device=dev)
for technique, row in homework.iterrows():
    twdl.record(f"m3.homework.{technique}.val_accuracy", row["val_accuracy"])
display(homework)
### END SOLUTION

# %% [markdown]
# Check your answer: `twdl.check("q1")` tests the `homework` table (the grader runs these checks and hidden ones).

# %% tags=["checks"]
def _mean_accuracy(models, data):
    """Mean accuracy (%) of `models` on `data` (batches go to each model's device)."""
    return sum(twdl.evaluate(m, data)["accuracy"] for m in models) / len(models)


@twdl.question_check(
    "q1", hint="pass three names from twdl.TECHNIQUES to twdl.compare_regularizers"
)
def three_techniques_and_the_baseline(homework):
    """`homework` has the unregularised baseline and at least three regularisation
    techniques"""
    rows = twdl.each(homework.index, at_least=4, what="rows")
    techniques = [t for t in rows if t != "none"]
    assert "none" in homework.index, "no unregularised baseline row ('none')"
    assert len(techniques) >= 3, f"techniques: {techniques}; compare at least three"


@twdl.question_check(
    "q1",
    required=True,
    hint="keep the table that twdl.compare_regularizers returned, unchanged",
)
def models_give_their_val_accuracy(homework, faces):
    """each of the four rows has its own trained models, and they give the row's
    validation accuracy in `homework` on faces.val"""
    rows = twdl.model_per_row(homework.index, homework.attrs.get("models", {}),
                              at_least=4, what="rows")
    for technique, models in rows:
        reported = homework.loc[technique, "val_accuracy"]
        measured = _mean_accuracy(models, faces.val)
        assert (
            abs(measured - reported) < 0.01
        ), f"{technique}: the table says {reported:.2f} %, its models {measured:.2f} %"


@twdl.question_check(
    "q1", hint="twdl.record(f'm3.homework.{technique}.val_accuracy', ...) for each row"
)
def each_technique_is_recorded(homework, records):
    """each row's validation accuracy is recorded as
    m3.homework.<technique>.val_accuracy"""
    rows = twdl.each(homework["val_accuracy"].items(), at_least=4, what="rows")
    for technique, value in rows:
        name = f"m3.homework.{technique}.val_accuracy"
        twdl.assert_recorded(records, name, value, 1e-6, "the table says")


twdl.check("q1")

# %% tags=["hidden-checks"]
# a class-stratified draw of train/ images (the pool the validation images come from) that no profile's notebook
# loads: no submission can see them
WITHHELD = {"smoke": {"cifar_animals": 1500, "afhq": 1500}, "full": {"cifar_animals": 1500, "afhq": 1500}}


@twdl.grader_loads("faces")
def _graders_images(parameters):
    """The notebook's own split (validation images without the tuning ones), loaded again by the grader."""
    import dataclasses

    smoke = parameters["profile"] == "smoke"
    n_val, n_tune = (500, 150) if smoke else (1000, 500)
    faces = twdl.load_animal_faces(source=parameters["data_source"], dataset=parameters["dataset"],
                                   n_train=200 if smoke else 1000, n_val=n_val + n_tune, seed=parameters["seed"])
    return dataclasses.replace(faces, val=faces.val.subset(range(n_val)))  # the tuning images follow


@twdl.question_check("q1", required=True)
def models_hold_up_on_images_the_notebook_never_saw(homework, faces, withheld):
    """on train/ images no submission can see (drawn like the validation images), each technique's models score
    within binomial noise of the validation accuracy `homework` reports: models trained on the validation images
    drop there"""
    unseen = withheld.get(faces.dataset)
    if unseen is None:  # the data were too few to keep any back
        return
    rows = twdl.model_per_row(homework.index, homework.attrs["models"], at_least=4, what="rows")
    for technique, models in rows:
        twdl.assert_holds_up(technique, homework.loc[technique, "val_accuracy"], _mean_accuracy(models, unseen),
                             len(faces.val), len(unseen), comparisons=len(rows))


@twdl.question_check("q1")
def every_technique_trained_its_own_models(homework):
    """each technique has its own models, and their parameter norm is the one `homework` reports"""
    for technique, models in twdl.model_per_row(homework.index, homework.attrs["models"], at_least=4, what="rows"):
        reported = homework.loc[technique, "param_norm"]
        measured = sum(twdl.frobenius_norm(m) for m in models) / len(models)
        assert abs(measured - reported) < 1e-3 * max(1.0, reported), f"{technique}: norm {reported:.4g} vs {measured:.4g}"

# %% [markdown] question="q2" points=2 title="which technique worked best, and how the gap changed"
# 2. Which worked best, and how did each change the gap between train and validation accuracy? Write your answer
#    here, then look at the summary below: it reports the test accuracy of one chosen model only.
# ### BEGIN SOLUTION
# Rubric (2 points). 1 point: names the technique with the highest mean validation accuracy in the student's
# own `homework` table and says whether its lead exceeds the spread over seeds (with one seed or few validation
# images, differences of a few points are noise). 1 point: for each technique, compares train minus validation
# accuracy with the unregularised row, using the table's numbers.
# ### END SOLUTION

# %% [markdown]
# ## Summary
# Train and validation accuracy (mean over the seeds; validation as scored above, over the last epochs or at the
# epoch early stopping kept; train accuracy of the final model, in evaluation mode), their gap, the final parameter
# norm and the share of exactly-zero weights of every run of sections 2–6, with the number of seeds of each (the
# L1, proximal L1 and elastic-net runs have one). The augmentation runs trained on all the training images for
# fewer epochs, the batch-size runs for fewer epochs; the others on the `medium` images for `E` epochs.
#
# The model to test is chosen on the **tuning** images (`twdl.select_best(..., on="tune")`: the best mean tuning
# accuracy, then its best seed), and only among the runs that are comparable: same images, same epochs, same
# SGD (the unregularised runs, early stopping, L2 and the dropout pair). It is evaluated on the test set, once.

# %%
summary = twdl.summarize_runs(runs | sparse | by_batch, last=last)
for name in summary.index:
    twdl.record(f"m3.{twdl.record_key(name)}.val_accuracy",
                summary.loc[name, "val_accuracy"])
comparable = ["unregularized", "momentum 0.9", "early stopping", "l2",
              "no dropout (same width)", "dropout"]
best = twdl.select_best({name: runs[name] for name in comparable}, on="tune")
twdl.record("m3.best.technique", best.name)
twdl.record("m3.best.seed", best.seed)
# the one look at the test set
test_accuracy = twdl.evaluate(best.model, faces.test)["accuracy"]
twdl.record("m3.best.test_accuracy", test_accuracy)
display(Markdown(
    f"Chosen on the tuning images among {comparable}: **{best.name}** (seed "
    f"{best.seed}), {best.tune['accuracy']:.1f} % on the tuning images, "
    f"{best.val['accuracy']:.1f} % on the validation images, **{test_accuracy:.1f} %** "
    f"on the {len(faces.test)} test images."))
# —: no tuning images for that run
summary.round(2).astype(object).where(summary.notna(), "—")

# %% [markdown]
# Does each technique help, or is its change smaller than the seed noise? Each technique is compared with the
# run that differs from it by that technique alone (the over-trained baselines), and, below them, with the
# well-trained baselines whose schedule the tuning images chose. A point is the mean paired change in validation
# accuracy over seeds; its bar is the 95 % interval of the paired t-test (critical t times the standard error of
# the mean difference), so a bar that crosses the zero line is within noise.

# %%
own = twdl.effect_over_seeds(scores, {
    "early stopping": "unregularized", "l2": "unregularized",
    "dropout": "no dropout (same width)", "augmentation": "no augmentation",
    "course flips": "no augmentation"}, failed=failed)
well = twdl.effect_over_seeds(scores, {
    "early stopping": "well-trained", "l2": "well-trained",
    "dropout": "no dropout, tuned epochs",
    "augmentation": "no augmentation, tuned epochs"}, failed=failed)
effects = twdl.join_effects(own, well)
fig = twdl.plot_effects(effects)
verdict_list = [v for table in all_effects for v in twdl.verdicts_of(table)]
tested = [v for v in verdict_list if v.decided or v.verdict == "within noise"]
twdl.record("m3.verdicts.tested", len(tested))
twdl.record("m3.verdicts.decided", sum(v.decided for v in verdict_list))
display(Markdown("All verdicts use a paired t-test over seeds. "
                 + twdl.verdicts_note(verdict_list)))
display(Markdown(twdl.verdicts_across_draws("03_regularization", {
    "m3.effect.early_stopping": "early stopping (vs over-trained)",
    "m3.effect.l2": "L2 (vs over-trained)",
    "m3.effect.dropout": "dropout (vs over-trained)",
    "m3.effect.augmentation": "augmentation (vs over-trained)",
    "m3.vs_well_trained.effect.augmentation": "augmentation (vs well-trained)",
    "m3.effect.course_flips": "the course's flips"})))
table = effects[["baseline", "val_accuracy_change", "standard_error", "seeds",
                 "p_value", "verdict"]]
# —: no test (too few seeds or a failed baseline)
table.round(3).astype(object).where(table.notna(), "—")

# %%
twdl.record("m3.completed", completed)
twdl.records_table("m3.")
