"""`twdl grade --check-sandbox`: probe, on this machine, what a sandboxed submission can see and do, and report."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from .repo import batch_environment, find_root, view_environment
from .sandbox import Sandbox, sandbox_support

__all__ = ["PROBE_SCRIPT", "sandbox_probes", "check_sandbox"]

# Runs inside the sandbox; reads its targets as JSON on stdin, prints what it saw as JSON.
PROBE_SCRIPT = r"""
import json, os, socket, sys
t = json.load(sys.stdin)
seen = {}
def attempt(fn):
    try:
        return "ok: " + str(fn())
    except Exception as err:
        return type(err).__name__
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        procs[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
seen["processes"] = procs
def connect():
    s = socket.create_connection(("127.0.0.1", t["port"]), timeout=5)
    s.close()
seen["loopback"] = attempt(connect)
seen["interfaces"] = sorted(name for _, name in socket.if_nameindex())
seen["beside"] = attempt(lambda: open(t["beside"]).read())
seen["home"] = attempt(lambda: sorted(os.listdir(t["home"])))
seen["repository"] = attempt(lambda: sorted(os.listdir(t["repository"]))) if t["repository"] else "none"
seen["write_outside"] = {p: attempt(lambda p=p: open(os.path.join(p, t["marker"]), "w").write("x")) for p in t["outside"]}
seen["write_work"] = attempt(lambda: open(t["marker"], "w").write("x"))
seen["write_tmp"] = attempt(lambda: open("/tmp/" + t["marker"], "w").write("x"))
seen["capabilities"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
print(json.dumps(seen))
"""

DATA_PROBE = r"""
import json, os, sys
t = json.load(sys.stdin)
def attempt(path):
    try:
        return "ok: " + str(os.listdir(path) if os.path.isdir(path) else len(open(path, "rb").read()))
    except Exception as err:
        return type(err).__name__
print(json.dumps({name: attempt(path) for name, path in t.items()}))
"""

KERNEL_PROBE = """import os
ppid = os.getppid()
for what in ("environ", "mem", "fd/0"):
    try:
        open(f"/proc/{ppid}/{what}", "rb").read(1)
        print("READABLE", what)
    except OSError as err:
        print("refused", what, type(err).__name__)
"""


def _listener() -> tuple[socket.socket, list[int]]:
    """A TCP server on the grader's loopback that counts the connections it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted


def _allowed_names(folder: Path, box: Sandbox) -> set[str]:
    """The entries of `folder` the sandbox may show: the first path parts of its read-only roots inside it."""
    names = set()
    for _, dst in box.bindings:
        try:
            names.add(dst.relative_to(folder).parts[0])
        except (ValueError, IndexError):
            continue
    return names


def sandbox_probes(workspace: Path) -> list[tuple[str, bool, str]]:
    """Run the probes with `workspace` as scratch space; return (probe, passed, what was seen)."""
    from nbformat import write
    from nbformat.v4 import new_code_cell, new_notebook

    from .execute import run_notebook

    work, beside = workspace / "work", workspace / "beside"
    work.mkdir()
    beside.mkdir()
    (beside / "secret.txt").write_text("another submission")
    marker = f"twdl-probe-{uuid.uuid4().hex[:12]}"
    try:
        repository = find_root()
    except FileNotFoundError:
        repository = None
    env = batch_environment(figures=False)
    box = Sandbox(work, env, "python3")
    server, accepted = _listener()
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", marker])
    try:
        targets = {"port": server.getsockname()[1], "beside": str(beside / "secret.txt"), "home": str(Path.home()),
                   "repository": str(repository) if repository else "", "marker": marker,
                   "outside": ["/", "/etc", sys.prefix, str(workspace)]}
        ran = subprocess.run(box.command([sys.executable, "-c", PROBE_SCRIPT]), input=json.dumps(targets),
                             capture_output=True, text=True, env=box.environment(), cwd=work, timeout=60)
    finally:
        decoy.kill()
        decoy.wait()
        server.close()
    if ran.returncode != 0:
        return [("sandbox starts", False, " ".join(ran.stderr.split())[-400:])]
    seen = json.loads(ran.stdout)
    procs = seen["processes"]
    probes = [
        ("processes: only its own are visible", len(procs) <= 3 and not any(marker in c for c in procs.values()),
         f"sees {len(procs)} process(es): " + ", ".join(sorted(c.split(" ", 1)[0] for c in procs.values()))),
        ("network: the grader's loopback is unreachable", not seen["loopback"].startswith("ok") and not accepted,
         f"connecting to a server on 127.0.0.1 outside: {seen['loopback']}"),
        ("network: no interface but its own loopback", seen["interfaces"] == ["lo"], f"interfaces {seen['interfaces']}"),
        ("files: a folder beside the work directory is invisible", not seen["beside"].startswith("ok"),
         f"reading another folder's file: {seen['beside']}"),
        ("files: your home shows only the runtime's folders",
         not seen["home"].startswith("ok") or set(_listed(seen["home"])) <= _allowed_names(Path.home(), box),
         f"listing {Path.home()}: {seen['home']}"),
    ]
    if repository is not None:
        listing = seen["repository"]
        probes.append(("files: the course repository is invisible (the runtime's folders aside)",
                       not listing.startswith("ok") or set(_listed(listing)) <= _allowed_names(repository, box),
                       f"listing {repository}: {listing}"))
    landed = {p: Path(p, marker).exists() for p in seen["write_outside"]}
    outside = {p: "refused" if not v.startswith("ok") else "reached the real folder" if landed[p] else
               "kept in the sandbox's private /tmp" for p, v in seen["write_outside"].items()}
    probes += [
        ("files: nothing outside the work directory can be changed", not any(landed.values()),
         ", ".join(f"{p}: {v}" for p, v in outside.items())),
        ("files: the work directory is writable", seen["write_work"].startswith("ok") and (work / marker).is_file(),
         f"writing there: {seen['write_work']}"),
        ("files: /tmp is private", seen["write_tmp"].startswith("ok") and not Path("/tmp", marker).exists(),
         f"writing /tmp/{marker}: {seen['write_tmp']}; visible outside: {Path('/tmp', marker).exists()}"),
        ("capabilities: none", int(seen["capabilities"], 16) == 0, f"CapEff {seen['capabilities']}"),
    ]
    probes += _data_view_probes(workspace, work, env)
    cells = [new_code_cell("x = 0", metadata={"tags": ["parameters"]}), new_code_cell(KERNEL_PROBE)]
    notebook = work / "probe.ipynb"
    write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}}), str(notebook))
    result = run_notebook(notebook, workspace / "probe-executed.ipynb", cwd=work, timeout=180, env=env, sandbox="on",
                          scratch=workspace / "scratch")
    text = _stream_text(workspace / "probe-executed.ipynb")
    probes += [
        ("kernel: papermill starts a Jupyter kernel inside and runs a cell", result.status == "ok",
         f"status {result.status} in {result.runtime_s:.1f} s {result.error}".strip()),
        ("kernel: the worker's environment, memory and files are unreadable",
         result.status == "ok" and "READABLE" not in text and text.count("refused") == 3, " / ".join(text.split("\n"))),
    ]
    return probes


