"""Tests of MultiScaleQuantizer."""

import numpy as np
import pytest

import keras
from keras import ops

from keras_dissect.layers import MultiScaleQuantizer

NUM_CODES = 8
CODE_DIM = 4
# Channels and grid size of each scale for a 64 x 64 image.
CHANNELS = {"fine": 3, "medium": 5, "coarse": 6}
GRID = {"fine": 8, "medium": 4, "coarse": 2}
# float32 1x1 convolutions over a few channels round at about 1e-6.
TOLERANCE = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def make_features(seed=0, batch_size=2, scales=tuple(CHANNELS)):
    rng = np.random.RandomState(seed)
    return {
        scale: rng.normal(size=(batch_size, GRID[scale], GRID[scale], CHANNELS[scale]))
        .astype("float32")
        for scale in scales
    }


def make_layer(**kwargs):
    options = dict(num_codes=NUM_CODES, code_dim=CODE_DIM, seed=0)
    options.update(kwargs)
    return MultiScaleQuantizer(**options)


@pytest.mark.parametrize(
    "scales", [("coarse",), ("fine",), ("medium", "coarse"), ("fine", "medium", "coarse")]
)
def test_output_shapes_per_scale(scales):
    layer = make_layer(scales=scales)

    outputs = layer(make_features(scales=scales), training=True)

    expected_keys = {"commitment_loss"}
    for scale in scales:
        grid = GRID[scale]
        for name in ("quantized", "continuous"):
            assert tuple(outputs[f"{name}_{scale}"].shape) == (2, grid, grid, CODE_DIM)
        assert tuple(outputs[f"indices_{scale}"].shape) == (2, grid, grid)
        for name in ("commitment_loss", "perplexity", "live_code_fraction"):
            assert tuple(outputs[f"{name}_{scale}"].shape) == ()
            expected_keys.add(f"{name}_{scale}")
        expected_keys |= {f"quantized_{scale}", f"continuous_{scale}", f"indices_{scale}"}
    assert set(outputs) == expected_keys


def test_weight_counts():
    layer = make_layer()
    layer(make_features())

    # Per scale: the projection's kernel and bias, and the quantizer's five
    # non-trainable weights.
    assert len(layer.trainable_weights) == 2 * 3
    assert len(layer.non_trainable_weights) == 5 * 3
    codebooks = {id(layer.quantizers[s].codebook) for s in CHANNELS}
    assert not codebooks & {id(w) for w in layer.trainable_weights}


def test_symbolic_output_shapes():
    inputs = {s: keras.Input((None, None, CHANNELS[s]), name=s) for s in CHANNELS}

    outputs = make_layer()(inputs)

    assert outputs["quantized_fine"].shape == (None, None, None, CODE_DIM)
    assert outputs["indices_coarse"].shape == (None, None, None)
    assert outputs["commitment_loss"].shape == ()


def test_projection_and_codes_match_numpy():
    layer = make_layer()
    features = make_features(1)

    outputs = layer(features)

    total_loss = 0.0
    for scale, feature_map in features.items():
        kernel, bias = (to_numpy(w) for w in layer.projections[scale].weights)
        continuous = feature_map @ kernel[0, 0] + bias
        np.testing.assert_allclose(
            to_numpy(outputs[f"continuous_{scale}"]), continuous, atol=TOLERANCE
        )

        codebook = to_numpy(layer.quantizers[scale].codebook)
        vectors = continuous.reshape(-1, CODE_DIM)
        distances = ((vectors[:, None] - codebook[None]) ** 2).sum(-1)
        indices = distances.argmin(1)
        np.testing.assert_array_equal(
            to_numpy(outputs[f"indices_{scale}"]).reshape(-1), indices
        )
        loss = 0.25 * np.mean((vectors - codebook[indices]) ** 2)
        np.testing.assert_allclose(
            float(to_numpy(outputs[f"commitment_loss_{scale}"])), loss, rtol=1e-4
        )
        total_loss += loss
    np.testing.assert_allclose(
        float(to_numpy(outputs["commitment_loss"])), total_loss, rtol=1e-4
    )


