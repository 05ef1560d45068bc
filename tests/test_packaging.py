"""The package's own files agree: dependencies, console script, CI entry point."""
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _normalise(specs):
    return {Requirement(s).name.lower().replace("_", "-"): str(Requirement(s).specifier) for s in specs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for deps in project["optional-dependencies"].values() for d in deps]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert _normalise(pip_section) == _normalise(declared)


def test_console_script_and_ci_call_make_test():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["twdl"] == "twdl_tools.cli:main"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_twdl_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "twdl_tools.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("run", "grade", "sync", "execute-references", "book", "bench", "lm"):
        assert command in out


def test_bundled_package_data_is_small():
    package = ROOT / "twdl_helpers"
    size = sum(p.stat().st_size for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 10 * 1024 * 1024, f"package data is {size / 2**20:.1f} MB; keep it under 10 MB"