def _data_view_probes(workspace: Path, work: Path, env: dict[str, str]) -> list[tuple[str, bool, str]]:
    """With a data view (data the profile never loads kept back), the view is visible, the scorer's withheld data
    and the real data mirror and cache are not."""
    from twdl_helpers.files import cache_dir

    view = workspace / "out" / ".twdl" / "views" / "probe"
    for folder in ("mirror/mnist", "cache", "withheld"):
        (view / folder).mkdir(parents=True)
    (view / "mirror" / "mnist" / "visible.txt").write_text("the view")
    (view / "withheld" / "mnist.safetensors").write_text("the scorer's data")
    real = env.get("TWDL_DATA_MIRROR") or str(workspace / "real-mirror")
    Path(real).mkdir(parents=True, exist_ok=True)
    viewed = {**env, **view_environment({"mirror": str(view / "mirror"), "cache": str(view / "cache")})}
    box = Sandbox(work, viewed, "python3")
    targets = {"view": str(view / "mirror" / "mnist" / "visible.txt"), "withheld": str(view / "withheld"),
               "mirror": real, "cache": str(Path(env.get("TWDL_CACHE") or cache_dir()))}
    ran = subprocess.run(box.command([sys.executable, "-c", DATA_PROBE]), input=json.dumps(targets),
                         capture_output=True, text=True, env=box.environment(), cwd=work, timeout=60)
    if ran.returncode != 0:
        return [("data view: the sandbox starts with it", False, " ".join(ran.stderr.split())[-400:])]
    seen = json.loads(ran.stdout)
    return [
        ("data view: the kernel reads its data view", seen["view"].startswith("ok"), f"reading it: {seen['view']}"),
        ("data view: the scorer's withheld data are invisible", not seen["withheld"].startswith("ok"),
         f"listing {targets['withheld']}: {seen['withheld']}"),
        ("data view: the real data mirror and cache are invisible",
         not seen["mirror"].startswith("ok") and not seen["cache"].startswith("ok"),
         f"listing {real}: {seen['mirror']}; listing {targets['cache']}: {seen['cache']}"),
    ]


def _listed(text: str) -> list[str]:
    """The list printed after "ok: " by the probe script."""
    import ast

    return ast.literal_eval(text.split(": ", 1)[1])


def _stream_text(path: Path) -> str:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return "".join("".join(o.get("text", "")) for c in nb.get("cells", []) for o in c.get("outputs", [])).strip()


def check_sandbox(stream: Any = None) -> int:
    """`twdl grade --check-sandbox`: print each probe's result; 0 when the sandbox works and every probe passed."""
    stream = stream or sys.stdout
    support = sandbox_support()
    if not support.available:
        print(f"sandbox: NOT AVAILABLE: {support.reason}", file=stream)
        print("`twdl grade` would run submissions without it (--sandbox auto) or refuse to grade (--sandbox on).",
              file=stream)
        return 1
    print(f"sandbox: {support.version or 'bubblewrap'} at {support.bwrap}", file=stream)
    with tempfile.TemporaryDirectory(prefix="twdl-check-sandbox-") as folder:
        probes = sandbox_probes(Path(folder))
    for name, passed, detail in probes:
        print(f"  {'ok  ' if passed else 'FAIL'}  {name}: {detail}", file=stream)
    failed = sum(not passed for _, passed, _ in probes)
    print(f"{len(probes) - failed} of {len(probes)} probes passed" +
          ("" if failed else ": submissions will run sandboxed (--sandbox auto or on)"), file=stream)
    return 1 if failed else 0
