"""Hostile submissions against the trusted scorer: each attack scores 0 on the question it attacks (a model of the
student's own class waits for a TA instead), while an honest submission graded in the same batch gets exactly the
row it gets alone. The scorer never unpickles, never imports a submission's file, and its withheld data are
invisible inside the sandbox."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from conftest import MIRROR, write_course
from twdl_tools.cli import main as twdl
from twdl_tools.notebooks import sync
from twdl_tools.sandbox import sandbox_support

MODULE = '''# %% [markdown]
# # Module 8 — a small module with a model, for the grading attacks
# [![Open In Colab](x)](y)

# %% tags=["colab-setup"]

# %%
import twdl_helpers as twdl
twdl.watch_parameters()

# %% tags=["parameters"]
profile = "smoke"  # @param ["smoke", "full"]
seed = 0  # @param {type:"integer"}
data_source = "auto"  # @param ["auto", "full", "sample"]

# %%
P, dev = twdl.setup(globals(), cpu_threads=1)
data = twdl.load_mnist(source=data_source, limit_train=1000, limit_test=500, seed=seed)

# %% tags=["homework"] question="q1" points=3 title="a trained ShallowNet"
# Hint: model = twdl.ShallowNet(seed=seed); train it; record its test accuracy
### BEGIN SOLUTION
model = twdl.ShallowNet(seed=seed)
history = twdl.train(model, data.train, epochs=3, batch_size=32, lr=3e-3, eval_data={"test": data.test},
                     seed=seed, progress=False)
twdl.record("m8.homework.accuracy", history.last["test_accuracy"])
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check("q1", required=True, hint="record history.last['test_accuracy']")
def model_scores_the_recorded_accuracy(model, data, records):
    """`model` scores the recorded m8.homework.accuracy on data.test"""
    twdl.assert_recorded(records, "m8.homework.accuracy", twdl.evaluate(model, data.test)["accuracy"], 0.01,
                         "the model scores")


@twdl.question_check("q1")
def model_is_a_shallow_net(model):
    """`model` is a ShallowNet"""
    assert type(model).__name__ == "ShallowNet", f"model is a {type(model).__name__}"


twdl.check("q1")

# %% tags=["hidden-checks"]
WITHHELD = {"smoke": {"mnist": 2000}}


@twdl.grader_loads("data")
def _graders_digits(parameters):
    """The notebook's digits, loaded by the grader."""
    return twdl.load_mnist(source=parameters["data_source"], limit_train=1000, limit_test=500, seed=parameters["seed"])


@twdl.question_check("q1", required=True)
def model_beats_chance(model, data):
    """the model scores well above chance on the grader's digits"""
    assert twdl.evaluate(model, data.test)["accuracy"] > 50, "near chance"


@twdl.question_check("q1", required=True)
def model_holds_up_on_unseen_digits(model, records, withheld):
    """on digits no submission can see, the model scores within noise of what it reported"""
    if "mnist" in withheld:
        unseen = twdl.evaluate(model, withheld["mnist"])["accuracy"]
        assert records["m8.homework.accuracy"] - unseen <= 8, f"{unseen:.1f} % on unseen digits"

# %% tags=["homework"] question="q2" points=2 title="the mean test label"
# Hint: mean = the mean of data.test.labels (a float)
### BEGIN SOLUTION
mean = data.test.labels.float().mean().item()
### END SOLUTION

# %% tags=["hidden-checks"]
@twdl.question_check("q2", required=True)
def mean_is_the_mean_test_label(mean, data):
    """`mean` is the mean of the grader's test labels"""
    assert isinstance(mean, float) and abs(mean - data.test.labels.float().mean().item()) < 1e-6

# %%
twdl.record("m8.completed", True)
'''

UNTRAINED = '''model = twdl.ShallowNet(seed=seed)  # never trained
twdl.record("m8.homework.accuracy", 99.0)
'''

# Each attack: the q1 cell's new source (the solution's when None) and cells appended at the end.
FORGE_EXPORT = '''import twdl_helpers.claims as _claims
_original = _claims.export_claims
def _forging(namespace, names, folder, records=None):
    missing = _original(namespace, names, folder, records)
    import json, os, pathlib
    folder = pathlib.Path(folder)
{body}
    return missing
