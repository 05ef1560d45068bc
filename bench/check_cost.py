"""What a change to the checks costs per submission: the warm scorer's time on one graded solution's claims, with
the check file of another revision (before) and the working tree's (after), like for like.

`twdl bench grading` measures a whole grading; the checks are the only part a check-file change touches (the
export cell and the notebook's own run do not change), so this times that part alone: one long-lived scorer,
one cold job, then `--repeats` warm jobs per check file, alternating before/after, medians reported.

    twdl grade SUBS --module 02_optimization -p profile=smoke --out OUT     # once, any solution notebook
    python bench/check_cost.py 02_optimization OUT [--before main] [--repeats 7]

Appends a row to bench/results/check_cost.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from twdl_helpers.params import run_parameters
from twdl_tools.grading.checkfile import load_check_file
from twdl_tools.grading.scorer import Scorer, claims_job

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "check_cost.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module")
    parser.add_argument("graded", type=Path, help="the --out folder of a grading of the module's solution")
    parser.add_argument("--before", default="main", help="the git revision whose check file is the baseline")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    before = args.graded / f"before-{args.module}.py"
    before.write_text(subprocess.run(["git", "show", f"{args.before}:autograder/{args.module}.py"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    from twdl_helpers import questions

    lint, questions.vacuity_problems = questions.vacuity_problems, lambda function: []  # the old file predates it
    try:
        files = {"before": load_check_file(before)}
    finally:
        questions.vacuity_problems = lint
    files["after"] = load_check_file(ROOT / "autograder" / f"{args.module}.py")
    claims = next((args.graded / ".twdl" / "claims").iterdir())
    views = sorted((args.graded / ".twdl" / "views").glob("*/ready"))
    view = {k: str(views[0].parent / k) for k in ("mirror", "cache", "withheld")} if views else {}
    parameters = run_parameters(ROOT / "notebooks" / f"{args.module}.ipynb", {"profile": "smoke"})
    scorer, times = Scorer(), {"before": [], "after": []}
    try:
        for label in ("before", "after"):  # cold: data loaded, libraries imported
            scorer.score(claims_job(claims, files[label], parameters, view, 300.0, [str(claims)]), timeout=400)
        for _ in range(args.repeats):
            for label, check_file in files.items():
                start = time.perf_counter()
                answer = scorer.score(claims_job(claims, check_file, parameters, view, 300.0, [str(claims)]),
                                      timeout=400)
                times[label].append(time.perf_counter() - start)
                assert answer["results"] is not None, answer.get("problem")
    finally:
        scorer.close()
    before_s, after_s = statistics.median(times["before"]), statistics.median(times["after"])
    import os

    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "module": args.module, "before": args.before,
           "before_s": round(before_s, 4), "after_s": round(after_s, 4), "ratio": round(after_s / before_s, 3),
           "repeats": args.repeats, "load": os.getloadavg()[:2],
           "what": "median seconds of one warm scorer job (rebuild the claims, run every check of the module)"}
    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    RESULTS.write_text(json.dumps(rows + [row], indent=1) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
