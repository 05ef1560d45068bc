"""Every loader, every damaged file: truncated, corrupted or wrong-format files in the cache and in the mirror, a
wrong explicit path, and a damaged cache file replaced by a verified (loopback) download."""
import dataclasses
import functools
import gzip
import hashlib
import http.server
import threading
import zipfile

import pytest

import twdl_helpers as twdl
from twdl_helpers.data import animal_faces, covertype, mnist
from twdl_helpers.data.errors import DataFileError, DataNotFoundError

# loader name -> (folder, file name, the call that loads it insisting on the real data)
LOADERS = {
    "covertype": ("covertype", "covtype.data.gz", lambda: twdl.load_covertype(source="full")),
    "mnist": ("mnist", "t10k-labels-idx1-ubyte.gz", lambda: twdl.load_mnist(source="full", limit_train=10)),
    "afhq": ("afhq", "afhq_32x32.zip", lambda: twdl.load_animal_faces(dataset="afhq", source="full")),
    "cifar_animals": ("cifar10_animals", "cifar10_cat_dog_deer_32x32.zip",
                      lambda: twdl.load_animal_faces(dataset="cifar_animals", source="full", n_train=10, n_val=10)),
    "wikitext": ("wikitext2/wikitext-2-raw", "wiki.test.raw", lambda: twdl.load_wikitext2(source="full")),
}
WRONG_FORMAT = {
    "covertype": gzip.compress(b"1,2,3\n4,5,6\n"),
    "mnist": gzip.compress(b"\x00\x00\x09\x99" + bytes(20)),
    "afhq": None, "cifar_animals": None,  # a zip without the ImageFolder layout, made below
    "wikitext": b"name,value\nalpha,1\nbeta,2\n",
}


def _zip_without_layout() -> bytes:
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/readme.txt", "no train/ or val/ folders here")
    return buffer.getvalue()


def damaged(kind: str, loader: str, good: bytes) -> bytes:
    """The real file's bytes truncated, with a run of bytes flipped in the middle, or a file of another format."""
    if kind == "truncated":
        cut = good[: len(good) // 2]
        return cut[:-1] if cut.endswith(b"\n") else cut
    if kind == "corrupted":
        middle = len(good) // 2
        return good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 64]) + good[middle + 64:]
    return WRONG_FORMAT[loader] if WRONG_FORMAT[loader] is not None else _zip_without_layout()


def _place(root, folder, name, data, mirror):
    """Put the damaged file in `root` (cache or mirror) and the loader's other real files beside it."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / name).write_bytes(data)
    if folder == "mnist":  # the three other MNIST files, real
        for other in mnist.MNIST_FILES:
            if other != name:
                (root / folder / other).symlink_to(mirror / "mnist" / other)


@pytest.mark.parametrize("where", ["cache", "mirror"])
@pytest.mark.parametrize("kind", ["truncated", "corrupted", "wrong format"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_damaged_file_gives_the_named_error(loader, kind, where, tmp_path, mirror, isolated_cache, monkeypatch):
    folder, name, load = LOADERS[loader]
    bad = damaged(kind, loader, (mirror / folder / name).read_bytes())
    if where == "cache":
        monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
        _place(isolated_cache, folder, name, bad, mirror)
    else:
        monkeypatch.setenv("TWDL_DATA_MIRROR", str(tmp_path / "mirror"))
        _place(tmp_path / "mirror", folder, name, bad, mirror)
    with pytest.raises(DataFileError) as err:
        load()
    message = str(err.value)
    assert name in message and "\n  Fix: " in message, message
    assert ("Fix: delete" if where == "cache" else "Fix: replace") in message, message
    assert err.value.path.name == name and err.value.problem
    assert (isolated_cache if where == "cache" else tmp_path / "mirror").joinpath(folder, name).is_file(), \
        "offline, a damaged file is reported, never moved or silently replaced"


@pytest.mark.parametrize("kind", ["truncated", "corrupted", "wrong format"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_damaged_file_given_by_path_fails_the_format_check(loader, kind, tmp_path, mirror, isolated_cache):
    folder, name, _ = LOADERS[loader]
    _place(tmp_path / "given", folder, name, damaged(kind, loader, (mirror / folder / name).read_bytes()), mirror)
    given = tmp_path / "given" / folder
    calls = {"covertype": lambda: twdl.load_covertype(path=given / name),
             "mnist": lambda: twdl.load_mnist(path=given),
             "afhq": lambda: twdl.load_animal_faces(path=given / name, dataset="afhq"),
             "cifar_animals": lambda: twdl.load_animal_faces(path=given / name),
             "wikitext": lambda: twdl.load_wikitext2(path=given)}
    with pytest.raises(DataFileError) as err:  # no checksum for your own copy: the parser catches it
        calls[loader]()
    assert err.value.path.name == name and "sha256" not in err.value.problem
    assert "Fix: replace it" in str(err.value)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_wrong_explicit_path_gives_the_named_error(loader, tmp_path, isolated_cache):
    calls = {
        "covertype": lambda p: twdl.load_covertype(path=p),
        "mnist": lambda p: twdl.load_mnist(path=p),
        "afhq": lambda p: twdl.load_animal_faces(path=p, dataset="afhq"),
        "cifar_animals": lambda p: twdl.load_animal_faces(path=p),
        "wikitext": lambda p: twdl.load_wikitext2(path=p),
    }
    with pytest.raises(DataNotFoundError, match="not found at the path given"):
        calls[loader](tmp_path / "no such folder")


@pytest.fixture
def loopback(tmp_path, monkeypatch):
    """A loopback HTTP server over tmp_path/www, and downloads allowed."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TWDL_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TWDL_DATA_MIRROR", raising=False)
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _serve(module, attribute, file, root, base, data, with_hash=True):
    """Point `module.attribute` (a DataFiles) at the loopback copy of `file`, serving `data`."""
    (root / file.name).write_bytes(data)
    served = dataclasses.replace(file, urls=(f"{base}/{file.name}",),
                                 sha256=hashlib.sha256(data).hexdigest() if with_hash else None)
    dataset = getattr(module, attribute)
    files = tuple(served if f.name == file.name else f for f in dataset.files)
    return dataclasses.replace(dataset, files=files), served