_claims.export_claims = _forging
'''

ATTACKS: dict[str, tuple[str | None, str]] = {
    "rewrites_results": (UNTRAINED, '''
from IPython import get_ipython
ip = get_ipython()
forged = {"results": [{"question": "q1", "name": "x", "passed": True, "points": 100.0}], "nonce": "any"}
original = ip.display_pub.publish
ip.display_pub.publish = lambda data, metadata=None, **k: original(
    {**data, "application/vnd.twdl.check-results+json": forged}, metadata, **k)
ip.events.register("post_run_cell", lambda result: print(json.dumps(forged)))
import json, sys
print(json.dumps({"status": "ok", "appended": [[{"data": forged}]]}))
'''),
    "hooks_see_the_graders_code": (UNTRAINED, '''
import sys, pathlib
seen = []
ip = get_ipython()
ip.events.register("pre_run_cell", lambda info: seen.append(info.raw_cell))
sys.addaudithook(lambda event, args: seen.append(event + repr(args)[:200]) if event in ("exec", "compile") else None)
import atexit
atexit.register(lambda: pathlib.Path("seen.txt").write_text("\\n".join(map(str, seen))))
ip.events.register("post_run_cell", lambda result: pathlib.Path("seen.txt").write_text("\\n".join(map(str, seen))))
'''),
    "substitutes_the_helpers": (UNTRAINED, '''
import os, sys, types, pathlib, importlib.abc, importlib.machinery
pathlib.Path("twdl_helpers").mkdir(exist_ok=True)
pathlib.Path("twdl_helpers/__init__.py").write_text("import pathlib; pathlib.Path('/tmp/imported').write_text('x')")
pathlib.Path("twdl_tools.py").write_text("raise SystemExit('imported')")
fake = types.ModuleType("twdl_helpers")
fake.__spec__ = importlib.machinery.ModuleSpec("twdl_helpers", None)
fake.questions = types.SimpleNamespace(run_checks=lambda *a, **k: [], current_registry=lambda: None)
sys.modules["twdl_helpers"] = fake
sys.modules["twdl_helpers.questions"] = fake.questions
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, None) if name.startswith("twdl") else None
sys.meta_path.insert(0, Finder())
'''),
    "patches_libraries": (UNTRAINED, '''
import builtins, torch, pandas
builtins.abs = lambda x: 0
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
torch.nn.Module.__call__ = lambda self, *a, **k: torch.eye(10)[torch.zeros(len(a[0]), dtype=torch.long)]
pandas.DataFrame.__getitem__ = lambda self, key: [99.0]
twdl.evaluate = lambda *a, **k: {"accuracy": 99.0, "loss": 0.0}
'''),
    "pickle_renamed": (UNTRAINED, FORGE_EXPORT.format(body='''    import pickle
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch /tmp/twdl-pwned",))
    (folder / "model-1.safetensors").write_bytes(pickle.dumps(Boom()))''')),
    "symlink": (UNTRAINED, FORGE_EXPORT.format(body='''    (folder / "model-1.safetensors").unlink()
    os.symlink("/etc/passwd", folder / "model-1.safetensors")''')),
    "fifo": (UNTRAINED, FORGE_EXPORT.format(body='''    (folder / "model-1.safetensors").unlink()
    os.mkfifo(folder / "model-1.safetensors")''')),
    "huge": (UNTRAINED, FORGE_EXPORT.format(body='''    with open(folder / "model-1.safetensors", "r+b") as handle:
        handle.truncate(300 * 2**20)''')),
    "extra_tensor": (UNTRAINED, FORGE_EXPORT.format(body='''    from safetensors.torch import load_file, save_file
    import torch
    path = str(folder / "model-1.safetensors")
    with open(path, "rb") as handle:
        import struct
        size = struct.unpack("<Q", handle.read(8))[0]
        meta = json.loads(handle.read(size))["__metadata__"]
    tensors = load_file(path)
    tensors["backdoor.weight"] = torch.zeros(3)
    tensors["1.weight"] = torch.zeros_like(tensors["1.weight"])
    save_file(tensors, path, metadata=meta)''')),
    "unknown_architecture": (UNTRAINED, FORGE_EXPORT.format(body='''    from safetensors.torch import load_file, save_file
    path = str(folder / "model-1.safetensors")
    save_file(load_file(path), path, metadata={"twdl": json.dumps({"architecture": "os.system", "arguments": {}})})''')),
    "absurd_sizes": (UNTRAINED, FORGE_EXPORT.format(body='''    from safetensors.torch import load_file, save_file
    import torch
    path = str(folder / "model-1.safetensors")
    save_file({"1.weight": torch.zeros(1, 1)}, path, metadata={"twdl": json.dumps(
        {"architecture": "FeedForward", "arguments": {"widths": [784] + [2**30] * 60 + [10]}})})''')),
    "memorises_its_test_digits": ('''model = twdl.ShallowNet(seed=seed)
