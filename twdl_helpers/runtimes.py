"""How long each module notebook takes, read from `runtimes.json` (written by scripts/runtimes.py and
scripts/gpu_check.py, never by hand): measured numbers with where they were measured, or why there is none."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["RUNTIMES_FILE", "read_runtimes", "runtime_estimate"]

RUNTIMES_FILE = Path(__file__).resolve().parent / "runtimes.json"
PLACES = {"cpu": "CPU", "gpu": "GPU"}


def read_runtimes(path: str | Path = RUNTIMES_FILE) -> dict:
    """The recorded run times: {"modules": {notebook: {"cpu"|"gpu": {profile: entry}}}, "not_measured": {...}}."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {"modules": {}, "not_measured": {}}


def runtime_estimate(notebook: str, path: str | Path = RUNTIMES_FILE) -> pd.DataFrame:
    """A table of this notebook's run time per place (CPU, GPU) and profile: the measured minutes and the machine
    and command that measured them, or an empty cell and "not measured" with the reason (e.g. no GPU was available)."""
    runtimes = read_runtimes(path)
    measured = runtimes.get("modules", {}).get(notebook, {})
    rows = []
    for place, label in PLACES.items():
        for profile in ("smoke", "full"):
            entry = measured.get(place, {}).get(profile)
            if entry:
                rows.append({"where": f"{label}: {entry['machine']}", "profile": profile,
                             "minutes": round(entry["seconds"] / 60, 1),
                             "how": f"measured {entry['date']} by `{entry['command']}`"})
            else:
                reason = runtimes.get("not_measured", {}).get(f"{place}.{profile}", "not measured yet")
                rows.append({"where": label, "profile": profile, "minutes": "", "how": reason})
    return pd.DataFrame(rows).set_index(["where", "profile"])
