"""report.html for `twdl grade`: a sortable grades table, per-question and per-module statistics and a histogram."""
from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.records import is_completion_flag

__all__ = ["choose_histogram_metric", "module_summary", "question_summary", "histogram_svg", "render_report",
           "write_report"]

FIXED = {"file", "student", "submission", "status", "failing_cell", "error", "runtime_s", "completed_modules",
         "total", "max_points", "manual_pending", "user_id", "canvas_late", "late", "days_late", "penalty", "final"}
MODULE_OF = re.compile(r"^(m\d+)\.")
CELL_CHARS = 200

_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("data-order") !== "asc";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", up ? "asc" : "desc");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-value"), y = b.cells[col].getAttribute("data-value");
        var nx = parseFloat(x), ny = parseFloat(y), both = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny);
        var c = both ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
.ok { color: #17643a; } .error, .timeout, .invalid { color: #a31515; font-weight: bold; }
.cut { color: #777; font-style: italic; }
"""


def _metric_columns(table) -> list[str]:
    questions = set(table.attrs.get("questions", ()))
    return [c for c in table.columns if c not in FIXED and c not in questions]


def question_summary(rows: list[dict[str, Any]], check_file):
    """Per question: max points, mean points, share of full marks, pending written answers, most common failure.

    `rows` are finalized rows (scores applied). The most common failure is the failing check (its description)
    that most submissions below full marks share, with one of its messages.
    """
    import pandas as pd
    from collections import Counter

    summary = []
    for question in check_file.questions:
        entries = [e for row in rows for e in row.get("questions", []) if e["id"] == question.id]
        scored = [e["points"] for e in entries if e.get("points") is not None]
        failures: Counter = Counter()
        example: dict[str, str] = {}
        for e in entries:
            if e.get("points") is None or e["points"] >= question.points:
                continue
            failed = [c for c in e.get("checks", []) if not c.get("passed")]
            key = failed[0]["description"] if failed else e.get("summary", "")
            failures[key] += 1
            example.setdefault(key, failed[0].get("message", "") if failed else "")
        common = ""
        if failures:
            key, count = sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            common = f"{key} ({count}x)" + (f": {example[key]}" if example[key] else "")
        summary.append({"question": question.id, "kind": question.kind, "max_points": question.points,
                        "graded": len(scored), "mean": sum(scored) / len(scored) if scored else None,
                        "full_marks": sum(p >= question.points for p in scored) / len(scored) if scored else None,
                        "pending": len(entries) - len(scored), "most_common_failure": common})
    columns = ["question", "kind", "max_points", "graded", "mean", "full_marks", "pending", "most_common_failure"]
    return pd.DataFrame(summary, columns=columns)


def _numeric(table, column: str):
    import pandas as pd

    values = table[column]
    if values.dtype == bool or values.dropna().map(lambda v: isinstance(v, bool)).all():
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().any() else None


def choose_histogram_metric(table) -> str | None:
    """The numeric recorded metric present in the most submissions (ties: alphabetical); None if there is none."""
    best: tuple[int, str] | None = None
    for column in sorted(_metric_columns(table)):
        if is_completion_flag(column):
            continue
        numbers = _numeric(table, column)
        if numbers is not None and (best is None or numbers.notna().sum() > best[0]):
            best = (int(numbers.notna().sum()), column)
    return best[1] if best else None


def module_summary(table):
    """Per module (the mK prefix of each metric): how many submissions recorded it and its mean/std/min/median/max."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for column in _metric_columns(table):
        match = MODULE_OF.match(column)
        module = match.group(1) if match else "other"
        values = table[column]
        if is_completion_flag(column):
            flags = values.dropna()
            rows.append({"module": module, "metric": column, "n": len(flags),
                         "mean": float((flags == True).mean()) if len(flags) else None})  # noqa: E712
            continue
        numbers = _numeric(table, column)
        if numbers is None:
            rows.append({"module": module, "metric": column, "n": int(values.notna().sum())})
            continue
        numbers = numbers.dropna()
        rows.append({"module": module, "metric": column, "n": len(numbers), "mean": numbers.mean(),
                     "std": numbers.std() if len(numbers) > 1 else None, "min": numbers.min(),
                     "median": numbers.median(), "max": numbers.max()})
    columns = ["module", "metric", "n", "mean", "std", "min", "median", "max"]
    return pd.DataFrame(rows, columns=columns).sort_values(["module", "metric"]).reset_index(drop=True)


def histogram_svg(values, metric: str) -> str:
    """An inline SVG histogram of `values` (deterministic bytes: no date, fixed ids)."""
    import matplotlib
    from matplotlib.figure import Figure

    label = metric.replace("$", r"\$")  # no mathtext from a (possibly forged) record name
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.hist(list(values), bins=min(20, max(5, len(values))), color="#4477aa", edgecolor="white")
    ax.set_xlabel(label)
    ax.set_ylabel("submissions")
    ax.set_title(f"{label} over {len(values)} submission(s)")
    fig.tight_layout()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "twdl", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return '<td data-value=""></td>'
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    sort_key = html.escape(text[:CELL_CHARS], quote=True)
    shown = html.escape(text[:CELL_CHARS])
    if len(text) > CELL_CHARS:
        shown += f' <span class="cut">[{len(text) - CELL_CHARS:,} more characters]</span>'
    css = f' class="{html.escape(text)}"' if text in ("ok", "error", "timeout", "invalid") else ""
    return f'<td data-value="{sort_key}"{css}>{shown}</td>'


def _table_html(table, sortable: bool = True) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.itertuples(index=False))
    css = ' class="sortable"' if sortable else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _term_html(term: dict[str, Any]) -> list[str]:
    """The term's sections: late work and its rule, TA overrides, superseded files, roster mismatches."""
    import pandas as pd

    def listed(title: str, intro: str, rows: list[dict[str, Any]], empty: str) -> list[str]:
        return [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(intro)}</p>",
                _table_html(pd.DataFrame(rows)) if rows else f"<p>{html.escape(empty)}</p>"]

    parts = listed("Late work", f"Rule: {term['late_rule']}.", term["late"], "No submission is late.")
    parts += listed("Overrides", "Scores a TA changed (overrides.csv), applied at every publish; the student's "
                    "feedback page shows each as \"adjusted by a TA\" with its reason.", term["overrides"], "None.")
    if term["superseded"]:
        parts += listed("Superseded files", "Older files of a Canvas user: only the newest is graded.",
                        term["superseded"], "")
    if term["roster"]:
        parts += listed("Submissions with no roster row", "Not matched to the roster by Canvas user id or SIS id: "
                        "canvas.csv carries their user id and name; check them before importing.",
                        term["no_roster_row"], "None: every submission matched a roster row.")
        parts += listed("Roster students with no submission", "In the roster, with no graded submission: "
                        "canvas.csv leaves them out (their Canvas grade is not changed).", term["no_submission"],
                        "None: every roster student submitted.")
    return parts


