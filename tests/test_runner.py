"""`twdl run`: parameter parsing and pre-checks, notebook selection, end-to-end runs with papermill."""
import json
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from twdl_tools.cli import main as twdl
from twdl_tools.execute import ResourceLimits, run_notebook
from twdl_helpers.params import parse_parameter_values
from twdl_helpers.params import check_notebook_parameters as check_parameters
from twdl_tools.repo import module_notebooks, notebooks_dir, resolve_notebooks

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMS = 'profile = "smoke"  # @param ["smoke", "full"]\nseed = 0\nlr = 0.1\noptimizer = "sgd"  # @param ["sgd", "adam"]\noutput_dir = "out"'


def make_notebook(path: Path, *cells: str, params: str | None = PARAMS, validate: bool = True) -> Path:
    """A module-shaped notebook: watch_parameters, a parameters cell, the validator, then `cells`."""
    body = [new_markdown_cell("# test notebook")]
    if validate:
        body.append(new_code_cell("import twdl_helpers as twdl\ntwdl.watch_parameters()"))
    if params is not None:
        body.append(new_code_cell(params, metadata={"tags": ["parameters"]}))
    if validate:
        body.append(new_code_cell('p = twdl.validate_parameters(globals())'))
    body += [new_code_cell(source) for source in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=body, metadata={"kernelspec": KERNELSPEC}), str(path))
    return path


def test_parameter_values_are_literals_else_strings():
    values = parse_parameter_values(["epochs=3", "lr=1e-3", "flag=True", "none=None", "sizes=[8, 16]",
                                     "name=smoke", "yaml_flag=true", "word=yes", "text=a=b"])
    assert values == {"epochs": 3, "lr": 1e-3, "flag": True, "none": None, "sizes": [8, 16], "name": "smoke",
                      "yaml_flag": True, "word": "yes", "text": "a=b"}
    with pytest.raises(ValueError, match="name=value"):
        parse_parameter_values(["epochs"])


def test_precheck_names_unknown_and_mistyped_parameters(tmp_path):
    nb = make_notebook(tmp_path / "01_demo.ipynb", "x = 1")
    assert check_parameters(nb, {"lr": 0.5, "seed": 3, "profile": "full"}) == []
    [problem] = check_parameters(nb, {"epoch": 3, "seed": "three", "profile": "huge"})
    assert "unknown parameter(s) ['epoch']" in problem
    assert "seed='three' is not allowed: expected int" in problem
    assert "profile='huge' is not allowed: expected one of 'smoke', 'full'" in problem
    assert "Allowed parameters: profile: one of 'smoke', 'full'; seed: int; lr: float" in problem
    [problem] = check_parameters(make_notebook(tmp_path / "bare.ipynb", params=None, validate=False), {"x": 1})
    assert "no cell tagged 'parameters'" in problem


def test_resolve_by_stem_prefix_name_path_and_all(tmp_path):
    for name in ("01_feedforward", "02_optimisation", "scratch"):
        make_notebook(tmp_path / f"{name}.ipynb")
    assert [p.stem for p in resolve_notebooks("all", tmp_path)] == ["01_feedforward", "02_optimisation"]
    assert resolve_notebooks("01", tmp_path)[0].stem == "01_feedforward"
    assert resolve_notebooks("optimisation", tmp_path)[0].stem == "02_optimisation"
    assert resolve_notebooks(str(tmp_path / "scratch.ipynb"))[0].name == "scratch.ipynb"
    with pytest.raises(FileNotFoundError, match="01_feedforward, 02_optimisation"):
        resolve_notebooks("03", tmp_path)
    with pytest.raises(ValueError, match="several"):
        resolve_notebooks("0", tmp_path)


