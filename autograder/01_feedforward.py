"""Grader-only checks of notebooks/01_feedforward.py, written by `twdl sync`: do not edit, never give to students.

`twdl grade --module 01_feedforward` runs this whole file in its trusted scorer, never in a submission's kernel: the
checks (public and hidden) take the objects it rebuilt from the submission's exported claims (EXPORTS).
"""
MODULE = '01_feedforward'
QUESTIONS = [{'id': 'q1',
  'points': 3.0,
  'kind': 'auto',
  'title': 'one of the three models on a dataset of your choice',
  'template': '',
  'rubric': ''},
 {'id': 'q2',
  'points': 2.0,
  'kind': 'auto',
  'title': "another layer's features, projected",
  'template': '',
  'rubric': ''},
 {'id': 'q3',
  'points': 1.0,
  'kind': 'manual',
  'title': 'what the projections show',
  'template': '**3.** In two or three sentences: which classes does your projection separate, which overlap, '
              'and would you\n'
              'trust the distance between two t-SNE clusters?\n'
              '\n'
              '*Your answer:* (write it here.)',
  'rubric': 'Rubric (1 point): names classes that form their own group and classes that overlap in the '
            "student's own\n"
            'figure, and says that t-SNE keeps neighbourhoods but not distances between clusters (so no), '
            'with a reason.'}]
# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.
EXPORTS = ['hw_data', 'hw_features', 'hw_figure', 'hw_layer', 'hw_model', 'hw_net']


# %% public checks (notebooks/01_feedforward.py cell 32; also in the student notebook)
def _test_score(model, data):
    """Accuracy (%) for classification, RMSE for regression, of `model` on data.test."""
    outputs = twdl.predict(model, data.test.inputs)
    if data.task == "classification":
        return 100.0 * (outputs.argmax(1) == data.test.labels).float().mean().item()
    return ((outputs.squeeze(1) - data.test.labels) ** 2).mean().sqrt().item()


@twdl.question_check(
    "q1",
    hint="build hw_model with twdl.BaselineNet, twdl.WideDeepNet or twdl.DeepCrossNet",
)
def one_of_the_three_models(hw_model):
    """`hw_model` is a BaselineNet, WideDeepNet or DeepCrossNet"""
    kind = type(hw_model).__name__
    assert kind in (
        "BaselineNet",
        "WideDeepNet",
        "DeepCrossNet",
    ), f"hw_model is a {kind}"


@twdl.question_check(
    "q1",
    required=True,
    hint="give the model n_classes=hw_data.n_classes and no softmax",
)
def outputs_are_logits_of_the_right_shape(hw_model, hw_data):
    """in eval mode, `hw_model` maps the test rows to one logit per class (one value for
    regression)"""
    outputs = twdl.predict(hw_model, hw_data.test.inputs)
    assert tuple(outputs.shape) == (
        len(hw_data.test),
        hw_data.n_classes,
    ), f"outputs of shape {tuple(outputs.shape)}"
    if hw_data.task == "classification":
        sums_to_one = (outputs.min() >= 0) and bool(
            ((outputs.sum(1) - 1).abs() < 1e-4).all()
        )
        assert not sums_to_one, (
            "the outputs are probabilities: return logits (no softmax), the loss"
            " applies it"
        )


@twdl.question_check(
    "q1",
    required=True,
    hint="twdl.record('m1.homework.dataset_test_score', hw_history.last[...])",
)
def recorded_score_is_the_models(hw_model, hw_data, records):
    """the recorded m1.homework.dataset_test_score is what `hw_model` scores on
    hw_data.test"""
    twdl.assert_recorded(records, "m1.homework.dataset_test_score",
                         _test_score(hw_model, hw_data), 0.01, "the model scores")


@twdl.question_check("q1", hint="train longer, or check the learning rate")
def beats_a_constant_guess(hw_model, hw_data):
    """`hw_model` beats always guessing the most common class (or the training mean, for
    regression)"""
    labels = hw_data.test.labels
    if hw_data.task == "classification":
        guess = 100.0 * labels.eq(labels.mode().values).float().mean().item()
        assert (
            _test_score(hw_model, hw_data) > guess
        ), f"accuracy not above the {guess:.1f} % of a constant guess"
    else:
        guess = ((labels - hw_data.train.labels.mean()) ** 2).mean().sqrt().item()
        assert (
            _test_score(hw_model, hw_data) < guess
        ), f"RMSE not below the {guess:.4g} of predicting the mean"


