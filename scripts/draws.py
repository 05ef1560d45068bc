"""Record the verdicts of a module's full-profile runs at several data seeds in twdl_helpers/draws.json, the file
`twdl.verdicts_across_draws` reads, so a notebook can say which of its verdicts depend on the draw of the data.

Usage (one `twdl run` output folder per seed, each holding <notebook>.metrics.json):
  for k in 0 1 2; do twdl run 03 --profile full --offline -p device=cpu -p seed=$k --output-dir runs/draw$k; done
  python scripts/draws.py 03_regularization runs/draw0 runs/draw1 runs/draw2
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRAWS = ROOT / "twdl_helpers" / "draws.json"
VERDICT = re.compile(r"^m\d+\.(?:[a-z_]+\.)*effect\.[a-z0-9_.]+$")


def collect(notebook: str, folders: list[Path]) -> dict:
    """The verdict records of each folder's metrics, in seed order (the seed is the first of the run's seeds)."""
    runs = []
    for folder in folders:
        records = json.loads((folder / f"{notebook}.metrics.json").read_text())
        settings = next((v for k, v in records.items() if k.endswith(".settings") and isinstance(v, dict)), {})
        if settings.get("profile") != "full":
            raise SystemExit(f"{folder}: not a full-profile run (settings {settings})")
        runs.append((settings["seeds"][0], {k: v for k, v in records.items() if VERDICT.match(k)}))
    runs.sort(key=lambda run: run[0])
    keys = sorted(set().union(*(set(r) for _, r in runs)))
    return {"seeds": [s for s, _ in runs], "date": datetime.date.today().isoformat(),
            "command": f"twdl run {notebook} --profile full --offline -p device=cpu -p seed=K",
            "verdicts": {k: [r.get(k, "not measured") for _, r in runs] for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    draws = json.loads(DRAWS.read_text()) if DRAWS.is_file() else {}
    draws[args.notebook] = collect(args.notebook, args.folders)
    tmp = DRAWS.with_suffix(".tmp")
    tmp.write_text(json.dumps(draws, indent=1, sort_keys=True) + "\n")
    tmp.replace(DRAWS)
    print(f"wrote {DRAWS.relative_to(ROOT)}: {args.notebook} seeds {draws[args.notebook]['seeds']}")


if __name__ == "__main__":
    main()
