"""False alarms of the hidden "holds up on withheld data" checks, and a memorised model they catch.

For each module that withholds data (module 2: MNIST test digits, smoke profile; module 3: train/ images), the data
view `twdl grade` builds is built once (`twdl_tools.grading.dataview.build_view`). Then, per seed 0-9, the
notebook's own loading call runs on the view (what a kernel in the sandbox loads), the homework solution's code (its
solution block, read from notebooks/0k_*.py) trains the solution's models on it, and the hidden check's test
(`twdl.questions.holds_up_limit`: one-sided two-proportion z-test, level 0.01 per question, Bonferroni over the
rows) compares each model's reported accuracy with its accuracy on the withheld data. This is what grading the 10
solution notebooks would score for that check, without executing the rest of each notebook. A false alarm is a
seed whose honest solution fails the check. Then one model is trained on the notebook's training data plus its
evaluation data until it scores >= 99 % on the evaluation data, and goes through the same test.

    python bench/withheld.py [--seeds 10] [--modules 02 03]

Writes bench/results/withheld.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import dataclasses
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import twdl_helpers as twdl
from twdl_helpers.records import recorded
from twdl_helpers.questions import FALSE_ALARM_LEVEL, holds_up_limit
from twdl_tools.bench import machine_description
from twdl_tools.grading.checkfile import load_check_file
from twdl_tools.grading.dataview import WITHHELD_SEED, build_view, load_withheld, withheld_for
from twdl_tools.repo import view_environment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "withheld.json"


def solution_block(stem: str, question: str = "q1") -> str:
    """The solution code of `question`'s homework cell in notebooks/<stem>.py."""
    source = (ROOT / "notebooks" / f"{stem}.py").read_text()
    cell = source.split(f'question="{question}"', 1)[1]
    return re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell, re.S).group(1)


def _mnist(seed: int) -> dict[str, Any]:
    """Module 2's smoke data as its notebook loads them."""
    return {"data": twdl.load_mnist(source="auto", limit_train=3000, limit_test=2000, seed=seed)}


def _faces(seed: int) -> dict[str, Any]:
    """Module 3's smoke split as its notebook draws it (validation images without the tuning ones)."""
    faces = twdl.load_animal_faces(source="auto", dataset="auto", n_train=200, n_val=450, seed=seed)
    return {"faces": dataclasses.replace(faces, val=faces.val.subset(range(300)))}


# stem -> (loader, the homework's namespace beyond the data, the table's name, evaluation split, its withheld key)
MODULES = {
    "02_optimization": (_mnist, lambda seed: {"E": 1, "seed": seed, "dev": "cpu"}, "table", "test"),
    "03_regularization": (_faces, lambda seed: {"scale": lambda n: max(2, round(n * 60 / 200)), "batch": 16,
                                                "seeds": [seed, seed + 1], "seed": seed, "dev": "cpu"},
                          "homework", "val"),
}


def _evaluation(loaded: dict[str, Any], split: str) -> Any:
    return getattr(next(iter(loaded.values())), split)


def _rows(table: Any) -> list[tuple[str, float, list[torch.nn.Module]]]:
    """(row, reported accuracy, its models) of a homework table (module 2's runs, module 3's techniques)."""
    models = table.attrs["models"]
    if "run" in table.columns:
        return [(run, acc, [models[run]]) for run, acc in zip(table["run"], table["test_accuracy"])]
    return [(t, acc, list(models[t])) for t, acc in table["val_accuracy"].items()]


def honest(stem: str, seed: int, unseen: Any) -> dict[str, Any]:
    """The solution's models for `seed`, each row's gap and the noise limit; `alarm` when any row fails."""
    load, extra, name, split = MODULES[stem]
    loaded = load(seed)
    namespace = {"twdl": twdl, "display": lambda *a, **k: None, **loaded, **extra(seed)}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        exec(compile(solution_block(stem), f"{stem} q1 solution", "exec"), namespace)
    evaluation, rows = _evaluation(loaded, split), _rows(namespace[name])
    points = score_question(stem, seed, {name: namespace[name]}, {"mnist" if stem[:2] == "02" else
                                                                  loaded["faces"].dataset: unseen})
    out = []
    for row, reported, models in rows:
        measured = sum(twdl.evaluate(m, unseen)["accuracy"] for m in models) / len(models)
        limit = holds_up_limit(reported, measured, len(evaluation), len(unseen), comparisons=len(rows))
        out.append({"row": row, "reported": reported, "withheld": measured, "drop": reported - measured,
                    "limit": limit, "alarm": reported - measured > limit})
    return {"seed": seed, "rows": out, "alarm": any(r["alarm"] for r in out), "q1_points": points}


def score_question(stem: str, seed: int, objects: dict[str, Any], withheld: dict[str, Any]) -> float:
    """q1's points from every check of the module's check file (public and hidden), run in this process on the
    solution's own objects and records (the scorer runs the same checks on the objects rebuilt from their export)."""
    from twdl_helpers import questions
    from twdl_helpers.params import run_parameters
    from twdl_tools.grading.scoring import score_questions

    check_file = load_check_file(ROOT / "autograder" / f"{stem}.py")
    parameters = run_parameters(ROOT / "notebooks" / f"{stem}.ipynb", {"profile": "smoke", "seed": seed})
    with questions.collecting() as registry:
        exec(compile(check_file.source, str(check_file.path), "exec"), {"twdl": twdl, "__name__": "__twdl_checks__"})
    namespace = {**objects, **{n: loader(parameters) for n, loader in registry.loaders.items()}}
    results = questions.run_checks(namespace, "q1", records=recorded(), parameters=parameters,
                                   withheld=withheld, hidden=None, registry=registry)
    entry = score_questions(check_file, results=[r.to_dict() for r in results])
    return next(q["points"] for q in entry if q["id"] == "q1")


