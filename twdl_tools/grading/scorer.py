"""The trusted scorer: a separate Python process, in which no submission's code ever runs, computes every check result.

`twdl grade` starts one per grading thread (`python -I -m twdl_tools.grading.scorer`, isolated mode, started in a
folder of the grader's own): it imports the helpers from the grader's installation only, refuses any unpickling
(an audit hook raises on `pickle.find_class`; `torch.load` is disabled), and reads each job as one JSON line on its
standard input. For a job it rebuilds the submission's exported claims (`twdl_helpers.claims.read_claims`: JSON and
safetensors only, every file validated), loads the data the check file asks for itself, runs the module's public
and hidden checks on them, and answers one JSON line. Only these answers become points.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..repo import batch_environment, view_environment

__all__ = ["Scorer", "scorer_for_this_thread", "close_scorers", "claims_job", "score_claims", "SCORER_MODULE",
           "SCORER_MARGIN"]

SCORER_MODULE = "twdl_tools.grading.scorer"
SCORER_MARGIN = 60.0  # seconds the scorer may take beyond the checks' budget (loading data, rebuilding models)
_REFUSED = {"pickle.find_class": 0}


def _audit(event: str, args: tuple) -> None:
    if event == "pickle.find_class":
        _REFUSED["pickle.find_class"] += 1
        raise RuntimeError("unpickling is refused in the grader's scorer")


def _refuse_torch_load(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("torch.load is refused in the grader's scorer: it reads only JSON and safetensors")


def _harden() -> None:
    """No pickle, no torch.load, from here on, in this process."""
    sys.addaudithook(_audit)
    import torch
    import torch.serialization

    torch.load = torch.serialization.load = _refuse_torch_load


class _Session:
    """What the scorer keeps between jobs: the data it loaded (keyed by what loaded them)."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def load(self, key: str, build: Any) -> Any:
        if key not in self.cache:
            if len(self.cache) > 16:
                self.cache.clear()
            self.cache[key] = build()
        return self.cache[key]


def _outside(paths: list[str]) -> list[str]:
    """Files of loaded modules that lie under any of `paths` (must be none: submissions hold no code we run)."""
    roots = [Path(p).resolve() for p in paths]
    found = []
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        resolved = Path(file).resolve()
        if any(root == resolved or root in resolved.parents for root in roots):
            found.append(str(resolved))
    return found


def _score(job: dict[str, Any], session: _Session) -> dict[str, Any]:
    import matplotlib.pyplot as plt
    import torch

    import twdl_helpers
    from twdl_helpers import questions
    from twdl_helpers.claims import ClaimError, ClaimLimits, Unrebuildable, needs_a_ta, read_claims

    from .dataview import load_withheld

    source = Path(job["checks"]).read_text(encoding="utf-8")
    imported = time.perf_counter()
    if "twdl.lm" in source:
        import twdl_helpers.lm  # noqa: F401  (the check file uses the language-model helpers: once per scorer)
    start = time.perf_counter()
    torch.manual_seed(0)
    parameters = dict(job.get("parameters") or {})
    environment = {k: v for k, v in (job.get("environment") or {}).items() if k in ("TWDL_DATA_MIRROR", "TWDL_CACHE")}
    previous = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)  # the data view the notebook saw (its own split is loaded from it)
    try:
        try:
            claims = read_claims(job["export"], ClaimLimits())
        except ClaimError as err:
            return {"results": None, "problem": f"the exported claims were refused: {err}", "fingerprints": {},
                    "seconds": time.perf_counter() - start}
        with questions.collecting() as registry:
            exec(compile(source, "<twdl checks>", "exec"), {"__builtins__": __builtins__, "__name__": "__twdl_checks__",
                                                           "twdl": twdl_helpers})
        namespace = dict(claims.objects)
        for name, loader in registry.loaders.items():
            key = json.dumps([job["checks_digest"], name, parameters, environment], sort_keys=True, default=str)
            try:
                namespace[name] = session.load(key, lambda loader=loader: loader(parameters))
            except Exception as err:  # noqa: BLE001  (the grader's own data could not be loaded: say so in the check)
                namespace[name] = Unrebuildable(name, "data", f"the grader could not load it ({type(err).__name__}: "
                                                              f"{err})", False)
        withheld = session.load(json.dumps(["withheld", job.get("withheld")], default=str),
                                lambda: load_withheld(job.get("withheld")))
        results = questions.run_checks(namespace, records=claims.records, parameters=parameters, withheld=withheld,
                                       hidden=None, budget=float(job.get("budget") or 120), registry=registry,
                                       needs_ta=needs_a_ta)
        outcome = {"results": [r.to_dict() for r in results], "problem": "", "fingerprints": claims.fingerprints,
                   "missing": claims.missing}
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        plt.close("all")
    leaked = _outside(job.get("untrusted") or [])
    if leaked:  # fail closed: a submission's file was imported
        return {"results": None, "problem": f"the scorer loaded code from the submission ({leaked[0]}): refused",
                "fingerprints": {}, "seconds": time.perf_counter() - start}
    outcome["seconds"] = time.perf_counter() - start
    outcome["import_s"] = start - imported
    return outcome


