"""The one resolution rule: explicit path, mirror, cache, verified download, sample; damaged files; no half files."""
import functools
import gzip
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from twdl_helpers.data import fetch, verify
from twdl_helpers.data.errors import DataFileError, DataNotFoundError
from twdl_helpers.data.fetch import DataFiles, RemoteFile


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/www on a loopback port for the duration of a test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed (the loopback server is the only network the tests use)."""
    monkeypatch.setenv("TWDL_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


def remote(url_base, content=b"real bytes", name="data.bin", **kw):
    return RemoteFile(name, "demo", (f"{url_base}/{name}",), hashlib.sha256(content).hexdigest(), **kw)


def text_dataset(file, sample=None):
    """A one-file dataset whose reader insists on text starting with 'real'."""
    def read(paths):
        (path,) = paths.values()
        if not path.read_bytes().startswith(b"real"):
            raise DataFileError(path, "does not start with 'real'")
        return path.read_bytes()
    return DataFiles("Demo", (file,), read, sample=sample)


def test_explicit_path_wins_and_missing_explicit_path_names_it(tmp_path, isolated_cache):
    f = tmp_path / "data.bin"
    f.write_bytes(b"x")
    spec = remote("http://127.0.0.1:9")
    assert fetch.locate(spec, f) == f
    assert fetch.locate(spec, tmp_path) == f
    with pytest.raises(DataNotFoundError, match="not found at the path given"):
        fetch.locate(spec, tmp_path / "nowhere")


def test_an_explicit_path_is_never_replaced_by_the_sample(tmp_path, isolated_cache):
    spec = remote("http://127.0.0.1:9")
    dataset = text_dataset(spec, sample=lambda: {"s": tmp_path / "s"})
    for source in ("auto", "full"):
        with pytest.raises(DataNotFoundError, match="not found at the path given"):
            fetch.resolve(dataset, tmp_path / "nowhere" / "data.bin", source)
    with pytest.raises(ValueError, match="drop path="):
        fetch.resolve(dataset, tmp_path, "sample")


def test_mirror_then_cache(tmp_path, monkeypatch, isolated_cache):
    spec = remote("http://127.0.0.1:9")
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"real bytes")
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(tmp_path / "mirror"))
    assert fetch.locate(spec) == isolated_cache / "demo" / "data.bin"
    (tmp_path / "mirror" / "demo").mkdir(parents=True)
    (tmp_path / "mirror" / "demo" / "data.bin").write_bytes(b"real bytes")
    assert fetch.locate(spec) == tmp_path / "mirror" / "demo" / "data.bin"


def test_sources_auto_full_sample(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"real sample")
    dataset = text_dataset(remote("http://127.0.0.1:9"), sample=lambda: {"sample.bin": sample})
    found = fetch.resolve(dataset, source="auto")
    assert found.source == "bundled sample" and found.value == b"real sample" and "data.bin" in found.passed_over[0]
    with pytest.raises(DataNotFoundError, match="data.bin"):
        fetch.resolve(dataset, source="full")  # full never returns a sample
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"real bytes")
    assert fetch.resolve(dataset, source="sample").source == "bundled sample"
    found = fetch.resolve(dataset, source="full")
    assert found.source == "real" and found.where == {"data.bin": "cache"} and "verified" in found.origin()


def test_offline_without_files_names_file_places_and_url(monkeypatch, isolated_cache):
    monkeypatch.setenv("TWDL_OFFLINE", "1")
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    spec = RemoteFile("covtype.data.gz", "covertype", ("https://example.org/covtype.data.gz",))
    with pytest.raises(DataNotFoundError) as err:
        fetch.locate(spec)
    message = str(err.value)
    assert "covtype.data.gz" in message and "https://example.org/covtype.data.gz" in message
    assert str(isolated_cache / "covertype" / "covtype.data.gz") in message


def test_download_verifies_and_falls_back_to_next_mirror(http_folder, online, monkeypatch, isolated_cache):
    root, base = http_folder
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"real bytes")
    spec = RemoteFile("data.bin", "demo", (f"{base}/missing/data.bin", f"{base}/data.bin"),
                      hashlib.sha256(b"real bytes").hexdigest())
    path = fetch.locate(spec)
    assert path == isolated_cache / "demo" / "data.bin" and path.read_bytes() == b"real bytes"


def test_corrupt_download_gives_clear_error_and_leaves_no_file(http_folder, online, monkeypatch, isolated_cache):
    root, base = http_folder
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"corrupted!")
    spec = remote(base, content=b"real bytes")
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        fetch.download(spec, retries=0)
    folder = isolated_cache / "demo"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_damaged_cache_file_is_moved_aside_and_downloaded_again(http_folder, online, monkeypatch, isolated_cache,
                                                                  capsys):
    root, base = http_folder
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"real bytes")
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"real by")  # truncated
    path = fetch.locate(remote(base))
    assert path.read_bytes() == b"real bytes"
    assert [p.name.split(".damaged-")[0] for p in (isolated_cache / "demo").glob("*.damaged-*")] == ["data.bin"]
    assert "moved the damaged file" in capsys.readouterr().out


def test_a_cache_file_that_fails_to_parse_is_replaced_when_it_can_be_downloaded(http_folder, online, monkeypatch,
                                                                                isolated_cache):
    root, base = http_folder
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"real bytes")
    spec = RemoteFile("data.bin", "demo", (f"{base}/data.bin",))  # no known hash: only the reader can tell
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"garbage")
    found = fetch.resolve(text_dataset(spec), source="full")
    assert found.value == b"real bytes" and list((isolated_cache / "demo").glob("data.bin.damaged-*"))


def test_a_damaged_cache_file_offline_is_an_error_that_says_delete_it(monkeypatch, isolated_cache):
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"real byteZ")
    for source in ("auto", "full"):  # never silently replaced by the sample either
        with pytest.raises(DataFileError) as err:
            fetch.resolve(text_dataset(remote("http://127.0.0.1:9"), sample=lambda: {}), source=source)
        assert "data.bin" in str(err.value) and "sha256" in str(err.value) and "Fix: delete" in str(err.value)


def test_the_hash_recorded_at_download_catches_later_damage(http_folder, online, monkeypatch, isolated_cache):
    root, base = http_folder
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"real bytes, no published hash")
    spec = RemoteFile("data.bin", "demo", (f"{base}/data.bin",))
    path = fetch.locate(spec)
    monkeypatch.setenv("TWDL_OFFLINE", "1")
    path.write_bytes(b"real bytes, no published")  # truncated later
    with pytest.raises(DataFileError, match="recorded at download"):
        fetch.locate(spec)


def test_mirror_files_verified_against_upstream_or_the_mirror_sha256sums(tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(mirror))
    spec = remote("http://127.0.0.1:9")
    subset = mirror / "demo" / "data.bin"
    subset.write_bytes(b"real, a documented subset")
    with pytest.raises(DataFileError, match="differs from the expected one") as err:
        fetch.locate(spec)  # not upstream, and no SHA256SUMS vouches for it
    assert "Fix: replace" in str(err.value) and "TWDL_DATA_MIRROR" in str(err.value)
    digest = hashlib.sha256(subset.read_bytes()).hexdigest()
    (mirror / "SHA256SUMS").write_text(f"{digest}  ./demo/data.bin\n")
    assert fetch.locate(spec) == subset  # the mirror documents this subset
    subset.write_bytes(b"real, a documented subsex")
    with pytest.raises(DataFileError, match="SHA256SUMS lists"):
        fetch.locate(spec)


def test_a_verified_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch, isolated_cache):
    calls = []
    original = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda p: calls.append(p) or original(p))
    f = tmp_path / "big.bin"
    f.write_bytes(b"real bytes")
    assert verify.file_sha256(f) == verify.file_sha256(f) == hashlib.sha256(b"real bytes").hexdigest()
    assert len(calls) == 1
    stamp = json.loads(next((isolated_cache / "verified").glob("big.bin.*.json")).read_text())
    assert stamp["size"] == 10 and stamp["sha256"] == hashlib.sha256(b"real bytes").hexdigest()
    f.write_bytes(b"other bytes")
    assert verify.file_sha256(f) == hashlib.sha256(b"other bytes").hexdigest() and len(calls) == 2


def test_check_source():
    assert fetch.check_source("auto") == "auto"
    with pytest.raises(ValueError, match="sample"):
        fetch.check_source("everything")


WRITER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("files", sys.argv[2])  # the package's one atomic writer, imported alone
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
with files.atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as handle:
        handle.write(b"half of the new ")
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
        handle.write(b"file")
"""


