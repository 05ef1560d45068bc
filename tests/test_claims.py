"""Claims: what a kernel exports reads back as the same objects, from JSON and safetensors only; every forged or
malformed file is refused with a reason, before any tensor or model is built."""
from __future__ import annotations

import json
import os
import pickle
import struct

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import twdl_helpers as twdl
from twdl_helpers.claims import ClaimError, ClaimLimits, Unrebuildable, export_claims, needs_a_ta, read_claims
from twdl_helpers.training import ModelsByRun

matplotlib.use("Agg")


def roundtrip(tmp_path, namespace, names=None, **limits):
    export_claims(namespace, list(names or namespace), tmp_path, records={"m9.x": 1.5})
    return read_claims(tmp_path, ClaimLimits(**limits))


def test_tables_models_data_figures_and_shared_objects_come_back_as_they_were(tmp_path):
    import matplotlib.pyplot as plt

    shallow, bn = twdl.ShallowNet(seed=0), twdl.BNDeepNet(dropout=0.3, seed=1).eval()
    table = pd.DataFrame({"run": ["a", "b"], "test_accuracy": [90.5, 91.0], "epochs": [3, 3]})
    table.attrs["models"] = ModelsByRun(a=shallow, b=bn)
    figure, axes = plt.subplots(1, 2)
    axes[0].set_title("PCA")
    data = twdl.TensorData((torch.randn(5, 3), torch.randint(0, 4, (5, 2))), torch.arange(5))
    wide = twdl.WideDeepNet(3, [4, 5], n_classes=2, crossed=True, seed=2)
    claims = roundtrip(tmp_path, {"table": table, "fig": figure, "data": data, "same": [shallow, shallow],
                                  "wide": wide, "names": np.array(["x", "y"]), "mean": 4.5, "text": "hi"})
    got = claims.objects
    assert got["table"][["run", "test_accuracy", "epochs"]].equals(table[["run", "test_accuracy", "epochs"]])
    assert type(got["table"].attrs["models"]) is ModelsByRun and not got["table"].attrs["models"]["b"].training
    x = torch.randn(4, 1, 28, 28)
    for name in ("a", "b"):
        assert torch.equal(twdl.predict(got["table"].attrs["models"][name], x),
                           twdl.predict(table.attrs["models"][name], x))
    inputs = (torch.randn(6, 3), torch.randint(0, 4, (6, 2)))
    assert torch.equal(twdl.predict(got["wide"], inputs), twdl.predict(wide, inputs))
    assert [a.get_title() for a in got["fig"].axes] == ["PCA", ""]
    assert torch.equal(got["data"].inputs[1], data.inputs[1]) and got["same"][0] is got["same"][1]
    assert list(got["names"]) == ["x", "y"] and got["mean"] == 4.5 and got["text"] == "hi"
    assert claims.records == {"m9.x": 1.5} and claims.missing == {}
    assert len(claims.fingerprints) == 4  # three model files and the tensors


def test_a_model_that_cannot_be_rebuilt_is_exported_as_such_and_needs_a_ta(tmp_path):
    class MyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

    changed = twdl.ShallowNet(seed=0)
    changed[1] = torch.nn.Linear(784, 64)  # changed after it was built
    claims = roundtrip(tmp_path, {"mine": MyNet(), "changed": changed, "table": {"models": [MyNet()]},
                                  "thing": object()}, names=["mine", "changed", "table", "thing", "nope"])
    got = claims.objects
    assert isinstance(got["mine"], Unrebuildable) and "not one of the helpers' models" in needs_a_ta(got["mine"])
    assert "changed after it was built" in needs_a_ta(got["changed"])
    assert needs_a_ta(got["table"]).startswith("table['models'][0] is a MyNet")
    assert needs_a_ta(got["thing"]) == ""  # not a model: a check that touches it fails, with the reason
    with pytest.raises(ClaimError, match="could not be rebuilt by the grader"):
        got["thing"].anything
    assert claims.missing == {"nope": "`nope` is not defined in the notebook"}


def test_a_pruned_model_is_exported_as_the_forward_pass_sees_it(tmp_path):
    model = twdl.AnimalNet(seed=0)
    twdl.prune_magnitude(model, 0.5)
    got = roundtrip(tmp_path, {"model": model}).objects["model"]
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(twdl.predict(got, x), twdl.predict(model, x))


def _exported_model(tmp_path):
    export_claims({"model": twdl.ShallowNet(seed=0)}, ["model"], tmp_path)
    return tmp_path / "model-1.safetensors"


