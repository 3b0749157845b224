"""Tests of the SERF fusion layer."""

import numpy as np
import pytest

import keras
from keras import ops

from keras_dissect.layers import SERF
from keras_dissect.layers import MultiScaleQuantizer

CODE_DIM = 8
EMBEDDING_DIM = 6
OUTPUT_DIM = 5
HIDDEN_DIM = 12
NUM_CONTEXT_TOKENS = 4
# Grid size of each scale for a 64 x 64 image.
GRID = {"fine": 8, "medium": 4, "coarse": 2}
ALL_SCALES = ("fine", "medium", "coarse")
# Keras LayerNormalization's default epsilon.
LAYER_NORM_EPSILON = 1e-3
# float32 matmuls, means and normalizations over a few dozen values round at
# about 1e-6; 1e-5 leaves room for that.
TOLERANCE = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def make_inputs(seed=0, scales=ALL_SCALES, batch_size=2):
    rng = np.random.RandomState(seed)
    quantized = {
        scale: rng.normal(size=(batch_size, GRID[scale], GRID[scale], CODE_DIM))
        .astype("float32")
        for scale in scales
    }
    embedding = rng.normal(size=(batch_size, EMBEDDING_DIM)).astype("float32")
    context = rng.normal(size=(batch_size, NUM_CONTEXT_TOKENS, CODE_DIM)).astype("float32")
    return quantized, embedding, context


def make_layer(**kwargs):
    options = dict(output_dim=OUTPUT_DIM, num_heads=2, mlp_hidden_dim=HIDDEN_DIM)
    options.update(kwargs)
    return SERF(**options)


def numpy_layer_norm(x):
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + LAYER_NORM_EPSILON)


def numpy_mlp(layer, features):
    """The MLP with freshly initialized (unit, zero) normalization weights."""
    hidden_kernel, hidden_bias = (to_numpy(w) for w in layer.mlp_hidden.weights)
    output_kernel, output_bias = (to_numpy(w) for w in layer.mlp_output.weights)
    hidden = numpy_layer_norm(features @ hidden_kernel + hidden_bias)
    return np.maximum(hidden, 0) @ output_kernel + output_bias


def numpy_average_pool(feature_map, factor):
    batch, height, width, channels = feature_map.shape
    blocks = feature_map.reshape(
        batch, height // factor, factor, width // factor, factor, channels
    )
    return blocks.mean(axis=(2, 4))


@pytest.mark.parametrize(
    "scales, fusion, query_mode",
    [
        (("coarse",), "serf", "tokens"),
        (("fine",), "serf", "tokens"),
        (("fine", "medium"), "serf", "tokens"),
        (ALL_SCALES, "serf", "tokens"),
        (("coarse",), "serf", "pooled"),
        (ALL_SCALES, "serf", "pooled"),
        (("medium",), "concat", "tokens"),
        (ALL_SCALES, "concat", "tokens"),
    ],
)
def test_output_shape(scales, fusion, query_mode):
    quantized, embedding, context = make_inputs(scales=scales)
    layer = make_layer(fusion=fusion, query_mode=query_mode)

    outputs = layer(quantized, embedding, context)

    assert tuple(outputs.shape) == (2, OUTPUT_DIM)
    assert np.all(np.isfinite(to_numpy(outputs)))


def test_output_shape_without_context():
    quantized, embedding, _ = make_inputs()

    outputs = make_layer()(quantized, embedding)

    assert tuple(outputs.shape) == (2, OUTPUT_DIM)


def test_symbolic_output_shape():
    quantized = {s: keras.Input((None, None, CODE_DIM), name=s) for s in ALL_SCALES}
    embedding = keras.Input((EMBEDDING_DIM,))

    outputs = make_layer()(quantized, embedding)

    assert outputs.shape == (None, OUTPUT_DIM)


@pytest.mark.parametrize(
    "scales, fusion, num_trainable",
    # serf: scale logits 1 (none for one scale), target projection 2,
    # attention 8 (query, key, value and output kernels and biases),
    # attention norm 2, MLP 6.
    [(ALL_SCALES, "serf", 19), (("coarse",), "serf", 18), (ALL_SCALES, "concat", 6)],
)
def test_weight_counts(scales, fusion, num_trainable):
    quantized, embedding, context = make_inputs(scales=scales)
    layer = make_layer(fusion=fusion)
    layer(quantized, embedding, context)

    assert len(layer.trainable_weights) == num_trainable
    assert len(layer.non_trainable_weights) == 0


