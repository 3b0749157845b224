"""Default pretraining optimizer.

The method's publication does not give its optimization settings, so the
defaults follow the authors' earlier CoBooM code. That code uses LARS with a
base learning rate of 0.08 scaled by batch size / 256 and weight decay 1.5e-6
(biases and normalization weights excluded). Its schedule warms up for 20 of
300 epochs, then decays on a cosine.
"""

from keras_dissect.optimizers.lars import LARS
from keras_dissect.optimizers.schedules import WarmupCosine

BASE_LEARNING_RATE = 0.08
REFERENCE_BATCH_SIZE = 256
WEIGHT_DECAY = 1.5e-6
WARMUP_EPOCHS = 20
EPOCHS = 300


def scaled_learning_rate(batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """Return `base_learning_rate * batch_size / 256` (the linear scaling rule)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: batch_size={batch_size}"
        )
    return base_learning_rate * batch_size / REFERENCE_BATCH_SIZE


def pretraining_optimizer(
    batch_size,
    steps_per_epoch,
    epochs=EPOCHS,
    warmup_epochs=WARMUP_EPOCHS,
    base_learning_rate=BASE_LEARNING_RATE,
    weight_decay=WEIGHT_DECAY,
):
    """Build LARS with a warm-up + cosine schedule for a pretraining run.

    Args:
        batch_size: Images per step; scales the learning rate linearly.
        steps_per_epoch: Optimizer steps per epoch, >= 1.
        epochs: Epochs of the run.
        warmup_epochs: Epochs of linear warm-up, fewer than `epochs` (0 for
            none).
        base_learning_rate: Learning rate for a batch of 256.
        weight_decay: LARS weight decay.

    Returns:
        A `LARS` optimizer whose learning rate is a `WarmupCosine` schedule.
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(
            "`steps_per_epoch` must be a positive integer. "
            f"Received: steps_per_epoch={steps_per_epoch}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs < epochs:
        raise ValueError(
            f"`warmup_epochs` must be an integer in [0, epochs={epochs}). "
            f"Received: warmup_epochs={warmup_epochs}"
        )
    schedule = WarmupCosine(
        peak_learning_rate=scaled_learning_rate(batch_size, base_learning_rate),
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_epochs * steps_per_epoch,
    )
    return LARS(learning_rate=schedule, weight_decay=weight_decay)