def _kill_when(process, ready):
    """SIGKILL `process` as soon as `ready()` says it is in the middle of writing."""
    deadline, started = time.time() + 60, False
    while not (started := ready()) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert started, "the writer never started"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_killed_during_a_write_the_old_file_stays_intact(tmp_path):
    target = tmp_path / "covtype.data.gz"
    target.write_bytes(gzip.compress(b"the old good file"))
    files_module = Path(fetch.__file__).resolve().parents[1] / "files.py"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(files_module)], stdout=subprocess.PIPE,
                               text=True)
    _kill_when(process, lambda: process.stdout.readline().strip() == "writing")
    assert gzip.decompress(target.read_bytes()) == b"the old good file"


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Sends half of a 2 MB body, then stalls: a download that is interrupted mid-way."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(2_000_000))
        self.end_headers()
        self.wfile.write(b"x" * 1_000_000)
        self.wfile.flush()
        time.sleep(30)

    def log_message(self, *args):
        pass


def test_killed_during_a_download_no_file_appears_in_the_cache(tmp_path, isolated_cache):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data.bin"
    code = (f"from twdl_helpers.data.fetch import RemoteFile, download\n"
            f"download(RemoteFile('data.bin', 'demo', ({url!r},), None), retries=0)")
    env = {**os.environ, "TWDL_CACHE": str(isolated_cache), "TWDL_OFFLINE": "0"}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    folder = isolated_cache / "demo"
    _kill_when(process, lambda: any(p.stat().st_size > 0 for p in folder.glob(".data.bin.*.tmp")) if folder.exists()
               else False)
    server.shutdown()
    assert not (folder / "data.bin").exists(), "a killed download must not leave a file that looks complete"