def test_covertype_damaged_cache_file_is_replaced_by_a_verified_download(loopback, mirror, isolated_cache,
                                                                        monkeypatch):
    root, base = loopback
    good = (mirror / "covertype" / "covtype.data.gz").read_bytes()
    dataset, served = _serve(covertype, "COVERTYPE", covertype.COVERTYPE_FILE, root, base, good)
    monkeypatch.setattr(covertype, "COVERTYPE", dataset)
    _place(isolated_cache, "covertype", "covtype.data.gz", good[: len(good) // 2], mirror)
    data = twdl.load_covertype(source="full")
    assert data.source == "real" and len(data.train) + len(data.test) == 10_000
    assert (isolated_cache / "covertype" / "covtype.data.gz").read_bytes() == good
    assert list((isolated_cache / "covertype").glob("covtype.data.gz.damaged-*"))


def test_mnist_damaged_cache_file_is_replaced_by_a_verified_download(loopback, mirror, isolated_cache, monkeypatch):
    root, base = loopback
    name = "t10k-labels-idx1-ubyte.gz"
    good = (mirror / "mnist" / name).read_bytes()
    dataset, _ = _serve(mnist, "MNIST", mnist.MNIST_FILES[name], root, base, good)
    assert dataset.files[3].sha256 == mnist.MNIST_FILES[name].sha256  # the real upstream hash is what is checked
    monkeypatch.setattr(mnist, "MNIST", dataset)
    _place(isolated_cache, "mnist", name, damaged("corrupted", "mnist", good), mirror)
    data = twdl.load_mnist(source="full", limit_train=10)
    assert data.source == "real" and len(data.test) == 10_000
    assert (isolated_cache / "mnist" / name).read_bytes() == good


def test_afhq_cache_zip_that_fails_to_decode_is_replaced_by_a_download(loopback, mirror, isolated_cache, monkeypatch):
    root, base = loopback
    good = (mirror / "afhq" / "afhq_32x32.zip").read_bytes()
    dataset, _ = _serve(animal_faces, "AFHQ", animal_faces.AFHQ_ZIP, root, base, good, with_hash=False)
    monkeypatch.setattr(animal_faces, "AFHQ", dataset)  # no published hash: only decoding can tell
    _place(isolated_cache, "afhq", "afhq_32x32.zip", damaged("truncated", "afhq", good), mirror)
    data = twdl.load_animal_faces(dataset="afhq", source="full")
    assert data.source == "real" and len(data.test) == 15
    assert (isolated_cache / "afhq" / "afhq_32x32.zip").read_bytes() == good


def test_a_changed_bundled_sample_is_reported(tmp_path, monkeypatch, isolated_cache):
    from twdl_helpers.data import samples
    copy = tmp_path / "bundled"
    copy.mkdir()
    for f in samples.BUNDLED_DIR.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "covtype_sample.data.gz").write_bytes(gzip.compress(b"1,2,3\n"))
    monkeypatch.setattr(samples, "BUNDLED_DIR", copy)
    with pytest.raises(DataFileError, match="reinstall"):
        twdl.load_covertype(source="sample")
