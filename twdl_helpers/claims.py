"""The claims a graded notebook exports, and how the grader reads them back without running any of their code.

After a submission's cells, its kernel writes the objects the module's checks need into a folder (`export_claims`):
`claims.json` (records, parameters-free plain values, tables, strings and the shape of every object) and
safetensors files (tensors; each model's weights with its architecture and constructor arguments as metadata).
Nothing is pickled. The grader's trusted scorer reads that folder (`read_claims`): every file must be a regular
file within its size limit, every node of a known type, every model of an allowlisted class whose weights fit it
exactly; it rebuilds the objects from data alone. A model of any other class (a student's own) is exported as
"cannot be rebuilt" and its checks wait for a TA; a file that breaks these rules is a forged export.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .files import atomic_write

__all__ = ["FORMAT", "CLAIMS_FILE", "ClaimLimits", "ClaimError", "Claims", "Unrebuildable", "export_claims",
           "read_claims", "needs_a_ta", "read_regular_file", "safetensors_header"]

FORMAT = 1
CLAIMS_FILE = "claims.json"
TENSORS_FILE = "tensors.safetensors"
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
# Helper dataclasses a claim may hold (rebuilt from their fields): class name -> module.
DATACLASSES = {"TensorData": "twdl_helpers.training", "History": "twdl_helpers.training",
               "TabularData": "twdl_helpers.features", "CategoryEncoder": "twdl_helpers.features",
               "MNISTData": "twdl_helpers.data.mnist", "AnimalFaces": "twdl_helpers.data.animal_faces",
               "TextCorpus": "twdl_helpers.data.text", "Blocks": "twdl_helpers.lm.blocks"}
_PLAIN = (type(None), bool, int, float, str)


class ClaimError(ValueError):
    """An exported claim breaks the format's rules (forged, damaged or too large): it is not read."""


@dataclass(frozen=True)
class ClaimLimits:
    """What the grader accepts in one submission's export."""

    max_file_bytes: int = 256 * 2**20  # any single file
    max_total_bytes: int = 768 * 2**20  # all files together
    max_nodes: int = 200_000  # objects, list items and dict entries in claims.json
    max_depth: int = 40
    max_string: int = 8 * 2**20  # characters in one string
    max_tensors: int = 20_000
    max_files: int = 2_000


class Unrebuildable:
    """Stands in for an object the grader could not rebuild; touching it raises, and a model among a check's
    arguments sends that check to a TA (`needs_a_ta`)."""

    def __init__(self, where: str, kind: str, reason: str, model: bool) -> None:
        object.__setattr__(self, "details", (where, kind, reason, model))

    def __getattr__(self, name: str) -> Any:
        where, kind, reason, _ = object.__getattribute__(self, "details")
        raise ClaimError(f"{where} ({kind}) could not be rebuilt by the grader: {reason}")

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        return self.__getattr__("")

    __getitem__ = __iter__ = __len__ = __call__ = __float__ = __int__ = __bool__ = _refuse

    def __repr__(self) -> str:
        where, kind, reason, _ = object.__getattribute__(self, "details")
        return f"<not rebuilt: {where}, a {kind}: {reason}>"


@dataclass
class Claims:
    """What the grader rebuilt from one export: objects by name, the records, and why any name is missing."""

    objects: dict[str, Any] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # name -> why it is not among objects
    fingerprints: dict[str, str] = field(default_factory=dict)  # model file -> sha256 of its tensors (copies)


# ---------------------------------------------------------------- kernel side: export ------------------------------