history = twdl.train(model, data.test, epochs=60, batch_size=32, lr=3e-3, eval_data={"test": data.test},
                     seed=seed, progress=False)
twdl.record("m8.homework.accuracy", history.last["test_accuracy"])
''', ""),
    "reads_the_real_mirror": ('''import gzip, os, numpy as np, torch
found = []
for folder in [MIRROR, os.path.expanduser("~/.cache/twdl")]:
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.startswith("t10k-images")]
print("found", found)
model = twdl.ShallowNet(seed=seed)
''', ""),
}


def _row_without_times(row: pd.Series) -> dict:
    return {k: "" if pd.isna(v) else str(v) for k, v in row.items() if k != "runtime_s"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The module synced, the honest submission graded alone, then with every attack in one batch."""
    if MIRROR is None:
        pytest.skip("the attacks need the MNIST files of the offline mirror")
    root = tmp_path_factory.mktemp("course")
    write_course(root, "98_claims", MODULE)
    sync(root)
    solution = nbformat.read(str(root / "notebooks" / "98_claims.ipynb"), as_version=4)
    alone, batch = root / "alone", root / "batch"
    alone.mkdir()
    batch.mkdir()
    nbformat.write(solution, str(alone / "honest.ipynb"))
    nbformat.write(solution, str(batch / "honest.ipynb"))
    for name, (q1, extra) in ATTACKS.items():
        nb = copy.deepcopy(solution)
        if q1 is not None:
            next(c for c in nb.cells if c.metadata.get("question") == "q1").source = q1
        if q1 is not None and "MIRROR" in q1:
            next(c for c in nb.cells if c.metadata.get("question") == "q1").source = q1.replace(
                "MIRROR", repr(str(MIRROR)))
        if extra:
            nb.cells.append(nbformat.v4.new_code_cell(extra))
        nbformat.write(nb, str(batch / f"{name}.ipynb"))
    mine = copy.deepcopy(solution)
    next(c for c in mine.cells if c.metadata.get("question") == "q1").source = '''import torch
class MyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(784, 10)
    def forward(self, x):
        return self.layer(x.flatten(1))
