"""Feature helpers: tensors from any DataFrame, stratified samples, forward-hook activations, 2-D projections."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import twdl_helpers as twdl

matplotlib.use("Agg")


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(50, 10, n), "b": rng.uniform(0, 1000, n),
                         "colour": rng.choice(["red", "green", "blue"], n), "y": rng.choice(["x", "y", "z"], n),
                         "value": rng.normal(0, 1, n)})


def test_tabular_tensors_classification():
    df = _frame()
    tab = twdl.tabular_tensors(df, ["a", "b"], ["colour"], "y", seed=1)
    assert tab.classes == ["x", "y", "z"] and tab.n_classes == 3
    numeric, codes = tab.train.inputs
    assert numeric.shape == (len(tab.train), 2) and codes.shape == (len(tab.train), 1)
    assert torch.allclose(numeric.mean(0), torch.zeros(2), atol=1e-5)
    assert tab.cardinalities == [4]  # 3 colours + unknown
    assert len(tab.train) + len(tab.test) == 200 and tab.train.labels.dtype == torch.long
    again = twdl.tabular_tensors(df, ["a", "b"], ["colour"], "y", seed=1)
    assert torch.equal(tab.test.inputs[0], again.test.inputs[0])


def test_tabular_tensors_regression_trains_with_mse():
    tab = twdl.tabular_tensors(_frame(), ["a", "b"], ["colour"], "value", task="regression")
    assert tab.train.labels.dtype == torch.float32 and tab.n_classes == 1
    model = twdl.BaselineNet(2, tab.cardinalities, n_classes=1, hidden=(8,))
    history = twdl.train(model, tab.train, epochs=2, batch_size=32, loss_fn=twdl.regression_loss, metrics={},
                         eval_data={"test": tab.test}, progress=False)
    assert np.isfinite(history.last["test_loss"])


def test_tabular_tensors_errors_name_the_columns():
    with pytest.raises(KeyError, match="nope"):
        twdl.tabular_tensors(_frame(), ["a", "nope"], [], "y")
    with pytest.raises(ValueError, match="task"):
        twdl.tabular_tensors(_frame(), ["a"], [], "y", task="ranking")


def test_stratified_sample_keeps_every_class():
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])
    rows = twdl.stratified_sample(labels, 100, seed=0)
    assert np.bincount(labels[rows]).tolist() == [50, 30, 15, 5]
    assert np.array_equal(rows, twdl.stratified_sample(labels, 100, seed=0))
    assert len(twdl.stratified_sample(labels, 5000, seed=0)) == 1000


def test_layer_activations_shapes_and_hook_removed():
    model = twdl.DeepCrossNet(10, [5, 41], hidden=(32, 16))
    inputs = (torch.randn(50, 10), torch.randint(0, 5, (50, 2)))
    penultimate = twdl.layer_activations(model, inputs, "output", capture="input", batch_size=16)
    assert penultimate.shape == (50, 18 + 16)
    first = twdl.layer_activations(model, inputs, "deep.2", batch_size=16)
    assert first.shape == (50, 32) and (first >= 0).all()  # a ReLU's output
    assert not model.output._forward_hooks and model.training  # hook removed, mode restored
    with pytest.raises(KeyError, match="deep"):
        twdl.layer_activations(model, inputs, "no_such_layer")


def test_layer_activations_match_manual_forward():
    model = twdl.BaselineNet(10, [5, 41]).eval()
    inputs = (torch.randn(20, 10), torch.randint(0, 5, (20, 2)))
    expected = model.deep(model.inputs(*inputs))
    assert torch.allclose(twdl.layer_activations(model, inputs, model.deep), expected, atol=1e-6)


def test_project_2d_umap_is_seeded(monkeypatch):
    """The UMAP branch, with a stand-in umap module (real UMAP spends a minute compiling; the notebook runs it)."""
    import sys
    import types

    calls = {}

    class FakeUMAP:
        def __init__(self, **kwargs):
            calls.update(kwargs)
            torch.set_num_threads(2)  # what numba's start-up does to torch inside the real umap

        def fit_transform(self, x):
            return x[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert np.array_equal(twdl.project_2d(x, "umap", seed=7), x[:, :2] * 2)
    assert calls["random_state"] == 7 and calls["n_components"] == 2 and calls["n_neighbors"] == 5
    assert torch.get_num_threads() == 1  # the caller's thread count is restored


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_2d(method):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 8)), rng.normal(6, 1, (40, 8))])
    points = twdl.project_2d(x, method, seed=0)
    assert points.shape == (80, 2)
    if method == "pca":  # two well separated clusters stay separated along the first component
        assert abs(points[:40, 0].mean() - points[40:, 0].mean()) > 5


def test_project_2d_rejects_unknown_method():
    with pytest.raises(ValueError, match="pca"):
        twdl.project_2d(np.zeros((5, 2)), "lda")


def test_plot_projections_has_one_panel_per_method():
    x = np.random.default_rng(0).normal(size=(30, 4))
    fig = twdl.plot_projections(x, np.arange(30) % 3, methods=("pca",), class_names=["a", "b", "c"])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "PCA"


def test_one_hot_features():
    dense = twdl.one_hot_features(torch.ones(3, 2), torch.tensor([[0, 2], [1, 0], [0, 1]]), [2, 3])
    assert dense.shape == (3, 7)
    assert dense[0].tolist() == [1, 1, 1, 0, 0, 0, 1]


def test_d3_test_only_codes_count_rows_unseen_in_training_and_shifted_codes():
    import numpy as np
    import pandas as pd

    # train rows hold soils a, b, d, a; test rows b, c, d, d. The train encoder codes a, b, d as 1, 2, 3 (c unseen:
    # 0); an encoder fitted on the test rows alone codes b, c, d as 1, 2, 3: b shifts, c is misread, d agrees.
    df = pd.DataFrame({"x": np.arange(8.0), "soil": list("abdabcdd"), "y": [0, 1] * 4})
    train_rows, test_rows = np.arange(4), np.arange(4, 8)
    data = twdl.build_tabular(df[["x"]].to_numpy(np.float32), {"soil": df["soil"].to_numpy()}, df["y"].to_numpy(),
                              train_rows, test_rows, ["x"], task="classification", classes=[0, 1], device="cpu",
                              source="test", description="")
    assert data.test.inputs[1][:, 0].tolist() == [2, 0, 3, 3]
    assert twdl.test_only_codes(data)[:, 0].tolist() == [1, 2, 3, 3]
    assert twdl.per_split_code_mismatch_percent(data) == {"soil": 50.0}


class _Fixed(torch.nn.Module):
    """Predicts the class given per row (as one-hot logits)."""

    def __init__(self, predictions):
        super().__init__()
        self.predictions = torch.tensor(predictions)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.nn.functional.one_hot(self.predictions, 3).float() + 0 * self.dummy


def test_classification_scores_give_accuracy_macro_f1_and_the_classes_never_predicted():
    from sklearn.metrics import f1_score

    truth, predicted = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0]
    split = twdl.TensorData(torch.zeros(6, 2), torch.tensor(truth))
    scores = twdl.classification_scores(_Fixed(predicted), split, ["a", "b", "c"])
    assert scores["accuracy"] == pytest.approx(100 * 4 / 6)
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    assert scores["macro_f1"] < 0.7 and scores["never_predicted"] == ["c"]  # class c counts as an F1 of 0
