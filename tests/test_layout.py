"""The house's shape: the students' runtime never reaches into the tooling, and the layout tables match the tree."""
import ast
import re
from pathlib import Path

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
