"""Grader-only checks of notebooks/02_optimization.py, written by `twdl sync`: do not edit, never give to students.

`twdl grade --module 02_optimization` runs this whole file in its trusted scorer, never in a submission's kernel: the
checks (public and hidden) take the objects it rebuilt from the submission's exported claims (EXPORTS).
"""
MODULE = '02_optimization'
QUESTIONS = [{'id': 'q1',
  'points': 4.0,
  'kind': 'auto',
  'title': 'three optimisers, batch norm on one',
  'template': '',
  'rubric': ''},
 {'id': 'q2',
  'points': 2.0,
  'kind': 'manual',
  'title': 'which optimiser did best, and what batch norm changed',
  'template': '*Your answer to question 2:* (write it here, using the table above.)',
  'rubric': "Rubric (2 points). 1 point: names the optimiser with the highest test accuracy in the student's "
            'own table and\n'
            "compares it with the others using the table's numbers (each optimiser at the learning rate the "
            'student chose,\n'
            'which the answer states). 1 point: says how batch norm changed train and test accuracy and the '
            'gap\n'
            "between them (train minus test), again with the table's numbers, and notes that one run per "
            'setting cannot\n'
            'separate a real effect from seed noise.'}]
# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.
EXPORTS = ['table']


# %% public checks (notebooks/02_optimization.py cell 34; also in the student notebook)
@twdl.question_check(
    "q1",
    hint="pass three optimiser names and bn_model_fn=... to twdl.compare_optimizers",
)
def three_optimisers_and_a_batch_norm_run(table):
    """`table` compares at least three optimisers without batch norm, and one run with
    it"""
    plain = set(table.loc[table["batch_norm"] == "no", "optimizer"])
    assert (
        len(plain) >= 3
    ), f"optimisers without batch norm: {sorted(plain)}; compare at least three"
    assert (
        table["batch_norm"] == "yes"
    ).any(), "no run with batch norm: pass bn_model_fn=... (e.g. twdl.BNDeepNet)"


@twdl.question_check(
    "q1",
    required=True,
    hint="keep the table that twdl.compare_optimizers returned, unchanged",
)
def each_model_gives_its_test_accuracy(table, data):
    """each of the four runs has its own trained model, and it gives the run's test
    accuracy in `table` on data.test"""
    reported = dict(zip(table["run"], table["test_accuracy"]))
    models = table.attrs.get("models", {})
    for run, model in twdl.model_per_row(table["run"], models, at_least=4, what="runs"):
        measured = twdl.evaluate(model, data.test)["accuracy"]
        assert (
            abs(measured - reported[run]) < 0.01
        ), (f"{run}: the table says {reported[run]:.2f} %, "
            f"its model scores {measured:.2f} %")


@twdl.question_check(
    "q1",
    hint=(
        "twdl.record(f'm2.homework.{key}.test_accuracy', ...) for each row, as in the"
        " hint"
    ),
)
def each_run_is_recorded(table, records):
    """each run's train and test accuracy is recorded as
    m2.homework.<optimizer>[_bn].<split>_accuracy"""
    for row in twdl.each(table.itertuples(), at_least=4, what="runs"):
        key = row.optimizer + ("_bn" if row.batch_norm == "yes" else "")
        for split in ("train", "test"):
            name = f"m2.homework.{key}.{split}_accuracy"
            value = getattr(row, f"{split}_accuracy")
            twdl.assert_recorded(records, name, value, 1e-6, "the table says")


twdl.check("q1")


twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them


# %% hidden checks (notebooks/02_optimization.py cell 35)
WITHHELD = {"smoke": {"mnist": 2000}}  # a stratified draw of test digits the smoke profile never loads


@twdl.grader_loads("data")
def _graders_digits(parameters):
    """The digits the notebook's own loading cell draws, loaded again by the grader from the data files."""
    smoke = parameters["profile"] == "smoke"
    return twdl.load_mnist(source=parameters["data_source"], limit_train=3000 if smoke else None,
                           limit_test=2000 if smoke else None, seed=parameters["seed"])


@twdl.question_check("q1", required=True)
def models_were_trained(table, data):
    """re-evaluated on the grader's own copy of the test digits, the best run's model scores well above chance"""
    runs = twdl.model_per_row(table["run"], table.attrs["models"], at_least=4, what="runs")
    best = max(twdl.evaluate(model, data.test)["accuracy"] for _, model in runs)
    assert best > 30, f"the best run scores {best:.1f} %, near chance (10 %): were the models trained?"


@twdl.question_check("q1", required=True)
def models_hold_up_on_digits_the_notebook_never_saw(table, data, withheld):
    """on withheld test digits (smoke profile: a stratified draw of the same test file), each model scores within
    binomial noise of its reported accuracy: a model that memorised the notebook's own test digits drops there"""
    if "mnist" not in withheld:  # this profile loads every test digit: nothing was kept back
        return
    unseen, reported = withheld["mnist"], dict(zip(table["run"], table["test_accuracy"]))
    runs = twdl.model_per_row(table["run"], table.attrs["models"], at_least=4, what="runs")
    for run, model in runs:
        measured = twdl.evaluate(model, unseen)["accuracy"]
        twdl.assert_holds_up(run, reported[run], measured, len(data.test), len(unseen), comparisons=len(runs))


@twdl.question_check("q1")
def batch_norm_only_where_the_table_says(table):
    """the batch-norm run's model has BatchNorm layers, the other runs' models have none"""
    import torch

    batch_norm = dict(zip(table["run"], table["batch_norm"]))
    for run, model in twdl.model_per_row(table["run"], table.attrs["models"], at_least=4, what="runs"):
        layers = twdl.each(model.modules(), at_least=1, what="layers")
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in layers)
        assert has_bn == (batch_norm[run] == "yes"), (
            f"{run}: batch_norm is {batch_norm[run]!r} but the model {'has' if has_bn else 'has no'} BatchNorm")