def test_training_flag_does_not_change_output():
    # SERF has no dropout or batch statistics, so q_t is the same in both modes.
    quantized, embedding, context = make_inputs(10)
    layer = make_layer()

    training_output = to_numpy(layer(quantized, embedding, context, training=True))
    inference_output = to_numpy(layer(quantized, embedding, context, training=False))

    np.testing.assert_array_equal(training_output, inference_output)


def test_scale_weights_start_equal():
    quantized, embedding, _ = make_inputs()
    layer = make_layer()
    layer(quantized, embedding)

    assert tuple(layer.scale_logits.shape) == (3,)
    np.testing.assert_array_equal(to_numpy(layer.scale_logits), 0.0)


def test_fused_map_matches_numpy():
    quantized, embedding, _ = make_inputs(1)
    layer = make_layer()
    layer(quantized, embedding)
    logits = np.array([0.3, -0.2, 0.9], dtype="float32")
    layer.scale_logits.assign(logits)

    tensors = {scale: ops.convert_to_tensor(q) for scale, q in quantized.items()}
    fused = to_numpy(layer._fuse_maps(tensors))

    alpha = np.exp(logits) / np.exp(logits).sum()
    expected = (
        alpha[0] * numpy_average_pool(quantized["fine"], 4)
        + alpha[1] * numpy_average_pool(quantized["medium"], 2)
        + alpha[2] * quantized["coarse"]
    )
    np.testing.assert_allclose(fused, expected, atol=TOLERANCE)


def test_concat_fusion_matches_numpy():
    quantized, embedding, _ = make_inputs(2)
    layer = make_layer(fusion="concat")

    outputs = to_numpy(layer(quantized, embedding))

    features = np.concatenate(
        [quantized[s].mean(axis=(1, 2)) for s in ALL_SCALES], axis=-1
    )
    np.testing.assert_allclose(outputs, numpy_mlp(layer, features), atol=TOLERANCE)


def test_concat_fusion_ignores_target_embedding():
    quantized, embedding, context = make_inputs(3)
    layer = make_layer(fusion="concat")

    with_embedding = to_numpy(layer(quantized, embedding, context))
    without_embedding = to_numpy(layer(quantized))

    np.testing.assert_array_equal(with_embedding, without_embedding)


@pytest.mark.parametrize("query_mode", ["tokens", "pooled"])
def test_serf_output_depends_on_every_input(query_mode):
    quantized, embedding, context = make_inputs(4)
    other_quantized, other_embedding, other_context = make_inputs(5)
    layer = make_layer(query_mode=query_mode)

    reference = to_numpy(layer(quantized, embedding, context))
    changed = {
        "quantized": layer(other_quantized, embedding, context),
        "target_embedding": layer(quantized, other_embedding, context),
        "context_tokens": layer(quantized, embedding, other_context),
    }

    for name, outputs in changed.items():
        assert not np.allclose(to_numpy(outputs), reference, atol=1e-4), name


@pytest.mark.parametrize("query_mode", ["tokens", "pooled"])
def test_attention_over_single_key_is_degenerate(query_mode):
    # With h_phi as the only key, every query receives the same function of
    # h_phi, so only the residual carries the quantized maps.
    quantized, embedding, _ = make_inputs(6)
    other_quantized, _, _ = make_inputs(7)
    layer = make_layer(query_mode=query_mode)
    layer(quantized, embedding)
    keys = layer.target_projection(ops.convert_to_tensor(embedding))[:, None, :]

    attended = []
    for maps in (quantized, other_quantized):
        tensors = {scale: ops.convert_to_tensor(q) for scale, q in maps.items()}
        fused = layer._fuse_maps(tensors)
        if query_mode == "pooled":
            queries = ops.mean(fused, axis=(1, 2))[:, None, :]
        else:
            queries = ops.reshape(fused, (2, -1, CODE_DIM))
        attended.append(to_numpy(layer.attention(query=queries, value=keys)))

    np.testing.assert_allclose(attended[0], attended[1], atol=TOLERANCE)
    np.testing.assert_allclose(
        attended[0], np.broadcast_to(attended[0][:, :1], attended[0].shape), atol=TOLERANCE
    )


