"""Tests of VectorQuantizer against an independent NumPy computation."""

import numpy as np
import pytest

import keras
from keras import ops
from keras.src import testing

from keras_dissect.layers import VectorQuantizer

NUM_CODES = 8
CODE_DIM = 4
# float32 matmul and segment sums over a few dozen vectors round at about 1e-6
# relative; 1e-5 leaves room for that and still catches any formula error,
# which moves values by at least 1e-3 here.
TOLERANCE = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_vectors(seed, shape):
    return np.random.RandomState(seed).normal(size=shape).astype("float32")


def make_quantizer(**kwargs):
    options = dict(num_codes=NUM_CODES, code_dim=CODE_DIM, seed=0)
    options.update(kwargs)
    layer = VectorQuantizer(**options)
    layer.build((None, CODE_DIM))
    return layer


def separated_codebook(scale=10.0):
    """Return NUM_CODES distinct codes +-scale * e_i, far apart from each other."""
    identity = np.eye(CODE_DIM, dtype="float32") * scale
    return np.concatenate([identity, -identity])


def set_codebook(layer, codebook):
    """Set the codebook together with its EMA sums, as the convention requires."""
    layer.codebook.assign(codebook)
    layer.ema_sum.assign(codebook)


def numpy_nearest(vectors, codebook):
    """Nearest code by explicit pairwise distances."""
    distances = ((vectors[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=-1)
    return distances.argmin(axis=1)


def numpy_ema_step(state, vectors, decay, epsilon):
    """Apply one EMA update to a NumPy state, returning the new state and the counts."""
    codebook, ema_count, ema_sum = state
    num_codes = codebook.shape[0]
    indices = numpy_nearest(vectors, codebook)
    counts = np.bincount(indices, minlength=num_codes).astype("float64")
    sums = np.zeros_like(ema_sum)
    np.add.at(sums, indices, vectors)

    ema_count = decay * ema_count + (1 - decay) * counts
    ema_sum = decay * ema_sum + (1 - decay) * sums
    total = ema_count.sum()
    smoothed = (ema_count + epsilon) / (total + num_codes * epsilon) * total
    return (ema_sum / smoothed[:, None], ema_count, ema_sum), counts


def numpy_state(layer):
    return (
        to_numpy(layer.codebook).astype("float64"),
        to_numpy(layer.ema_count).astype("float64"),
        to_numpy(layer.ema_sum).astype("float64"),
    )


def gradient_wrt_inputs(function, inputs):
    """Return d function(inputs) / d inputs with the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value = function(inputs)
        return tape.gradient(value, inputs).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(function)(jax.numpy.asarray(inputs)))
    if backend == "torch":
        import torch

        inputs = torch.tensor(inputs, requires_grad=True)
        function(inputs).backward()
        return inputs.grad.numpy()
    raise NotImplementedError(f"no gradient helper for backend {backend}")


@pytest.mark.parametrize("shape", [(6, CODE_DIM), (2, 3, CODE_DIM), (2, 3, 5, CODE_DIM)])
def test_output_shapes_and_dtypes(shape):
    layer = make_quantizer()
    outputs = layer(random_vectors(0, shape), training=True)

    assert set(outputs) == {
        "quantized",
        "indices",
        "commitment_loss",
        "perplexity",
        "live_code_fraction",
    }
    assert tuple(outputs["quantized"].shape) == shape
    assert tuple(outputs["indices"].shape) == shape[:-1]
    assert "int32" in str(outputs["indices"].dtype)
    for name in ("commitment_loss", "perplexity", "live_code_fraction"):
        assert tuple(outputs[name].shape) == ()
        assert "float32" in str(outputs[name].dtype)


def test_symbolic_call_output_shapes():
    inputs = keras.Input((None, None, CODE_DIM))
    outputs = VectorQuantizer(num_codes=NUM_CODES, code_dim=CODE_DIM)(inputs)

    assert outputs["quantized"].shape == (None, None, None, CODE_DIM)
    assert outputs["indices"].shape == (None, None, None)
    assert outputs["perplexity"].shape == ()


def test_weights_are_float32_and_non_trainable():
    layer = make_quantizer()

    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 5
    assert all(w is not layer.codebook for w in layer.trainable_weights)
    for weight in (layer.codebook, layer.ema_count, layer.ema_sum):
        assert weight.dtype == "float32"
    np.testing.assert_array_equal(to_numpy(layer.ema_count), np.ones(NUM_CODES))
    np.testing.assert_array_equal(to_numpy(layer.ema_sum), to_numpy(layer.codebook))


def test_nearest_codes_match_numpy():
    layer = make_quantizer()
    vectors = random_vectors(1, (40, CODE_DIM))

    indices = to_numpy(layer(vectors)["indices"])

    np.testing.assert_array_equal(indices, numpy_nearest(vectors, numpy_state(layer)[0]))


def test_chunked_distance_equals_unchunked():
    vectors = random_vectors(2, (3, 17, CODE_DIM))
    unchunked = make_quantizer(chunk_size=1000)
    chunked = make_quantizer(chunk_size=7)
    chunked.set_weights(unchunked.get_weights())

    expected = to_numpy(unchunked(vectors)["indices"])
    actual = to_numpy(chunked(vectors)["indices"])

    np.testing.assert_array_equal(actual, expected)


def test_ema_one_step_matches_numpy():
    decay, epsilon = 0.9, 1e-3
    layer = make_quantizer(decay=decay, epsilon=epsilon)
    vectors = random_vectors(3, (50, CODE_DIM))
    (codebook, ema_count, ema_sum), counts = numpy_ema_step(
        numpy_state(layer), vectors, decay, epsilon
    )

    layer(vectors, training=True)

    # Unit-count convention: decay * 1 + (1 - decay) * assignment count.
    np.testing.assert_allclose(
        to_numpy(layer.ema_count), decay + (1 - decay) * counts, rtol=TOLERANCE
    )
    np.testing.assert_allclose(to_numpy(layer.ema_count), ema_count, rtol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.ema_sum), ema_sum, atol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.codebook), codebook, atol=TOLERANCE)


def test_ema_counts_with_zero_decay_equal_assignments():
    layer = make_quantizer(decay=0.0)
    vectors = random_vectors(4, (30, CODE_DIM))
    expected = np.bincount(
        numpy_nearest(vectors, numpy_state(layer)[0]), minlength=NUM_CODES
    )

    layer(vectors, training=True)

    np.testing.assert_array_equal(to_numpy(layer.ema_count), expected)


def test_ema_several_steps_match_numpy():
    decay, epsilon = 0.8, 1e-5
    layer = make_quantizer(decay=decay, epsilon=epsilon)
    state = numpy_state(layer)
    all_counts = []

    for step in range(4):
        vectors = random_vectors(10 + step, (2, 16, CODE_DIM))
        state, counts = numpy_ema_step(
            state, vectors.reshape(-1, CODE_DIM), decay, epsilon
        )
        all_counts.append(counts)
        layer(vectors, training=True)

    # Closed form of the convention: decay^t + (1 - decay) sum decay^(t-s) n_s.
    steps = len(all_counts)
    closed_form = decay**steps + (1 - decay) * sum(
        decay ** (steps - 1 - s) * counts for s, counts in enumerate(all_counts)
    )
    np.testing.assert_allclose(to_numpy(layer.ema_count), closed_form, rtol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.ema_count), state[1], rtol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.ema_sum), state[2], atol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.codebook), state[0], atol=TOLERANCE)


def test_codebook_is_laplace_smoothed_ratio():
    epsilon = 0.5  # large, so that smoothing visibly differs from a plain ratio
    layer = make_quantizer(decay=0.5, epsilon=epsilon)
    layer(random_vectors(5, (20, CODE_DIM)), training=True)

    ema_count = to_numpy(layer.ema_count).astype("float64")
    total = ema_count.sum()
    smoothed = (ema_count + epsilon) / (total + NUM_CODES * epsilon) * total
    expected = to_numpy(layer.ema_sum) / smoothed[:, None]

    np.testing.assert_allclose(to_numpy(layer.codebook), expected, atol=TOLERANCE)
    plain_ratio = to_numpy(layer.ema_sum) / ema_count[:, None]
    assert not np.allclose(to_numpy(layer.codebook), plain_ratio, atol=1e-3)


def test_commitment_loss_matches_numpy():
    beta = 0.7
    layer = make_quantizer(commitment_weight=beta)
    vectors = random_vectors(6, (25, CODE_DIM))
    codebook = numpy_state(layer)[0]
    codes = codebook[numpy_nearest(vectors, codebook)]

    loss = float(to_numpy(layer(vectors)["commitment_loss"]))

    np.testing.assert_allclose(loss, beta * np.mean((vectors - codes) ** 2), rtol=TOLERANCE)


def test_quantized_equals_codes_and_lookup():
    layer = make_quantizer()
    vectors = random_vectors(7, (3, 5, CODE_DIM))

    outputs = layer(vectors)
    codebook = numpy_state(layer)[0]
    expected = codebook[numpy_nearest(vectors.reshape(-1, CODE_DIM), codebook)]

    np.testing.assert_allclose(
        to_numpy(outputs["quantized"]).reshape(-1, CODE_DIM), expected, atol=TOLERANCE
    )
    np.testing.assert_allclose(
        to_numpy(layer.lookup(outputs["indices"])),
        to_numpy(outputs["quantized"]),
        atol=TOLERANCE,
    )


def test_straight_through_gradient_is_identity():
    layer = make_quantizer()
    vectors = random_vectors(8, (2, 6, CODE_DIM))
    weights = random_vectors(9, (2, 6, CODE_DIM))

    def weighted_sum(inputs):
        quantized = layer(inputs, training=False)["quantized"]
        return ops.sum(quantized * ops.convert_to_tensor(weights))

    gradient = gradient_wrt_inputs(weighted_sum, vectors)

    np.testing.assert_allclose(gradient, weights, atol=TOLERANCE)


def test_commitment_gradient_pulls_inputs_to_codes():
    beta = 0.5
    layer = make_quantizer(commitment_weight=beta)
    vectors = random_vectors(10, (12, CODE_DIM))
    codebook = numpy_state(layer)[0]
    codes = codebook[numpy_nearest(vectors, codebook)]

    gradient = gradient_wrt_inputs(
        lambda inputs: layer(inputs)["commitment_loss"], vectors
    )

    expected = beta * 2 * (vectors - codes) / vectors.size
    np.testing.assert_allclose(gradient, expected, atol=TOLERANCE)


def test_inference_leaves_state_unchanged():
    layer = make_quantizer(dead_code_steps=1, init_from_first_batch=True)
    before = [to_numpy(w) for w in layer.weights]

    layer(random_vectors(11, (20, CODE_DIM)), training=False)
    layer(random_vectors(12, (20, CODE_DIM)))

    for weight, old in zip(layer.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), old, err_msg=weight.name)


def test_training_moves_codebook():
    layer = make_quantizer()
    before = to_numpy(layer.codebook)

    layer(random_vectors(13, (20, CODE_DIM)), training=True)

    assert not np.allclose(to_numpy(layer.codebook), before)


def test_perplexity_and_live_code_fraction():
    layer = make_quantizer(live_code_window=2)
    # Inputs equal to codes 0, 0, 0 and 1 assign exactly those codes.
    codebook = separated_codebook()
    set_codebook(layer, codebook)
    vectors = codebook[[0, 0, 0, 1]]

    outputs = layer(vectors, training=True)
    probabilities = np.array([0.75, 0.25])
    expected_perplexity = np.exp(-(probabilities * np.log(probabilities)).sum())
    np.testing.assert_allclose(
        float(to_numpy(outputs["perplexity"])), expected_perplexity, rtol=TOLERANCE
    )
    # Every code counts as live until the window has passed since creation.
    assert float(to_numpy(outputs["live_code_fraction"])) == 1.0

    outputs = layer(vectors, training=True)
    assert float(to_numpy(outputs["live_code_fraction"])) == 2 / NUM_CODES
    np.testing.assert_array_equal(
        to_numpy(layer.steps_since_assigned), [0, 0] + [2] * (NUM_CODES - 2)
    )


def test_dead_code_restart_reseeds_and_resets():
    layer = make_quantizer(dead_code_steps=2, decay=0.5)
    codebook = separated_codebook()
    set_codebook(layer, codebook)
    vectors = codebook[[0, 0, 1]] + random_vectors(14, (3, CODE_DIM)) * 0.01

    layer(vectors, training=True)
    np.testing.assert_allclose(to_numpy(layer.codebook)[2:], codebook[2:], atol=1e-3)

    layer(vectors, training=True)
    new_codebook = to_numpy(layer.codebook)
    for code in range(2, NUM_CODES):
        distances = np.abs(vectors - new_codebook[code]).max(axis=1)
        assert distances.min() == 0.0, f"code {code} not re-seeded from the inputs"
    np.testing.assert_array_equal(to_numpy(layer.ema_count)[2:], 1.0)
    np.testing.assert_array_equal(to_numpy(layer.ema_sum)[2:], new_codebook[2:])
    np.testing.assert_array_equal(to_numpy(layer.steps_since_assigned), 0)
    # Assigned codes keep their EMA statistics: 0.5^2 + 0.5 * 2 * (1 + 0.5).
    np.testing.assert_allclose(to_numpy(layer.ema_count)[:2], [1.75, 1.0])


def test_init_from_first_batch():
    layer = make_quantizer(init_from_first_batch=True, decay=0.5)
    first = random_vectors(15, (3, CODE_DIM)) + 5.0

    layer(first, training=True)
    # After the EMA step each code is a mix of first-batch rows only.
    codebook = to_numpy(layer.codebook)
    assert np.all(codebook > 2.0)
    assert int(to_numpy(layer.initialized)) == 1

    state = numpy_state(layer)
    second = random_vectors(16, (6, CODE_DIM))
    expected, _ = numpy_ema_step(state, second, 0.5, layer.epsilon)
    layer(second, training=True)
    np.testing.assert_allclose(to_numpy(layer.codebook), expected[0], atol=TOLERANCE)


def test_init_from_first_batch_copies_input_rows():
    layer = make_quantizer(init_from_first_batch=True)
    first = random_vectors(17, (5, CODE_DIM))

    layer._initialize_from_batch(ops.convert_to_tensor(first))

    for row in to_numpy(layer.codebook):
        assert np.abs(first - row).max(axis=1).min() == 0.0
    np.testing.assert_array_equal(to_numpy(layer.ema_sum), to_numpy(layer.codebook))


def test_bfloat16_policy_keeps_float32_codebook():
    centers = separated_codebook(scale=4.0)
    vectors = centers[np.arange(24) % NUM_CODES] + random_vectors(18, (24, CODE_DIM)) * 0.1
    reference = make_quantizer()
    mixed = VectorQuantizer(
        num_codes=NUM_CODES, code_dim=CODE_DIM, dtype="mixed_bfloat16"
    )
    mixed.build((None, CODE_DIM))
    for layer in (reference, mixed):
        set_codebook(layer, centers)

    expected = reference(vectors, training=True)
    outputs = mixed(vectors, training=True)

    assert mixed.codebook.dtype == "float32"
    assert "bfloat16" in str(outputs["quantized"].dtype)
    assert "float32" in str(outputs["commitment_loss"].dtype)
    np.testing.assert_array_equal(
        to_numpy(outputs["indices"]), to_numpy(expected["indices"])
    )
    # The inputs are rounded to bfloat16 (8 bits of mantissa) before the
    # float32 EMA math, so the codebooks agree to about 4 / 2^8.
    np.testing.assert_allclose(
        to_numpy(mixed.codebook), to_numpy(reference.codebook), atol=2e-2
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_codes": 0}, "Received: num_codes=0"),
        ({"code_dim": 0}, "Received: code_dim=0"),
        ({"decay": 1.0}, "Received: decay=1.0"),
        ({"decay": -0.1}, "Received: decay=-0.1"),
        ({"commitment_weight": -0.5}, "Received: commitment_weight=-0.5"),
        ({"epsilon": 0.0}, "Received: epsilon=0.0"),
        ({"dead_code_steps": -1}, "Received: dead_code_steps=-1"),
        ({"live_code_window": 0}, "Received: live_code_window=0"),
        ({"chunk_size": 0}, "Received: chunk_size=0"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**kwargs)


def test_code_dim_mismatch_raises():
    layer = make_quantizer()
    with pytest.raises(ValueError, match=r"code_dim=4.*Received: inputs.shape=\(2, 5\)"):
        layer(random_vectors(19, (2, 5)))


def test_config_round_trip():
    layer = VectorQuantizer(
        num_codes=16,
        code_dim=3,
        decay=0.9,
        commitment_weight=0.1,
        epsilon=1e-4,
        dead_code_steps=5,
        init_from_first_batch=True,
        live_code_window=7,
        chunk_size=64,
        seed=3,
        name="quantizer",
    )

    restored = VectorQuantizer.from_config(layer.get_config())

    assert restored.get_config() == layer.get_config()


def test_saved_model_round_trip(tmp_path):
    inputs = keras.Input((3, 3, CODE_DIM))
    outputs = VectorQuantizer(num_codes=NUM_CODES, code_dim=CODE_DIM, name="vq")(inputs)
    model = keras.Model(inputs, outputs)
    vectors = random_vectors(20, (2, 3, 3, CODE_DIM))
    model.get_layer("vq")(vectors, training=True)
    path = tmp_path / "quantizer.keras"

    model.save(path)
    restored = keras.saving.load_model(path)

    for weight, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(to_numpy(loaded), to_numpy(weight))
    expected = model(vectors)
    actual = restored(vectors)
    for name in expected:
        np.testing.assert_array_equal(to_numpy(actual[name]), to_numpy(expected[name]))


def run_training_call_compiled(layer, vectors):
    """Run `layer(vectors, training=True)` jit-compiled and apply its updates."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # An unknown leading axis exercises the dynamic-size chunk loop.
        spec = tf.TensorSpec((None,) + vectors.shape[1:], "float32")
        function = tf.function(
            lambda inputs: layer(inputs, training=True),
            jit_compile=True,
            input_signature=[spec],
        )
        return function(vectors)
    if backend == "jax":
        import jax

        variables = layer.variables

        def stateless_call(values, inputs):
            mapping = list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                outputs = layer(inputs, training=True)
            return outputs, [scope.get_current_value(v) for v in variables]

        outputs, values = jax.jit(stateless_call)([v.value for v in variables], vectors)
        for variable, value in zip(variables, values):
            variable.assign(value)
        return outputs
    if backend == "torch":
        import torch

        # torch.compile would take minutes on CPU; the eager call uses the
        # same ops.
        with torch.no_grad():
            return layer(torch.tensor(vectors), training=True)
    raise NotImplementedError(f"no compiled call for backend {backend}")


def test_compiled_training_call_matches_numpy():
    decay, epsilon = 0.9, 1e-5
    layer = make_quantizer(decay=decay, epsilon=epsilon, chunk_size=16)
    vectors = random_vectors(21, (5, 10, CODE_DIM))
    (codebook, ema_count, _), _ = numpy_ema_step(
        numpy_state(layer), vectors.reshape(-1, CODE_DIM), decay, epsilon
    )
    expected_indices = numpy_nearest(vectors.reshape(-1, CODE_DIM), numpy_state(layer)[0])

    outputs = run_training_call_compiled(layer, vectors)

    np.testing.assert_array_equal(
        to_numpy(outputs["indices"]).reshape(-1), expected_indices
    )
    np.testing.assert_allclose(to_numpy(layer.ema_count), ema_count, rtol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(layer.codebook), codebook, atol=TOLERANCE)


def test_fit_updates_codebook_and_predict_does_not():
    inputs = keras.Input((CODE_DIM,))
    projected = keras.layers.Dense(CODE_DIM, name="projection")(inputs)
    quantizer = VectorQuantizer(num_codes=NUM_CODES, code_dim=CODE_DIM, name="vq")
    model = keras.Model(inputs, quantizer(projected)["quantized"])
    model.compile(optimizer="sgd", loss="mse")
    vectors = random_vectors(22, (32, CODE_DIM))
    before = to_numpy(quantizer.codebook)

    model.fit(vectors, vectors, batch_size=16, epochs=1, verbose=0)
    after_fit = to_numpy(quantizer.codebook)
    model.predict(vectors, batch_size=16, verbose=0)

    assert not np.allclose(after_fit, before)
    np.testing.assert_array_equal(to_numpy(quantizer.codebook), after_fit)
    # Two steps of 16 assigned vectors each, from a total count of NUM_CODES.
    decay = quantizer.decay
    expected_total = decay**2 * NUM_CODES + (1 - decay) * 16 * (decay + 1)
    np.testing.assert_allclose(
        to_numpy(quantizer.ema_count).sum(), expected_total, rtol=TOLERANCE
    )


class VectorQuantizerLayerTest(testing.TestCase):
    def test_keras_layer_checks(self):
        # Keras's own layer checks: symbolic and eager shapes, weight and seed
        # generator counts, config and `.keras` round trips and, on TensorFlow
        # and JAX, a mixed-precision call. Its training check fits an `mse`
        # loss on every output, which does not apply to integer indices.
        self.run_layer_test(
            VectorQuantizer,
            init_kwargs={
                "num_codes": NUM_CODES,
                "code_dim": CODE_DIM,
                "dead_code_steps": 2,
                "init_from_first_batch": True,
                "seed": 1,
            },
            input_shape=(2, 3, CODE_DIM),
            expected_output_shape={
                "quantized": (2, 3, CODE_DIM),
                "indices": (2, 3),
                "commitment_loss": (),
                "perplexity": (),
                "live_code_fraction": (),
            },
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=5,
            expected_num_seed_generators=1,
            run_training_check=False,
        )