def test_run_precheck_fails_fast_without_starting_a_kernel(tmp_path, capsys):
    make_notebook(tmp_path / "nbs" / "01_demo.ipynb", "x = 1")
    start = time.monotonic()
    code = twdl(["run", "01", "--notebooks-dir", str(tmp_path / "nbs"), "--output-dir", str(tmp_path / "runs"),
                 "-p", "learning_rate=0.1"])
    assert code == 2 and time.monotonic() - start < 5
    assert "unknown parameter(s) ['learning_rate']" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_writes_notebooks_metrics_and_summary(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    make_notebook(nbs / "01_good.ipynb", "twdl.record('m1.completed', True)\ntwdl.record('m1.score', lr * 10)\n"
                  "import pathlib; pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)")
    make_notebook(nbs / "02_bad.ipynb", "print('before')", "raise KeyError('no such column')", validate=False)
    out = tmp_path / "runs"
    code = twdl(["run", "all", "--notebooks-dir", str(nbs), "--output-dir", str(out), "--jobs", "2",
                 "--profile", "smoke", "-p", "lr=0.25", "--timeout", "300"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED 02_bad: error in cell 3: KeyError: 'no such column'" in err and "FAILED 01_good" not in err
    assert json.loads((out / "01_good.metrics.json").read_text()) == {"m1.completed": True, "m1.score": 2.5}
    assert json.loads((out / "02_bad.metrics.json").read_text()) == {}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["notebook", "status", "runtime_s", "error", "m1.completed", "m1.score"]
    assert list(summary["notebook"]) == ["01_good", "02_bad"] and list(summary["status"]) == ["ok", "error"]
    assert summary.loc[1, "error"] == "cell 3: KeyError: 'no such column'"  # index in the notebook as written
    assert summary.loc[0, "m1.score"] == 2.5 and bool(summary.loc[0, "m1.completed"])
    executed = nbformat.read(str(out / "02_bad.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert any("before" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))  # partial kept
    assert (out / "01_good").is_dir()  # output_dir was pointed into the run folder

    make_notebook(nbs / "02_bad.ipynb", "x = 1", validate=False)  # fixed: rerun it alone
    assert twdl(["run", "02", "--notebooks-dir", str(nbs), "--output-dir", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("notebook")
    assert list(summary["status"]) == ["ok", "ok"] and summary.loc["01_good", "m1.score"] == 2.5  # rows merged
    assert not list(out.glob(".twdl-exec-*")) and not list(out.glob(".*.tmp"))


def test_in_notebook_validator_rejects_unknown_name_when_precheck_is_bypassed(tmp_path):
    nb = make_notebook(tmp_path / "nb.ipynb", "print('never')")
    result = run_notebook(nb, tmp_path / "out.ipynb", {"lrr": 0.1}, timeout=300, limits=ResourceLimits(file_mb=64))
    assert result.status == "error" and result.cell_index == 3
    assert result.error.startswith("ParameterError: unknown parameter(s) ['lrr']. Allowed parameters: profile: one of")


def test_run_real_module_notebook_smoke(tmp_path):
    out = tmp_path / "runs"
    code = twdl(["run", "01", "--profile", "smoke", "--notebooks-dir", str(notebooks_dir(ROOT)), "--output-dir", str(out)])
    summary = pd.read_csv(out / "summary.csv")
    assert code == 0, summary.to_dict("records")
    assert summary.loc[0, "status"] == "ok"
    metrics = json.loads((out / "01_feedforward.metrics.json").read_text())
    assert "m1.completed" in metrics and len(metrics) > 3


# Bad values for every module notebook: each is refused before any kernel starts, naming the parameter, the
# value and what is allowed (exit 2). (notebook, -p text, the problem the message must state)
BAD_VALUES = [
    *[(nb, text, problem) for nb in ("01", "02", "03", "04") for text, problem in [
        ("profile=huge", "profile='huge' is not allowed: expected one of 'smoke', 'full'"),
        ("device=tpu", "device='tpu' is not allowed: expected one of 'auto', 'cpu', 'cuda', 'mps'"),
        ("seed=abc", "seed='abc' is not allowed: expected int"),
        ("seed=None", "seed=None is not allowed: expected int"),
        ("data_source=mirror", "data_source='mirror' is not allowed: expected one of 'auto', 'full', 'sample'"),
        ("completed=1", "completed=1 is not allowed: expected bool"),
        ("output_dir=None", "output_dir=None is not allowed: expected str"),
        ("epoch=3", "unknown parameter(s) ['epoch']"),
    ]],
    *[(nb, text, problem) for nb in ("01", "02", "03") for text, problem in [
        ("epochs=abc", "epochs='abc' is not allowed: expected int >= 1 or None"),
        ("epochs=-3", "epochs=-3 is not allowed: expected int >= 1 or None"),
        ("epochs=0", "epochs=0 is not allowed: expected int >= 1 or None"),
        ("epochs=2.5", "epochs=2.5 is not allowed: expected int >= 1 or None"),
    ]],
    ("01", "run_improved=yes", "run_improved='yes' is not allowed: expected bool or None"),
    ("03", "dataset=imagenet", "dataset='imagenet' is not allowed: expected one of 'auto', 'afhq', 'cifar_animals'"),
    ("04", "steps=0", "steps=0 is not allowed: expected int >= 1 or None"),
    ("04", "precision=fp8", "precision='fp8' is not allowed: expected one of 'auto', 'bf16', 'fp16', 'fp32'"),
    ("04", "text_path=/no/such/file.txt", "text_path='/no/such/file.txt' is not allowed: expected existing path or "
                                          "one of ''"),
]


@pytest.mark.parametrize("module, text, problem", BAD_VALUES)
def test_every_module_refuses_bad_values_before_a_kernel_starts(module, text, problem, tmp_path, capsys):
    assert twdl(["run", module, "-p", text, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert problem in err and "Allowed parameters:" in err, err
    assert not list(tmp_path.iterdir())  # refused before anything ran: no executed notebook, no summary


@pytest.mark.parametrize("notebook", module_notebooks(notebooks_dir(ROOT)), ids=lambda p: p.stem)
def test_every_module_parameter_declares_what_it_allows(notebook):
    from twdl_helpers.params import notebook_parameters

    untyped = [name for name, spec in notebook_parameters(notebook).items() if spec.rule == "any"]
    assert not untyped, f"{notebook.name}: give {untyped} a spec (e.g. '# ... [int >= 1 or None]' above it)"


def test_run_parameters_are_the_declared_defaults_overlaid_with_the_given_values():
    from twdl_helpers.params import run_parameters

    nb = new_notebook(cells=[new_code_cell('profile = "smoke"  # @param ["smoke", "full"]\nseed = 0',
                                           metadata={"tags": ["parameters"]}), new_code_cell("print(seed)")])
    assert run_parameters(nb, {"seed": 3}) == {"profile": "smoke", "seed": 3}
    assert run_parameters(new_notebook(cells=[new_code_cell("x = 1")]), {"seed": 3}) == {"seed": 3}
