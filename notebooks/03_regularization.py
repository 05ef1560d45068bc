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
# Colab only: install the course helpers (Colab's own torch is kept). Elsewhere this does nothing.
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "twdl-helpers @ git+https://github.com/thinking-with-deep-learning/twdl-week2"], check=True)

# %%
import copy
import matplotlib.pyplot as plt
import pandas as pd
import torch
import twdl_helpers as twdl
twdl.watch_parameters()  # the next cell's assignments are the declared parameters

# %% tags=["parameters"]
# Run size: "smoke" (a minute on a laptop CPU) or "full" (the course's settings).
profile = "smoke"  # @param ["smoke", "full"]
# Where to train: "auto" picks a GPU when there is one.
device = "auto"  # @param ["auto", "cpu", "cuda", "mps"]
# Seed for data subsets, weights and minibatch order (the original used 90108).
seed = 0  # @param {type:"integer"}
# "auto": the real files if found (mirror, cache, download), else the bundled real sample; "full": real or fail; "sample": bundled.
data_source = "auto"  # @param ["auto", "full", "sample"]
# Which images: "afhq" (the course's Animal Faces), "cifar_animals" (CIFAR-10 cat/deer/dog), "auto" (AFHQ if complete, else CIFAR).
dataset = "auto"  # @param ["auto", "afhq", "cifar_animals"]
# Folder for figures.
output_dir = "runs/03_regularization"  # @param {type:"string"}
# Epoch budget of the longest runs (None: the profile's value; shorter runs scale with it).
epochs = None
# Homework: tick when done.
completed = False  # @param {type:"boolean"}

# %%
params = twdl.validate_parameters(globals())
P = twdl.Profile(profile); dev = twdl.get_device(device); twdl.set_seed(seed)
if dev.type == "cpu":
    torch.set_num_threads(1)  # these nets are tiny: extra CPU threads cost more in waiting than they save
E = epochs or P.pick(smoke=60, full=200)  # the spec's 200-epoch runs; others are scaled from it
scale = lambda n: max(2, round(n * E / 200))  # noqa: E731  (150 -> 0.75 E, 60 -> 0.3 E, ...)
seeds = [seed + i for i in range(P.pick(smoke=1, full=3))]
batch = P.pick(smoke=16, full=128)
print(f"profile {profile}: {E} epochs for the long runs, seeds {seeds}, batch {batch}, device {dev}")

# %% [markdown]
# ## The data: train, validation and test
# The course uses Animal Faces (AFHQ) downscaled to 32x32: cats, dogs and wild animals, in `train/` and `val/`
# folders. When the complete AFHQ cannot be found or downloaded, the loader uses a real substitute instead and says
# so: CIFAR-10's cat, deer and dog photos (whole animals in scenes rather than aligned faces; deer stand in for
# "wild"), from the data mirror, or the small sample bundled with the helpers. `dataset` in the parameters picks
# one explicitly. The line printed below and the `m3.data.*` records say which images this run used.
#
# We draw our **training** and **validation** sets as random, disjoint subsets of `train/`, sized from what is
# actually there (the original hard-coded `[100, 100, 14430]`, which breaks on any other copy of the data). The
# training sets stay small, as in the course (100 images for most experiments, 250 for augmentation and batch
# size), because small training sets are what over-fit; the validation set is much larger, so that differences
# between techniques are not one or two images. The held-out folder (`val/` of AFHQ, `test/` of CIFAR-10) is our
# **test** set: we look at it once, at the very end, for the one model we pick. Every pixel is scaled to $[-1, 1]$:
# $x' = (x/255 - 0.5)/0.5$.

# %%
faces = twdl.load_animal_faces(source=data_source, dataset=dataset, n_train=P.pick(smoke=100, full=250),
                               n_val=P.pick(smoke=500, full=1000),
                               seed=seed, device=dev)
