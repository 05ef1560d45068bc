"""Seeds, devices, profiles, records and notebook parameters."""
import nbformat
import pytest
import torch

import twdl_helpers as twdl
from twdl_helpers.params import parse_parameters


def test_set_seed_makes_torch_repeatable():
    twdl.set_seed(5)
    a = torch.randn(3)
    twdl.set_seed(5)
    assert torch.equal(a, torch.randn(3))


def test_get_device():
    assert twdl.get_device("cpu").type == "cpu"
    assert twdl.get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="one of"):
        twdl.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            twdl.get_device("cuda")


def test_profile_pick_and_validation():
    assert twdl.Profile("smoke").pick(smoke=1, full=9) == 1
    assert twdl.Profile("full").pick(smoke=1, full=9) == 9
    with pytest.raises(ValueError, match="smoke"):
        twdl.Profile("medium")


def test_record_round_trip_through_a_notebook(tmp_path, capsys):
    twdl.record("m0.test.value", torch.tensor(0.5))
    assert twdl.recorded()["m0.test.value"] == 0.5
    assert "m0.test.value" in capsys.readouterr().out
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "m0.a: 1", twdl.RECORD_MIME: {"name": "m0.a", "value": 1.5}})]
    nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    assert twdl.read_records(path) == {"m0.a": 1.5}
    assert set(twdl.records_table("m0.")["metric"]) >= {"m0.test.value"}


def test_record_rejects_bad_names_and_unserialisable_values():
    with pytest.raises(ValueError, match="dotted lower-case"):
        twdl.record("Bad Name", 1)
    with pytest.raises(TypeError):
        twdl.record("m0.obj", object())


def test_parse_parameters_reads_assignments_and_colab_forms():
    src = 'profile = "smoke"  # @param ["smoke", "full"]\n# comment\nseed = 0\nepochs = None\nlr = 1e-3\n'
    assert parse_parameters(src) == {"profile": "smoke", "seed": 0, "epochs": None, "lr": 1e-3}


def test_validate_parameters_types_choices_and_unknown_names():
    declared = {"profile": "smoke", "seed": 0, "lr": 0.1, "epochs": None, "name": "x"}
    ok = twdl.validate_parameters({"profile": "full", "seed": 3, "lr": 1, "epochs": 5, "name": "y"}, declared)
    assert ok.profile == "full" and ok.lr == 1 and ok.epochs == 5
    with pytest.raises(twdl.ParameterError, match="seed=1.5 should be int"):
        twdl.validate_parameters({**declared, "seed": 1.5}, declared)
    with pytest.raises(twdl.ParameterError, match="must be one of"):
        twdl.validate_parameters({**declared, "profile": "huge"}, declared)
    with pytest.raises(twdl.ParameterError, match="should be bool"):
        twdl.validate_parameters({"done": 1}, {"done": False})


def test_setup_validates_seeds_picks_the_device_and_limits_cpu_threads(capsys):
    namespace = {"profile": "full", "device": "cpu", "seed": 7}
    P, dev = twdl.setup(namespace, cpu_threads=1)
    assert P == twdl.Profile("full") and dev == torch.device("cpu") and torch.get_num_threads() == 1
    first = torch.randn(2)
    twdl.setup(namespace)
    assert torch.equal(first, torch.randn(2))  # seeded from `seed`
    assert "profile full, device cpu" in capsys.readouterr().out
    with pytest.raises(twdl.ParameterError, match="must be one of"):
        twdl.setup({"profile": "huge", "device": "cpu", "seed": 0})


def test_seeded_block_draws_from_the_seed_and_leaves_the_callers_stream_alone():
    torch.manual_seed(1)
    expected_next = torch.randn(1)
    torch.manual_seed(1)
    with twdl.seeded(5):
        inside = torch.randn(3)
    assert torch.equal(torch.randn(1), expected_next)
    with twdl.seeded(5):
        assert torch.equal(torch.randn(3), inside)


def test_bf16_native_is_false_off_cuda():
    assert twdl.bf16_native("cpu") is False


def test_device_log_gets_one_line_per_training_run_only_when_asked(tmp_path, monkeypatch):
    import json

    data = twdl.TensorData(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    twdl.train(torch.nn.Linear(4, 2), data, epochs=1, batch_size=8, progress=False)  # not logged: no variable
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(twdl.DEVICE_LOG_VARIABLE, str(log))
    assert not log.exists()
    for name in ("first", "second"):
        twdl.train(torch.nn.Linear(4, 2), data, epochs=1, batch_size=8, progress=name)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["label"] for entry in lines] == ["first", "second"]
    assert all(entry["device"] == "cpu" and entry["seconds"] >= 0 and entry["peak_memory_mb"] is None
               for entry in lines)
