"""What a student or a reader of the site meets: committed executed notebooks show no NaN and no failed run."""
import re
from pathlib import Path

import nbformat
import pytest

from twdl_helpers.evidence import HEALTH_FAILED
from twdl_helpers.records import read_records
from twdl_tools.repo import module_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
NAN = re.compile(r"(?<![\w.-])(nan|NaN|NAN)(?![\w])")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown")


def committed_notebooks() -> list[Path]:
    """The smoke references and the full-profile pages the site renders."""
    folder = notebooks_dir(ROOT)
    return module_notebooks(folder) + sorted((folder / "full").glob("0*.ipynb"))


def output_texts(cell) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append(output.get("text", ""))
        for mime in TEXT_MIMES:
            value = (output.get("data") or {}).get(mime)
            if value is not None:
                texts.append(value if isinstance(value, str) else "".join(value))
    return texts


def nan_in_outputs(path: Path) -> list[str]:
    """'cell N: ...context...' for each NaN shown in a text, table or Markdown output."""
    nb = nbformat.read(str(path), as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        for text in output_texts(cell):
            for match in NAN.finditer(text):
                found.append(f"cell {index}: ...{text[max(0, match.start() - 60):match.end() + 20]!r}...")
    return found


def test_nan_finder_sees_tables_and_text_but_not_words():
    cell = {"outputs": [{"output_type": "stream", "text": "loss nan\n"},
                        {"output_type": "execute_result", "data": {"text/html": "<td>NaN</td>"}},
                        {"output_type": "stream", "text": "nanoGPT, banana, finance\n"}]}
    assert [bool(NAN.search(t)) for t in output_texts(cell)] == [True, True, False]


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_nan_in_what_a_student_reads(path):
    found = nan_in_outputs(path)
    assert not found, f"{path.name} shows NaN (write blank or '—' with a note instead):\n" + "\n".join(found[:10])


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_lesson_rests_on_a_failed_run(path):
    records = read_records(path)
    failed = {k: v for k, v in records.items()
              if ".health." in k and isinstance(v, str) and v.startswith(HEALTH_FAILED)}
    assert not failed, f"{path.name} has runs that failed outside the sections that expect it: {failed}"
