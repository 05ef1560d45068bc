"""`make gpu-check` (scripts/gpu_check.py) on a CPU: the dry run exercises the same code (LoRA vs QLoRA measured
alone, results JSON and the page section), and a machine without a GPU says so instead of showing numbers."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_the_check_refuses_and_keeps_the_committed_results(gpu_check, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    before = (ROOT / "bench" / "results" / "gpu.json").read_text()
    assert gpu_check.main([]) == 1
    assert "no GPU was available" in capsys.readouterr().out
    assert (ROOT / "bench" / "results" / "gpu.json").read_text() == before


def test_committed_results_and_page_agree_with_the_machine_that_ran(gpu_check):
    results = json.loads((ROOT / "bench" / "results" / "gpu.json").read_text())
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    section = page[page.index(gpu_check.START):page.index(gpu_check.END) + len(gpu_check.END)] + "\n"
    assert section == gpu_check.render(results)
    if results["machine"] is None:  # no GPU ran: the page says so and shows no numbers
        assert "Not measured: no GPU was available" in section and "| lora |" not in section
    else:
        assert results["machine"]["name"] in section and results["lm"]["rows"]


def test_dry_run_measures_lora_and_qlora_alone_and_writes_results(gpu_check, tmp_path):
    assert gpu_check.main(["--dry-run", "--modules", "", "--out-dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert results["dry_run"] and results["machine"]["device"] == "cpu"
    rows = results["lm"]["rows"]
    assert [r["method"] for r in rows] == ["lora", "qlora"] and all(r["precision"] == "fp32" for r in rows)
    lora, qlora = rows
    assert qlora["base_weight_memory_mb"] < 0.5 * lora["base_weight_memory_mb"]
    assert all(r["memory_increase_mb"] <= r["peak_memory_mb"] for r in rows)
    section = (tmp_path / "gpu.md").read_text()
    assert "DRY RUN" in section and "| qlora | fp32 |" in section


def test_section_replacement_is_idempotent_and_module_rows_show_peak_memory(gpu_check, tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\ntext\n")
    results = {"machine": {"name": "Test GPU", "date": "2026-01-01", "torch": "x", "capability": "8.0",
                           "bf16_native": True},
               "modules": [{"notebook": "01_feedforward", "profile": "full", "parameters": {}, "status": "ok",
                            "seconds": 12.5, "runs": [{"label": "baseline", "peak_memory_mb": 30.0},
                                                       {"label": "wide", "peak_memory_mb": 41.0}]}],
               "lm": {"model": "m", "steps": 1, "batch_size": 1, "block_size": 8, "rows": []}}
    gpu_check.replace_section(page, gpu_check.render(results))
    gpu_check.replace_section(page, gpu_check.render(results))
    text = page.read_text()
    assert text.count(gpu_check.START) == 1 and text.startswith("# Benchmarks\n\ntext\n")
    assert "| 01_feedforward | full | {} | ok | 12.5 | 2 | 41 |" in text
    log = tmp_path / "log.jsonl"
    log.write_text('{"label": "a", "peak_memory_mb": 1.0}\n\n{"label": "b", "peak_memory_mb": 2.0}\n')
    assert [r["label"] for r in gpu_check.read_device_log(log)] == ["a", "b"]
    assert gpu_check.read_device_log(tmp_path / "missing.jsonl") == []