def _rewrite(path, tensors, meta):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"twdl": json.dumps(meta)})


@pytest.mark.parametrize("forge, reason", [
    (lambda p: p.write_bytes(pickle.dumps(ModelsByRun())), "not a safetensors file"),
    (lambda p: (p.unlink(), os.symlink("/etc/passwd", p)), "a symlink is refused"),
    (lambda p: (p.unlink(), os.mkfifo(p)), "not a regular file"),
    (lambda p: os.truncate(p, 5 * 2**20), "more than the"),
    (lambda p: p.write_bytes(struct.pack("<Q", 2**60) + b"{}"), "header length"),
    (lambda p: _rewrite(p, {"0.weight": torch.zeros(3)}, {"architecture": "ShallowNet", "arguments": {}}),
     "the weights do not fit ShallowNet"),
    (lambda p: _rewrite(p, {"x": torch.zeros(1)}, {"architecture": "os.system", "arguments": {}}),
     "'os.system' is not one the grader rebuilds"),
    (lambda p: _rewrite(p, {"x": torch.zeros(1)}, {"architecture": "FeedForward",
                                                    "arguments": {"widths": [784] + [2**30] * 80 + [10]}}),
     "not small plain values"),
    (lambda p: _rewrite(p, {"x": torch.zeros(1)}, {"architecture": "ShallowNet", "arguments": {"device": "cuda"}}),
     "not small plain values"),
    (lambda p: _rewrite(p, {"x": torch.zeros(1)}, {"architecture": "ShallowNet", "arguments": {"bogus": 1}}),
     "takes no such arguments"),
])
def test_forged_model_files_are_refused_with_the_reason(tmp_path, forge, reason):
    forge(_exported_model(tmp_path))
    with pytest.raises(ClaimError, match=reason):
        read_claims(tmp_path, ClaimLimits(max_file_bytes=4 * 2**20))


def test_an_extra_tensor_in_a_model_file_is_refused(tmp_path):
    from safetensors.torch import load_file

    path = _exported_model(tmp_path)
    tensors = load_file(str(path))
    _rewrite(path, {**tensors, "backdoor": torch.zeros(2)}, {"architecture": "ShallowNet", "arguments": {"seed": 0}})
    with pytest.raises(ClaimError, match=r"unexpected \['backdoor'\]"):
        read_claims(tmp_path)


def test_a_model_tensor_of_another_dtype_is_refused(tmp_path):
    from safetensors.torch import load_file

    path = _exported_model(tmp_path)
    tensors = load_file(str(path))
    first = sorted(tensors)[0]
    _rewrite(path, {**tensors, first: tensors[first].double()}, {"architecture": "ShallowNet", "arguments": {"seed": 0}})
    with pytest.raises(ClaimError, match=f"the weights do not fit ShallowNet: tensor '{first}' is .*float64"):
        read_claims(tmp_path)


@pytest.mark.parametrize("document, reason", [
    ("not json", "not JSON"),
    (json.dumps({"format": 99}), "not a claims file"),
    (json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": {"type": "exec"}}}), "unknown node type"),
    (json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": {"type": "ref", "id": 3}}}),
     "refers to an object not built"),
    (json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": {"type": "dataclass",
                                                                           "class": "Popen", "fields": {}}}}),
     "not a helpers' data class"),
    (json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": {"type": "model",
                                                                           "file": "../../etc/passwd"}}}),
     "model-N.safetensors"),
    (json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": {"type": "tensor", "key": "t0"}}}),
     "cannot be opened"),
    (json.dumps({"format": 1, "records": {}, "missing": {},
                 "objects": {"x": json.loads("[" * 0 + json.dumps({"type": "list", "items": [{"type": "value",
                                                                                              "value": 1}] * 50}))}}),
     "more than 20 objects"),
])
def test_malformed_claims_are_refused(tmp_path, document, reason):
    (tmp_path / "claims.json").write_text(document)
    with pytest.raises(ClaimError, match=reason):
        read_claims(tmp_path, ClaimLimits(max_nodes=20))


def test_deep_nesting_is_refused(tmp_path):
    node = {"type": "value", "value": 1}
    for _ in range(60):
        node = {"type": "list", "items": [node]}
    (tmp_path / "claims.json").write_text(json.dumps({"format": 1, "records": {}, "missing": {}, "objects": {"x": node}}))
    with pytest.raises(ClaimError, match="nested more than 40 levels"):
        read_claims(tmp_path)