small = faces.train.subset(range(min(100, len(faces.train))))  # the spec's 100-image subset, shared by all runs
twdl.record("m3.data.source", faces.source)
twdl.record("m3.data.dataset", faces.dataset)
twdl.record("m3.data.train_images", len(faces.train))
twdl.record("m3.data.val_images", len(faces.val))
twdl.record("m3.data.test_images", len(faces.test))
print(faces.summary(), f"| small subset: {len(small)} images")
fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, img, label in zip(axes, faces.train.inputs.cpu(), faces.train.labels.tolist()):
    ax.imshow((img.permute(1, 2, 0) * 0.5 + 0.5).clamp(0, 1)); ax.set_title(faces.classes[label]); ax.axis("off")

# %% [markdown]
# *Think:* why must the validation images never be used to fit weights, and why keep a third, untouched test set
# when we already have a validation set?

# %% [markdown]
# ## 1. Memorisation: a network can fit random labels
# Zhang et al. (2017) showed that a large network reaches 100 % training accuracy even when every label is replaced
# by a random one. Here `Big_Animal_Net` (3072-124-64-3) is trained on true labels, on fully permuted labels and on
# labels where 15 % were permuted; the permutations are seeded and made from the real labels. The validation
# labels stay true, so validation accuracy tells how much of what was learnt carries over.

# %%
memorise = {}
for kind in ("true", "random", "partial"):
    data = faces.with_labels(kind, seed=seed).train.subset(range(len(small)))
    model = twdl.BigAnimalNet(seed=seed)
    memorise[kind] = twdl.train(model, data, epochs=E, batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.9),
                                eval_data={"val": faces.val}, seed=seed, progress=f"labels={kind}")
    twdl.record(f"m3.memorize.{kind}.train_accuracy", memorise[kind].last["train_accuracy"])
    twdl.record(f"m3.memorize.{kind}.val_accuracy", memorise[kind].last["val_accuracy"])
fig = twdl.plot_histories(memorise, ["train_accuracy", "val_accuracy"], title="Big_Animal_Net on true / random / 15 % random labels")

# %% [markdown]
# *Think:* training accuracy reaches the top for every label set. What does that tell you about using training
# accuracy alone to judge a model?

# %% [markdown]
# ## 2. Model size and early stopping
# We measure the size of a network by the Frobenius norm of all its parameters,
# $\lVert\theta\rVert_F = \sqrt{\sum_i \theta_i^2}$ (`twdl.ParameterNorm()` adds it to every epoch's row).
# Training tends to make the weights grow while validation loss first falls and then rises. **Early stopping**
# watches the validation loss, stops once it has not improved for `patience` epochs and restores the weights of
# the best epoch.

# %%
model = twdl.AnimalNet(seed=seed)
stopper = twdl.EarlyStopping(monitor="val_loss", patience=P.pick(smoke=10, full=20))
early = twdl.train(model, small, epochs=E, batch_size=batch, optimizer=twdl.sgd(model, 5e-4, 0.99), seed=seed,
                   eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm(), stopper], progress="early stopping")
twdl.record("m3.early_stopping.best_epoch", stopper.best_epoch)
twdl.record("m3.early_stopping.epochs_run", len(early))
twdl.record("m3.early_stopping.saved_val_accuracy", twdl.evaluate(model, faces.val)["accuracy"])
fig = twdl.plot_histories({"Animal_Net": early}, ["train_loss", "val_loss", "param_norm"], title="Early stopping")
for ax in fig.axes[:2]:
    ax.axvline(stopper.best_epoch, color="grey", ls="--")

# %% [markdown]
# *Think:* the restored model is the one with the lowest validation loss. Is its validation accuracy an honest
# estimate of how it will do on new images?

# %% [markdown]
# ## 3. L1, L2 and elastic-net penalties
# A penalty $R(\theta)$ is added to the loss: $\mathcal{L} = \mathrm{CE} + R(\theta)$, with
# $R_{L1} = \lambda \sum_i |\theta_i|$ (LASSO), $R_{L2} = \lambda \sum_i \theta_i^2$ (ridge) and the elastic net
# $R = \lambda_1 \sum_i |\theta_i| + \lambda_2 \sum_i \theta_i^2$. One SGD step then becomes
# $\theta \leftarrow \theta - \eta(\nabla \mathrm{CE} + \lambda\,\mathrm{sign}(\theta))$ for L1 (a constant pull
# to zero, which makes weights exactly zero) and $\theta \leftarrow (1 - 2\eta\lambda)\theta - \eta\nabla\mathrm{CE}$
# for L2 (a proportional shrink). All four runs use the same 100 images, epochs and seed.