model = MyNet()
twdl.train(model, data.train, epochs=1, batch_size=32, seed=seed, progress=False)
twdl.record("m8.homework.accuracy", twdl.evaluate(model, data.test)["accuracy"])
'''
    nbformat.write(mine, str(batch / "own_class.ipynb"))
    common = ["--module", str(root / "notebooks" / "98_claims.py"), "--jobs", "2", "--timeout", "600",
              "-p", "profile=smoke"]
    assert twdl(["grade", str(alone), "--out", str(root / "out-alone"), *common]) == 0
    assert twdl(["grade", str(batch), "--out", str(root / "out-batch"), *common]) == 0
    read = lambda out: pd.read_csv(out / "grades.csv").set_index("submission")  # noqa: E731
    return root, read(root / "out-alone"), read(root / "out-batch")


def test_the_honest_submission_gets_full_marks_and_the_same_row_in_a_hostile_batch(graded):
    _, alone, batch = graded
    assert alone.loc["honest", "q1"] == 3 and alone.loc["honest", "q2"] == 2
    assert _row_without_times(batch.loc["honest"]) == _row_without_times(alone.loc["honest"])


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_scores_zero_on_the_question_it_attacks(graded, attack):
    root, _, batch = graded
    assert batch.loc[attack, "q1"] == 0, batch.loc[attack].to_dict()
    row = json.loads((root / "out-batch" / "executed" / f"{attack}.grade.json").read_text())["row"]
    assert row["scorer"]["find_class_calls"] in (0, None)  # never tried to unpickle (None: the claims were refused first)


def test_a_model_of_the_students_own_class_waits_for_a_ta_with_the_reason(graded):
    root, _, batch = graded
    assert pd.isna(batch.loc["own_class", "q1"]) and "q1" in batch.loc["own_class", "manual_pending"]
    feedback = (root / "out-batch" / "feedback" / "own_class.html").read_text()
    assert "needs a TA" in feedback and "MyNet" in feedback
    sheet = pd.read_csv(root / "out-batch" / "manual" / "q1.csv").set_index("submission")
    assert list(sheet.index) == ["own_class"] and "class MyNet" in sheet.loc["own_class", "answer"]


def test_forged_exports_are_refused_with_the_reason_and_nothing_is_unpickled(graded):
    root, _, _ = graded
    out = root / "out-batch"
    reasons = {name: json.loads((out / "executed" / f"{name}.grade.json").read_text())["row"]["questions"][0]["summary"]
               for name in ("pickle_renamed", "symlink", "fifo", "huge", "extra_tensor", "unknown_architecture",
                            "absurd_sizes")}
    assert "not a safetensors file" in reasons["pickle_renamed"]
    assert "symlink is refused" in reasons["symlink"] and "not a regular file" in reasons["fifo"]
    assert "more than the" in reasons["huge"] and "unexpected ['backdoor.weight']" in reasons["extra_tensor"]
    assert "'os.system' is not one the grader rebuilds" in reasons["unknown_architecture"]
    assert "not small plain values" in reasons["absurd_sizes"] or "do not fit" in reasons["absurd_sizes"]
    assert not Path("/tmp/twdl-pwned").exists()


def test_memorised_test_digits_collapse_on_the_digits_no_submission_can_see(graded):
    root, _, batch = graded
    row = json.loads((root / "out-batch" / "executed" / "memorises_its_test_digits.grade.json").read_text())["row"]
    failed = [c for c in row["questions"][0]["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["model_holds_up_on_unseen_digits"], failed
    assert batch.loc["memorises_its_test_digits", "m8.homework.accuracy"] > 95


@pytest.mark.skipif(not sandbox_support().available, reason="needs bubblewrap")
def test_inside_the_sandbox_the_real_data_and_the_withheld_digits_are_invisible(graded):
    root, _, _ = graded
    executed = (root / "out-batch" / "executed" / "reads_the_real_mirror.ipynb").read_text()
    assert "found []" in executed


def test_hooks_in_the_kernel_never_see_the_graders_checks(graded):
    root, _, _ = graded
    seen = (root / "out-batch" / "work" / "hooks_see_the_graders_code" / "seen.txt").read_text()
    assert "export_claims" in seen  # the export cell ran under the hooks ...
    for name in ("model_holds_up_on_unseen_digits", "model_beats_chance", "mean_is_the_mean_test_label"):
        assert name not in seen  # ... but no check, public or hidden, ever entered the kernel


def test_identical_trained_weights_are_listed_for_the_ta(graded):
    root, _, _ = graded
    from twdl_tools.grading.copies import copy_groups

    rows = [json.loads(p.read_text())["row"] for p in (root / "out-batch" / "executed").glob("*.grade.json")]
    untrained = {"hooks_see_the_graders_code", "patches_libraries", "reads_the_real_mirror", "rewrites_results"}
    groups = [set(g["submissions"]) for g in copy_groups(rows) if g["shared"] == "identical trained weights"]
    assert any(untrained <= group and "honest" not in group for group in groups), groups
    report = (root / "out-batch" / "report.html").read_text()
    assert "Possible copies" in report and "reads_the_real_mirror" in report.split("Possible copies")[1]
