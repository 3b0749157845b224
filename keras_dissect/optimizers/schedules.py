"""Learning-rate schedule: linear warm-up, then cosine decay."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dissect")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Rise linearly to a peak learning rate, then follow a half cosine down.

    With `s` the step (the optimizer's iteration count, from 0):

    - `s < warmup_steps`: `initial + (peak - initial) * s / warmup_steps`;
    - `warmup_steps <= s <= total_steps`: `final + (peak - final) / 2 *
      (1 + cos(pi * (s - warmup_steps) / (total_steps - warmup_steps)))`;
    - `s > total_steps`: `final`.

    Args:
        peak_learning_rate: Learning rate at the end of the warm-up, > 0.
        total_steps: Steps of the whole run (warm-up included), >= 1.
        warmup_steps: Steps of the linear warm-up, in [0, total_steps).
        initial_learning_rate: Learning rate at step 0, >= 0.
        final_learning_rate: Learning rate reached at `total_steps`, >= 0.
        name: Schedule name.
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        initial_learning_rate=0.0,
        final_learning_rate=0.0,
        name="warmup_cosine",
    ):
        if not peak_learning_rate > 0:
            raise ValueError(
                "`peak_learning_rate` must be positive. "
                f"Received: peak_learning_rate={peak_learning_rate}"
            )
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(
                "`total_steps` must be an integer >= 1. "
                f"Received: total_steps={total_steps}"
            )
        if (
            isinstance(warmup_steps, bool)
            or not isinstance(warmup_steps, int)
            or not 0 <= warmup_steps < total_steps
        ):
            raise ValueError(
                f"`warmup_steps` must be an integer in [0, total_steps={total_steps}). "
                f"Received: warmup_steps={warmup_steps}"
            )
        if not initial_learning_rate >= 0:
            raise ValueError(
                "`initial_learning_rate` must be >= 0. "
                f"Received: initial_learning_rate={initial_learning_rate}"
            )
        if not final_learning_rate >= 0:
            raise ValueError(
                "`final_learning_rate` must be >= 0. "
                f"Received: final_learning_rate={final_learning_rate}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.initial_learning_rate = float(initial_learning_rate)
        self.final_learning_rate = float(final_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")

        # `maximum(..., 1)` keeps the division defined when there is no
        # warm-up; that branch is then never selected.
        warmup_fraction = step / max(self.warmup_steps, 1)
        warmup_rate = self.initial_learning_rate + (
            self.peak_learning_rate - self.initial_learning_rate
        ) * warmup_fraction

        decay_fraction = ops.clip(
            (step - self.warmup_steps) / (self.total_steps - self.warmup_steps),
            0.0,
            1.0,
        )
        cosine = 0.5 * (1.0 + ops.cos(math.pi * decay_fraction))
        decay_rate = self.final_learning_rate + (
            self.peak_learning_rate - self.final_learning_rate
        ) * cosine

        return ops.where(step < self.warmup_steps, warmup_rate, decay_rate)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "final_learning_rate": self.final_learning_rate,
            "name": self.name,
        }
