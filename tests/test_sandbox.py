"""The grading sandbox: hostile submissions cannot read, change, reach or kill anything but their own work.

Where bubblewrap cannot run (no user namespaces), the hostile tests are skipped with the reason, and the tests
of `--sandbox off`, of the refusal of `--sandbox on` and of the sandbox's view still run.
"""
import hashlib
import json
import os
import socket
import sys
import textwrap
import threading
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from twdl_tools import sandbox as sandbox_module
from twdl_tools.cli import main as twdl
from twdl_tools.execute import run_notebook
from twdl_tools.grading import grade_all, plan_tasks
from twdl_tools.grading.plan import find_submissions
from twdl_tools.repo import batch_environment
from twdl_tools.sandbox import Sandbox, SandboxUnavailable, sandbox_environment, sandbox_support, use_sandbox

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SUPPORT = sandbox_support()
needs_sandbox = pytest.mark.skipif(not SUPPORT.available, reason=f"no sandbox on this machine: {SUPPORT.reason}")

# The first cell of every hostile notebook: record() without importing the runtime, attempt() -> "ok: ..." or error.
TOOLS = textwrap.dedent("""\
    import json, os, signal, socket
    from IPython.display import display
    def record(name, value):
        display({"text/plain": f"{name}: {value!r}", "application/vnd.twdl.record+json": {"name": name, "value": value}},
                raw=True)
    def attempt(fn):
        try:
            return "ok: " + str(fn())[:60]
        except Exception as err:
            return type(err).__name__
    """)


def notebook(path: Path, *cells: str) -> Path:
    """A submission: a parameters cell, then `cells`."""
    body = [new_code_cell("x = 1", metadata={"tags": ["parameters"]})] + [new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=body, metadata={"kernelspec": KERNELSPEC}), str(path))
    return path


def hostile(path: Path, code: str, targets: dict) -> Path:
    """A hostile submission that knows the grader's real paths (`targets`), the strongest attacker."""
    return notebook(path, TOOLS, f"T = json.loads({json.dumps(json.dumps(targets))})\n" + textwrap.dedent(code))


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file below `folders`."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def comparable(rows: list[dict]) -> dict[str, dict]:
    """The rows by file, without run times and the sandbox flag."""
    return {r["file"]: {k: v for k, v in r.items() if k not in ("runtime_s", "sandboxed")} for r in rows}


# Well-behaved submissions: alice and bob are graded first (the victims), carol and dave beside the hostile ones.
GOOD = {
    "alice/hw.ipynb": ["open('answer.txt', 'w').write('42')",
                       "from IPython.display import display\ndisplay({'text/plain': 's', "
                       "'application/vnd.twdl.record+json': {'name': 'm1.score', 'value': 2 * x}}, raw=True)"],
    "bob/hw.ipynb": ["import twdl_helpers as twdl, torch\ntwdl.set_seed(3)\n"
                     "twdl.record('m1.draw', round(float(torch.rand(1)), 6))\ntwdl.record('m1.completed', True)"],
    "carol/hw.ipynb": ["import time\ntime.sleep(3)\nprint('carol done')", "1 / 0"],
    "dave/hw.ipynb": ["import os\nfiles = sorted(f for f in os.listdir('.') if not f.startswith('.'))\nprint(files)",
                      "from IPython.display import display\ndisplay({'text/plain': 's', "
                      "'application/vnd.twdl.record+json': {'name': 'm1.files', 'value': files}}, raw=True)"],
}

MODIFY = """\
    # Find every notebook through /proc and by walking the whole file system; append to each, drop a file beside it.
    mine, found = os.getcwd(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for link in ("cwd", "root", "exe"):
            found.add(attempt(lambda: os.readlink(f"/proc/{pid}/{link}")).removeprefix("ok: "))
        try:
            found.update(a for a in open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0"))
            for fd in os.listdir(f"/proc/{pid}/fd"):
                found.add(attempt(lambda: os.readlink(f"/proc/{pid}/fd/{fd}")).removeprefix("ok: "))
        except OSError:
            pass
    notebooks = {p for p in found if p.endswith(".ipynb")} | set(T["notebooks"])
    for root, dirs, files in os.walk("/"):
        if root in ("/proc", "/sys", "/dev"):
            dirs[:] = []
        notebooks.update(os.path.join(root, f) for f in files if f.endswith(".ipynb"))
    changed, dropped, refused = [], [], {}
    for path in sorted(p for p in notebooks if not p.startswith(mine)):
        try:
            with open(path, "ab") as handle:
                handle.write(b" ")
            changed.append(path)
        except OSError as err:
            refused[path] = type(err).__name__
    for folder in sorted({os.path.dirname(p) for p in notebooks} | set(T["folders"])):
        if folder.startswith(mine):
            continue
        try:
            open(os.path.join(folder, "mallory-was-here.txt"), "w").write("x")
            dropped.append(folder)
        except OSError as err:
            refused[folder] = type(err).__name__
    record("hostile.notebooks_found", len(notebooks))
    record("hostile.changed", changed)
    record("hostile.dropped", dropped)
    record("hostile.refused", refused)
    """

