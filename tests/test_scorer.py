"""The trusted scorer process: isolated, started outside any submission's folder, importing nothing from one,
refusing every unpickling; it runs a check file on rebuilt claims and loads the data it is told to load itself."""
from __future__ import annotations

import textwrap

import torch

import twdl_helpers as twdl
from twdl_helpers.claims import export_claims
from twdl_tools.grading.scorer import Scorer

CHECKS = '''
MODULE = "97_scorer"
QUESTIONS = [{"id": "q1", "points": 1.0, "kind": "auto", "title": "", "template": "", "rubric": ""}]
EXPORTS = ["model"]


@twdl.grader_loads("digits")
def _digits(parameters):
    import pickle, collections
    if parameters.get("unpickle"):
        pickle.loads(pickle.dumps(collections.OrderedDict()))  # a global: find_class is called
    return torch.full((2, 1, 28, 28), float(parameters["seed"]))


@twdl.question_check("q1")
def where_the_scorer_runs(model, digits):
    import os, sys
    assert False, f"isolated={sys.flags.isolated} cwd={os.getcwd()} helpers={twdl.__file__} digits={digits[0, 0, 0, 0]}"


@twdl.question_check("q1")
def torch_load_is_refused(model):
    torch.load("anything.pt")


@twdl.question_check("q1")
def model_is_rebuilt(model):
    """a real ShallowNet, rebuilt from its weights"""
    assert type(model).__name__ == "ShallowNet" and model(torch.zeros(1, 784)).shape == (1, 10)
'''


def _job(tmp_path, **parameters):
    export = tmp_path / "export"
    export_claims({"model": twdl.ShallowNet(seed=0)}, ["model"], export)
    work = tmp_path / "work"
    (work / "twdl_helpers").mkdir(parents=True, exist_ok=True)
    (work / "twdl_helpers" / "__init__.py").write_text("raise SystemExit('the submission was imported')")
    (work / "torch.py").write_text("raise SystemExit('the submission was imported')")
    checks = tmp_path / "checks.py"
    checks.write_text("import torch\n" + textwrap.dedent(CHECKS))
    return {"export": str(export), "checks": str(checks), "checks_digest": "x", "parameters": {"seed": 3, **parameters},
            "budget": 60, "untrusted": [str(work), str(export)], "report_modules": True}


def test_checks_run_isolated_outside_the_submission_on_the_graders_own_helpers(tmp_path):
    scorer = Scorer()
    try:
        answer = scorer.score(_job(tmp_path), timeout=120)
    finally:
        scorer.close()
    results = {r["name"]: r for r in answer["results"]}
    where = results["where_the_scorer_runs"]["message"]
    assert "isolated=1" in where and f"cwd={scorer.home}" in where and "digits=3.0" in where
    assert f"helpers={twdl.__file__}" in where  # the grader's installation, not the work folder's copy
    assert "torch.load is refused" in results["torch_load_is_refused"]["message"]
    assert results["model_is_rebuilt"]["passed"]
    assert not [m for m in answer["modules"] if str(tmp_path) in m]  # nothing imported from the submission
    assert answer["find_class_calls"] == 0


def test_unpickling_raises_in_the_scorer_and_is_counted(tmp_path):
    scorer = Scorer()
    try:
        answer = scorer.score(_job(tmp_path, unpickle=True), timeout=120)
        again = scorer.score(_job(tmp_path), timeout=120)  # the same long-lived process answers the next job
    finally:
        scorer.close()
    where = next(r for r in answer["results"] if r["name"] == "where_the_scorer_runs")["message"]
    assert "unpickling is refused in the grader's scorer" in where and answer["find_class_calls"] == 1
    assert next(r for r in again["results"] if r["name"] == "model_is_rebuilt")["passed"]
    assert answer["startup_s"] > 0 and "startup_s" not in again  # what starting it cost, with its first answer only


def test_a_refused_export_and_a_hung_check_become_answers_not_crashes(tmp_path):
    job = _job(tmp_path)
    (tmp_path / "export" / "claims.json").write_text("{")
    scorer = Scorer()
    try:
        refused = scorer.score(job, timeout=120)
        slow = _job(tmp_path / "slow")
        (tmp_path / "slow" / "checks.py").write_text((tmp_path / "slow" / "checks.py").read_text().replace(
            "def _digits(parameters):", "def _digits(parameters):\n    import time; time.sleep(60)"))
        hung = scorer.score(slow, timeout=3)
    finally:
        scorer.close()
    assert refused["results"] is None and "the exported claims were refused" in refused["problem"]
    assert hung["results"] is None and hung["problem"] == "the checks did not finish within 3 s"