def render_report(table, histogram_metric: str | None = None, title: str = "Grades", questions=None,
                  copies: list[dict[str, Any]] | None = None, term: dict[str, Any] | None = None) -> str:
    """The whole report as one self-contained HTML string (student content escaped, long texts cut).

    `questions`: the per-question statistics (question_summary) shown above the per-module ones; `copies`: groups of
    submissions sharing trained weights or answers (copies.copy_groups), listed for the TA; `term`: late work,
    overrides, superseded files and roster mismatches (publish._term_sections).
    """
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    status_line = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "error", "timeout", "invalid"))
    if questions is not None:
        table = table.copy()
        table.attrs["questions"] = list(questions["question"])
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{len(table)} submission(s): {html.escape(status_line)}. "
             "Click a column header to sort.</p>", "<h2>Submissions</h2>", _table_html(table)]
    if questions is not None:
        parts += ["<h2>Per-question statistics</h2>",
                  "<p>mean: points per graded submission; full_marks: the share that scored every point; pending: "
                  "written answers awaiting a TA; most common failure: the failing check shared by most submissions "
                  "below full marks. Each student's checks are in feedback/&lt;submission&gt;.html.</p>",
                  _table_html(questions)]
    if copies is not None:
        import pandas as pd

        listed = pd.DataFrame([{"shared": g["shared"], "submissions": ", ".join(g["submissions"]),
                                "count": len(g["submissions"])} for g in copies], columns=["shared", "submissions",
                                                                                           "count"])
        parts += ["<h2>Possible copies</h2>",
                  "<p>Submissions whose exported trained weights are byte-identical, or whose answer cells are "
                  "identical. A flag, not a penalty: the course is deterministic by seed, so the same code with the "
                  "same seed trains the same weights.</p>",
                  _table_html(listed) if len(listed) else "<p>None found.</p>"]
    if term is not None:
        parts += _term_html(term)
    summary = module_summary(table)
    parts += ["<h2>Per-module statistics</h2>",
              _table_html(summary) if len(summary) else "<p>No metric was recorded by any submission.</p>"]
    if histogram_metric:
        if histogram_metric not in table.columns or _numeric(table, histogram_metric) is None:
            parts.append(f"<p>No numeric values recorded for {html.escape(histogram_metric)}.</p>")
        else:
            values = _numeric(table, histogram_metric).dropna()
            parts += [f"<h2>Histogram of {html.escape(histogram_metric)}</h2>", histogram_svg(values, histogram_metric)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")


def write_report(table, path: str | Path, histogram_metric: str | None = None, title: str = "Grades",
                 questions=None, copies: list[dict[str, Any]] | None = None, term: dict[str, Any] | None = None) -> Path:
    """Write render_report(...) to `path` atomically and return the path."""
    atomic_write(path, render_report(table, histogram_metric, title, questions, copies, term))
    return Path(path)
