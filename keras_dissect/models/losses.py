"""Alignment loss of the online prediction against a target."""

from keras import ops

# Guards the L2 normalization of an all-zero vector.
NORMALIZATION_EPSILON = 1e-12


def normalized_squared_error(prediction, target):
    """Return `2 - 2 * cos(prediction, target)` for each example.

    This is the squared Euclidean distance between the L2-normalized vectors,
    the alignment loss of BYOL. It lies in [0, 4] and is computed in float32.

    Args:
        prediction: Tensor of shape `(B, D)`.
        target: Tensor of shape `(B, D)`.

    Returns:
        Tensor of shape `(B,)`.
    """
    prediction = ops.cast(prediction, "float32")
    target = ops.cast(target, "float32")
    prediction = ops.normalize(prediction, axis=-1, epsilon=NORMALIZATION_EPSILON)
    target = ops.normalize(target, axis=-1, epsilon=NORMALIZATION_EPSILON)
    return 2.0 - 2.0 * ops.sum(prediction * target, axis=-1)
