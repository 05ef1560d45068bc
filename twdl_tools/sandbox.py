"""Confine one notebook execution with bubblewrap: a read-only view of the Python runtime, one writable folder, no network.

`twdl grade` runs each submission's whole worker (papermill and the kernel it starts) inside `bwrap`, so the
student's code sees its own work directory, a private /tmp, the Python environment, system libraries and the
data mirror/cache (read-only), its own processes only, and no network but its private loopback.
`sandbox_support()` says whether this machine can do it; `check_sandbox()` is `twdl grade --check-sandbox`.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from twdl_helpers.files import OFFLINE_ENVIRONMENT

__all__ = [
    "SANDBOX_MODES", "SandboxUnavailable", "SandboxSupport", "Sandbox", "sandbox_support", "use_sandbox",
    "sandbox_environment", "SANDBOX_HOME",
]

SANDBOX_MODES = ("auto", "on", "off")
BWRAP_VARIABLE = "TWDL_BWRAP"  # path of the bwrap binary to use (default: bwrap on PATH)
SANDBOX_HOME = "/tmp/home"  # HOME inside the sandbox: on its private /tmp, gone when the submission ends
TMPFS_MB = 1024  # size of the private /tmp and /dev/shm (they live in memory)
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`), "
                "or grade inside a container without network (docs/grading.md, 'Without bubblewrap')")
# What the runtime needs from /etc (the rest, e.g. /etc/shadow, stays invisible).
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "hosts", "host.conf",
               "localtime", "timezone", "mime.types", "alternatives", "ssl", "ca-certificates", "fonts", "os-release")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Variables that pass into the sandbox (names, or prefixes ending in "_"); everything else (tokens, keys,
# SSH_AUTH_SOCK, DISPLAY, ...) stays outside.
ENV_NAMES = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUNBUFFERED",
             "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH",
             "CUBLAS_WORKSPACE_CONFIG", "PYDEVD_DISABLE_FILE_VALIDATION", "TOKENIZERS_PARALLELISM"}
ENV_PREFIXES = ("LC_", "TWDL_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "VECLIB_", "KMP_", "CUDA_", "NVIDIA_",
                "PYTORCH_", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class SandboxUnavailable(RuntimeError):
    """`--sandbox on` was asked for on a machine where bubblewrap cannot confine a process."""


@dataclass(frozen=True)
class SandboxSupport:
    """Whether this machine can run the sandbox: the bwrap binary, its version, or why not."""

    available: bool
    reason: str = ""
    bwrap: str | None = None
    version: str = ""
    options: frozenset[str] = frozenset()  # optional bwrap flags this version knows (--disable-userns, --size)


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str | None, platform: str) -> SandboxSupport:
    if platform != "linux":
        return SandboxSupport(False, f"the sandbox needs Linux (bubblewrap); this is {platform}: grade inside a Linux "
                              "container without network instead (docs/grading.md, 'Without bubblewrap')")
    if not bwrap or not Path(bwrap).is_file():
        return SandboxSupport(False, f"bubblewrap (bwrap) was not found{f' at {bwrap}' if bwrap else ''}: {INSTALL_HINT}")
    try:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        helptext = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
        trial = subprocess.run(
            [bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent", "--ro-bind", "/", "/",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "true"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return SandboxSupport(False, f"{bwrap} could not be run ({type(err).__name__}: {err})", bwrap)
    if trial.returncode != 0:
        detail = " ".join(trial.stderr.split())[:300] or f"exit code {trial.returncode}"
        return SandboxSupport(False, f"{bwrap} cannot create a sandbox here ({detail}); user namespaces are probably "
                              "disabled (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04+ "
                              "kernel.apparmor_restrict_unprivileged_userns=0), or this is a container that forbids them "
                              "(docs/grading.md, 'Where it is not available')",
                              bwrap, version)
    options = frozenset(flag for flag in ("--disable-userns", "--size") if flag in helptext)
    return SandboxSupport(True, "", bwrap, version, options)


def sandbox_support() -> SandboxSupport:
    """Can this machine run submissions in bubblewrap? (checked once per process by starting an empty sandbox)."""
    bwrap = os.environ.get(BWRAP_VARIABLE) or shutil.which("bwrap")
    return _probe(bwrap, sys.platform)


def use_sandbox(mode: str | bool) -> bool:
    """Resolve `--sandbox auto|on|off` here: on raises SandboxUnavailable when unsupported, auto falls back to off."""
    if isinstance(mode, bool):
        mode = "on" if mode else "off"
    if mode not in SANDBOX_MODES:
        raise ValueError(f"sandbox mode must be one of {SANDBOX_MODES}, not {mode!r}")
    if mode == "off":
        return False
    support = sandbox_support()
    if mode == "on" and not support.available:
        raise SandboxUnavailable(f"--sandbox on, but {support.reason}")
    return support.available


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _python_roots(executable: str | Path) -> list[Path]:
    """The folders an interpreter needs: its environment's prefix and, for a venv, the base installation."""
    exe = Path(executable)
    roots = [exe.parent.parent, Path(os.path.realpath(exe)).parent.parent]
    config = exe.parent.parent / "pyvenv.cfg"
    if config.is_file():
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                roots.append(Path(value.strip()).parent)
    return roots


