"""`twdl book`: the site builds offline without unexpected warnings and each module page renders in headless
Chromium with its title, a figure, the recorded-metrics table, typeset maths (MathJax served from the site
itself, no internet) and code cells that fit the column (one screenshot per page in test-artifacts/)."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from twdl_tools.repo import module_notebooks, notebooks_dir, site_pages_dir
from twdl_tools.site import build_book, unexpected_warnings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000"]
# Appended to a copy of a page: after MathJax and the layout settle, count code cells wider than their box.
OVERFLOW_PROBE = """<script>window.addEventListener("load", () => setTimeout(() => {
  const blocks = [...document.querySelectorAll("div.cell_input pre")];
  const wide = blocks.filter(p => p.scrollWidth > p.clientWidth + 1);
  document.body.setAttribute("data-code-blocks", blocks.length);
  document.body.setAttribute("data-overflowing-code", wide.length);
}, 500));</script>"""


def chromium(page: Path, profile: Path, *action: str) -> str:
    """Run headless Chromium on a local page with a fresh profile and return its stdout."""
    if CHROMIUM is None:
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (see the Makefile/CI setup)")
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def check_module_page(page: Path, title: str, profile: Path, screenshot: Path) -> None:
    """Assert the rendered page shows `title`, at least one figure that exists, and the metric/value table."""
    dom = chromium(page, profile, "--dump-dom")
    headings = [html.unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in re.findall(r"<h1[^>]*>(.*?)</h1>", dom, re.S)]
    assert any(title in h for h in headings), f"{page.name}: title {title!r} not among rendered h1 {headings}"
    figures = [src for src in re.findall(r'<img[^>]+src="([^"]+)"', dom) if "_images/" in src]
    assert figures, f"{page.name}: no figure rendered"
    assert all((page.parent / src).resolve().is_file() for src in figures), f"{page.name}: a figure file is missing"
    tables = re.findall(r"<table.*?</table>", dom, re.S)
    assert any(re.search(r"<th[^>]*>\s*metric\s*</th>", t) and re.search(r"<th[^>]*>\s*value\s*</th>", t)
               for t in tables), f"{page.name}: no recorded-metrics table (columns metric, value)"
    equations = re.findall(r"<mjx-container[^>]*>", dom)
    assert equations, f"{page.name}: no typeset equation (MathJax did not run offline)"
    raw = re.findall(r'<span class="math[^"]*">\\\(', dom)
    assert not raw, f"{page.name}: {len(raw)} equations still shown as raw LaTeX"
    probe = page.with_name(f"{page.stem}.probe.html")
    probe.write_text(page.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
    body = re.search(r"<body[^>]*>", chromium(probe, profile, "--window-size=1280,2400", "--dump-dom")).group(0)
    probe.unlink()
    counts = dict(re.findall(r'data-(code-blocks|overflowing-code)="(\d+)"', body))
    assert int(counts.get("code-blocks", 0)) > 0, f"{page.name}: the overflow probe found no code cells"
    assert counts["overflowing-code"] == "0", f"{page.name}: {counts['overflowing-code']} code cells scroll sideways"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    chromium(page, profile, "--window-size=1280,2400", f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000, f"{page.name}: the screenshot looks empty"


def notebook_title(path: Path) -> str:
    """The text of the notebook's first '# ' heading."""
    first = nbformat.read(str(path), as_version=4).cells[0].source
    return re.search(r"^#\s+(.+)$", first, re.M).group(1).strip()


def test_warning_filter_keeps_only_unlisted_warnings():
    log = ("a.ipynb:3: WARNING: skipping unknown output mime type: application/vnd.twdl.record+json [x]\n"
           "b.md:1: WARNING: undefined label: 'nowhere'\nbuilding [html]: done\n")
    seen, bad = unexpected_warnings(log)
    assert len(seen) == 2 and bad == ["b.md:1: WARNING: undefined label: 'nowhere'"]


def test_real_site_builds_and_module_pages_render(tmp_path):
    build = build_book(ROOT)  # raises with what is missing or stale (fragments, full-profile pages)
    assert build.ok, f"exit {build.returncode}; unexpected warnings: {build.unexpected}\n{build.log[-3000:]}"
    notebooks = module_notebooks(site_pages_dir(ROOT))
    assert len(notebooks) == 4, f"expected the four full-profile pages, found {[p.name for p in notebooks]}"
    for path in notebooks:
        page = build.html / "notebooks" / "full" / f"{path.stem}.html"
        assert page.is_file(), f"{path.name} has no page in the site (check _toc.yml)"
        check_module_page(page, notebook_title(path), tmp_path / f"chrome-{path.stem}", ARTIFACTS / f"{path.stem}.png")
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert "How this page was run. Profile full" in text and "Hardware: " in text, \
            f"{page.name}: no header saying the profile and hardware it ran on"
    smoke = [p for p in (build.html / "notebooks").glob("0*.html")]
    assert not smoke, f"the site shows smoke references: {[p.name for p in smoke]}"
    for name in ("index.html", "docs/fixes.html", "docs/grading.html", "docs/benchmarks.html"):
        assert (build.html / name).is_file(), f"{name} missing from the site"
    published = [p for p in build.html.rglob("*") if "autograder" in p.as_posix()]
    assert not published, f"the site publishes grader-only check files: {published[:3]}"
