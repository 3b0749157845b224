import numpy as np
import pytest

import keras
from keras import ops
from keras_dissect import optimizers

MOMENTUM = 0.9
TRUST = 0.01
WEIGHT_DECAY = 0.1
LEARNING_RATE = 0.5
STEPS = 3


def reference_lars(weights, gradients, adapted):
    """Apply STEPS LARS updates in NumPy (float64) and return the weights."""
    weights = weights.astype("float64")
    velocity = np.zeros_like(weights)
    for gradient in gradients:
        gradient = gradient.astype("float64")
        if adapted:
            gradient = gradient + WEIGHT_DECAY * weights
            trust = TRUST * np.linalg.norm(weights) / np.linalg.norm(gradient)
            gradient = gradient * trust
        velocity = MOMENTUM * velocity + gradient
        weights = weights - LEARNING_RATE * velocity
    return weights


def test_lars_matches_numpy_reference():
    rng = np.random.default_rng(0)
    initial = {
        "kernel": rng.normal(size=(4, 3)).astype("float32"),
        "bias": rng.normal(size=(3,)).astype("float32"),
        "skipped_kernel": rng.normal(size=(2, 2)).astype("float32"),
    }
    variables = {
        name: keras.Variable(value, name=name) for name, value in initial.items()
    }
    gradients = {
        name: [rng.normal(size=value.shape).astype("float32") for _ in range(STEPS)]
        for name, value in initial.items()
    }

    optimizer = optimizers.LARS(
        learning_rate=LEARNING_RATE,
        momentum=MOMENTUM,
        trust_coefficient=TRUST,
        weight_decay=WEIGHT_DECAY,
    )
    optimizer.exclude_from_weight_decay(var_names=["skipped"])
    ordered = list(variables.values())
    for step in range(STEPS):
        optimizer.apply([gradients[name][step] for name in variables], ordered)

    assert optimizer.is_adapted(variables["kernel"])
    assert not optimizer.is_adapted(variables["bias"])
    assert not optimizer.is_adapted(variables["skipped_kernel"])

    # Float32 updates against a float64 reference over 3 steps: errors stay
    # near float32 rounding of values of order 1.
    for name, adapted in [("kernel", True), ("bias", False), ("skipped_kernel", False)]:
        expected = reference_lars(initial[name], gradients[name], adapted)
        np.testing.assert_allclose(
            ops.convert_to_numpy(variables[name]), expected, rtol=1e-5, atol=1e-6
        )


def test_lars_rank_one_adapted_when_asked():
    optimizer = optimizers.LARS(exclude_bias_and_norm=False)
    bias = keras.Variable(np.ones((3,), "float32"), name="bias")
    optimizer.build([bias])
    assert optimizer.is_adapted(bias)


def test_lars_zero_weights_step_unscaled():
    # A zero kernel has no norm to trust, so the step is the plain momentum step.
    variable = keras.Variable(np.zeros((2, 2), "float32"), name="kernel")
    optimizer = optimizers.LARS(learning_rate=1.0, weight_decay=0.0)
    optimizer.apply([np.ones((2, 2), "float32")], [variable])
    np.testing.assert_allclose(ops.convert_to_numpy(variable), -np.ones((2, 2)))


def test_lars_serialization_round_trip():
    schedule = optimizers.WarmupCosine(0.1, total_steps=100, warmup_steps=10)
    optimizer = optimizers.LARS(
        learning_rate=schedule, momentum=0.8, trust_coefficient=0.02, weight_decay=1e-4
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimizers.LARS)
    # `learning_rate` returns the current value; the schedule itself is kept
    # in `_learning_rate`.
    assert isinstance(restored._learning_rate, optimizers.WarmupCosine)
    config = restored.get_config()
    assert config["momentum"] == 0.8
    assert config["trust_coefficient"] == 0.02
    assert config["weight_decay"] == 1e-4
    assert config["exclude_bias_and_norm"] is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"momentum": -0.1}, "momentum=-0.1"),
        ({"trust_coefficient": 0.0}, "trust_coefficient=0.0"),
        ({"weight_decay": -1e-6}, "weight_decay=-1e-06"),
    ],
)
def test_lars_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.LARS(**kwargs)


def test_pretraining_optimizer_defaults():
    optimizer = optimizers.pretraining_optimizer(batch_size=64, steps_per_epoch=10)
    schedule = optimizer._learning_rate
    assert isinstance(optimizer, optimizers.LARS)
    assert schedule.peak_learning_rate == pytest.approx(0.08 * 64 / 256)
    assert schedule.total_steps == 300 * 10
    assert schedule.warmup_steps == 20 * 10
    assert optimizer.weight_decay == pytest.approx(1.5e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0, "steps_per_epoch": 1}, "batch_size=0"),
        ({"batch_size": 8, "steps_per_epoch": 0}, "steps_per_epoch=0"),
        ({"batch_size": 8, "steps_per_epoch": 1, "epochs": 5, "warmup_epochs": 5}, "warmup_epochs=5"),
    ],
)
def test_pretraining_optimizer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.pretraining_optimizer(**kwargs)