READ = """\
    reads = {path: attempt(lambda: open(path, "rb").read()) for path in T["secrets"]}
    parent = os.getppid()  # the worker: it held the spec, it holds the result pipe
    for what in ("environ", "mem", "fd/0", "fd/3", "fd/4", "fd/5", "fd/6"):
        reads[f"/proc/worker/{what}"] = attempt(lambda: open(f"/proc/{parent}/{what}", "rb").read(1))
    print("\\n".join(f"{path}: {result}" for path, result in reads.items()))
    record("hostile.reads", reads)
    """

WRITE = """\
    writes = {path: attempt(lambda: open(path, "w").write("mallory")) for path in T["writes"]}
    print("\\n".join(f"{path}: {result}" for path, result in writes.items()))
    record("hostile.writes", writes)
    """

NETWORK = """\
    def connect(host):
        with socket.create_connection((host, T["port"]), timeout=5) as s:
            return s.getpeername()
    record("hostile.connect", {host: attempt(lambda: connect(host)) for host in T["hosts"]})
    """

KILL = """\
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError as err:
            seen[pid] = type(err).__name__
    open("seen.json", "w").write(json.dumps(seen))
    record("hostile.seen", seen)
    """, """\
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        if pid != os.getpid():
            attempt(lambda: os.kill(pid, signal.SIGKILL))
    """


