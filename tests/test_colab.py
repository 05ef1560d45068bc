"""Colab readiness, checked offline: the setup cell's install line, and every dependency range against the
versions Colab's GPU runtime preinstalls (the table in docs/colab.md), so the install keeps Colab's torch."""
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import twdl_helpers
from twdl_tools.repo import module_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]


def colab_versions() -> dict[str, str | None]:
    """package -> Colab's version (None: not preinstalled), from the table in docs/colab.md."""
    rows = re.findall(r"^\| ([A-Za-z0-9_.-]+) \| ([^|]+?) \|", (ROOT / "docs" / "colab.md").read_text(), re.M)
    table = {canonicalize_name(name): version.strip() for name, version in rows if name != "package"}
    return {name: None if version == "not preinstalled" else version for name, version in table.items()}


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def test_every_runtime_dependency_accepts_colabs_preinstalled_version():
    versions = colab_versions()
    missing = [r.name for r in runtime_requirements() if canonicalize_name(r.name) not in versions]
    assert not missing, f"add these dependencies to the Colab table in docs/colab.md: {missing}"
    conflicts = [f"{r} vs Colab {versions[canonicalize_name(r.name)]}" for r in runtime_requirements()
                 if versions[canonicalize_name(r.name)] is not None
                 and not r.specifier.contains(versions[canonicalize_name(r.name)], prereleases=True)]
    assert not conflicts, f"the Colab install would replace preinstalled packages: {conflicts}"
    assert versions["torch"] is not None and versions["bitsandbytes"] is None


def test_setup_cell_installs_the_repository_on_colab_only_and_never_pins_torch():
    from twdl_tools.notebooks import colab_setup_source

    source = colab_setup_source()
    assert 'if "google.colab" in sys.modules:' in source
    assert '"twdl-helpers @ git+"' in source and f'"{twdl_helpers.REPOSITORY_URL}"' in source
    assert "torch" not in source.split("pip", 1)[1]  # Colab's CUDA build of torch is kept
    for notebook in module_notebooks(notebooks_dir(ROOT), ".py"):
        assert source in notebook.read_text(), f"{notebook.name}: colab-setup cell differs; run `twdl sync`"
