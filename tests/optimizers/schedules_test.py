import math

import numpy as np
import pytest

import keras
from keras import ops
from keras_dissect.optimizers import WarmupCosine


def expected_rate(step, peak, total, warmup, initial, final):
    if step < warmup:
        return initial + (peak - initial) * step / warmup
    fraction = min((step - warmup) / (total - warmup), 1.0)
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * fraction))


@pytest.mark.parametrize("warmup", [0, 10])
def test_warmup_cosine_values(warmup):
    schedule = WarmupCosine(
        0.4, total_steps=100, warmup_steps=warmup, initial_learning_rate=0.01,
        final_learning_rate=0.001,
    )
    for step in [0, 1, 5, 9, 10, 11, 50, 99, 100, 150]:
        value = float(ops.convert_to_numpy(schedule(step)))
        # Float32 evaluation of values below 1.
        assert value == pytest.approx(
            expected_rate(step, 0.4, 100, warmup, 0.01, 0.001), rel=1e-5, abs=1e-7
        )


def test_warmup_cosine_landmarks():
    schedule = WarmupCosine(1.0, total_steps=20, warmup_steps=4)
    values = [float(ops.convert_to_numpy(schedule(step))) for step in range(25)]
    assert values[0] == 0.0
    assert values[2] == pytest.approx(0.5)
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.5, abs=1e-6)
    assert values[20] == pytest.approx(0.0, abs=1e-6)
    assert values[24] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(values[4:21]) <= 0)


def test_warmup_cosine_serialization_round_trip():
    schedule = WarmupCosine(0.3, total_steps=50, warmup_steps=5, final_learning_rate=0.01)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, WarmupCosine)
    assert restored.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"peak_learning_rate": 0.0, "total_steps": 10}, "peak_learning_rate=0.0"),
        ({"peak_learning_rate": 0.1, "total_steps": 0}, "total_steps=0"),
        ({"peak_learning_rate": 0.1, "total_steps": 10, "warmup_steps": 10}, "warmup_steps=10"),
        ({"peak_learning_rate": 0.1, "total_steps": 10, "final_learning_rate": -1.0}, "final_learning_rate=-1.0"),
    ],
)
def test_warmup_cosine_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(**kwargs)
