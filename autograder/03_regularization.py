"""Grader-only checks of notebooks/03_regularization.py, written by `twdl sync`: do not edit, never give to students.

`twdl grade --module 03_regularization` runs this whole file in its trusted scorer, never in a submission's kernel: the
checks (public and hidden) take the objects it rebuilt from the submission's exported claims (EXPORTS).
"""
MODULE = '03_regularization'
QUESTIONS = [{'id': 'q1',
  'points': 4.0,
  'kind': 'auto',
  'title': 'three regularisation techniques on one model',
  'template': '',
  'rubric': ''},
 {'id': 'q2',
  'points': 2.0,
  'kind': 'manual',
  'title': 'which technique worked best, and how the gap changed',
  'template': '2. Which worked best, and how did each change the gap between train and validation accuracy? '
              'Write your answer\n'
              '   here, then look at the summary below: it reports the test accuracy of one chosen model '
              'only.',
  'rubric': 'Rubric (2 points). 1 point: names the technique with the highest mean validation accuracy in '
            "the student's\n"
            'own `homework` table and says whether its lead exceeds the spread over seeds (with one seed or '
            'few validation\n'
            'images, differences of a few points are noise). 1 point: for each technique, compares train '
            'minus validation\n'
            "accuracy with the unregularised row, using the table's numbers."}]
# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.
EXPORTS = ['homework']


# %% public checks (notebooks/03_regularization.py cell 55; also in the student notebook)
def _mean_accuracy(models, data):
    """Mean accuracy (%) of `models` on `data` (batches go to each model's device)."""
    return sum(twdl.evaluate(m, data)["accuracy"] for m in models) / len(models)


@twdl.question_check(
    "q1", hint="pass three names from twdl.TECHNIQUES to twdl.compare_regularizers"
)
def three_techniques_and_the_baseline(homework):
    """`homework` has the unregularised baseline and at least three regularisation
    techniques"""
    rows = twdl.each(homework.index, at_least=4, what="rows")
    techniques = [t for t in rows if t != "none"]
    assert "none" in homework.index, "no unregularised baseline row ('none')"
    assert len(techniques) >= 3, f"techniques: {techniques}; compare at least three"


@twdl.question_check(
    "q1",
    required=True,
    hint="keep the table that twdl.compare_regularizers returned, unchanged",
)
def models_give_their_val_accuracy(homework, faces):
    """each of the four rows has its own trained models, and they give the row's
    validation accuracy in `homework` on faces.val"""
    rows = twdl.model_per_row(homework.index, homework.attrs.get("models", {}),
                              at_least=4, what="rows")
    for technique, models in rows:
        reported = homework.loc[technique, "val_accuracy"]
        measured = _mean_accuracy(models, faces.val)
        assert (
            abs(measured - reported) < 0.01
        ), f"{technique}: the table says {reported:.2f} %, its models {measured:.2f} %"


@twdl.question_check(
    "q1", hint="twdl.record(f'm3.homework.{technique}.val_accuracy', ...) for each row"
)
def each_technique_is_recorded(homework, records):
    """each row's validation accuracy is recorded as
    m3.homework.<technique>.val_accuracy"""
    rows = twdl.each(homework["val_accuracy"].items(), at_least=4, what="rows")
    for technique, value in rows:
        name = f"m3.homework.{technique}.val_accuracy"
        twdl.assert_recorded(records, name, value, 1e-6, "the table says")


twdl.check("q1")


twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them


# %% hidden checks (notebooks/03_regularization.py cell 56)
# a class-stratified draw of train/ images (the pool the validation images come from) that no profile's notebook
# loads: no submission can see them
WITHHELD = {"smoke": {"cifar_animals": 1500, "afhq": 1500}, "full": {"cifar_animals": 1500, "afhq": 1500}}


@twdl.grader_loads("faces")
def _graders_images(parameters):
    """The notebook's own split (validation images without the tuning ones), loaded again by the grader."""
    import dataclasses

    smoke = parameters["profile"] == "smoke"
    n_val, n_tune = (500, 150) if smoke else (1000, 500)
    faces = twdl.load_animal_faces(source=parameters["data_source"], dataset=parameters["dataset"],
                                   n_train=200 if smoke else 1000, n_val=n_val + n_tune, seed=parameters["seed"])
    return dataclasses.replace(faces, val=faces.val.subset(range(n_val)))  # the tuning images follow


@twdl.question_check("q1", required=True)
def models_hold_up_on_images_the_notebook_never_saw(homework, faces, withheld):
    """on train/ images no submission can see (drawn like the validation images), each technique's models score
    within binomial noise of the validation accuracy `homework` reports: models trained on the validation images
    drop there"""
    unseen = withheld.get(faces.dataset)
    if unseen is None:  # the data were too few to keep any back
        return
    rows = twdl.model_per_row(homework.index, homework.attrs["models"], at_least=4, what="rows")
    for technique, models in rows:
        twdl.assert_holds_up(technique, homework.loc[technique, "val_accuracy"], _mean_accuracy(models, unseen),
                             len(faces.val), len(unseen), comparisons=len(rows))


@twdl.question_check("q1")
def every_technique_trained_its_own_models(homework):
    """each technique has its own models, and their parameter norm is the one `homework` reports"""
    for technique, models in twdl.model_per_row(homework.index, homework.attrs["models"], at_least=4, what="rows"):
        reported = homework.loc[technique, "param_norm"]
        measured = sum(twdl.frobenius_norm(m) for m in models) / len(models)
        assert abs(measured - reported) < 1e-3 * max(1.0, reported), f"{technique}: norm {reported:.4g} vs {measured:.4g}"
