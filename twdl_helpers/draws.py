"""Does a verdict hold on another draw of the data? Verdicts of the full profile run at several `seed` values, read
from `draws.json` (written by scripts/draws.py from `twdl run` outputs, never by hand), shown beside a run's own."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

__all__ = ["DRAWS_FILE", "read_draws", "verdicts_across_draws"]

DRAWS_FILE = Path(__file__).resolve().parent / "draws.json"


def read_draws(path: str | Path = DRAWS_FILE) -> dict:
    """{notebook: {"seeds": [...], "command", "date", "verdicts": {record: [verdict per seed]}}} or {}."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def verdicts_across_draws(notebook: str, names: Mapping[str, str], path: str | Path = DRAWS_FILE) -> str:
    """Markdown: for each verdict record in `names` (record -> words), its verdict on every measured data draw of
    the full profile, and which verdicts depend on the draw; or why there is nothing to show."""
    found = read_draws(path).get(notebook)
    if not found:
        return (f"The full profile has not been run on several data draws for {notebook} yet "
                f"(`python scripts/draws.py` records it), so this run cannot say whether its verdicts hold on others.")
    seeds, verdicts = found["seeds"], found["verdicts"]
    lines, varies = [], []
    for record, words in names.items():
        per_seed = verdicts.get(record)
        if per_seed is None:
            continue
        lines.append(f"- {words}: " + ", ".join(f"seed {s}: {v}" for s, v in zip(seeds, per_seed)))
        if len(set(per_seed)) > 1:
            varies.append(words)
    summary = (f"These depend on the draw of images (the verdict changes between seeds): {', '.join(varies)}. "
               "A verdict that holds on one draw only is a hint, not a finding." if varies else
               "Every one of these verdicts is the same on every draw measured.")
    return (f"**On other draws of the data.** The full profile was run with `seed` = {', '.join(map(str, seeds))} "
            f"(each draws other images and starts other weights; measured {found['date']} by "
            f"`{found['command']}`):\n\n" + "\n".join(lines) + "\n\n" + summary)