# %%
lam = 0.1  # the course's lambda; try the slider below for others
penalties = {"unregularized": None, "l1": twdl.l1_penalty(lam), "l2": twdl.l2_penalty(lam),
             "elastic": twdl.elastic_penalty(lam, lam)}
runs = {name: [] for name in penalties}  # technique -> [(model, history)] over seeds
for name, penalty in penalties.items():
    for s in seeds:
        model = twdl.AnimalNet(seed=s)
        h = twdl.train(model, small, epochs=scale(150), batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.99),
                       penalty=penalty, eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm()], seed=s,
                       progress=f"{name} seed {s}")
        runs[name].append((model, h))
fig = twdl.plot_histories({k: v[0][1] for k, v in runs.items()}, ["train_accuracy", "val_accuracy", "param_norm"],
                          log_scale=["param_norm"], title=f"Penalties, lambda = {lam}")

# %% [markdown]
# *Think:* with $\lambda = 0.1$ summed over ~400,000 weights, the penalty dwarfs the cross-entropy. What happens to
# the parameter norm and to accuracy, and what would a grid search over $\lambda$ look for?

# %% [markdown]
# ### L2 penalty = weight decay
# The gradient of $\lambda\sum_i\theta_i^2$ is $2\lambda\theta$, so adding the penalty gives exactly the update of
# SGD with `weight_decay` $= 2\lambda$ (PyTorch adds `weight_decay * θ` to the gradient). We check it numerically:
# two identical networks, one epoch each, and compare every weight afterwards.

# %%
a, b = twdl.AnimalNet(seed=seed), twdl.AnimalNet(seed=seed)
twdl.train(a, small, epochs=1, batch_size=batch, optimizer=twdl.sgd(a, 5e-3, 0.99), penalty=twdl.l2_penalty(0.01), seed=seed, progress=False)
twdl.train(b, small, epochs=1, batch_size=batch, optimizer=twdl.sgd(b, 5e-3, 0.99, weight_decay=0.02), seed=seed, progress=False)
gap = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
moved = max((p - q).abs().max().item() for p, q in zip(a.parameters(), twdl.AnimalNet(seed=seed).parameters()))
twdl.record("m3.l2.weight_decay_max_difference", gap)
print(f"largest weight change in the epoch: {moved:.2e}; largest difference between the two runs: {gap:.2e}")

# %% [markdown]
# ### Choosing lambda
# Move the slider: each value reruns a short L2 experiment (in a batch run the default is shown). A grid search
# does the same over a list of values and keeps the one with the best validation accuracy.

# %%
def l2_experiment(lam=1e-3):
    model = twdl.AnimalNet(seed=seed)
    h = twdl.train(model, small, epochs=scale(40), batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.99),
                   penalty=twdl.l2_penalty(lam), eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm()],
                   seed=seed, progress=False)
    print(f"lambda={lam:g}: val accuracy {h.last['val_accuracy']:.1f} %, parameter norm {h.last['param_norm']:.2f}")
    return h.last["val_accuracy"]

twdl.interactive_or_default(l2_experiment, lam=[1e-3, 0.0, 1e-4, 1e-2, 1e-1])

# %% [markdown]
# *Think:* why does L1 produce exact zeros while L2 only makes weights small?

# %% [markdown]
# ## 4. Dropout
# During training, dropout zeroes each unit with probability $p$ and scales the survivors by $1/(1-p)$, so no unit
# can rely on a particular partner; at evaluation time it is switched off (`model.eval()`, done by the loop). Since
# it removes capacity, the dropout net is wider: 3072-248-210-3 with $p$ = 0.5 and 0.3. To compare like with like,
# the baseline is the **same** wide network with $p = 0$.

# %%
for name, p in {"no dropout (same width)": (0.0, 0.0), "dropout": (0.5, 0.3)}.items():
    runs[name] = []
    for s in seeds:
        model = twdl.AnimalNetDropout(seed=s, p1=p[0], p2=p[1])
        h = twdl.train(model, small, epochs=E, batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.9), seed=s,
                       eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm()], progress=f"{name} seed {s}")
        runs[name].append((model, h))