def test_gradient_reaches_serf_and_projections(trainable_gradients):
    rng = np.random.RandomState(8)
    features = {
        scale: rng.normal(size=(2, GRID[scale], GRID[scale], 3)).astype("float32")
        for scale in ALL_SCALES
    }
    embedding = ops.convert_to_tensor(rng.normal(size=(2, EMBEDDING_DIM)).astype("float32"))
    weights = ops.convert_to_tensor(rng.normal(size=(2, OUTPUT_DIM)).astype("float32"))
    quantizer = MultiScaleQuantizer(num_codes=8, code_dim=CODE_DIM, seed=0)
    serf = make_layer()

    def loss():
        outputs = quantizer(features, training=False)
        quantized = {s: outputs[f"quantized_{s}"] for s in ALL_SCALES}
        context = ops.reshape(outputs["continuous_coarse"], (2, -1, CODE_DIM))
        return ops.sum(serf(quantized, embedding, context) * weights)

    loss()
    variables, gradients = trainable_gradients([quantizer, serf], loss)

    assert len(variables) == 6 + 19
    for variable, gradient in zip(variables, gradients):
        assert np.abs(gradient).max() > 0, variable.path


def test_config_round_trip():
    layer = make_layer(fusion="concat", query_mode="pooled", num_heads=3, key_dim=7)

    restored = SERF.from_config(layer.get_config())

    assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize("fusion", ["serf", "concat"])
def test_saved_model_round_trip(tmp_path, fusion):
    quantized_inputs = {
        s: keras.Input((GRID[s], GRID[s], CODE_DIM), name=s) for s in ALL_SCALES
    }
    embedding_input = keras.Input((EMBEDDING_DIM,), name="embedding")
    context_input = keras.Input((NUM_CONTEXT_TOKENS, CODE_DIM), name="context")
    outputs = make_layer(fusion=fusion, name="serf")(
        quantized_inputs, embedding_input, context_input
    )
    model = keras.Model([quantized_inputs, embedding_input, context_input], outputs)
    quantized, embedding, context = make_inputs(9)
    path = tmp_path / "serf.keras"

    model.save(path)
    restored = keras.saving.load_model(path)

    np.testing.assert_allclose(
        to_numpy(restored([quantized, embedding, context])),
        to_numpy(model([quantized, embedding, context])),
        atol=1e-6,
    )


def test_bfloat16_policy_output_dtype():
    quantized, embedding, context = make_inputs()
    layer = make_layer(dtype="mixed_bfloat16")

    outputs = layer(quantized, embedding, context)

    assert "bfloat16" in str(outputs.dtype)
    assert layer.scale_logits.dtype == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fusion": "sum"}, "Received: fusion='sum'"),
        ({"query_mode": "mean"}, "Received: query_mode='mean'"),
        ({"num_heads": 0}, "Received: num_heads=0"),
        ({"output_dim": 0}, "Received: output_dim=0"),
        ({"mlp_hidden_dim": -1}, "Received: mlp_hidden_dim=-1"),
        ({"key_dim": 0}, "Received: key_dim=0"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SERF(**kwargs)


def test_bad_inputs_raise():
    quantized, embedding, context = make_inputs()

    with pytest.raises(ValueError, match="must be a non-empty dict"):
        make_layer()(quantized["coarse"], embedding)
    with pytest.raises(ValueError, match=r"\['stage4'\] is not one of them"):
        make_layer()({"stage4": quantized["coarse"]}, embedding)
    with pytest.raises(ValueError, match=r"Received: quantized\['coarse'\].shape=\(2, 2, 8\)"):
        make_layer()({"coarse": quantized["coarse"][0]}, embedding)
    with pytest.raises(ValueError, match="Received: target_embedding.shape=None"):
        make_layer()(quantized)
    with pytest.raises(ValueError, match=r"Received: context_tokens.shape=\(2, 4, 3\)"):
        make_layer()(quantized, embedding, context[..., :3])
    with pytest.raises(ValueError, match="same known last axis D"):
        make_layer()({"fine": quantized["fine"], "coarse": quantized["coarse"][..., :4]}, embedding)


def test_mismatched_grid_raises():
    quantized, embedding, _ = make_inputs()
    quantized["coarse"] = np.zeros((2, 3, 3, CODE_DIM), "float32")

    with pytest.raises(ValueError, match="does not match the grid"):
        make_layer()(quantized, embedding)


def test_scales_differ_from_build_raises():
    quantized, embedding, _ = make_inputs()
    layer = make_layer()
    layer(quantized, embedding)

    with pytest.raises(ValueError, match="built with"):
        layer({"coarse": quantized["coarse"]}, embedding)