def _server(host: str = "127.0.0.1") -> tuple[socket.socket, list]:
    """A TCP server on the grader's side that keeps every connection it accepts."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen()
    accepted: list = []

    def serve():
        while True:
            try:
                accepted.append(server.accept())
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted


def _host_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Grade the good submissions with and without the sandbox, then the hostile ones beside two more good ones."""
    if not SUPPORT.available:
        pytest.skip(f"no sandbox on this machine: {SUPPORT.reason}")
    base = tmp_path_factory.mktemp("sandbox")
    subs, out, plain, plain_out = base / "subs", base / "out", base / "plain", base / "plain-out"
    checks = base / "checks"
    checks.mkdir()
    (checks / "hidden_checks.py").write_text("assert answer == 42  # hidden check: students must not see it\n")
    for name, cells in GOOD.items():
        notebook(plain / name, *cells)
    for name in ("alice/hw.ipynb", "bob/hw.ipynb"):
        notebook(subs / name, *GOOD[name])
    environment = {"TWDL_GRADING": "1", "OMP_NUM_THREADS": "1"}
    plain_rows = grade_all(plan_tasks(find_submissions([plain]), plain_out, {}, timeout=240, env=environment,
                                      sandbox="off"), jobs=2, progress=False)
    first = grade_all(plan_tasks(find_submissions([subs]), out, {}, timeout=240, env=environment, sandbox="on"),
                      jobs=2, progress=False)

    server, accepted = _server("0.0.0.0")
    port = server.getsockname()[1]
    victims = [subs / "alice" / "hw.ipynb", subs / "bob" / "hw.ipynb", out / "executed" / "alice__hw.ipynb",
               out / "executed" / "bob__hw.ipynb", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    targets = {
        "notebooks": [str(p) for p in victims],
        "folders": [str(p) for p in (subs, subs / "alice", out, out / "executed", out / "work", out / "work" / "alice__hw",
                                     checks, ROOT, ROOT / "notebooks", Path.home())],
        "secrets": [str(p) for p in (subs / "alice" / "hw.ipynb", out / "executed" / "alice__hw.ipynb",
                                     out / "work" / "alice__hw" / "answer.txt", out / "executed" / "alice__hw.grade.json",
                                     ROOT / "notebooks" / "01_feedforward.ipynb", ROOT / "notebooks" / "01_feedforward.py",
                                     checks / "hidden_checks.py", Path.home() / ".bash_history")],
        "writes": [str(p) for p in (subs / "mallory.txt", subs / "alice" / "hw.ipynb", out / "grades.csv",
                                    out / "executed" / "alice__hw.ipynb", out / "work" / "mallory.txt",
                                    out / "work" / "alice__hw" / "answer.txt", checks / "hidden_checks.py",
                                    ROOT / "mallory.txt", ROOT / "twdl_helpers" / "mallory.txt", Path.home() / "mallory.txt",
                                    Path(sys.prefix) / "mallory.txt", Path("/etc/mallory.txt"), Path("/mallory.txt"))],
        "port": port, "hosts": ["127.0.0.1", "localhost"] + [a for a in [_host_address()] if a],
    }
    hostile(subs / "mallory_modify.ipynb", MODIFY, targets)
    hostile(subs / "mallory_read.ipynb", READ, targets)
    hostile(subs / "mallory_write.ipynb", WRITE, targets)
    hostile(subs / "mallory_network.ipynb", NETWORK, targets)
    notebook(subs / "mallory_kill.ipynb", TOOLS, *(textwrap.dedent(c) for c in KILL))
    for name in ("carol/hw.ipynb", "dave/hw.ipynb"):
        notebook(subs / name, *GOOD[name])
    kept = [subs / "alice", subs / "bob", out / "executed", out / "work" / "alice__hw", out / "work" / "bob__hw", checks]
    before = snapshot(*kept)
    tasks = plan_tasks(find_submissions([subs]), out, {}, timeout=240, env=environment, sandbox="on")
    second = grade_all(tasks, jobs=2, progress=False)
    server.close()
    after = {k: v for k, v in snapshot(*kept).items() if k in before}
    return {"base": base, "subs": subs, "out": out, "plain_rows": plain_rows, "first": first, "second": second,
            "before": before, "after": after, "accepted": accepted, "targets": targets, "checks": checks}


def _row(rows: list[dict], file: str) -> dict:
    return next(r for r in rows if r["file"] == file)


@needs_sandbox
def test_well_behaved_submissions_grade_exactly_as_without_the_sandbox(batch):
    sandboxed = comparable(batch["second"])
    plain = comparable(batch["plain_rows"])
    for file in GOOD:
        assert sandboxed[file] == plain[file], file
        assert _row(batch["second"], file)["sandboxed"] is True and _row(batch["plain_rows"], file)["sandboxed"] is False
    assert sandboxed["bob/hw.ipynb"]["records"]["m1.completed"] is True  # the runtime (torch) works inside
    assert sandboxed["carol/hw.ipynb"]["status"] == "error" and sandboxed["carol/hw.ipynb"]["failing_cell"] == 2
    assert sandboxed["dave/hw.ipynb"]["records"]["m1.files"] == ["dave__hw.ipynb"]  # its own work directory


@needs_sandbox
def test_a_submission_cannot_modify_other_notebooks_found_via_proc_or_the_file_system(batch):
    records = _row(batch["second"], "mallory_modify.ipynb")["records"]
    assert _row(batch["second"], "mallory_modify.ipynb")["status"] == "ok"
    assert records["hostile.notebooks_found"] > 0 and records["hostile.changed"] == []
    assert records["hostile.dropped"] == []
    assert batch["after"] == batch["before"]  # other submissions, their outputs, the check files: byte-identical
    base = batch["base"]
    assert not [p for p in [*base.rglob("mallory-was-here.txt"), *ROOT.rglob("mallory-was-here.txt")]]
    # the notebooks it knew by absolute path were refused, not just missed
    assert set(batch["targets"]["notebooks"]) <= set(records["hostile.refused"])


@needs_sandbox
def test_reading_other_work_solutions_checks_or_the_worker_fails_and_is_reported_in_its_own_output(batch):
    row = _row(batch["second"], "mallory_read.ipynb")
    reads = row["records"]["hostile.reads"]
    assert row["status"] == "ok" and set(batch["targets"]["secrets"]) <= set(reads)
    assert all(not result.startswith("ok") for result in reads.values()), reads
    assert reads["/proc/worker/environ"] == "PermissionError" and reads["/proc/worker/mem"] == "PermissionError"
    own = (batch["out"] / "executed" / "mallory_read.ipynb").read_text()
    assert "hidden_checks.py: FileNotFoundError" in own and "environ: PermissionError" in own
    assert "students must not see it" not in own  # the check's text never reached the submission
    for good in ("alice__hw", "bob__hw", "carol__hw", "dave__hw"):
        text = (batch["out"] / "executed" / f"{good}.ipynb").read_text()
        assert "hostile" not in text and "FileNotFoundError" not in text and "PermissionError" not in text


def test_the_reading_attack_succeeds_without_the_sandbox(tmp_path):
    """The control for the test above: the same code, unsandboxed, reads another student's notebook."""
    secret = notebook(tmp_path / "subs" / "alice" / "hw.ipynb", "print('alice secret answer')")
    hostile(tmp_path / "subs" / "mallory_read.ipynb", READ, {"secrets": [str(secret)]})
    tasks = plan_tasks(find_submissions([tmp_path / "subs"]), tmp_path / "out", {}, timeout=240, sandbox="off")
    row = _row(grade_all(tasks, jobs=2, progress=False), "mallory_read.ipynb")
    assert row["status"] == "ok" and row["records"]["hostile.reads"][str(secret)].startswith("ok")


@needs_sandbox
def test_writing_outside_the_work_directory_by_absolute_path_fails(batch):
    row = _row(batch["second"], "mallory_write.ipynb")
    writes = row["records"]["hostile.writes"]
    assert row["status"] == "ok" and set(writes) == set(batch["targets"]["writes"])
    assert all(result in ("OSError", "FileNotFoundError", "PermissionError") for result in writes.values()), writes
    landed = [path for path in writes if Path(path).name == "mallory.txt" and Path(path).exists()]
    assert not landed
    assert batch["after"] == batch["before"]


@needs_sandbox
def test_the_graders_loopback_and_network_are_unreachable(batch):
    row = _row(batch["second"], "mallory_network.ipynb")
    results = row["records"]["hostile.connect"]
    assert row["status"] == "ok" and set(results) == set(batch["targets"]["hosts"])
    assert all(not result.startswith("ok") for result in results.values()), results
    assert batch["accepted"] == []  # the server on the grader's side never saw a connection


@needs_sandbox
def test_a_submission_that_kills_what_it_sees_sees_none_of_the_graders_processes(batch):
    seen = json.loads((batch["out"] / "work" / "mallory_kill" / "seen.json").read_text())
    commands = list(seen.values())
    assert 2 <= len(commands) <= 4, commands  # bwrap's init, the worker, the kernel
    assert all(any(word in c for word in ("bwrap", "worker.py", "ipykernel")) for c in commands), commands
    assert not any(word in c for c in commands for word in ("alice", "bob", "carol", "dave", "-m pytest", "twdl grade"))
    assert _row(batch["second"], "mallory_kill.ipynb")["status"] == "error"  # it killed its own worker
    assert {_row(batch["second"], f)["status"] for f in ("dave/hw.ipynb",)} == {"ok"}
    assert not [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] and str(batch["out"]) in p.info["cwd"]]


