"""Checks tested by mutation: the solution's claims, mutated the way a student short of time would, lose the points
they should, and the unmutated solution keeps full marks.

Each module's solution notebook (notebooks/0k_*.ipynb) is graded once (`twdl grade`, smoke profile): that scores the
solution and leaves its exported claims in `.twdl/claims/`. Every mutation then rewrites those claims (read back as
the grader rebuilds them, changed, exported again) and one scorer scores them all with the module's check file.
Every auto-graded question of every check file in autograder/ needs an entry in MUTATIONS: the suite fails for one
without. Adding one is a few lines: a function that changes `objects` (the rebuilt notebook objects by name) and
`records` in place, and the points the question must score afterwards (docs/grading.md, "Test the checks").
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
import torch

from conftest import MIRROR, ROOT
from twdl_helpers.claims import ClaimLimits, export_claims, read_claims
from twdl_helpers.params import run_parameters
from twdl_tools.cli import main as twdl
from twdl_tools.grading.checkfile import load_check_file
from twdl_tools.grading.scorer import Scorer, claims_job
from twdl_tools.grading.scoring import score_questions
from twdl_tools.repo import view_environment

Mutation = Callable[[dict[str, Any], dict[str, Any]], None]


# ------------------------------------------------------------------ what a student short of time does ------------

def _untrained(model: torch.nn.Module) -> None:
    """Back to a fresh initialisation: every layer that can reset its parameters does."""
    with torch.no_grad():
        for layer in model.modules():
            if layer is not model and hasattr(layer, "reset_parameters"):
                layer.reset_parameters()


def _rows(table: pd.DataFrame, keep: list[Any], by_index: bool = False) -> pd.DataFrame:
    """`table` with only rows `keep` (positions, or index labels), its .attrs (the models) copied along."""
    kept = table.loc[keep] if by_index else table.iloc[keep]
    kept = kept.copy()
    kept.attrs = dict(table.attrs)
    return kept


def m2_empty_table(o, r):
    """the table's columns without rows, beside one trained model (issue 30)"""
    table = o["table"]
    first = table["run"].iloc[0]
    o["table"] = _rows(table, [])
    o["table"].attrs["models"] = {first: table.attrs["models"][first]}


def m2_fewer_rows(o, r):
    """the batch-norm run dropped (three rows, their models)"""
    o["table"] = _rows(o["table"], [i for i, bn in enumerate(o["table"]["batch_norm"]) if bn == "no"])


def m2_untrained(o, r):
    """every model replaced by an untrained one; the table keeps the trained numbers"""
    for model in o["table"].attrs["models"].values():
        _untrained(model)


def m2_untrained_reported_truthfully(o, r):
    """untrained models, and the table and records report what they score on the notebook's digits (the view's)"""
    import twdl_helpers as twdl

    m2_untrained(o, r)
    data = twdl.load_mnist(source="auto", limit_train=3000, limit_test=2000, seed=0)
    table = o["table"]
    for i, run in enumerate(table["run"]):
        accuracy = twdl.evaluate(table.attrs["models"][run], data.test)["accuracy"]
        table.iloc[i, table.columns.get_loc("test_accuracy")] = accuracy
        key = table["optimizer"].iloc[i] + ("_bn" if table["batch_norm"].iloc[i] == "yes" else "")
        r[f"m2.homework.{key}.test_accuracy"] = accuracy


def m2_numbers_from_another_run(o, r):
    """each row reports the test accuracy of another row's run (the records follow the table)"""
    table = o["table"]
    table["test_accuracy"] = list(table["test_accuracy"].iloc[1:]) + [table["test_accuracy"].iloc[0]]
    for row in table.itertuples():
        r[f"m2.homework.{row.optimizer + ('_bn' if row.batch_norm == 'yes' else '')}.test_accuracy"] = row.test_accuracy


def m2_shared_model(o, r):
    """two runs share one model object"""
    models = o["table"].attrs["models"]
    runs = list(o["table"]["run"])
    models[runs[1]] = models[runs[0]]


def m2_not_recorded(o, r):
    """the table is right but nothing was recorded"""
    r.clear()


def m3_empty_table(o, r):
    """the homework table's columns without rows, beside one technique's models"""
    table = o["homework"]
    o["homework"] = _rows(table, [])
    o["homework"].attrs["models"] = {table.index[0]: table.attrs["models"][table.index[0]]}


def m3_fewer_rows(o, r):
    """one technique dropped (three rows)"""
    o["homework"] = _rows(o["homework"], list(o["homework"].index[:3]), by_index=True)


def m3_untrained(o, r):
    """every model replaced by an untrained one; the table keeps the trained numbers"""
    for models in o["homework"].attrs["models"].values():
        for model in models:
            _untrained(model)