def serve() -> int:
    """Answer jobs read as JSON lines on stdin with JSON lines on the original stdout (prints go to stderr)."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _harden()
    import twdl_helpers  # noqa: F401  (the helpers and torch, imported once, before any job)

    session = _Session()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            answer = _score(job, session)
        except Exception as err:  # noqa: BLE001  (the scorer's own failure for one job: reported, the next one runs)
            answer = {"results": None, "problem": f"the scorer failed: {type(err).__name__}: {err}", "fingerprints": {}}
        answer["find_class_calls"] = _REFUSED["pickle.find_class"]
        answer["modules"] = sorted({str(getattr(m, "__file__", "")) for m in list(sys.modules.values())
                                    if getattr(m, "__file__", None)}) if job.get("report_modules") else []
        answers.write(json.dumps(answer, default=str) + "\n")
        answers.flush()
    return 0


class Scorer:
    """One scorer process, started on first use; `score(job)` sends a job and waits for its answer."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.started: float | None = None  # when the process was started, until its first answer
        self.home = tempfile.mkdtemp(prefix="twdl-scorer-")  # its working directory: never a submission's folder
        self.log = Path(self.home) / "scorer.log"

    def _start(self) -> subprocess.Popen:
        env = {k: v for k, v in batch_environment(figures=False).items()
               if not k.startswith("PYTHON") or k == "PYTHONHASHSEED"}
        with open(self.log, "ab") as log:
            return subprocess.Popen([sys.executable, "-I", "-m", SCORER_MODULE], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, cwd=self.home, env=env)

    def score(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The scorer's answer to `job`; after `timeout` seconds the process is killed and the answer says so."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc, self.started = self._start(), time.perf_counter()
        proc = self.proc
        answer: list[bytes] = []

        def read() -> None:
            answer.append(proc.stdout.readline())

        try:
            proc.stdin.write((json.dumps(job, default=str) + "\n").encode("utf-8"))
            proc.stdin.flush()
        except OSError:
            self.close()
            return {"results": None, "problem": f"the scorer stopped: {self._tail()}", "fingerprints": {}}
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive() or not answer or not answer[0]:
            why = f"the checks did not finish within {timeout:g} s" if reader.is_alive() else \
                f"the scorer stopped: {self._tail()}"
            self.close()
            return {"results": None, "problem": why, "fingerprints": {}}
        reply = json.loads(answer[0].decode("utf-8"))
        if self.started is not None:  # the first answer of this process: what starting it cost
            waited = time.perf_counter() - self.started
            reply["startup_s"] = max(0.0, waited - float(reply.get("seconds") or 0) - float(reply.get("import_s") or 0))
            self.started = None
        return reply

    def _tail(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no message"

    def close(self) -> None:
        """Stop the process (a later job starts a new one)."""
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc = None


def claims_job(claims: Path, check_file: Any, parameters: dict[str, Any], view: dict[str, str], budget: float,
               untrusted: list[str]) -> dict[str, Any]:
    """The scorer's job for claims collected in `claims`: the check file, the run's parameters, the data view."""
    return {"export": str(claims), "checks": str(check_file.path), "checks_digest": check_file.digest(),
            "parameters": parameters, "budget": budget, "environment": view_environment(view),
            "withheld": {"folder": view["withheld"]} if view else None, "untrusted": untrusted}


def score_claims(task: Any, check_file: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """This thread's scorer's answer for one submission's collected claims (`task.claims`)."""
    job = claims_job(task.claims, check_file, parameters, task.view, task.check_budget,
                     [str(task.workdir), str(task.claims), str(Path(task.source).parent)])
    return scorer_for_this_thread().score(job, timeout=task.check_budget + SCORER_MARGIN)


_LOCAL = threading.local()
_ALL: list[Scorer] = []
_LOCK = threading.Lock()


def scorer_for_this_thread() -> Scorer:
    """This thread's long-lived scorer (each grading thread, local or on a Dask worker, has its own)."""
    scorer = getattr(_LOCAL, "scorer", None)
    if scorer is None:
        scorer = _LOCAL.scorer = Scorer()
        with _LOCK:
            _ALL.append(scorer)
    return scorer


def close_scorers() -> None:
    """Stop every scorer this process started."""
    with _LOCK:
        for scorer in _ALL:
            scorer.close()


import atexit  # noqa: E402

atexit.register(close_scorers)

if __name__ == "__main__":
    sys.exit(serve())