fig = twdl.plot_histories({k: runs[k][0][1] for k in ("no dropout (same width)", "dropout")},
                          ["train_accuracy", "val_accuracy", "param_norm"], title="Dropout")

# %% [markdown]
# *Think:* where in a network would you put dropout, and why is it off at evaluation time?

# %% [markdown]
# ## 5. Data augmentation
# Each training batch is transformed on the device before the forward pass: horizontal and vertical flips decided
# **per image** with $p = 0.1$ (as in the course), plus a random resized crop (scale 0.8–1) drawn per group of 8
# images with torchvision's v2 transforms. Both runs use the same images, epochs and seed; only `augment` differs.

# %%
augment = twdl.BatchAugment(hflip=0.1, vflip=0.1, crop_scale=(0.8, 1.0), group_size=8)
for name, aug in {"no augmentation": None, "augmentation": augment}.items():
    runs[name] = []
    for s in seeds:
        model = twdl.AnimalNet(seed=s)
        h = twdl.train(model, faces.train, epochs=scale(250), batch_size=batch, optimizer=twdl.sgd(model, 1e-3, 0.99),
                       augment=aug, eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm()], seed=s,
                       progress=f"{name} seed {s}")
        runs[name].append((model, h))
fig = twdl.plot_histories({k: runs[k][0][1] for k in ("no augmentation", "augmentation")},
                          ["train_accuracy", "val_accuracy", "param_norm"], title=f"Augmentation ({len(faces.train)} images)")

# %% [markdown]
# *Think:* a vertical flip turns a cat upside down. Which transforms keep the label true for animal faces?

# %% [markdown]
# ## 6. Batch size as a regulariser
# Smaller batches give noisier gradient estimates and more steps per epoch; the noise can keep the network away from
# sharp minima. We train with batch 32, 64 and 128 on the same images; `BatchCounter` records the steps each epoch
# actually took, so you can check the batch size that was really used.

# %%
by_batch = {}
for bs in (32, 64, 128):
    model = twdl.AnimalNet(seed=seed)
    counter = twdl.BatchCounter()
    by_batch[bs] = twdl.train(model, faces.train, epochs=scale(60), batch_size=bs, optimizer=twdl.sgd(model, 5e-3, 0.99),
                              eval_data={"val": faces.val}, callbacks=[twdl.ParameterNorm(), counter], seed=seed, progress=f"batch {bs}")
    twdl.record(f"m3.batch_size.{bs}.val_accuracy", by_batch[bs].last["val_accuracy"])
table = pd.DataFrame({bs: {"steps per epoch": h.last["batches"], "images per step": len(faces.train) / h.last["batches"],
                           "val accuracy (%)": h.last["val_accuracy"], "parameter norm": h.last["param_norm"]}
                      for bs, h in by_batch.items()}).T.rename_axis("batch size")
table

# %%
fig = twdl.plot_histories({f"batch {bs}": h for bs, h in by_batch.items()}, ["val_accuracy", "param_norm"])
fig2, ax = plt.subplots(figsize=(4.5, 3.2))
ax.plot(list(by_batch), [h.last["val_accuracy"] for h in by_batch.values()], marker="o")
ax.set_xscale("log", base=2); ax.set_xticks(list(by_batch), [str(b) for b in by_batch])
ax.set_xlabel("batch size (images per step)"); ax.set_ylabel("final validation accuracy (%)"); ax.grid(alpha=0.3)

# %% [markdown]
# *Think:* with few training images, a batch of 128 may hold the whole set. What does that do to gradient noise?

# %% [markdown]
# ## 7. Pruning
# Magnitude pruning removes the weights with the smallest $|w|$. `twdl.prune_magnitude` calls
# `torch.nn.utils.prune.l1_unstructured` on every linear layer: the layer keeps `weight_orig` and a 0/1
# `weight_mask`, and computes `weight = weight_orig * weight_mask` before each forward pass, so a pruned weight
# stays zero while the network is retrained.