twdl.check("q1")


# %% public checks (notebooks/01_feedforward.py cell 36; also in the student notebook)
@twdl.question_check(
    "q2",
    hint="pick a layer name from dict(hw_net.named_modules()), other than 'output'",
)
def features_of_another_layer(hw_net, hw_layer, hw_features, shown):
    """`hw_features` has one row per shown test row, from a named layer of `hw_net`
    other than `output`"""
    assert hw_layer in dict(hw_net.named_modules()) and hw_layer not in (
        "",
        "output",
    ), f"layer {hw_layer!r}"
    assert hw_features.ndim == 2 and len(hw_features) == len(
        shown
    ), f"features of shape {tuple(hw_features.shape)}"


@twdl.question_check(
    "q2", hint="hw_figure = twdl.plot_projections(hw_features, shown.labels, ...)"
)
def three_projections(hw_figure):
    """`hw_figure` shows the PCA, t-SNE and UMAP projections"""
    panels = twdl.each(hw_figure.axes, at_least=3, what="panels")
    titles = " ".join(ax.get_title() for ax in panels)
    missing = [m for m in ("PCA", "t-SNE", "UMAP") if m not in titles]
    assert not missing, f"no panel titled {missing}"


@twdl.question_check(
    "q2",
    required=True,
    hint="PCA(n_components=2).fit(features).explained_variance_ratio_.sum()",
)
def recorded_variance_is_the_features(hw_features, records):
    """the recorded m1.homework.first_hidden_pca2_variance is the first two components'
    share of `hw_features`"""
    import torch

    x = hw_features.double().cpu()
    variances = torch.linalg.svdvals(x - x.mean(0)) ** 2
    share = (variances[:2].sum() / variances.sum()).item()
    twdl.assert_recorded(records, "m1.homework.first_hidden_pca2_variance", share, 1e-4,
                         "the features give")


twdl.check("q2")


twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them


# %% hidden checks (notebooks/01_feedforward.py cell 33)
@twdl.question_check("q1", required=True)
def test_rows_are_held_out(hw_data):
    """`hw_data.test` is a real held-out set: enough rows, and not copies of the training rows"""
    import torch

    def rows(split):
        parts = split.inputs if isinstance(split.inputs, (tuple, list)) else (split.inputs,)
        parts = twdl.each(parts, at_least=1, what="input tensors")
        return torch.cat([t.float().reshape(len(split), -1).cpu() for t in parts], dim=1).tolist()

    seen = {tuple(r) for r in twdl.each(rows(hw_data.train), at_least=1, what="training rows")}
    test = twdl.each(rows(hw_data.test), at_least=10, what="test rows")
    copies = sum(tuple(r) in seen for r in test)
    assert copies < len(test) / 2, f"{copies} of {len(test)} test rows are also training rows"


# %% hidden checks (notebooks/01_feedforward.py cell 37)
@twdl.grader_loads("shown")
def _shown_test_rows(parameters):
    """The test rows the notebook projects, drawn again by the grader from the data files."""
    data = twdl.load_covertype(source=parameters["data_source"], seed=parameters["seed"])
    n_points = 400 if parameters["profile"] == "smoke" else 3000
    return data.test.subset(twdl.stratified_sample(data.test.labels, n_points, parameters["seed"]))


@twdl.question_check("q2", required=True)
def features_are_that_layers_activations(hw_net, hw_layer, hw_features, shown):
    """`hw_features` are what layer `hw_layer` of `hw_net` outputs for shown.inputs (recomputed by the grader)"""
    import torch

    captured = []
    handle = dict(hw_net.named_modules())[hw_layer].register_forward_hook(lambda m, a, out: captured.append(out))
    was_training = hw_net.training
    hw_net.eval()
    try:
        with torch.no_grad():
            hw_net(*shown.inputs) if isinstance(shown.inputs, tuple) else hw_net(shown.inputs)
    finally:
        handle.remove()
        hw_net.train(was_training)
    assert torch.allclose(captured[0].reshape(hw_features.shape).cpu(), hw_features.cpu(), atol=1e-5), \
        "the features differ from the layer's activations"