@needs_sandbox
def test_the_worker_outcome_and_notebook_cannot_be_forged_from_the_work_directory(tmp_path):
    """A fake outcome file, writes to the worker's pipe, the executed notebook swapped for a link to another's."""
    victim = notebook(tmp_path / "victim.ipynb", "print('VICTIM ANSWERS')")
    forge = """\
        import glob
        run = glob.glob(".twdl-run-*")[0]
        json.dump({"status": "ok", "cell_index": None, "error": ""}, open(os.path.join(run, "outcome.json"), "w"))
        pipe = {fd: attempt(lambda: open(f"/proc/{os.getppid()}/fd/{fd}", "w").write('{"status": "ok"}'))
                for fd in range(3, 12)}
        print(pipe)
        attempt(lambda: os.remove(os.path.join(run, "executed.ipynb")))
        os.symlink(T["victim"], os.path.join(run, "executed.ipynb"))
        os._exit(0)
        """
    submitted = hostile(tmp_path / "work" / "forger.ipynb", forge, {"victim": str(victim)})
    result = run_notebook(submitted, tmp_path / "out" / "forger.ipynb", cwd=tmp_path / "work", timeout=120,
                          sandbox="on", env=batch_environment(figures=False))
    assert result.status == "error" and "no executed notebook was saved" in result.error, result
    published = (tmp_path / "out" / "forger.ipynb").read_text()
    assert "VICTIM ANSWERS" not in published and "os.symlink" in published  # the submitted notebook instead
    assert "PermissionError" not in published  # outputs are from the submission as submitted, none of the run's