class _Exporter:
    """Turns objects into JSON nodes and safetensors files (in the submission's kernel)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tensors: dict[str, torch.Tensor] = {}
        self.models = 0
        self.seen: dict[int, int] = {}  # id(object) -> node id (shared objects are written once)
        self.keep: list[Any] = []  # objects whose ids are in `seen` stay alive while exporting

    def node(self, value: Any, where: str, depth: int = 0) -> dict[str, Any]:
        if depth > ClaimLimits.max_depth:
            return _opaque(value, where, "nested too deeply")
        if isinstance(value, _PLAIN):
            return {"type": "value", "value": value}
        if isinstance(value, (np.generic,)):
            return {"type": "value", "value": value.item()}
        if id(value) in self.seen:
            return {"type": "ref", "id": self.seen[id(value)]}
        self.seen[id(value)] = len(self.seen)
        self.keep.append(value)
        node = self._node(value, where, depth)
        node["id"] = self.seen[id(value)]
        return node

    def _tensor(self, tensor: torch.Tensor) -> str:
        key = f"t{len(self.tensors)}"
        self.tensors[key] = tensor.detach().to("cpu").contiguous().clone()
        return key

    def _node(self, value: Any, where: str, depth: int) -> dict[str, Any]:
        import pandas as pd

        from .training import ModelsByRun

        if isinstance(value, torch.Tensor):
            if value.dtype not in DTYPES.values() or value.is_sparse or value.device.type == "meta":
                return _opaque(value, where, f"a {value.dtype} tensor")
            return {"type": "tensor", "key": self._tensor(value)}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf" and _torch_dtype(value.dtype) in DTYPES.values():
                return {"type": "ndarray", "key": self._tensor(torch.from_numpy(np.ascontiguousarray(value)))}
            if value.dtype.kind == "U" or (value.dtype.kind == "O" and all(isinstance(v, str) for v in value.flat)):
                return {"type": "ndarray", "strings": [str(v) for v in value.flat], "shape": list(value.shape)}
            return _opaque(value, where, f"an array of {value.dtype}")
        if isinstance(value, nn.Module):
            return self._model(value, where)
        if isinstance(value, (list, tuple)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            return {"type": kind, "items": [self.node(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if not all(isinstance(k, _PLAIN) for k in value):
                return _opaque(value, where, "a dict with keys that are not plain values")
            kind = "ModelsByRun" if isinstance(value, ModelsByRun) else "dict"
            return {"type": "dict", "class": kind,
                    "items": [[k, self.node(v, f"{where}[{k!r}]", depth + 1)] for k, v in value.items()]}
        if isinstance(value, pd.DataFrame):
            return self._frame(value, where, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__name__ in DATACLASSES \
                and type(value).__module__ == DATACLASSES[type(value).__name__]:
            return {"type": "dataclass", "class": type(value).__name__,
                    "fields": {f.name: self.node(getattr(value, f.name), f"{where}.{f.name}", depth + 1)
                               for f in dataclasses.fields(value) if f.init}}
        if type(value).__name__ == "Figure" and type(value).__module__.startswith("matplotlib"):
            return {"type": "figure", "titles": [str(ax.get_title()) for ax in value.axes]}
        return _opaque(value, where, "not a kind of object the grader rebuilds")

    def _frame(self, frame: Any, where: str, depth: int) -> dict[str, Any]:
        plain = lambda values: [v.item() if isinstance(v, np.generic) else v for v in values]  # noqa: E731
        columns, index = plain(list(frame.columns)), plain(list(frame.index))
        data = [plain(frame[c].tolist()) if frame.columns.is_unique else plain(frame.iloc[:, i].tolist())
                for i, c in enumerate(frame.columns)]
        if not all(isinstance(v, _PLAIN) for v in [*columns, *index, *(x for col in data for x in col)]):
            return _opaque(frame, where, "a table whose cells, index or columns are not plain values")
        return {"type": "frame", "columns": columns, "index": index, "data": data,
                "dtypes": [str(t) for t in frame.dtypes], "index_name": _plain_or_none(frame.index.name),
                "attrs": self.node(dict(frame.attrs), f"{where}.attrs", depth + 1)}

    def _model(self, model: nn.Module, where: str) -> dict[str, Any]:
        from .models import ARCHITECTURES, construction

        training = bool(model.training)
        if hasattr(model, "peft_config"):
            return self._adapters(model, where)
        built = construction(model)
        if built is None or built[0] not in ARCHITECTURES or type(model) is not ARCHITECTURES[built[0]]:
            return _opaque(model, where, "not one of the helpers' models (twdl.ARCHITECTURES)", model=True)
        name, arguments = built
        try:
            arguments = json.loads(json.dumps(_jsonable(arguments)))
            skeleton = _skeleton(name, arguments)
        except Exception as err:  # noqa: BLE001  (arguments the grader cannot rebuild from)
            return _opaque(model, where, f"its constructor arguments cannot be rebuilt ({err})", model=True)
        state = _effective_state(model)
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        if expected != {k: tuple(v.shape) for k, v in state.items()}:
            return _opaque(model, where, f"a {name} changed after it was built: its weights no longer fit "
                                         f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})", model=True)
        self.models += 1
        file = f"model-{self.models}.safetensors"
        _save(self.folder / file, state, {"architecture": name, "arguments": arguments})
        return {"type": "model", "file": file, "training": training}

    def _adapters(self, model: nn.Module, where: str) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        from .lm.adapters import count_4bit_layers
        from .lm.load import BUNDLED_MODEL

        config = model.peft_config.get("default")
        base = str(getattr(getattr(model, "config", None), "name_or_path", "") or "")
        if base and Path(base).expanduser().is_dir() and Path(base).resolve() == BUNDLED_MODEL.resolve():
            base = "bundled"
        if config is None or type(config).__name__ != "LoraConfig" or len(model.peft_config) != 1:
            return _opaque(model, where, "not a model with one set of LoRA adapters", model=True)
        targets = config.target_modules
        meta = {"kind": "lora", "base": base, "method": "qlora" if count_4bit_layers(model) else "lora",
                "r": int(config.r), "alpha": float(config.lora_alpha), "dropout": float(config.lora_dropout),
                "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else str(targets),
                "bias": str(config.bias),
                "trainable": [n for n, p in model.named_parameters() if p.requires_grad]}
        self.models += 1
        file = f"model-{self.models}.safetensors"
        _save(self.folder / file, dict(get_peft_model_state_dict(model)), meta)
        return {"type": "lora", "file": file, "training": bool(model.training)}


def _torch_dtype(dtype: np.dtype) -> torch.dtype | None:
    try:
        return torch.from_numpy(np.zeros(0, dtype)).dtype
    except TypeError:  # a NumPy type torch has no tensor for
        return None


def _plain_or_none(value: Any) -> Any:
    return value if isinstance(value, _PLAIN) else None


def _opaque(value: Any, where: str, reason: str, model: bool = False) -> dict[str, Any]:
    kind = type(value).__name__
    return {"type": "opaque", "class": kind, "where": where, "reason": reason, "model": bool(model)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    raise TypeError(f"{type(value).__name__} is not a plain value")


def _effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as the forward pass sees it: a pruned weight (weight_orig * weight_mask) under its own name."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    for key in [k for k in state if k.endswith("_orig") and k[:-5] + "_mask" in state]:
        state[key[:-5]] = (state.pop(key) * state.pop(key[:-5] + "_mask")).contiguous()
    return {k: v.clone() for k, v in state.items()}


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    atomic_write(path, save(tensors, metadata={"twdl": json.dumps(meta)}))


def export_claims(namespace: dict[str, Any], names: list[str], folder: str | Path,
                  records: dict[str, Any] | None = None) -> dict[str, str]:
    """Write the objects `names` of `namespace` (a notebook's globals) and `records` into `folder`.

    Returns name -> why, for the names that could not be exported (not defined, or an error while exporting).
    Runs in the submission's kernel after its cells; whatever it writes is a claim the grader checks. `records`
    default to what this kernel recorded (`twdl.record`).
    """
    if records is None:
        from .records import recorded

        records = recorded()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exporter = _Exporter(folder)
    objects, missing = {}, {}
    for name in names:
        if name not in namespace:
            missing[name] = f"`{name}` is not defined in the notebook"
            continue
        try:
            objects[name] = exporter.node(namespace[name], name)
        except Exception as err:  # noqa: BLE001  (one bad object must not lose the others)
            missing[name] = f"`{name}` could not be exported ({type(err).__name__}: {err})"
    if exporter.tensors:
        from safetensors.torch import save

        atomic_write(folder / TENSORS_FILE, save(exporter.tensors))
    try:
        plain_records = json.loads(json.dumps(_jsonable(records or {}), allow_nan=True))
    except (TypeError, ValueError):
        plain_records = {}
    atomic_write(folder / CLAIMS_FILE, json.dumps({"format": FORMAT, "records": plain_records, "objects": objects,
                                                   "missing": missing}, allow_nan=True))
    return missing


# ---------------------------------------------------------------- grader side: read ---------------------------------

def read_regular_file(folder: Path, name: str, max_bytes: int | None) -> bytes:
    """The bytes of `folder/name`: a regular file reached without following a symlink, at most `max_bytes` (None: any
    size); a `ClaimError` otherwise.

    For files written by code we do not trust: it could put a symlink to another student's files (followed here,
    outside its sandbox) or a FIFO (blocking here) where a file is expected.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ClaimError(f"{name!r} is not a plain file name")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        dir_fd = os.open(folder, flags | getattr(os, "O_DIRECTORY", 0))
    except OSError as err:
        raise ClaimError(f"the export folder cannot be opened ({err.strerror})") from err
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        raise ClaimError(f"{name} cannot be opened as a plain file ({err.strerror}; a symlink is refused)") from err
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ClaimError(f"{name} is not a regular file (a FIFO, device or folder is refused)")
        if max_bytes is None:
            return handle.read()
        if info.st_size > max_bytes:
            raise ClaimError(f"{name} holds {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ClaimError(f"{name} grew past the {max_bytes:,} bytes allowed while it was read")
    return data


def safetensors_header(data: bytes, name: str) -> tuple[dict[str, Any], dict[str, tuple[str, tuple[int, ...]]]]:
    """(metadata, {tensor: (dtype, shape)}) of a safetensors file's bytes, checked before any tensor is built."""
    if len(data) < 8:
        raise ClaimError(f"{name} is not a safetensors file (too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8 or size > 100 * 2**20:
        raise ClaimError(f"{name} is not a safetensors file (its header length {size:,} does not fit the file)")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ClaimError(f"{name} is not a safetensors file (its header is not JSON)") from err
    if not isinstance(header, dict):
        raise ClaimError(f"{name} is not a safetensors file (its header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ClaimError(f"{name}: its metadata must map names to strings")
    tensors = {}
    body = len(data) - 8 - size
    for key, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in DTYPES or not isinstance(info.get("shape"), list):
            raise ClaimError(f"{name}: tensor {key!r} has an unknown dtype or no shape")
        shape = info["shape"]
        offsets = info.get("data_offsets")
        if not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape) or len(shape) > 8:
            raise ClaimError(f"{name}: tensor {key!r} has an impossible shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= body):
            raise ClaimError(f"{name}: tensor {key!r} points outside the file")
        itemsize = torch.empty(0, dtype=DTYPES[info["dtype"]]).element_size()
        if math.prod(shape) * itemsize != offsets[1] - offsets[0]:
            raise ClaimError(f"{name}: tensor {key!r} of shape {shape} does not match its {offsets[1] - offsets[0]} "
                             "bytes")
        tensors[key] = (info["dtype"], tuple(shape))
    return metadata, tensors


class _Reader:
    """Rebuilds objects from one export folder (in the grader's scorer)."""

    def __init__(self, folder: Path, limits: ClaimLimits) -> None:
        self.folder, self.limits = folder, limits
        self.read_bytes = 0
        self.nodes = 0
        self.built: dict[int, Any] = {}
        self.files: dict[str, tuple[dict[str, Any], dict[str, torch.Tensor]]] = {}
        self.fingerprints: dict[str, str] = {}

    def file(self, name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if name not in self.files:
            if len(self.files) >= self.limits.max_files:
                raise ClaimError(f"more than {self.limits.max_files} files in the export")
            data = read_regular_file(self.folder, name, self.limits.max_file_bytes)
            self.read_bytes += len(data)
            if self.read_bytes > self.limits.max_total_bytes:
                raise ClaimError(f"the export holds more than {self.limits.max_total_bytes:,} bytes")
            metadata, shapes = safetensors_header(data, name)
            if len(shapes) > self.limits.max_tensors:
                raise ClaimError(f"{name} holds {len(shapes):,} tensors, more than {self.limits.max_tensors:,}")
            from safetensors.torch import load

            try:
                tensors = load(data)
            except Exception as err:  # noqa: BLE001  (the parser's own refusal)
                raise ClaimError(f"{name} is not a valid safetensors file ({err})") from err
            import hashlib

            self.fingerprints[name] = hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0]:]).hexdigest()
            self.files[name] = (metadata, tensors)
        return self.files[name]

    def tensor(self, key: Any) -> torch.Tensor:
        if not isinstance(key, str):
            raise ClaimError("a tensor node names no tensor")
        _, tensors = self.file(TENSORS_FILE)
        if key not in tensors:
            raise ClaimError(f"tensor {key!r} is not in {TENSORS_FILE}")
        return tensors[key]

    def count(self, nodes: int) -> None:
        """Count `nodes` more objects, list items or table cells against the limit."""
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise ClaimError(f"the claims hold more than {self.limits.max_nodes:,} objects")

    def build(self, node: Any, where: str, depth: int = 0) -> Any:
        self.count(1)
        if depth > self.limits.max_depth:
            raise ClaimError(f"{where}: nested more than {self.limits.max_depth} levels deep")
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise ClaimError(f"{where}: not a claim node")
        kind = node["type"]
        if kind == "ref":
            if node.get("id") not in self.built:
                raise ClaimError(f"{where}: refers to an object not built before it")
            return self.built[node["id"]]
        if kind == "value":
            return self.plain(node.get("value"), where)
        handler = getattr(self, f"_build_{kind}", None)
        if handler is None:
            raise ClaimError(f"{where}: unknown node type {kind!r}")
        value = handler(node, where, depth)
        if "id" in node:
            if not isinstance(node["id"], int) or node["id"] in self.built:
                raise ClaimError(f"{where}: a duplicate or malformed object id")
            self.built[node["id"]] = value
        return value

    def plain(self, value: Any, where: str) -> Any:
        if not isinstance(value, _PLAIN):
            raise ClaimError(f"{where}: not a plain value")
        if isinstance(value, str) and len(value) > self.limits.max_string:
            raise ClaimError(f"{where}: a string of {len(value):,} characters")
        return value

    def items(self, node: dict, key: str, where: str) -> list:
        items = node.get(key)
        if not isinstance(items, list):
            raise ClaimError(f"{where}: {key} must be a list")
        self.count(len(items))
        return items

    def _build_list(self, node: dict, where: str, depth: int) -> list:
        return [self.build(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(self.items(node, "items", where))]

    def _build_tuple(self, node: dict, where: str, depth: int) -> tuple:
        return tuple(self._build_list(node, where, depth))

    def _build_dict(self, node: dict, where: str, depth: int) -> dict:
        from .training import ModelsByRun

        kinds = {"dict": dict, "ModelsByRun": ModelsByRun}
        if node.get("class") not in kinds:
            raise ClaimError(f"{where}: unknown mapping {node.get('class')!r}")
        out = kinds[node["class"]]()
        for pair in self.items(node, "items", where):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ClaimError(f"{where}: a malformed entry")
            key = self.plain(pair[0], where)
            out[key] = self.build(pair[1], f"{where}[{key!r}]", depth + 1)
        return out

    def _build_tensor(self, node: dict, where: str, depth: int) -> torch.Tensor:
        return self.tensor(node.get("key"))

    def _build_ndarray(self, node: dict, where: str, depth: int) -> np.ndarray:
        if "strings" in node:
            strings = [self.plain(s, where) for s in self.items(node, "strings", where)]
            shape = node.get("shape")
            if not all(isinstance(s, str) for s in strings) or not isinstance(shape, list) or \
                    not all(isinstance(d, int) and d >= 0 for d in shape) or math.prod(shape) != len(strings):
                raise ClaimError(f"{where}: a malformed array of strings")
            return np.array(strings, dtype=str).reshape(shape)
        return self.tensor(node.get("key")).numpy()

    def _build_frame(self, node: dict, where: str, depth: int) -> Any:
        import pandas as pd

        columns = [self.plain(c, where) for c in self.items(node, "columns", where)]
        index = [self.plain(i, where) for i in self.items(node, "index", where)]
        data = self.items(node, "data", where)
        dtypes = self.items(node, "dtypes", where)
        if len(data) != len(columns) or len(dtypes) != len(columns) or \
                any(not isinstance(col, list) or len(col) != len(index) for col in data):
            raise ClaimError(f"{where}: a table whose columns and rows do not line up")
        self.count(len(columns) * len(index))
        frame = pd.DataFrame({i: [self.plain(v, where) for v in col] for i, col in enumerate(data)},
                             index=pd.Index(index, name=self.plain(node.get("index_name"), where)))
        frame.columns = columns
        for position, dtype in enumerate(dtypes):
            if dtype in ("float64", "float32", "int64", "int32", "bool"):
                try:
                    frame.isetitem(position, frame.iloc[:, position].astype(dtype))
                except (TypeError, ValueError) as err:
                    raise ClaimError(f"{where}: column {columns[position]!r} is not {dtype}") from err
        attrs = self.build(node.get("attrs", {"type": "dict", "class": "dict", "items": []}), f"{where}.attrs",
                           depth + 1)
        if not isinstance(attrs, dict):
            raise ClaimError(f"{where}: attrs must be a mapping")
        frame.attrs.update(attrs)
        return frame

    def _build_dataclass(self, node: dict, where: str, depth: int) -> Any:
        name = node.get("class")
        if name not in DATACLASSES:
            raise ClaimError(f"{where}: {name!r} is not a helpers' data class the grader rebuilds")
        cls = getattr(importlib.import_module(DATACLASSES[name]), name)
        given = node.get("fields")
        allowed = {f.name for f in dataclasses.fields(cls) if f.init}
        if not isinstance(given, dict) or set(given) - allowed:
            raise ClaimError(f"{where}: fields {sorted(set(given or {}) - allowed)} are not fields of {name}")
        values = {k: self.build(v, f"{where}.{k}", depth + 1) for k, v in given.items()}
        try:
            return cls(**values)
        except Exception as err:  # noqa: BLE001  (inconsistent fields: the class's own validation)
            raise ClaimError(f"{where}: not a valid {name} ({err})") from err

    def _build_figure(self, node: dict, where: str, depth: int) -> Any:
        from matplotlib.figure import Figure

        titles = [self.plain(t, where) for t in self.items(node, "titles", where)]
        if not all(isinstance(t, str) for t in titles) or len(titles) > 100:
            raise ClaimError(f"{where}: a figure's titles must be at most 100 strings")
        figure = Figure()
        for position, title in enumerate(titles, start=1):
            figure.add_subplot(1, max(1, len(titles)), position).set_title(title)
        return figure

    def _build_opaque(self, node: dict, where: str, depth: int) -> Unrebuildable:
        kind, reason = str(node.get("class", "object"))[:200], str(node.get("reason", ""))[:500]
        return Unrebuildable(where, kind, reason, bool(node.get("model")))

    def _build_model(self, node: dict, where: str, depth: int) -> nn.Module:
        from .models import ARCHITECTURES

        metadata, tensors = self.file(_model_file(node, where))
        meta = _metadata(metadata, where)
        name, arguments = meta.get("architecture"), meta.get("arguments")
        if name not in ARCHITECTURES:
            raise ClaimError(f"{where}: architecture {name!r} is not one the grader rebuilds")
        _check_arguments(ARCHITECTURES[name], arguments, where)
        try:
            skeleton = _skeleton(name, arguments)
        except Exception as err:  # noqa: BLE001
            raise ClaimError(f"{where}: {name}({arguments}) cannot be built ({type(err).__name__}: {err})") from err
        _check_weights(skeleton.state_dict(), tensors, f"{where}: the weights do not fit {name}")
        model = ARCHITECTURES[name](**arguments)
        model.load_state_dict(tensors, strict=True)
        return model.train(bool(node.get("training")))

    def _build_lora(self, node: dict, where: str, depth: int) -> nn.Module:
        metadata, tensors = self.file(_model_file(node, where))
        return _rebuild_adapters(_metadata(metadata, where), tensors, bool(node.get("training")), where)


def _check_weights(expected_state: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse `tensors` unless they are exactly the expected state's keys, shapes and dtypes (a strict load)."""
    expected = {k: (tuple(v.shape), v.dtype) for k, v in expected_state.items()}
    given = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    if set(given) != set(expected):
        extra, absent = sorted(set(given) - set(expected)), sorted(set(expected) - set(given))
        raise ClaimError(f"{what}: unexpected {extra[:3]}, missing {absent[:3]}")
    wrong = [k for k in expected if expected[k] != given[k]]
    if wrong:
        raise ClaimError(f"{what}: tensor {wrong[0]!r} is {given[wrong[0]]}, it should be {expected[wrong[0]]}")


def _model_file(node: dict, where: str) -> str:
    file = node.get("file")
    if not isinstance(file, str) or not file.startswith("model-") or not file.endswith(".safetensors"):
        raise ClaimError(f"{where}: a model node must name a model-N.safetensors file")
    return file


def _metadata(metadata: dict[str, str], where: str) -> dict[str, Any]:
    try:
        meta = json.loads(metadata.get("twdl", ""))
    except ValueError as err:
        raise ClaimError(f"{where}: the model file's metadata is not the grader's JSON") from err
    if not isinstance(meta, dict):
        raise ClaimError(f"{where}: the model file's metadata is not an object")
    return meta


def _check_arguments(cls: type, arguments: Any, where: str) -> None:
    """Constructor arguments must be plain data of sane size that bind to the class's signature (no device)."""
    def sane(value: Any, level: int) -> bool:
        if isinstance(value, bool) or value is None or isinstance(value, str) and len(value) < 100:
            return True
        if isinstance(value, int):
            return abs(value) < 2**31
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, list):
            return level < 2 and len(value) <= 64 and all(sane(v, level + 1) for v in value)
        return False

    if not isinstance(arguments, dict) or "device" in arguments or not all(sane(v, 0) for v in arguments.values()):
        raise ClaimError(f"{where}: constructor arguments {str(arguments)[:200]} are not small plain values")
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError as err:
        raise ClaimError(f"{where}: {cls.__name__} takes no such arguments ({err})") from err


def _skeleton(name: str, arguments: dict[str, Any]) -> nn.Module:
    """The model built on the meta device: its parameters' names and shapes, without allocating them."""
    from .models import ARCHITECTURES

    with torch.device("meta"):
        return ARCHITECTURES[name](**arguments)


BASE_MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*"  # a hub id, never a path


def _rebuild_adapters(meta: dict[str, Any], tensors: dict[str, torch.Tensor], training: bool, where: str) -> nn.Module:
    """A fresh base model from the grader's own copy, the LoRA adapters the claim describes, and their weights."""
    import re

    from . import lm

    base = meta.get("base")
    if base != "bundled" and not (isinstance(base, str) and re.fullmatch(BASE_MODEL_NAME, base)):
        return Unrebuildable(where, "LoRA model", f"its base model {str(base)[:120]!r} is neither the bundled model nor "
                                                  "a hub model id: the grader loads only those, from its own copy", True)
    r, alpha, dropout, method = meta.get("r"), meta.get("alpha"), meta.get("dropout"), meta.get("method")
    targets = meta.get("target_modules")
    if not (isinstance(r, int) and 1 <= r <= 1024 and isinstance(alpha, (int, float)) and math.isfinite(alpha)
            and isinstance(dropout, (int, float)) and 0 <= dropout < 1 and method in ("lora", "qlora")
            and meta.get("bias") == "none" and (targets == "all-linear" or isinstance(targets, list)
                                                and 0 < len(targets) <= 64 and all(isinstance(t, str) for t in targets))):
        raise ClaimError(f"{where}: LoRA settings {json.dumps(meta)[:200]} are not ones the grader rebuilds")
    try:
        if method == "qlora":
            model = lm.add_qlora(lm.load_model_4bit(base, "cpu", torch.float32), r, int(alpha), float(dropout))
        else:
            model = lm.add_lora(lm.load_model(base, "cpu"), r, int(alpha), float(dropout), target_modules=targets)
    except Exception as err:  # noqa: BLE001  (the base model is not in the grader's copy, ...)
        return Unrebuildable(where, "LoRA model", f"the grader could not build it ({type(err).__name__}: {err})", True)
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    _check_weights(get_peft_model_state_dict(model), tensors, f"{where}: the adapter weights do not fit the LoRA model")
    set_peft_model_state_dict(model, tensors)
    trainable = meta.get("trainable")
    if not isinstance(trainable, list) or not all(isinstance(n, str) for n in trainable):
        raise ClaimError(f"{where}: the list of trainable weights is malformed")
    names = set(trainable)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    return model.train(training)


def read_claims(folder: str | Path, limits: ClaimLimits = ClaimLimits()) -> Claims:
    """Rebuild the claims in `folder` (written by `export_claims`); raises ClaimError when the export is forged.

    A name whose object could not be rebuilt but was exported honestly is an `Unrebuildable` among the objects.
    """
    folder = Path(folder)
    data = read_regular_file(folder, CLAIMS_FILE, min(limits.max_file_bytes, 256 * 2**20))
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ClaimError(f"{CLAIMS_FILE} is not JSON") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ClaimError(f"{CLAIMS_FILE} is not a claims file of format {FORMAT}")
    reader = _Reader(folder, limits)
    reader.read_bytes = len(data)
    objects, missing, records = document.get("objects"), document.get("missing", {}), document.get("records", {})
    if not isinstance(objects, dict) or not isinstance(missing, dict) or not isinstance(records, dict):
        raise ClaimError(f"{CLAIMS_FILE} lacks its objects, missing names or records")
    claims = Claims(records=_plain_records(records, limits))
    for name, node in objects.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ClaimError(f"{name!r} is not a notebook name")
        claims.objects[name] = reader.build(node, name)
    claims.missing = {str(k)[:100]: str(v)[:500] for k, v in missing.items()}
    claims.fingerprints = dict(reader.fingerprints)
    return claims


def _plain_records(records: dict[str, Any], limits: ClaimLimits) -> dict[str, Any]:
    """The records as read from claims.json (plain JSON by construction), refused when larger than a string may be."""
    if len(json.dumps(records)) > limits.max_string:
        raise ClaimError("the records are too large")
    return records


def needs_a_ta(value: Any, depth: int = 0) -> str:
    """Why `value` needs a TA: it holds a model the grader could not rebuild (the reason), else ""."""
    import pandas as pd

    if isinstance(value, Unrebuildable):
        where, kind, reason, model = object.__getattribute__(value, "details")
        return f"{where} is a {kind}: {reason}" if model else ""
    if depth > 8:
        return ""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    elif isinstance(value, pd.DataFrame):
        children = [value.attrs]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name) for f in dataclasses.fields(value)]
    else:
        return ""
    for child in children:
        reason = needs_a_ta(child, depth + 1)
        if reason:
            return reason
    return ""
