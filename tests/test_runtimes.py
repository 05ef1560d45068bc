"""Run times shown at the top of each notebook: measured ones with their machine and command, the rest with the
reason they are missing (never a guess), and the committed file covers every module notebook."""
import importlib.util
from pathlib import Path

import pandas as pd

import twdl_helpers as twdl
from twdl_tools.repo import module_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("runtimes_script", ROOT / "scripts" / "runtimes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_times_show_with_machine_and_command_and_gaps_say_why(tmp_path):
    script = load_script()
    summary = pd.DataFrame([{"notebook": "09_demo", "status": "ok", "runtime_s": 90.0},
                            {"notebook": "08_broken", "status": "failed", "runtime_s": 5.0}])
    path = tmp_path / "runtimes.json"
    script.record(summary, "smoke", "twdl run {notebook} --profile smoke", path)
    table = twdl.runtime_estimate("09_demo", path)
    measured = table.iloc[0]
    assert measured["minutes"] == 1.5 and "twdl run 09_demo --profile smoke" in measured["how"]
    assert table.index[0][0].startswith("CPU: ") and table.index[0][1] == "smoke"
    gpu = table.loc["GPU"]
    assert gpu["minutes"].eq("").all() and gpu["how"].str.contains("no GPU was available").all()  # empty, not NaN
    assert twdl.runtime_estimate("08_broken", path)["minutes"].eq("").all()  # a failed run is not a time
    assert "NaN" not in table.to_html() and "NaN" not in table.to_string()


def test_committed_runtimes_cover_every_module_notebook():
    notebooks = [p.stem for p in module_notebooks(notebooks_dir(ROOT), ".py")]
    runtimes = twdl.read_runtimes()
    for name in notebooks:
        assert runtimes["modules"][name]["cpu"]["smoke"]["seconds"] > 0, name