def test_unavailable_sandbox_refuses_on_warns_for_auto_and_off(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(sandbox_module.BWRAP_VARIABLE, str(tmp_path / "no-bwrap"))
    assert not sandbox_support().available and "bubblewrap" in sandbox_support().reason
    with pytest.raises(SandboxUnavailable, match="--sandbox on, but bubblewrap"):
        use_sandbox("on")
    notebook(tmp_path / "subs" / "ann.ipynb", "print(x)")
    out = tmp_path / "out"
    assert twdl(["grade", str(tmp_path / "subs"), "--out", str(out), "--sandbox", "on"]) == 2
    err = capsys.readouterr().err
    assert "--sandbox on, but bubblewrap (bwrap) was not found" in err and "apt-get install bubblewrap" in err
    assert not out.exists()  # refused before anything ran

    assert twdl(["grade", str(tmp_path / "subs"), "--out", str(out), "--timeout", "240"]) == 0  # auto
    assert "warning: no sandbox: bubblewrap (bwrap) was not found" in capsys.readouterr().err
    assert pd.read_csv(out / "grades.csv")["status"].tolist() == ["ok"]
    assert json.loads((out / "executed" / "ann.grade.json").read_text())["row"]["sandboxed"] is False

    assert twdl(["grade", str(tmp_path / "subs"), "--out", str(out), "--sandbox", "off"]) == 0
    assert "--sandbox off: submissions run as your user" in capsys.readouterr().err
    assert twdl(["grade", "--check-sandbox"]) == 1
    assert "sandbox: NOT AVAILABLE" in capsys.readouterr().out


def test_a_machine_without_user_namespaces_is_reported_with_what_to_do(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"  # what bwrap does where user namespaces are off
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel "
                    "does not allow non-privileged user namespaces.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(sandbox_module.BWRAP_VARIABLE, str(fake))
    support = sandbox_support()
    assert not support.available and "No permissions to creating new namespace" in support.reason
    assert "unprivileged_userns_clone" in support.reason and "docs/grading.md" in support.reason
    assert use_sandbox("auto") is False and use_sandbox("off") is False
    with pytest.raises(SandboxUnavailable, match="user namespaces are probably disabled"):
        use_sandbox("on")


def test_sandbox_view_shows_the_runtime_read_only_and_nothing_else(tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text("hf_secret")
    (home / ".ssh").mkdir()
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "s3cret", "SSH_AUTH_SOCK": "/tmp/agent", "OMP_NUM_THREADS": "1",
           "TWDL_DATA_MIRROR": str(tmp_path / "mirror"), "HOME": str(home), "HF_TOKEN": "hf_secret"}
    env.pop("HF_HOME", None)
    (tmp_path / "mirror").mkdir()
    box = Sandbox(tmp_path / "work", env, "python3")
    shown = {dst for _, dst in box.bindings}
    assert home / ".cache" / "huggingface" / "hub" in shown and box.exposes(home / ".cache" / "huggingface" / "token") is None
    assert box.exposes(home / ".ssh") is None and box.environment()["HF_HUB_CACHE"] == str(home / ".cache/huggingface/hub")
    assert "HF_TOKEN" not in box.environment()
    assert any(Path(sys.prefix) == d or Path(sys.prefix).is_relative_to(d) for d in shown)
    assert tmp_path / "mirror" in shown and ROOT not in shown and Path.home() not in shown
    assert not any((ROOT / "notebooks").is_relative_to(d) or (ROOT / "tests").is_relative_to(d) for d in shown)
    assert box.exposes(tmp_path / "mirror" / "grades") == tmp_path / "mirror"
    assert box.exposes(tmp_path / "work") is None
    with pytest.raises(SandboxUnavailable, match="lies inside"):
        Sandbox(tmp_path / "mirror" / "work", env, "python3").command(["true"])
    inside = sandbox_environment(env)
    assert "AWS_SECRET_ACCESS_KEY" not in inside and "SSH_AUTH_SOCK" not in inside
    assert inside["HOME"] == "/tmp/home" and inside["OMP_NUM_THREADS"] == "1" and inside["TWDL_OFFLINE"] == "1"
    assert box.environment()["TWDL_DATA_MIRROR"] == str(tmp_path / "mirror")


def test_grade_refuses_output_folders_the_sandbox_would_show(tmp_path, monkeypatch, capsys):
    if not SUPPORT.available:
        pytest.skip(f"no sandbox on this machine: {SUPPORT.reason}")
    mirror = tmp_path / "mirror"
    notebook(tmp_path / "subs" / "ann.ipynb", "print(x)")
    mirror.mkdir()
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(mirror))
    assert twdl(["grade", str(tmp_path / "subs"), "--out", str(mirror / "grades")]) == 2
    assert "which the sandbox shows every submission" in capsys.readouterr().err


@needs_sandbox
def test_check_sandbox_passes_every_probe(capsys):
    assert twdl(["grade", "--check-sandbox"]) == 0
    report = capsys.readouterr().out
    assert "FAIL" not in report and "probes passed: submissions will run sandboxed" in report
