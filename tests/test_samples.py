"""The bundled real samples: small, real, reproducible from the mirror by the script, never a copy of a mirror file."""
import hashlib
import subprocess
import sys
from pathlib import Path

import twdl_helpers as twdl
from twdl_helpers.data.samples import BUNDLED_DIR, bundled_files

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundled_samples_add_at_most_2_mb_and_are_listed():
    files = [p for p in BUNDLED_DIR.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 2 * 2**20
    listed = {line.split()[1] for line in (BUNDLED_DIR / "SHA256SUMS").read_text().splitlines()}
    assert listed == {p.name for p in files} - {"SHA256SUMS", "README.md"}
    readme = (BUNDLED_DIR / "README.md").read_text()
    for licence in ("CC BY 4.0", "CC BY-SA 3.0", "Krizhevsky"):
        assert licence in readme
    assert bundled_files(*listed).keys() == listed  # every file matches its hash


def test_the_script_rebuilds_the_same_bytes_and_copies_no_mirror_file(tmp_path, mirror):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_data_samples.py"), "--mirror", str(mirror),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for committed in BUNDLED_DIR.iterdir():
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), committed.name
    mirror_hashes = {line.split()[0] for line in (mirror / "SHA256SUMS").read_text().splitlines() if line.strip()}
    for sample in BUNDLED_DIR.iterdir():
        digest = hashlib.sha256(sample.read_bytes()).hexdigest()
        assert digest not in mirror_hashes, f"{sample.name} copies a mirror file"


def test_with_no_mirror_and_an_empty_cache_every_loader_returns_real_data(isolated_cache, monkeypatch):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    monkeypatch.setenv("TWDL_OFFLINE", "1")
    loaded = {"covertype": twdl.load_covertype(), "mnist": twdl.load_mnist(),
              "animal faces": twdl.load_animal_faces(n_train=100, n_val=500), "wikitext": twdl.load_wikitext2()}
    assert {name: data.source for name, data in loaded.items()} == dict.fromkeys(loaded, "bundled sample")
    assert loaded["animal faces"].dataset == "cifar_animals"
    assert all("synthetic" not in data.description and "stand-in" not in data.description for data in loaded.values())
