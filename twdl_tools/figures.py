"""Published figures rendered from their measurements: the markers in README.md and docs/*.md, and their check.

A measured number in prose is written as a marker around its current value:

    <!--fig covertype.epoch.ratio .1f-->5.8<!--/fig-->

`covertype.epoch.ratio` is a source: the result file bench/results/covertype.json, the row whose key is `epoch`,
its `ratio` column (`record:<notebook>:<name>` reads a record of the executed reference notebook
notebooks/<notebook>.ipynb instead). `.1f` is a Python format spec (default `.4g`); a yes/no source such as a
`met` column takes two words instead (`met|missed`). Markdown renderers hide the
comments, so readers see only the number. `twdl bench` (and `twdl bench --render`) rewrites every value from
its source; `check_files` reports values that differ from their source, sources that do not exist, and figures
in prose that have no marker at all (numbers quoted from elsewhere are listed in a `<!--quoted: a; b-->` comment
of the file, e.g. the original course's reported results).

The rows of a saved benchmark table are read here (`result_rows`); `twdl bench` writes the tables and renders them.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from twdl_helpers.files import atomic_write
from twdl_helpers.records import read_records

from .repo import notebooks_dir

__all__ = ["MARKER", "FigureSources", "render_text", "render_files", "check_files", "unsourced_figures",
           "PUBLISHED_FILES", "BENCH_COLUMNS", "result_rows"]

# The columns of every saved benchmark table (bench/results/<script>.json, written by `twdl bench`). A row may also
# carry a "key": the name a marker uses to quote one of its figures (`<!--fig <script>.<key>.<column>-->`).
BENCH_COLUMNS = ["comparison", "measure", "unit", "original", "helpers", "ratio", "target", "met", "runs"]

MARKER = re.compile(r"<!--fig (?P<source>[^\s>]+)(?: (?P<spec>[^\s>]+))?-->(?P<value>.*?)<!--/fig-->")
QUOTED = re.compile(r"<!--quoted:(?P<items>.*?)-->", re.DOTALL)
PUBLISHED_FILES = ("README.md", "docs/fixes*.md")  # the pages that state measurements (benchmarks.md is generated whole)
# What looks like a measurement in prose: percentages, ratios ("5.8x"), decimals, numbers with a rate or time unit.
FIGURE = re.compile(r"(?<![\w.\-/])(?:\d[\d,]*(?:\.\d+)?\s?%|\d[\d,]*(?:\.\d+)?x(?![\w])"
                    r"|\d[\d,]*(?:\.\d+)?\s?(?:rows/s|images/s|img/s|tokens/s|MB|ms|µs|hours?|minutes?|s)(?![\w/])"
                    r"|\d[\d,]*\.\d+)")
_SKIP = re.compile(r"```.*?```|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.DOTALL)


def result_rows(result: dict) -> list[dict]:
    """The rows of a saved result as dicts (older files stored plain lists in BENCH_COLUMNS order, without keys)."""
    return [row if isinstance(row, dict) else dict(zip(BENCH_COLUMNS, row)) for row in result["rows"]]


@dataclass
class FigureSources:
    """Where marker sources are looked up: the bench result files and the executed reference notebooks."""

    results_dir: Path
    notebooks_dir: Path

    def value(self, source: str) -> float | str:
        """The value a source names (raises KeyError with what exists when it names nothing)."""
        if source.startswith("record:"):
            _, notebook, name = source.split(":", 2)
            records = read_records(self.notebooks_dir / f"{notebook}.ipynb")
            if name not in records:
                raise KeyError(f"{source}: notebook {notebook} records no {name!r}")
            return records[name]
        name, _, rest = source.partition(".")
        key, _, column = rest.rpartition(".")
        path = self.results_dir / f"{name}.json"
        if not path.is_file():
            raise KeyError(f"{source}: no result file {path}")
        rows = {row.get("key"): row for row in result_rows(json.loads(path.read_text()))}
        if key not in rows:
            raise KeyError(f"{source}: {path.name} has no row with key {key!r} (keys: {sorted(k for k in rows if k)})")
        if column not in rows[key]:
            raise KeyError(f"{source}: row {key!r} has no column {column!r}")
        return rows[key][column]


def _format(value: float | str | bool | None, spec: str | None) -> str:
    """The value as shown: a number by its format spec; a yes/no (e.g. a `met` column) by a "met|missed" spec."""
    if isinstance(value, bool):
        yes, _, no = (spec or "yes|no").partition("|")
        return yes if value else no
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("the source holds no number (NaN): quote another figure")
    return format(value, spec or ".4g") if isinstance(value, (int, float)) else str(value)


def render_text(text: str, sources: FigureSources, problems: list[str] | None = None) -> str:
    """`text` with every marker's value rewritten from its source.

    A marker whose source is missing keeps its old value; the reason is appended to `problems` (raised when None).
    """
    def replace(match: re.Match) -> str:
        source, spec = match["source"], match["spec"]
        try:
            shown = _format(sources.value(source), spec)
        except (KeyError, ValueError) as exc:
            if problems is None:
                raise ValueError(f"{source}: {exc}") from None
            problems.append(str(exc))
            return match.group(0)
        return f"<!--fig {source}{' ' + spec if spec else ''}-->{shown}<!--/fig-->"

    return MARKER.sub(replace, text)


def unsourced_figures(text: str) -> list[str]:
    """Figures in `text` outside markers, code and comments that the file does not list as quoted."""
    quoted = {item.strip() for m in QUOTED.finditer(text) for item in m["items"].split(";") if item.strip()}
    prose = _SKIP.sub(" ", MARKER.sub(" ", text))
    return [m.group(0) for m in FIGURE.finditer(prose) if m.group(0).strip() not in quoted]


def _published(root: Path) -> list[Path]:
    return sorted({path for pattern in PUBLISHED_FILES for path in root.glob(pattern)})


def _sources(root: Path, results_dir: Path | None) -> FigureSources:
    return FigureSources(results_dir or root / "bench" / "results", notebooks_dir(root))


def render_files(root: Path, results_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Rewrite the markers of every published file from their sources; return (files changed, problems)."""
    sources, changed, problems = _sources(root, results_dir), [], []
    for path in _published(root):
        text = path.read_text(encoding="utf-8")
        found: list[str] = []
        new = render_text(text, sources, found)
        problems += [f"{path.relative_to(root)}: {p}" for p in found]
        if new != text:
            atomic_write(path, new)
            changed.append(str(path.relative_to(root)))
    return changed, problems


def check_files(root: Path, results_dir: Path | None = None) -> list[str]:
    """Problems of the published files: stale values, missing sources, figures without a source."""
    sources, problems = _sources(root, results_dir), []
    for path in _published(root):
        name, text = path.relative_to(root), path.read_text(encoding="utf-8")
        for match in MARKER.finditer(text):
            try:
                expected = _format(sources.value(match["source"]), match["spec"])
            except (KeyError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if match["value"] != expected:
                problems.append(f"{name}: {match['source']} shows {match['value']!r} but its source gives {expected!r}")
        problems += [f"{name}: figure {figure!r} has no source marker (wrap it in <!--fig ...--> or list it in "
                     "<!--quoted: ...-->)" for figure in unsourced_figures(text)]
    return problems