def m3_numbers_from_another_run(o, r):
    """each row reports the validation accuracy of another row's models (the records follow the table)"""
    table = o["homework"]
    values = list(table["val_accuracy"])
    table["val_accuracy"] = values[1:] + values[:1]
    for technique, value in table["val_accuracy"].items():
        r[f"m3.homework.{technique}.val_accuracy"] = value


def m3_shared_model(o, r):
    """two techniques share one list of models"""
    models = o["homework"].attrs["models"]
    index = list(o["homework"].index)
    models[index[1]] = models[index[0]]


def m1_q1_untrained(o, r):
    """hw_model replaced by an untrained one; the recorded score kept"""
    _untrained(o["hw_model"])


def m1_q1_score_from_another_run(o, r):
    """the recorded test score is another run's (5 points higher)"""
    r["m1.homework.dataset_test_score"] += 5.0


def m1_q1_test_rows_are_training_rows(o, r):
    """hw_data's test split replaced by its training rows"""
    data = o["hw_data"]
    o["hw_data"] = dataclasses.replace(data, test=data.train) if dataclasses.is_dataclass(data) else copy.copy(data)
    if not dataclasses.is_dataclass(data):
        o["hw_data"].test = data.train


def m1_q1_empty(o, r):
    """hw_model missing (never built)"""
    del o["hw_model"]