# %%
big = twdl.BigAnimalNet(seed=seed)
twdl.train(big, small, epochs=E, batch_size=batch, optimizer=twdl.sgd(big, 5e-3, 0.9), seed=seed, progress="Big_Animal_Net")
teacher = copy.deepcopy(big)  # kept unpruned for distillation (section 9)
before = twdl.evaluate(big, faces.val)["accuracy"]
sparsity = twdl.prune_magnitude(big, 0.5)
after = twdl.evaluate(big, faces.val)["accuracy"]
twdl.train(big, small, epochs=scale(50), batch_size=batch, optimizer=twdl.sgd(big, 5e-3, 0.9), seed=seed, progress="retrain")
retrained = twdl.evaluate(big, faces.val)["accuracy"]
weights = [m.weight for m in big.modules() if isinstance(m, torch.nn.Linear)]
twdl.record("m3.prune.sparsity", sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))
twdl.record("m3.prune.sparsity_per_layer", sparsity)
twdl.record("m3.prune.val_accuracy", {"before": before, "pruned": after, "retrained": retrained})
fig, ax = plt.subplots(figsize=(4.5, 3)); ax.bar(list(twdl.layer_sparsity(big)), list(twdl.layer_sparsity(big).values()))
ax.set_ylabel("fraction of weights = 0"); ax.set_xlabel("layer"); ax.set_title("Sparsity per layer after retraining")

# %% [markdown]
# ### How much can we prune?
# The sweep prunes copies of the trained network at growing fractions, retrains each briefly, and reports train and
# validation accuracy. Where even the **training** accuracy falls, the network no longer has the capacity to fit
# the data: it underfits.

# %%
sweep = []
for fraction in (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.995):
    model = copy.deepcopy(teacher)
    twdl.prune_magnitude(model, fraction)
    h = twdl.train(model, small, epochs=scale(20), batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.9),
                   eval_data={"val": faces.val}, seed=seed, progress=False)
    sweep.append({"prune fraction": fraction, "train accuracy (%)": h.last["train_accuracy"], "val accuracy (%)": h.last["val_accuracy"]})
sweep = pd.DataFrame(sweep).set_index("prune fraction")
underfit = sweep.index[sweep["train accuracy (%)"] < 0.9 * sweep["train accuracy (%)"].iloc[0]]
twdl.record("m3.prune.underfit_fraction", float(underfit[0]) if len(underfit) else None)
ax = sweep.plot(marker="o", figsize=(5, 3.2), logx=False); ax.set_ylabel("accuracy (%)"); ax.grid(alpha=0.3)

# %%
def prune_experiment(fraction=0.5):
    model = copy.deepcopy(teacher)
    layers = twdl.prune_magnitude(model, fraction)
    accuracy = twdl.evaluate(model, faces.val)["accuracy"]
    print(f"pruned {fraction:.0%} of each layer (no retraining): val accuracy {accuracy:.1f} %, sparsity {layers}")
    return accuracy

twdl.interactive_or_default(prune_experiment, fraction=[0.5, 0.2, 0.8, 0.9, 0.95, 0.99])

# %% [markdown]
# *Think:* why does a heavily pruned network lose training accuracy before it loses validation accuracy (or not)?

# %% [markdown]
# ## 8. The lottery ticket
# Frankle & Carbin (2019): inside a randomly initialised dense network there is a sparse sub-network (a "winning
# ticket") that, trained from the **same initial weights**, does as well as the dense one. We train a
# Xavier-initialised Big_Animal_Net, prune 40 % by magnitude, then retrain the masked net (a) from its original
# initial weights and (b) from a fresh random initialisation under the same mask.

# %%
lottery = twdl.lottery_ticket(twdl.BigAnimalNet, small, amount=0.4, epochs=E, batch_size=batch, lr=1e-3, momentum=0.9,
                              eval_data={"val": faces.val}, seed=seed, device=dev, progress=True)
twdl.record("m3.lottery.ticket.val_accuracy", lottery.ticket.last["val_accuracy"])
twdl.record("m3.lottery.random.val_accuracy", lottery.random.last["val_accuracy"])
twdl.record("m3.lottery.dense.val_accuracy", lottery.dense.last["val_accuracy"])
fig = twdl.plot_histories({"dense": lottery.dense, "ticket (same init)": lottery.ticket, "random re-init": lottery.random},
                          ["train_accuracy", "val_accuracy"], title="Lottery ticket, 40 % pruned")