def test_codebooks_update_only_in_training():
    layer = make_layer()
    features = make_features(2)
    layer(features)
    before = {s: to_numpy(layer.quantizers[s].codebook) for s in CHANNELS}

    layer(features, training=False)
    for scale in CHANNELS:
        np.testing.assert_array_equal(to_numpy(layer.quantizers[scale].codebook), before[scale])

    layer(features, training=True)
    for scale in CHANNELS:
        assert not np.allclose(to_numpy(layer.quantizers[scale].codebook), before[scale])


def test_codebooks_differ_between_scales():
    layer = make_layer()
    layer(make_features())

    fine = to_numpy(layer.quantizers["fine"].codebook)
    coarse = to_numpy(layer.quantizers["coarse"].codebook)

    assert not np.allclose(fine, coarse)


def test_gradient_reaches_projections(trainable_gradients):
    layer = make_layer()
    features = make_features(3)
    layer(features)
    weights = ops.convert_to_tensor(
        np.random.RandomState(4).normal(size=(2, 8, 8, CODE_DIM)).astype("float32")
    )

    def loss():
        outputs = layer(features, training=False)
        return ops.sum(outputs["quantized_fine"] * weights) + outputs["commitment_loss"]

    variables, gradients = trainable_gradients([layer], loss)

    assert len(variables) == 6
    for variable, gradient in zip(variables, gradients):
        assert np.abs(gradient).max() > 0, variable.path


def test_config_round_trip():
    layer = make_layer(
        scales=["medium", "fine"],
        decay=0.9,
        commitment_weight=0.5,
        epsilon=1e-4,
        dead_code_steps=3,
        init_from_first_batch=True,
        live_code_window=5,
        chunk_size=32,
        name="multi",
    )

    restored = MultiScaleQuantizer.from_config(layer.get_config())

    assert restored.get_config() == layer.get_config()
    assert restored.quantizers["fine"].get_config()["decay"] == 0.9


def test_saved_model_round_trip(tmp_path):
    inputs = {s: keras.Input((None, None, CHANNELS[s]), name=s) for s in CHANNELS}
    model = keras.Model(inputs, make_layer(name="multi")(inputs))
    features = make_features(5)
    model.get_layer("multi")(features, training=True)
    path = tmp_path / "multi.keras"

    model.save(path)
    restored = keras.saving.load_model(path)

    for weight, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(to_numpy(loaded), to_numpy(weight))
    expected = model(features)
    actual = restored(features)
    for name in expected:
        np.testing.assert_allclose(
            to_numpy(actual[name]), to_numpy(expected[name]), atol=1e-6, err_msg=name
        )


def test_bfloat16_policy_keeps_float32_codebooks():
    layer = make_layer(dtype="mixed_bfloat16")

    outputs = layer(make_features(), training=True)

    assert "bfloat16" in str(outputs["quantized_fine"].dtype)
    assert "float32" in str(outputs["commitment_loss"].dtype)
    assert layer.quantizers["fine"].codebook.dtype == "float32"


@pytest.mark.parametrize(
    "scales, message",
    [
        (("fine", "tiny"), r"\['tiny'\] is not one of them"),
        ((), "Received: scales=()"),
        ("coarse", "Received: scales='coarse'"),
        (("fine", "fine"), "must not repeat"),
    ],
)
def test_invalid_scales_raise(scales, message):
    with pytest.raises(ValueError, match=message):
        MultiScaleQuantizer(scales=scales)


def test_invalid_quantizer_argument_raises():
    with pytest.raises(ValueError, match="Received: decay=1.5"):
        MultiScaleQuantizer(decay=1.5)


def test_bad_features_raise():
    layer = make_layer(scales=("coarse",))
    features = make_features(scales=("coarse",))

    with pytest.raises(ValueError, match="must be a dict"):
        layer(features["coarse"])
    with pytest.raises(ValueError, match=r"no map for the scales \['coarse'\]"):
        layer({"fine": make_features()["fine"]})
    with pytest.raises(ValueError, match=r"\['stage4'\] is not one of them"):
        layer({"coarse": features["coarse"], "stage4": features["coarse"]})
    with pytest.raises(ValueError, match=r"Received: features\['coarse'\].shape=\(2, 2, 6\)"):
        layer({"coarse": features["coarse"][0]})

