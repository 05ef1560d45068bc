"""The house's shape: the students' runtime never reaches into the tooling, no module reads another's private names,
and the layout tables match the tree."""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME, TOOLING = ROOT / "twdl_helpers", ROOT / "twdl_tools"
TOOLING_ONLY = {"twdl_tools", "dask", "distributed", "papermill", "jupytext", "nbclient", "yaml", "tabulate",
                "jupyter_book", "nbval", "pytest"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (absolute imports; relative ones stay inside the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_runtime_imports_nothing_from_the_tooling_or_its_libraries():
    offenders = {str(p.relative_to(ROOT)): sorted(imported_modules(p) & TOOLING_ONLY)
                 for p in RUNTIME.rglob("*.py") if imported_modules(p) & TOOLING_ONLY}
    assert not offenders, f"runtime modules import tooling-only packages: {offenders}"


def test_runtime_never_goes_up_out_of_its_package():
    for path in RUNTIME.rglob("*.py"):
        depth = len(path.relative_to(RUNTIME).parts) - 1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level <= depth + 1, f"{path.relative_to(ROOT)} imports above twdl_helpers"


def test_every_runtime_module_declares_its_public_names():
    missing = [str(p.relative_to(ROOT)) for p in RUNTIME.rglob("*.py")
               if p.name != "__init__.py" and "__all__" not in p.read_text(encoding="utf-8")]
    assert not missing, f"set __all__ in {missing} (CONTRIBUTING.md)"


def _layout_paths(text: str) -> set[str]:
    """Package paths named in a markdown layout table or tree (twdl_helpers/... and twdl_tools/...)."""
    return set(re.findall(r"`?((?:twdl_helpers|twdl_tools)/[A-Za-z0-9_/.<>-]*)`?", text))


def _tree_names(package: Path) -> set[str]:
    return {f"{package.name}/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def test_contributing_layout_table_names_every_module_and_nothing_else():
    named = _layout_paths((ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    actual = _tree_names(RUNTIME) | _tree_names(TOOLING)
    covered = set()
    for entry in named:
        if "<" in entry:  # a pattern row such as twdl_helpers/data/<dataset>.py
            pattern = re.escape(entry).replace(re.escape("<dataset>"), "[a-z_]+").replace(re.escape("<family>"), "[a-z_]+")
            covered |= {a for a in actual if re.fullmatch(pattern, a)}
        elif entry.endswith("/"):
            covered |= {a for a in actual if a.startswith(entry)}
        else:
            covered.add(entry)
    assert actual - covered == set(), f"CONTRIBUTING.md's layout table omits {sorted(actual - covered)}"
    stale = {e for e in named if "<" not in e and not (ROOT / e).exists()}
    assert not stale, f"CONTRIBUTING.md names paths that do not exist: {sorted(stale)}"


def test_readme_layout_names_both_packages_and_their_folders():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):]
    for folder in ("notebooks/", "twdl_helpers/", "twdl_tools/", "tests/", "bench/", "docs/", "scripts/"):
        if (ROOT / folder).is_dir():
            assert folder in layout, f"README's layout omits {folder}"
    named = _layout_paths(layout)
    missing = [n for n in named if "<" not in n and not (ROOT / n).exists()]
    assert not missing, f"README's layout names paths that do not exist: {missing}"


# --- No module reads another module's private names -------------------------------------------------------------
# A name that starts with one underscore belongs to its module. Another module (outside tests) that imports it,
# reads it as `module._name` or `getattr(module, "_name")`, or fetches the module by name first
# (`sys.modules.get("twdl_helpers.x")`, `importlib.import_module(...)`) reaches into state it does not own: give the
# owner a public accessor instead. Code kept in a string and run elsewhere (the grading cell) is read too.
CODE = [ROOT / folder for folder in ("twdl_helpers", "twdl_tools", "scripts", "bench", "notebooks", "autograder")]
PACKAGES = (RUNTIME, TOOLING)


def _module_name(path: Path) -> str | None:
    """The dotted name of a package file (`twdl_helpers.data.fetch`); None outside the two packages."""
    if not any(path.is_relative_to(package) for package in PACKAGES):
        return None
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


OUR_MODULES = {name for folder in PACKAGES for p in folder.rglob("*.py") if (name := _module_name(p))}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.AST) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but names and attributes."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id, *reversed(names)] if isinstance(node, ast.Name) else None


def _module_by_name(call: ast.AST) -> str | None:
    """The module a `sys.modules.get("m")`, `sys.modules["m"]` or `importlib.import_module("m")` expression fetches."""
    if isinstance(call, ast.Subscript) and _dotted(call.value) == ["sys", "modules"]:
        argument = call.slice
    elif isinstance(call, ast.Call) and _dotted(call.func) in (["sys", "modules", "get"], ["importlib", "import_module"]) \
            and call.args:
        argument = call.args[0]
    else:
        return None
    value = argument.value if isinstance(argument, ast.Constant) else None
    return value if value in OUR_MODULES else None


def private_reads(source: str, module: str | None, bound: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """(line, "module._name") for each private name of another of our modules that `source` reads."""
    tree = ast.parse(source)
    package = module if module and (ROOT / module.replace(".", "/")).is_dir() else (module or "").rpartition(".")[0]
    bound = dict(bound or {})  # local name -> our module it stands for
    found: list[tuple[int, str]] = []

    def offence(node: ast.AST, owner: str, name: str) -> None:
        if owner != module and _private(name):
            found.append((node.lineno, f"{owner}.{name}"))

    def resolve(names: list[str]) -> tuple[str, str] | None:
        """(owner module, attribute) for a dotted read that reaches an attribute of one of our modules."""
        if names[0] not in bound:
            return None
        owner = bound[names[0]]
        for name in names[1:]:
            if f"{owner}.{name}" in OUR_MODULES:
                owner = f"{owner}.{name}"
            else:
                return owner, name
        return None

    for node in ast.walk(tree):  # bindings first (scopes are not told apart: a name means one module per file)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in OUR_MODULES:
                    bound[alias.asname] = alias.name
                elif not alias.asname and alias.name.split(".")[0] in OUR_MODULES:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in OUR_MODULES:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif base in OUR_MODULES:
                    offence(node, base, alias.name)
        elif isinstance(node, ast.Assign) and (fetched := _module_by_name(node.value)):
            bound.update({t.id: fetched for t in node.targets if isinstance(t, ast.Name)})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and (names := _dotted(node)):
            if (hit := resolve(names)) and hit[1] == node.attr:
                offence(node, *hit)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            target = _dotted(node.args[0])
            owner = _module_by_name(node.args[0]) or (target and (f"{bound[target[0]]}" if len(target) == 1
                                                                  and target[0] in bound else None))
            if owner:
                offence(node, owner, str(node.args[1].value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value:
            try:  # a program kept in a string (run in a kernel): read it the same way
                inner = private_reads(node.value, module, bound)
            except SyntaxError:
                continue
            found += [(node.lineno + line - 1, f"{read} (in the code string at line {node.lineno})") for line, read in inner]
    return found


def _code_files() -> list[Path]:
    return sorted(p for folder in CODE for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _code_files()])
def test_no_module_reads_another_modules_private_names(path):
    bound = {"twdl": "twdl_helpers"} if path.parent.name == "autograder" else {}  # the grader binds `twdl` there
    reads = private_reads(path.read_text(encoding="utf-8"), _module_name(path), bound)
    assert not reads, f"{path.relative_to(ROOT)} reads private names of other modules (give the owner a public " \
                      "accessor):\n" + "\n".join(f"  line {line}: {read}" for line, read in reads)


def test_the_private_name_check_sees_each_way_of_reaching_in():
    reads = private_reads(
        "from .params import _DECLARED\n"
        "import twdl_helpers.files as f\n"
        "import twdl_tools\n"
        "f._hidden\n"
        "twdl_tools.repo._secret\n"
        "live = sys.modules.get('twdl_helpers.common')\n"
        "getattr(live, '_state', None)\n"
        "CELL = '''\nimport twdl_helpers.training\ntwdl_helpers.training._rows\n'''\n"
        "f.public, f.__name__\n", "twdl_helpers.questions")
    assert [read for _, read in reads] == [
        "twdl_helpers.params._DECLARED", "twdl_helpers.files._hidden", "twdl_tools.repo._secret",
        "twdl_helpers.common._state", "twdl_helpers.training._rows (in the code string at line 8)"]


def test_both_packages_pass_the_linter():
    assert importlib.util.find_spec("ruff"), "ruff is missing: install the dev extra (pip install -e '.[tools,dev]')"
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "twdl_helpers", "twdl_tools"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff ([tool.ruff] in pyproject.toml) finds problems:\n{done.stdout}{done.stderr}"


def test_code_and_notebooks_name_no_defect_ids():
    """Defect ids (D1-D28) belong to docs/fixes*.md; code, notebooks and the messages people see give the reason in
    words (a student reading a notebook has no list of ids)."""
    sources = [p for package in PACKAGES for p in sorted(package.rglob("*.py"))]
    sources += sorted((ROOT / "notebooks").glob("0*.py"))
    found = [f"{p.relative_to(ROOT)}:{number}: {line.strip()}" for p in sources
             for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\bD\d{1,2}\b|\bd\d{1,2}_[a-z]", line)]
    assert not found, "defect ids in code or notebooks (say the reason in words):\n" + "\n".join(found)