# %% [markdown]
# *Think:* the ticket and the control have the same mask. What, then, is the "winning" part of a winning ticket?

# %% [markdown]
# ## 9. Knowledge distillation
# A small student learns from a big teacher's softened outputs (Hinton et al. 2015):
#
# $$\mathcal{L} = (1-\alpha)\,\mathrm{CE}(z_s, y) + \alpha\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\Vert\,\mathrm{softmax}(z_s/T)\big).$$
#
# The KL divergence is summed over classes and averaged over the batch (`batchmean`; the original's default `mean`
# also divided by the number of classes); $T^2$ keeps the soft term's gradients on the scale of the hard term. The
# teacher is the unpruned Big_Animal_Net of section 7; the student is Small_Animal_Net (3072-32-3), trained with
# $\alpha = 1, T = 40$ and compared with the same student on hard labels.

# %%
teacher_logits = twdl.predict(teacher, small.inputs)
soft = twdl.TensorData(small.inputs, (small.labels, teacher_logits))
students = {}
for name, (data, loss_fn) in {"hard labels": (small, twdl.classification_loss),
                              "distilled": (soft, twdl.distillation(alpha=1.0, T=40.0))}.items():
    model = twdl.SmallAnimalNet(seed=seed)
    students[name] = twdl.train(model, data, epochs=E, batch_size=batch, optimizer=twdl.sgd(model, 5e-3, 0.9), loss_fn=loss_fn,
                                eval_data={"val": faces.val}, seed=seed, progress=f"student: {name}")
twdl.record("m3.distill.teacher_val_accuracy", twdl.evaluate(teacher, faces.val)["accuracy"])
twdl.record("m3.distill.student_val_accuracy", students["distilled"].last["val_accuracy"])
twdl.record("m3.distill.hard_label_student_val_accuracy", students["hard labels"].last["val_accuracy"])
fig = twdl.plot_histories(students, ["train_accuracy", "val_accuracy"], title="Student: distilled vs hard labels")

# %% [markdown]
# *Think:* with $\alpha = 1$ the student never sees a true label. How can it still learn the right classes?

# %% [markdown]
# ## Homework
# 1. Apply three regularisation techniques to a model. `twdl.compare_regularizers` trains the unregularised model
#    and each technique on the same data, epochs and seeds, and returns one row per technique. Here it is on the
#    small real sample bundled with the helpers (CIFAR-10 cat/deer/dog, always available offline):

# %%
bundled = twdl.load_animal_faces(source="sample", n_train=P.pick(smoke=90, full=600), n_val=P.pick(smoke=60, full=300), seed=seed)
twdl.compare_regularizers(twdl.AnimalNet, bundled.train, bundled.val, ["l2", "augmentation", "early_stopping"],
                          epochs=scale(60), batch_size=batch, lr=5e-3, momentum=0.9, lam=1e-3, seeds=seeds, device=dev)

# %% tags=["homework"] question="q1" points=4 title="three regularisation techniques on one model"
# Hint: homework = twdl.compare_regularizers(model_fn, faces.train, faces.val, [three of twdl.TECHNIQUES], ...); record each val accuracy.
### BEGIN SOLUTION
homework = twdl.compare_regularizers(twdl.AnimalNet, faces.train, faces.val, ["l1", "weight_decay", "augmentation"],
                                     epochs=scale(100), batch_size=batch, lr=5e-3, momentum=0.9, lam=1e-4, seeds=seeds, device=dev)
for technique, row in homework.iterrows():
    twdl.record(f"m3.homework.{technique}.val_accuracy", row["val_accuracy"])
display(homework)
### END SOLUTION

# %% [markdown]
# Check your answer: `twdl.check("q1")` tests the `homework` table (the grader runs these checks and hidden ones).

# %% tags=["checks"]
def _mean_accuracy(models, data):
    """Mean accuracy (%) of `models` on `data`, each evaluated on its own device."""
    return sum(twdl.evaluate(m, data.to(next(m.parameters()).device))["accuracy"] for m in models) / len(models)