def _package_dirs(names: tuple[str, ...]) -> list[Path]:
    """Where the packages the kernel imports live (an editable install keeps them in the repository)."""
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None:
            found += [Path(p) for p in (spec.submodule_search_locations or [])]
    return found


def _kernel_spec(kernel: str | None) -> tuple[Path | None, list[str]]:
    """The kernelspec folder of `kernel` and its command line (None when Jupyter does not know the name)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        spec = KernelSpecManager().get_kernel_spec(kernel or "python3")
    except (ImportError, NoSuchKernel, OSError, ValueError):
        return None, []
    return Path(spec.resource_dir), list(spec.argv)


def sandbox_environment(env: dict[str, str]) -> dict[str, str]:
    """The kernel's environment inside the sandbox: only the allowed variables of `env`, home and temp inside, offline."""
    kept = {k: v for k, v in env.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    kept.update(OFFLINE_ENVIRONMENT)  # there is no network inside: fail fast instead of waiting for one
    kept.update({"HOME": SANDBOX_HOME, "TMPDIR": "/tmp"})
    return kept


@dataclass
class Sandbox:
    """The view one execution gets: `writable` read-write, the runtime read-only, nothing else."""

    writable: Path  # the submission's work directory (also the current directory)
    env: dict[str, str]  # the environment the kernel would get without the sandbox
    kernel: str | None = None
    read_only: list[Path] = field(default_factory=list)  # extra files or folders to show read-only (the worker script)
    packages: tuple[str, ...] = ("twdl_helpers",)

    def __post_init__(self) -> None:
        self.writable = Path(self.writable).resolve()
        self.bindings, self.variables = self._view()

    def _view(self) -> tuple[list[tuple[Path, Path]], dict[str, str]]:
        """(source, destination) read-only binds and the variables that point inside them."""
        variables: dict[str, str] = {}
        home = Path(self.env.get("HOME") or Path.home()).expanduser()
        prefixes = [Path(p) for p in dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix])]
        broad = [p for p in prefixes if _inside(home, p) or p == Path("/")]
        if broad:
            raise SandboxUnavailable(f"the Python installation at {broad[0]} contains your home folder {home}, which the "
                                     "sandbox would then show: install the tooling in a virtual environment")
        roots: list[Path] = [*prefixes, *_python_roots(sys.executable)]
        roots += [Path(p) for p in site.getsitepackages()]
        if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
            roots.append(Path(site.getusersitepackages()))  # that folder only, not the rest of ~/.local
            variables["PYTHONUSERBASE"] = site.getuserbase()  # HOME differs inside, so name it
        python_path = []
        for folder in _package_dirs(self.packages):
            if not any(_inside(folder, Path(r)) for r in roots):
                roots.append(folder)
                python_path.append(str(folder.parent))
        if python_path:
            variables["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
        spec_dir, argv = _kernel_spec(self.kernel)
        if spec_dir is not None:
            roots.append(spec_dir)
            variables["JUPYTER_PATH"] = str(spec_dir.parent.parent)
            if argv and os.path.isabs(argv[0]):
                roots += _python_roots(argv[0])
        hf_home = Path(self.env.get("HF_HOME") or home / ".cache" / "huggingface").expanduser()
        # Hugging Face's downloads, not HF_HOME itself: it also holds your access token
        caches = {"TWDL_CACHE": self.env.get("TWDL_CACHE") or home / ".cache" / "twdl",
                  "HF_HUB_CACHE": self.env.get("HF_HUB_CACHE") or hf_home / "hub",
                  "HF_DATASETS_CACHE": self.env.get("HF_DATASETS_CACHE") or hf_home / "datasets",
                  "TORCH_HOME": self.env.get("TORCH_HOME") or home / ".cache" / "torch"}
        for name, value in caches.items():
            if Path(value).expanduser().is_dir():
                roots.append(Path(value).expanduser())
                variables[name] = str(Path(value).expanduser())
        mirror = self.env.get("TWDL_DATA_MIRROR")
        if mirror and Path(mirror).expanduser().is_dir():
            roots.append(Path(mirror).expanduser())
        roots += [Path(p) for p in self.read_only]
        binds: dict[Path, Path] = {}
        for root in roots:  # guesses that would show your home or "/" (a python in ~/bin) are dropped
            if root.exists() and not _inside(home, root.absolute()) and root.absolute() != Path("/"):
                binds[root.absolute()] = root.absolute()
                real = Path(os.path.realpath(root))
                binds.setdefault(real, real)  # a symlinked prefix: show the target too
        # a folder inside another one is already visible through it
        kept = [(src, dst) for src, dst in binds.items() if not any(o != dst and _inside(dst, o) for o in binds.values())]
        return sorted(kept, key=lambda pair: len(pair[1].parts)), variables

    def exposes(self, path: str | Path) -> Path | None:
        """The read-only root through which `path` would be visible inside the sandbox, else None."""
        path = Path(os.path.realpath(path))
        for _, dst in self.bindings:
            if _inside(path, Path(os.path.realpath(dst))):
                return dst
        return None

    def environment(self) -> dict[str, str]:
        """The environment to start bwrap with (it passes it to the command)."""
        return {**sandbox_environment(self.env), **self.variables}

    def check(self) -> SandboxSupport:
        """Raise SandboxUnavailable unless bwrap runs here and the writable folder is not shown through another."""
        exposed = self.exposes(self.writable)
        if exposed is not None:
            raise SandboxUnavailable(f"the work directory {self.writable} lies inside {exposed}, which the sandbox "
                                     "shows read-only (with everything beside it): choose an output folder elsewhere")
        support = sandbox_support()
        if not support.available:
            raise SandboxUnavailable(support.reason)
        return support

    def command(self, argv: list[str]) -> list[str]:
        """`argv` wrapped in bwrap: new namespaces, no capabilities, the view above, cwd = the writable folder."""
        support = self.check()
        size = lambda: ["--size", str(TMPFS_MB * 2**20)] if "--size" in support.options else []  # noqa: E731
        cmd = [support.bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent",
               "--new-session"]
        if "--disable-userns" in support.options:
            cmd.append("--disable-userns")
        for folder in SYSTEM_DIRS:
            if os.path.islink(folder):
                cmd += ["--symlink", os.readlink(folder), folder]
            elif os.path.isdir(folder):
                cmd += ["--ro-bind", folder, folder]
        for entry in ETC_ENTRIES:
            cmd += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
        cmd += ["--ro-bind", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev", *size(), "--tmpfs", "/dev/shm"]
        for device in sorted(Path("/dev").glob("nvidia*")):  # GPUs, when the machine has them
            cmd += ["--dev-bind", str(device), str(device)]
        cmd += [*size(), "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
        # Folders shown below /tmp (a work directory there, as in tests) get their parents on a read-only tmpfs of
        # their own, so that writing beside them fails as it does outside /tmp (else it would land in private /tmp).
        shown = [self.writable, *(dst for _, dst in self.bindings)]
        tops = sorted({Path("/tmp", p.relative_to("/tmp").parts[0]) for p in shown if Path("/tmp") in p.parents}
                      - set(shown))
        for top in tops:
            cmd += ["--tmpfs", str(top)]
        for src, dst in self.bindings:
            cmd += ["--ro-bind", str(src), str(dst)]
        cmd += ["--bind", str(self.writable), str(self.writable)]
        for top in tops:
            cmd += ["--remount-ro", str(top)]
        cmd += ["--remount-ro", "/", "--chdir", str(self.writable)]
        return [*cmd, "--", *argv]
