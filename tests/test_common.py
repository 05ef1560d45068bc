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


def test_parse_parameters_reads_assignments_colab_forms_and_specs():
    src = ('profile = "smoke"  # @param ["smoke", "full"]\n# comment\nseed = 0  # @param {type:"integer"}\n'
           "# Epochs (None: the profile's value). [int >= 1 or None]\nepochs = None\n# Learning rate. [float > 0]\n"
           'lr = 1e-3\nnoise = 0.5  # @param {type:"slider", min:0, max:1, step:0.1}\nname = "x"\n')
    specs = parse_parameters(src)
    assert {k: v.default for k, v in specs.items()} == {"profile": "smoke", "seed": 0, "epochs": None, "lr": 1e-3,
                                                        "noise": 0.5, "name": "x"}
    assert {k: v.rule for k, v in specs.items()} == {
        "profile": "one of 'smoke', 'full'", "seed": "int", "epochs": "int >= 1 or None", "lr": "float > 0",
        "noise": "float in [0, 1]", "name": "str"}


@pytest.mark.parametrize("spec, good, bad", [
    ("[int >= 1 or None]", [1, 50, None], [0, -3, "abc", 2.5, True]),
    ("[float > 0]", [1e-3, 2], [0, -1.0, "x", None]),
    ("[float in [0, 1]]", [0, 0.5, 1], [-0.1, 1.01]),
    ("[float in [0, 1)]", [0, 0.99], [1.0]),
    ('[one of "a", "b"]', ["a", "b"], ["c", None, 1]),
    ("[existing path or None]", [".", None], ["/no/such/path", 3]),
    ("[str]", ["x"], [1, None]),
])
def test_bracket_specs_allow_exactly_what_they_say(spec, good, bad):
    [declared] = parse_parameters(f"# A knob. {spec}\nknob = None\n").values()
    assert all(declared.problem(v) is None for v in good), [declared.problem(v) for v in good]
    for value in bad:
        assert declared.problem(value) == f"knob={value!r} is not allowed: expected {declared.rule}"


def test_a_malformed_spec_is_an_error_that_shows_the_grammar():
    with pytest.raises(ValueError, match="cannot read parameter spec 'integer'"):
        parse_parameters("# A knob. [integer]\nknob = 1\n")


def test_validate_parameters_types_choices_ranges_and_unknown_names():
    declared = parse_parameters('profile = "smoke"  # @param ["smoke", "full"]\nseed = 0\nlr = 0.1\n'
                                '# Epochs. [int >= 1 or None]\nepochs = None\nname = "x"\ndone = False\n')
    ok = twdl.validate_parameters({"profile": "full", "seed": 3, "lr": 1, "epochs": 5, "name": "y"}, declared)
    assert ok.profile == "full" and ok.lr == 1 and ok.epochs == 5
    with pytest.raises(twdl.ParameterError, match=r"seed=1.5 is not allowed: expected int\b"):
        twdl.validate_parameters({"seed": 1.5}, declared)
    with pytest.raises(twdl.ParameterError, match="profile='huge' is not allowed: expected one of 'smoke', 'full'"):
        twdl.validate_parameters({"profile": "huge"}, declared)
    with pytest.raises(twdl.ParameterError, match="epochs='abc' is not allowed: expected int >= 1 or None"):
        twdl.validate_parameters({"epochs": "abc"}, declared)
    with pytest.raises(twdl.ParameterError, match="epochs=-3 is not allowed"):
        twdl.validate_parameters({"epochs": -3}, declared)
    with pytest.raises(twdl.ParameterError, match="done=1 is not allowed: expected bool") as error:
        twdl.validate_parameters({"done": 1}, declared)
    assert "Allowed parameters: profile: one of 'smoke', 'full'; seed: int" in str(error.value)


def test_declared_parameters_are_what_the_watched_cell_assigned(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from twdl_helpers import params

    for name in ("_DECLARED", "_BEFORE"):  # this kernel's state, put back after the test (tests may reach in)
        monkeypatch.setattr(params, name, getattr(params, name))
    declared_parameters = params.declared_parameters
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("import twdl_helpers as twdl\ntwdl.watch_parameters()")
        shell.run_cell('profile = "smoke"  # @param ["smoke", "full"]\nseed = 3')
        declared = declared_parameters()
        assert list(declared) == ["profile", "seed"] and declared["seed"].default == 3
        declared.clear()  # a copy: the kernel's declarations stay as they were
        assert list(declared_parameters()) == ["profile", "seed"]
    finally:
        InteractiveShell.clear_instance()


def test_setup_validates_seeds_picks_the_device_and_limits_cpu_threads(capsys):
    namespace = {"profile": "full", "device": "cpu", "seed": 7}
    P, dev = twdl.setup(namespace, cpu_threads=1)
    assert P == twdl.Profile("full") and dev == torch.device("cpu") and torch.get_num_threads() == 1
    first = torch.randn(2)
    twdl.setup(namespace)
    assert torch.equal(first, torch.randn(2))  # seeded from `seed`
    assert "profile full, device cpu" in capsys.readouterr().out
    with pytest.raises(ValueError, match="profile must be one of"):  # outside a notebook: no declarations to check
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