def m1_q2_fewer_rows(o, r):
    """features of half the shown rows"""
    o["hw_features"] = o["hw_features"][: len(o["hw_features"]) // 2]


def m1_q2_empty_figure(o, r):
    """a figure without its three panels"""
    import matplotlib.pyplot as plt

    o["hw_figure"] = plt.figure()


def m1_q2_untrained_net(o, r):
    """hw_net replaced by an untrained one; the features kept"""
    _untrained(o["hw_net"])


def m1_q2_variance_from_another_run(o, r):
    """the recorded variance share is another run's"""
    r["m1.homework.first_hidden_pca2_variance"] = r["m1.homework.first_hidden_pca2_variance"] * 0.8


def m4_empty(o, r):
    """`result` is an empty dict"""
    o["result"] = {}


def m4_untrained(o, r):
    """the adapters reset (the model is the base model again); the reported perplexities kept"""
    with torch.no_grad():
        for name, weight in o["result"]["model"].named_parameters():
            if "lora_B" in name:
                weight.zero_()


def m4_numbers_from_another_run(o, r):
    """the reported perplexity after adaptation is another run's (10 % lower); the records follow"""
    o["result"]["perplexity_after"] *= 0.9
    r["m4.homework.ppl_after"] = o["result"]["perplexity_after"]


def m4_not_recorded(o, r):
    """the result is right but nothing was recorded"""
    r.clear()


def m4_q2_empty(o, r):
    """`qlora_result` is an empty dict"""
    o["qlora_result"] = {}


def m4_q2_lora_passed_off_as_qlora(o, r):
    """question 1's LoRA result handed in as the QLoRA one (no 4-bit base), its perplexity recorded"""
    o["qlora_result"] = o["result"]
    r["m4.homework.qlora.ppl_after"] = o["result"]["perplexity_after"]


def m4_q2_numbers_from_another_run(o, r):
    """QLoRA's reported perplexity is another run's (10 % lower); the record follows"""
    o["qlora_result"]["perplexity_after"] *= 0.9
    r["m4.homework.qlora.ppl_after"] = o["qlora_result"]["perplexity_after"]


def m4_q2_not_recorded(o, r):
    """the QLoRA run is right but its perplexity was not recorded"""
    r.pop("m4.homework.qlora.ppl_after", None)


def _other_label(table: pd.DataFrame, label: Any) -> Any:
    return next(x for x in table.index if x != label)


def m4_q3_one_candidate(o, r):
    """only the chosen candidate kept in the table: nothing was compared"""
    tuned = o["tuned"]
    tuned["table"] = _rows(tuned["table"], [tuned["chosen"]], by_index=True)


def m4_q3_chosen_is_not_the_lowest(o, r):
    """another candidate than the lowest tuning perplexity called the chosen one (and recorded)"""
    tuned = o["tuned"]
    tuned["chosen"] = _other_label(tuned["table"], tuned["chosen"])
    r["m4.homework.tuning.chosen"] = tuned["chosen"]


def m4_q3_numbers_from_another_run(o, r):
    """the held-out perplexity is another run's (10 % lower); the record follows"""
    o["tuned"]["perplexity_held_out"] *= 0.9
    r["m4.homework.tuning.ppl_held_out"] = o["tuned"]["perplexity_held_out"]


def m4_q3_chosen_on_the_held_out_text(o, r):
    """the choice made on the held-out text: tuning text and blocks are the held-out ones"""
    tuned = o["tuned"]
    tuned["built_from"] = dict(tuned["built_from"], tuning_text=tuned["built_from"]["held_out_text"])
    tuned["tuning_blocks"] = tuned["held_blocks"]


def m4_q3_not_recorded(o, r):
    """the tuning is right but nothing of it was recorded"""
    for name in ("m4.homework.tuning.chosen", "m4.homework.tuning.ppl_held_out"):
        r.pop(name, None)


def m4_q4_no_unregularised_row(o, r):
    """the 'none' row dropped: no comparison with training unregularised"""
    regs = o["regs"]
    regs["table"] = _rows(regs["table"], [x for x in regs["table"].index if x != "none"], by_index=True)


def m4_q4_numbers_from_another_run(o, r):
    """the held-out perplexity is another run's (10 % lower); the record follows"""
    o["regs"]["perplexity_held_out"] *= 0.9
    r["m4.homework.reg.ppl_held_out"] = o["regs"]["perplexity_held_out"]


def m4_q4_not_recorded(o, r):
    """the comparison is right but the choice was not recorded"""
    r.pop("m4.homework.reg.chosen", None)


# module -> question -> [(mutation, the points the question must score after it)]
MUTATIONS: dict[str, dict[str, list[tuple[Mutation, float]]]] = {
    "01_feedforward": {
        "q1": [(m1_q1_untrained, 0.0), (m1_q1_score_from_another_run, 0.0), (m1_q1_test_rows_are_training_rows, 0.0),
               (m1_q1_empty, 0.0)],
        "q2": [(m1_q2_fewer_rows, 0.0), (m1_q2_empty_figure, 1.5), (m1_q2_untrained_net, 0.0),
               (m1_q2_variance_from_another_run, 0.0)],
    },
    "02_optimization": {
        "q1": [(m2_empty_table, 0.0), (m2_fewer_rows, 0.0), (m2_untrained, 0.0), (m2_untrained_reported_truthfully, 0.0),
               (m2_numbers_from_another_run, 0.0), (m2_shared_model, 0.0), (m2_not_recorded, 3.33)],
    },
    "03_regularization": {
        "q1": [(m3_empty_table, 0.0), (m3_fewer_rows, 0.0), (m3_untrained, 0.0), (m3_numbers_from_another_run, 0.0),
               (m3_shared_model, 0.0)],
    },
    "04_finetuning_lora": {
        "q1": [(m4_empty, 0.0), (m4_untrained, 0.0), (m4_numbers_from_another_run, 0.0), (m4_not_recorded, 3.2)],
        "q2": [(m4_q2_empty, 0.0), (m4_q2_lora_passed_off_as_qlora, 0.0), (m4_q2_numbers_from_another_run, 0.0),
               (m4_q2_not_recorded, 1.6)],
        "q3": [(m4_q3_one_candidate, 0.0), (m4_q3_chosen_is_not_the_lowest, 0.0), (m4_q3_numbers_from_another_run, 0.0),
               (m4_q3_chosen_on_the_held_out_text, 0.0), (m4_q3_not_recorded, 1.6)],
        "q4": [(m4_q4_no_unregularised_row, 0.0), (m4_q4_numbers_from_another_run, 0.0), (m4_q4_not_recorded, 0.67)],
    },
}


def _auto_questions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "autograder").glob("0*.py")):
        found += [(path.stem, q.id) for q in load_check_file(path).questions if q.kind == "auto"]
    return found


def test_every_auto_graded_question_has_mutations():
    missing = [f"{m} {q}" for m, q in _auto_questions() if not MUTATIONS.get(m, {}).get(q)]
    assert not missing, (f"auto-graded questions without a mutation spec: {missing}; add them to MUTATIONS in "
                         "tests/test_check_mutations.py (docs/grading.md, 'Test the checks')")