def memorised(stem: str, unseen: Any, seed: int = 0, max_epochs: int = 60) -> dict[str, Any]:
    """A model trained on the training data plus the evaluation data until it scores >= 99 % on the latter."""
    load, _, _, split = MODULES[stem]
    loaded = load(seed)
    holder = next(iter(loaded.values()))
    evaluation = getattr(holder, split)
    both = twdl.TensorData(torch.cat([holder.train.inputs, evaluation.inputs]),
                           torch.cat([holder.train.labels, evaluation.labels]))
    model = twdl.DeepNet(seed=seed) if stem == "02_optimization" else twdl.AnimalNet(seed=seed)
    optimizer = twdl.make_optimizer("adam", model.parameters(), lr=1e-3)
    epochs, reported = 0, 0.0
    while reported < 99 and epochs < max_epochs:
        twdl.train(model, both, epochs=5, batch_size=64, optimizer=optimizer, seed=seed + epochs, progress=False)
        epochs += 5
        reported = twdl.evaluate(model, evaluation)["accuracy"]
    measured = twdl.evaluate(model, unseen)["accuracy"]
    limit = holds_up_limit(reported, measured, len(evaluation), len(unseen), comparisons=4)
    return {"epochs": epochs, "reported": reported, "withheld": measured, "drop": reported - measured,
            "limit": limit, "fails_the_check": reported - measured > limit}


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Two rows per module in the benchmark table's columns (docs/benchmarks.md): the honest solutions' false alarms
    over the seeds (key "m2"; with the largest drop/limit and full marks), and the memorised model's drop on the
    withheld data against the test's limit (key "m2_memorised")."""
    rows = []
    for stem, found in sorted(results.items()):
        if not (isinstance(found, dict) and "seeds" in found):
            continue
        caught, module = found["memorised"], int(stem[:2])
        rows.append({"key": f"m{module}", "comparison": f"module {module}: honest solution, seeds 0-"
                     f"{found['notebooks'] - 1}, hidden held-up check", "measure": "false alarms", "unit": "notebooks",
                     "helpers": found["false_alarms"], "target": "0", "met": found["false_alarms"] == 0,
                     "runs": found["notebooks"], "false_alarms": found["false_alarms"], "notebooks": found["notebooks"],
                     "full_marks": sum(s["q1_points"] == 4 for s in found["seeds"]),
                     "worst_drop_over_limit": max(r["drop"] / r["limit"] for s in found["seeds"] for r in s["rows"])})
        rows.append({"key": f"m{module}_memorised", "comparison": f"module {module}: a model trained on its own "
                     f"evaluation data ({caught['reported']:.1f} % there, {caught['withheld']:.1f} % withheld)",
                     "measure": "drop on the withheld data / the test's limit", "unit": "ratio",
                     "helpers": (caught["reported"] - caught["withheld"]) / caught["limit"], "target": "> 1 (fails)",
                     "met": bool(caught["fails_the_check"]), "runs": 1, "memorised_reported": caught["reported"],
                     "memorised_withheld": caught["withheld"], "memorised_limit": caught["limit"],
                     "memorised_fails": caught["fails_the_check"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--modules", nargs="*", default=["02", "03"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update({"date": time.strftime("%Y-%m-%d"), "machine": machine_description(), "quick": False,
                    "test": f"one-sided two-proportion z-test, level {FALSE_ALARM_LEVEL} per question "
                            "(Bonferroni over its rows)", "withheld_seed": WITHHELD_SEED})
    import os

    with tempfile.TemporaryDirectory() as out:
        for stem in [s for s in MODULES if s[:2] in args.modules]:
            start = time.perf_counter()
            spec = withheld_for(load_check_file(ROOT / "autograder" / f"{stem}.py").withheld, "smoke")
            view = build_view(spec, out)
            saved = {k: os.environ.get(k) for k in ("TWDL_DATA_MIRROR", "TWDL_CACHE")}
            os.environ.update(view_environment({k: str(v) for k, v in dataclasses.asdict(view).items()}))
            try:
                withheld = load_withheld({"folder": str(view.withheld)})
                dataset = _faces(0)["faces"].dataset if stem == "03_regularization" else "mnist"
                unseen = withheld[dataset]
                seeds = [honest(stem, seed, unseen) for seed in range(args.seeds)]
                caught = memorised(stem, unseen)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            alarms = sum(s["alarm"] for s in seeds)
            results[stem] = {"withheld": {dataset: len(unseen)}, "seeds": seeds, "false_alarms": alarms,
                             "notebooks": len(seeds), "memorised": caught,
                             "seconds": round(time.perf_counter() - start, 1)}
            print(f"{stem}: q1 points per seed {[s['q1_points'] for s in seeds]}; false alarms {alarms} of "
                  f"{len(seeds)}; largest drop/limit "
                  f"{max(r['drop'] / r['limit'] for s in seeds for r in s['rows']):.2f}; memorised: "
                  f"{caught['reported']:.1f} % -> {caught['withheld']:.1f} % (limit {caught['limit']:.1f}), "
                  f"fails the check: {caught['fails_the_check']}")
            results["rows"] = summary_rows(results)
            RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")
    if not args.modules:  # only the summary rows, from the saved results
        results["rows"] = summary_rows(results)
        RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