@twdl.question_check("q1", hint="pass three names from twdl.TECHNIQUES to twdl.compare_regularizers")
def three_techniques_and_the_baseline(homework):
    """`homework` has the unregularised baseline and at least three regularisation techniques"""
    techniques = [t for t in homework.index if t != "none"]
    assert "none" in homework.index, "no unregularised baseline row ('none')"
    assert len(techniques) >= 3, f"techniques: {techniques}; compare at least three"


@twdl.question_check("q1", required=True, hint="keep the table that twdl.compare_regularizers returned, unchanged")
def models_give_their_val_accuracy(homework, faces):
    """each technique's trained models, evaluated on faces.val, give the validation accuracy in `homework`"""
    models = homework.attrs.get("models", {})
    for technique, reported in homework["val_accuracy"].items():
        assert models.get(technique), f"no trained models for {technique!r} (homework.attrs['models'])"
        measured = _mean_accuracy(models[technique], faces.val)
        assert abs(measured - reported) < 0.01, f"{technique}: the table says {reported:.2f} %, its models {measured:.2f} %"


@twdl.question_check("q1", hint="twdl.record(f'm3.homework.{technique}.val_accuracy', ...) for each row")
def each_technique_is_recorded(homework, records):
    """each row's validation accuracy is recorded as m3.homework.<technique>.val_accuracy"""
    for technique, value in homework["val_accuracy"].items():
        name = f"m3.homework.{technique}.val_accuracy"
        assert name in records, f"{name} was not recorded"
        assert abs(records[name] - value) < 1e-6, f"{name} is {records[name]}, the table says {value}"


twdl.check("q1")

# %% tags=["hidden-checks"]
@twdl.question_check("q1", required=True)
def models_score_their_accuracy_on_the_graders_images(homework, parameters):
    """on validation images the grader loads itself, each technique's models score the accuracy `homework` reports"""
    smoke = parameters["profile"] == "smoke"
    val = twdl.load_animal_faces(source=parameters["data_source"], n_train=60 if smoke else 250,
                                 n_val=30 if smoke else 100, seed=parameters["seed"]).val
    for technique, reported in homework["val_accuracy"].items():
        measured = _mean_accuracy(homework.attrs["models"][technique], val)
        assert abs(measured - reported) < 0.01, f"{technique}: reported {reported:.2f} %, measured {measured:.2f} %"


@twdl.question_check("q1")
def every_technique_trained_its_own_models(homework):
    """each technique has its own models, and their parameter norm is the one `homework` reports"""
    models = homework.attrs["models"]
    ids = [id(m) for t in homework.index for m in models[t]]
    assert len(set(ids)) == len(ids), "two techniques share a model object"
    for technique, reported in homework["param_norm"].items():
        measured = sum(twdl.frobenius_norm(m) for m in models[technique]) / len(models[technique])
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
# Validation accuracy (mean ± std over the seeds) and final parameter norm of every technique, grouped by the
# experiment whose settings they share. The model with the best validation accuracy is then evaluated on the
# test set, once.

# %%
rows, best = [], (-1.0, None, None)
for name, pairs in runs.items():
    val = torch.tensor([twdl.evaluate(m, faces.val)["accuracy"] for m, _ in pairs])
    rows.append({"technique": name, "val accuracy (%)": f"{val.mean():.1f} ± {val.std() if len(val) > 1 else 0:.1f}",
                 "parameter norm": sum(twdl.frobenius_norm(m) for m, _ in pairs) / len(pairs), "seeds": len(pairs)})
    key = {"no dropout (same width)": None, "no augmentation": None}.get(name, name)
    if key:
        twdl.record(f"m3.{key}.val_accuracy", val.mean().item())
    if val.max() > best[0]:
        best = (val.max().item(), name, pairs[int(val.argmax())][0])
twdl.record("m3.best.technique", best[1])
twdl.record("m3.best.test_accuracy", twdl.evaluate(best[2], faces.test)["accuracy"])  # the one look at the test set
pd.DataFrame(rows).set_index("technique")

# %%
twdl.record("m3.completed", completed)
twdl.records_table("m3.")
