"""Tests for mirdl_tf.models: every builder x every task it supports, on tiny inputs.

Models are built with a few filters/units so the file runs in well under a minute on two
busy CPU cores; forward passes call the model eagerly on a batch of two.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mirdl_tf.models import (  # noqa: E402
    CLIP_TASKS,
    FRAME_TASKS,
    MODELS,
    TASKS,
    build_model,
    feature_extractor,
    feature_layers,
    fcn,
    head_for_task,
    loss_for_task,
    metrics_for_task,
)
from mirdl_tf.models.skeleton import reduction_plan as _reduction_plan  # noqa: E402

N_FREQ, N_TIME = 32, 40

#: Tiny architecture arguments per model.
TINY = {
    "dense": dict(context=2, units=8, n_layers=2),
    "fcn": dict(n_layers=4, base_filters=4),
    "temporal_cnn": dict(n_layers=2, filters=4, kernel_size=3),
    "musically_motivated": dict(filters=4, temporal_widths=(8, 64), backend_filters=8, dense_units=8),
    "crnn": dict(conv_filters=(4, 4), rnn_units=4),
    "birnn": dict(units=4, n_layers=1, conv_filters=(4,)),
}
SUPPORTED = {
    "dense": TASKS,
    "fcn": CLIP_TASKS,
    "temporal_cnn": TASKS,
    "musically_motivated": CLIP_TASKS,
    "crnn": CLIP_TASKS,
    "birnn": TASKS,
}
N_OUTPUTS = {"single_label": 5, "multi_label": 6, "regression": 3, "frame_onset": 1, "frame_notes": 4,
             "frame_chords": 7}
CASES = [(name, task) for name in MODELS for task in SUPPORTED[name]]


def tiny(name, task, input_shape=(N_FREQ, N_TIME), **kwargs):
    return build_model(name, input_shape=input_shape, n_outputs=N_OUTPUTS[task], task=task,
                       **{**TINY[name], **kwargs})


def random_input(*shape, seed=0):
    return np.random.default_rng(seed).normal(-40.0, 15.0, size=shape).astype("float32")  # dB-like


def check_output(output, task, batch, n_time):
    output = np.asarray(output)
    if task in FRAME_TASKS:
        assert output.shape == (batch, n_time, N_OUTPUTS[task])
    else:
        assert output.shape == (batch, N_OUTPUTS[task])
    assert np.isfinite(output).all()
    activation = head_for_task(task).activation
    if activation == "softmax":
        np.testing.assert_allclose(output.sum(axis=-1), 1.0, atol=1e-5)
    if activation in ("softmax", "sigmoid"):
        assert output.min() >= 0.0 and output.max() <= 1.0


def test_registry_matches_the_tutorial_models():
    assert set(MODELS) == {"dense", "fcn", "temporal_cnn", "musically_motivated", "crnn", "birnn"}
    assert set(SUPPORTED) == set(MODELS)


def test_registry_keys_are_the_builders_names_one_module_per_family():
    import importlib

    import mirdl_tf.models as models

    for name, builder in MODELS.items():
        assert builder.__name__ == name and builder.__kwdefaults__["name"] == name
        assert builder.__module__ == f"mirdl_tf.models.{name}"
        assert getattr(importlib.import_module(f"mirdl_tf.models.{name}"), name) is builder
    # the earlier public names still build the same models
    assert (models.dense_frames, models.musicnn_pons, models.birnn_frames) == (
        MODELS["dense"], MODELS["musically_motivated"], MODELS["birnn"])
    assert {name for name in models.__all__ if not hasattr(models, name)} == set()


@pytest.mark.parametrize("name,task", CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_output_shape_range_and_names(name, task):
    model = tiny(name, task)
    output = model(random_input(2, N_FREQ, N_TIME), training=False)
    check_output(output, task, batch=2, n_time=N_TIME)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert model.name == MODELS[name].__kwdefaults__["name"]
    assert model.get_layer("output").activation.__name__ == head_for_task(task).activation


@pytest.mark.parametrize("name", list(MODELS))
def test_channels_and_variable_length(name):
    # (freq, time, channels) input with n_time=None, run on two different lengths.
    task = "frame_notes" if "frame_notes" in SUPPORTED[name] else "multi_label"
    model = tiny(name, task, input_shape=(N_FREQ, None, 2))
    assert model.input_shape == (None, N_FREQ, None, 2)
    for n_time in (N_TIME, 23):
        check_output(model(random_input(2, N_FREQ, n_time, 2), training=False), task, batch=2, n_time=n_time)


@pytest.mark.parametrize("name", list(MODELS))
def test_get_config_round_trip(name):
    task = SUPPORTED[name][0]
    model = tiny(name, task)
    clone = keras.Model.from_config(model.get_config())
    assert clone.name == model.name
    assert clone.count_params() == model.count_params()
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    x = random_input(2, N_FREQ, N_TIME)
    np.testing.assert_allclose(clone(x, training=False), model(x, training=False), atol=1e-5)


def test_conv_layers_are_named_by_block():
    model = tiny("musically_motivated", "multi_label")
    convs = [layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D))]
    assert convs == ["timbral_1_conv", "timbral_2_conv", "temporal_1_conv", "temporal_2_conv",
                     "backend_1_conv", "backend_2_conv"]


@pytest.mark.parametrize("input_shape", [(32, 32), (8, 5), (1, 1, 2)])
def test_fcn_small_inputs_never_pool_to_zero(input_shape):
    model = fcn(input_shape, 3, n_layers=5, base_filters=2)
    for layer in model.layers:
        assert all(dim is None or dim >= 1 for dim in layer.output.shape)
    # The derived pools bring frequency and time to exactly 1 before the global pooling.
    assert model.get_layer("block_5_out").output.shape[1:3] == (1, 1)
    assert model(random_input(1, *input_shape), training=False).shape == (1, 3)


def test_fcn_explicit_pools_larger_than_the_input_still_work():
    model = fcn((32, 32), 2, n_layers=4, base_filters=2, pool_sizes=[(4, 4)] * 4)
    assert model.get_layer("block_4_out").output.shape[1:3] == (1, 1)


def test_fcn_default_pools_for_the_tutorial_input():
    model = fcn((96, 128), 50, base_filters=2)
    pools = [model.get_layer(f"block_{i}_pool").pool_size for i in range(1, 6)]
    assert pools == [(2, 3), (3, 3), (3, 2), (2, 3), (3, 3)]


@given(size=st.integers(1, 5000), n_steps=st.integers(1, 8))
@settings(max_examples=200, deadline=None)
def test_reduction_plan_reaches_exactly_one(size, n_steps):
    plan = _reduction_plan(size, n_steps)
    assert len(plan) == n_steps and min(plan) >= 1
    for factor in plan:
        size = -(-size // factor)
    assert size == 1


def test_crnn_lstm_and_birnn_without_conv_front():
    model = tiny("crnn", "single_label", rnn="lstm")
    assert isinstance(model.get_layer("rnn_1_lstm"), keras.layers.LSTM)
    check_output(model(random_input(2, N_FREQ, N_TIME), training=False), "single_label", 2, N_TIME)
    model = tiny("birnn", "frame_onset", rnn="lstm", conv_front=False)
    assert "block_1_conv" not in [layer.name for layer in model.layers]
    check_output(model(random_input(2, N_FREQ, N_TIME), training=False), "frame_onset", 2, N_TIME)


def test_feature_layers_and_extractor():
    model = tiny("crnn", "multi_label")
    assert feature_layers(model) == ["block_1_out", "block_2_out", "rnn_1_out", "rnn_2_out"]
    extractor = feature_extractor(model)
    # conv blocks (4 + 4 channels) + two GRU layers (4 + 4 units).
    assert extractor.output_shape == (None, 16)
    assert extractor(random_input(3, N_FREQ, N_TIME), training=False).shape == (3, 16)
    assert feature_layers(tiny("birnn", "frame_notes")) == ["block_1_out", "birnn_1_out"]


def test_heads_losses_and_metrics():
    assert {task: head_for_task(task).activation for task in TASKS} == {
        "single_label": "softmax", "multi_label": "sigmoid", "regression": "linear",
        "frame_onset": "sigmoid", "frame_notes": "sigmoid", "frame_chords": "softmax",
    }
    assert [head_for_task(task).frame_level for task in TASKS] == [False] * 3 + [True] * 3
    assert isinstance(loss_for_task("single_label"), keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(loss_for_task("frame_chords"), keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(loss_for_task("multi_label"), keras.losses.BinaryCrossentropy)
    assert isinstance(loss_for_task("frame_onset"), keras.losses.BinaryCrossentropy)
    assert isinstance(loss_for_task("regression"), keras.losses.MeanSquaredError)
    assert [m.name for m in metrics_for_task("multi_label")] == ["roc_auc", "pr_auc"]
    assert [m.name for m in metrics_for_task("regression")] == ["mae"]
    assert metrics_for_task("frame_notes")[0] is not metrics_for_task("frame_notes")[0]  # fresh state
    # Mixup turns single-label indices into float one-hot vectors.
    assert isinstance(loss_for_task("single_label", one_hot=True), keras.losses.CategoricalCrossentropy)
    assert isinstance(metrics_for_task("single_label", one_hot=True)[0], keras.metrics.CategoricalAccuracy)
    with pytest.raises(ValueError, match="one_hot=True is for the softmax tasks"):
        loss_for_task("multi_label", one_hot=True)


def test_onset_labels_without_output_axis_work():
    # Stores hold onset labels as (n_time,): the loss and metrics expand them to (n_time, 1).
    model = tiny("temporal_cnn", "frame_onset")
    y_true = (np.random.default_rng(0).random((2, N_TIME)) > 0.8).astype("float32")
    y_pred = model(random_input(2, N_FREQ, N_TIME), training=False)
    assert np.isfinite(float(loss_for_task("frame_onset")(y_true, y_pred)))
    for metric in metrics_for_task("frame_onset"):
        metric.update_state(y_true, y_pred)
        assert 0.0 <= float(metric.result()) <= 1.0


@pytest.mark.parametrize("name,task", [("fcn", "multi_label"), ("birnn", "frame_chords")])
def test_fit_two_steps_wires_loss_and_metrics(name, task):
    keras.utils.set_random_seed(0)
    model = tiny(name, task)
    # The RNN runs eagerly: tracing a GRU costs seconds; the conv model checks graph mode (AUC state).
    model.compile(optimizer="adam", loss=loss_for_task(task), metrics=metrics_for_task(task),
                  jit_compile=False, run_eagerly=name == "birnn")
    rng = np.random.default_rng(0)
    x = random_input(4, N_FREQ, N_TIME)
    if task == "multi_label":
        y = (rng.random((4, N_OUTPUTS[task])) > 0.5).astype("float32")  # multi-hot
    else:
        y = rng.integers(0, N_OUTPUTS[task], size=(4, N_TIME))  # per-frame chord indices
    history = model.fit(x, y, batch_size=2, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    expected = {"multi_label": {"roc_auc", "pr_auc"}, "frame_chords": {"accuracy"}}[task]
    assert expected <= set(history.history)


# --- argument errors (all raised before any layer is built) ---------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_n_outputs_must_be_positive(name):
    with pytest.raises(ValueError, match=r"n_outputs must be an integer >= 1. Received: n_outputs=0"):
        build_model(name, input_shape=(N_FREQ, N_TIME), n_outputs=0, task=SUPPORTED[name][0])


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match=r"Unknown model name='vgg'.*'birnn'.*'fcn'"):
        build_model("vgg", input_shape=(N_FREQ, N_TIME), n_outputs=2, task="multi_label")


def test_unknown_task_lists_choices():
    with pytest.raises(ValueError, match=r"task must be one of .*'frame_chords'.*Received: task='tagging'"):
        build_model("fcn", input_shape=(N_FREQ, N_TIME), n_outputs=2, task="tagging")
    with pytest.raises(ValueError, match="task must be one of"):
        loss_for_task("tagging")


@pytest.mark.parametrize(
    "name,task,kwargs,message",
    [
        ("fcn", "frame_notes", {}, r"fcn supports task in \['single_label', 'multi_label', 'regression'\]"),
        ("crnn", "frame_onset", {}, "crnn supports task in"),
        ("birnn", "frame_onset", {"n_outputs": 2}, "frame_onset' needs n_outputs=1"),
        ("fcn", "single_label", {"n_outputs": 1}, "needs n_outputs >= 2 classes"),
        ("fcn", "multi_label", {"input_shape": (32,)}, r"input_shape must be .*Received: input_shape=\(32,\)"),
        ("fcn", "multi_label", {"input_shape": (None, 40)}, "input_shape must be"),
        ("fcn", "multi_label", {"input_shape": (32, 0)}, "input_shape must be"),
        ("fcn", "multi_label", {"n_outputs": 2.0}, "n_outputs must be an integer >= 1"),
        ("fcn", "multi_label", {"pool_sizes": [(2, 2)]}, r"pool_sizes must be None or 4 \(freq, time\) pairs"),
        ("fcn", "multi_label", {"global_pool": "sum"}, r"global_pool must be one of \['max', 'avg'\]"),
        ("fcn", "multi_label", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ("crnn", "multi_label", {"rnn": "rnn"}, r"rnn must be one of \['gru', 'lstm'\]. Received: rnn='rnn'"),
        ("crnn", "multi_label", {"conv_filters": ()}, "conv_filters must be a non-empty sequence"),
        ("temporal_cnn", "multi_label", {"filters": (4, 4, 4)}, "filters must have 2 entries"),
        ("dense", "frame_notes", {"context": -1}, "context must be an integer >= 0. Received: context=-1"),
        ("musically_motivated", "multi_label", {"timbral_heights": (0.0,)}, "timbral_heights must be"),
        ("musically_motivated", "multi_label", {"timbral_heights": (), "temporal_widths": ()},
         "at least one timbral or temporal branch"),
    ],
)
def test_bad_arguments(name, task, kwargs, message):
    kwargs = {**TINY[name], **kwargs}
    input_shape = kwargs.pop("input_shape", (N_FREQ, N_TIME))
    n_outputs = kwargs.pop("n_outputs", N_OUTPUTS[task])
    with pytest.raises(ValueError, match=message):
        build_model(name, input_shape=input_shape, n_outputs=n_outputs, task=task, **kwargs)


def test_unknown_builder_argument_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['filters'\] for model 'crnn'.*'conv_filters'"):
        build_model("crnn", input_shape=(N_FREQ, N_TIME), n_outputs=2, task="multi_label", filters=3)


def test_sizes_may_be_numpy_integers():
    # Shapes read from arrays or manifests often arrive as numpy integers.
    model = fcn((np.int64(N_FREQ), np.int64(N_TIME)), np.int64(3), n_layers=np.int64(2), base_filters=2)
    assert model.output_shape == (None, 3)


def test_rates_and_fractions_may_be_numpy_floats():
    # One checker for every layer: a numpy float32 is a number here as in mirdl.features.
    model = build_model("musically_motivated", input_shape=(N_FREQ, N_TIME), n_outputs=3, task="multi_label",
                        **{**TINY["musically_motivated"], "dropout": np.float32(0.25),
                           "timbral_heights": (np.float32(0.5),)})
    assert model.get_layer("penultimate_dropout").rate == 0.25
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)\. Received: dropout=1\.0"):
        tiny("fcn", "multi_label", dropout=1.0)