class Solutions:
    """Each module's solution graded once, on first use (so `-k 02_optimization` grades module 2 only), and its
    mutants scored by one scorer."""

    def __init__(self, root: Path):
        self.root, self.graded, self.scored, self.scorer = root, {}, {}, None

    def solution(self, module: str) -> dict[str, Any]:
        """The graded solution: its row, claims folder and data view."""
        if module not in self.graded:
            subs, out = self.root / module / "subs", self.root / module / "out"
            subs.mkdir(parents=True)
            shutil.copyfile(ROOT / "notebooks" / f"{module}.ipynb", subs / "solution.ipynb")
            assert twdl(["grade", str(subs), "--module", module, "-p", "profile=smoke", "--jobs", "1",
                         "--timeout", "1200", "--out", str(out)]) == 0
            row = json.loads((out / "executed" / "solution.grade.json").read_text())["row"]
            views = sorted((out / ".twdl" / "views").glob("*/ready"))
            self.graded[module] = {
                "row": row, "claims": out / ".twdl" / "claims" / "solution",
                "view": {k: str(views[0].parent / k) for k in ("mirror", "cache", "withheld")} if views else {}}
        return self.graded[module]

    def mutant(self, module: str, question: str, mutate: Mutation) -> dict[str, Any]:
        """The question's scored entry for the solution's claims changed by `mutate`."""
        key = (module, question, mutate.__name__)
        if key not in self.scored:
            solution = self.solution(module)
            check_file = load_check_file(ROOT / "autograder" / f"{module}.py")
            claims = read_claims(solution["claims"], ClaimLimits())
            objects, records = dict(claims.objects), dict(claims.records)
            saved = {k: os.environ.get(k) for k in ("TWDL_DATA_MIRROR", "TWDL_CACHE")}
            os.environ.update(view_environment(solution["view"]))  # a mutation that loads data sees the kernel's
            try:
                mutate(objects, records)
            finally:
                for k, v in saved.items():
                    os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            folder = self.root / module / "mutants" / mutate.__name__
            export_claims(objects, [n for n in check_file.exports if n in objects], folder, records=records)
            parameters = run_parameters(ROOT / "notebooks" / f"{module}.ipynb", {"profile": "smoke"})
            job = claims_job(folder, check_file, parameters, solution["view"], 300.0, [str(folder)])
            self.scorer = self.scorer or Scorer()
            answer = self.scorer.score(job, timeout=400)
            self.scored[key] = next(q for q in score_questions(check_file, results=answer["results"],
                                                               problem=answer.get("problem", "")) if q["id"] == question)
        return self.scored[key]


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    if MIRROR is None:
        pytest.skip("the solutions need the data of the offline mirror")
    found = Solutions(tmp_path_factory.mktemp("solutions"))
    yield found
    if found.scorer is not None:
        found.scorer.close()


def _points(row: dict[str, Any]) -> dict[str, float]:
    return {q["id"]: q["points"] for q in row["questions"] if q["kind"] == "auto"}


@pytest.mark.parametrize("module", sorted(MUTATIONS))
def test_the_unmutated_solution_keeps_full_marks(solutions, module):
    row = solutions.solution(module)["row"]
    full = {q["id"]: q["max"] for q in row["questions"] if q["kind"] == "auto"}
    assert _points(row) == full, [(q["id"], q["summary"]) for q in row["questions"]]


@pytest.mark.parametrize("module,question,mutation,expected", [
    (m, q, f, points) for m, qs in MUTATIONS.items() for q, specs in qs.items() for f, points in specs],
    ids=lambda v: v.__name__ if callable(v) else str(v))
def test_each_mutation_loses_the_points_it_should(solutions, module, question, mutation, expected):
    entry = solutions.mutant(module, question, mutation)
    assert entry["points"] == pytest.approx(expected), (entry["points"], entry["summary"])


def test_withheld_digits_are_a_stratified_draw_that_no_profile_loads(mirror, tmp_path, monkeypatch):
    """The view's withheld digits: 2,000 of the test file, each class in its share, none among the digits the
    smoke profile loads from the view, and together with the view's test file exactly the 10,000."""
    import numpy as np

    import twdl_helpers as twdl
    from twdl_helpers.data.mnist import read_idx
    from twdl_tools.grading.dataview import build_view, load_withheld

    view = build_view({"mnist": 2000}, tmp_path)
    unseen = load_withheld({"folder": str(view.withheld)})["mnist"]
    labels = read_idx(mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    expected = np.bincount(labels, minlength=10) * 2000 / len(labels)
    assert len(unseen) == 2000 and np.abs(np.bincount(unseen.labels.numpy(), minlength=10) - expected).max() < 1
    kept = read_idx(view.mirror / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert len(kept) == 8000 and np.array_equal(np.bincount(kept, minlength=10) + np.bincount(
        unseen.labels.numpy(), minlength=10), np.bincount(labels, minlength=10))
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(view.mirror))
    monkeypatch.setenv("TWDL_CACHE", str(view.cache))
    withheld_rows = {row.numpy().tobytes() for row in unseen.inputs.flatten(1)}
    for seed in (0, 1):
        loaded = twdl.load_mnist(source="full", limit_train=3000, limit_test=2000, seed=seed)
        assert not withheld_rows & {row.numpy().tobytes() for row in loaded.test.inputs.flatten(1)}
