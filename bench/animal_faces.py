"""Benchmark 3: Animal Faces training input pipeline, the original (per-sample PNG decode + DataLoader) vs the
helpers (decode once into a tensor, index-sliced batches in twdl.train), batch 128, same MLP and optimiser.

The offline mirror holds only 43 real AFHQ images, so its 28 train PNGs are REPLICATED to a realistic size
(14,630 files, the size of AFHQ train/; 1,024 with quick=True) for timing. Both sides use one CPU thread.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import original_animal_faces as original  # noqa: E402

import twdl_helpers as twdl  # noqa: E402
from twdl_helpers.data.animal_faces import decode_afhq_zip  # noqa: E402


def _mirror_zip() -> Path:
    from twdl_helpers.data.animal_faces import AFHQ_ZIP
    from twdl_helpers.data.fetch import locate
    return locate(AFHQ_ZIP)


def _replicate(size: int, folder: Path) -> tuple[Path, Path]:
    """Write `size` train PNGs (copies of the mirror's real ones) as a folder tree and as an upstream-style zip."""
    with zipfile.ZipFile(_mirror_zip()) as source:
        pngs = [(n.split("/")[-2], n.split("/")[-1], source.read(n)) for n in sorted(source.namelist())
                if "/train/" in n and n.endswith(".png")]
        vals = [(n, source.read(n)) for n in source.namelist() if "/val/" in n and n.endswith(".png")]
    tree, archive = folder / "train", folder / "afhq_32x32.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for i in range(size):
            cls, name, data = pngs[i % len(pngs)]
            (tree / cls).mkdir(parents=True, exist_ok=True)
            (tree / cls / f"{i:05d}_{name}").write_bytes(data)
            out.writestr(f"afhq/train/{cls}/{i:05d}_{name}", data)
        for name, data in vals:
            out.writestr(name, data)
    return tree, archive


def _helpers(archive: Path, epochs: int) -> tuple[float, float]:
    """(decode seconds, training seconds) for the helpers' pipeline."""
    start = time.perf_counter()
    images, labels, _ = decode_afhq_zip(archive)["train"]
    data = twdl.TensorData((images.float() / 255 - 0.5) / 0.5, labels)
    decoded = time.perf_counter()
    model = twdl.AnimalNet(seed=0)
    twdl.train(model, data, epochs=epochs, batch_size=128, optimizer=twdl.make_optimizer("sgd", model.parameters(), 5e-3, momentum=0.9), progress=False)
    return decoded - start, time.perf_counter() - decoded


def run(quick: bool = False) -> pd.DataFrame:
    """Images/s per training epoch and end-to-end seconds (load + epochs), medians over repeated runs."""
    torch.set_num_threads(1)
    size, runs, epochs = (1024, 1, 2) if quick else (14630, 3, 3)
    with tempfile.TemporaryDirectory() as tmp:
        tree, archive = _replicate(size, Path(tmp))
        orig_s = []
        for _ in range(runs):
            t0 = time.perf_counter()
            original.train_original(tree, epochs)
            orig_s.append(time.perf_counter() - t0)
        helper = [_helpers(archive, epochs) for _ in range(runs)]
    o = statistics.median(orig_s)
    decode = statistics.median(h[0] for h in helper)
    train_s = statistics.median(h[1] for h in helper)
    rows = [
        {"comparison": f"Animal Faces training epoch, batch 128 ({size:,} replicated real images)",
         "measure": "throughput", "unit": "images/s", "original": size * epochs / o,
         "helpers": size * epochs / train_s, "ratio": o / train_s, "target": "", "met": None, "runs": runs},
        {"comparison": f"Animal Faces load + {epochs} epochs ({size:,} images)", "measure": "end-to-end time",
         "unit": "s", "original": o, "helpers": decode + train_s, "ratio": o / (decode + train_s), "target": "",
         "met": None, "runs": runs},
    ]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run("--quick" in sys.argv).to_markdown(index=False))
