"""File resolution: explicit path, mirror, cache, verified download, clear errors, no partial files."""
import functools
import hashlib
import http.server
import threading

import pytest

from twdl_helpers.data import fetch
from twdl_helpers.data.fetch import DataNotFoundError, RemoteFile


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


def remote(url_base, content=b"real bytes", name="data.bin", **kw):
    return RemoteFile(name, "demo", (f"{url_base}/{name}",), hashlib.sha256(content).hexdigest(), **kw)


def test_explicit_path_wins_and_missing_explicit_path_names_it(tmp_path, isolated_cache):
    f = tmp_path / "data.bin"
    f.write_bytes(b"x")
    spec = remote("http://127.0.0.1:9")
    assert fetch.locate(spec, f) == f
    assert fetch.locate(spec, tmp_path) == f
    with pytest.raises(DataNotFoundError, match="not found at the path given"):
        fetch.locate(spec, tmp_path / "nowhere")


def test_mirror_then_cache(tmp_path, monkeypatch, isolated_cache):
    spec = remote("http://127.0.0.1:9")
    (isolated_cache / "demo").mkdir(parents=True)
    (isolated_cache / "demo" / "data.bin").write_bytes(b"cached")
    monkeypatch.setenv("TWDL_DATA_MIRROR", str(tmp_path / "mirror"))
    assert fetch.locate(spec) == isolated_cache / "demo" / "data.bin"
    (tmp_path / "mirror" / "demo").mkdir(parents=True)
    (tmp_path / "mirror" / "demo" / "data.bin").write_bytes(b"mirrored")
    assert fetch.locate(spec) == tmp_path / "mirror" / "demo" / "data.bin"


def test_offline_without_files_names_file_places_and_url(monkeypatch, isolated_cache):
    monkeypatch.setenv("TWDL_OFFLINE", "1")
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    spec = RemoteFile("covtype.data.gz", "covertype", ("https://example.org/covtype.data.gz",))
    with pytest.raises(DataNotFoundError) as err:
        fetch.locate(spec)
    message = str(err.value)
    assert "covtype.data.gz" in message and "https://example.org/covtype.data.gz" in message
    assert str(isolated_cache / "covertype" / "covtype.data.gz") in message


def test_download_verifies_and_falls_back_to_next_mirror(http_folder, monkeypatch, isolated_cache):
    root, base = http_folder
    monkeypatch.setenv("TWDL_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"real bytes")
    spec = RemoteFile("data.bin", "demo", (f"{base}/missing/data.bin", f"{base}/data.bin"),
                      hashlib.sha256(b"real bytes").hexdigest())
    path = fetch.locate(spec)
    assert path == isolated_cache / "demo" / "data.bin" and path.read_bytes() == b"real bytes"


def test_corrupt_download_gives_clear_error_and_leaves_no_file(http_folder, monkeypatch, isolated_cache):
    root, base = http_folder
    monkeypatch.setenv("TWDL_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    (root / "data.bin").write_bytes(b"corrupted!")
    spec = remote(base, content=b"real bytes")
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        fetch.download(spec, retries=0)
    folder = isolated_cache / "demo"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_check_source():
    assert fetch.check_source("auto") == "auto"
    with pytest.raises(ValueError, match="sample"):
        fetch.check_source("everything")
