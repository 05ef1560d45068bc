"""Verdicts on other data draws (twdl_helpers/draws.py, scripts/draws.py)."""
import json
import subprocess
import sys
from pathlib import Path

import twdl_helpers as twdl

ROOT = Path(__file__).resolve().parents[1]


def _run(folder: Path, seed: int, verdict: str) -> Path:
    folder.mkdir()
    records = {"m3.settings": {"profile": "full", "seeds": [seed, seed + 1, seed + 2]},
               "m3.effect.l2": verdict, "m3.effect.dropout": "helps", "m3.effect_change.l2": 1.0}
    (folder / "03_regularization.metrics.json").write_text(json.dumps(records))
    return folder


def test_script_collects_verdicts_in_seed_order_and_the_helper_names_what_varies(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("draws_script", ROOT / "scripts" / "draws.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    found = script.collect("03_regularization", [_run(tmp_path / "b", 1, "within noise"),
                                                  _run(tmp_path / "a", 0, "helps")])
    assert found["seeds"] == [0, 1]
    assert found["verdicts"] == {"m3.effect.dropout": ["helps", "helps"], "m3.effect.l2": ["helps", "within noise"]}
    path = tmp_path / "draws.json"
    path.write_text(json.dumps({"03_regularization": found}))
    text = twdl.verdicts_across_draws("03_regularization", {"m3.effect.l2": "L2", "m3.effect.dropout": "dropout"},
                                      path)
    assert "- L2: seed 0: helps, seed 1: within noise" in text
    assert "depend on the draw of images (the verdict changes between seeds): L2." in text
    assert "dropout:" in text and "dropout." not in text.split("depend on the draw")[1]


def test_nothing_measured_says_so(tmp_path):
    text = twdl.verdicts_across_draws("03_regularization", {"m3.effect.l2": "L2"}, tmp_path / "none.json")
    assert "has not been run on several data draws" in text


def test_a_smoke_run_is_refused(tmp_path):
    folder = tmp_path / "smoke"
    folder.mkdir()
    (folder / "03_regularization.metrics.json").write_text(json.dumps({"m3.settings": {"profile": "smoke"}}))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "draws.py"), "03_regularization", str(folder)],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "not a full-profile run" in done.stderr


def test_the_shipped_file_holds_three_draws_of_module_3():
    found = twdl.read_draws()["03_regularization"]
    assert found["seeds"] == [0, 1, 2]
    assert all(len(v) == 3 for v in found["verdicts"].values())
