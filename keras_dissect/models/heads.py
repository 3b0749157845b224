"""MLP heads of the online and target towers: projector and predictor."""

import keras
from keras import layers

# Dimensions of the method's heads: projector 512 -> 2048 -> 128 and
# predictor 128 -> 2048 -> 128.
DEFAULT_HIDDEN_DIM = 2048
DEFAULT_PROJECTION_DIM = 128
# PyTorch's BatchNorm1d defaults, as in the backbone.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def _check_dim(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="keras_dissect")
class MLPHead(keras.Model):
    """Two-layer MLP with BatchNormalization and ReLU after the hidden layer.

    `Dense(hidden_dim, no bias) -> BatchNormalization -> ReLU ->
    Dense(output_dim)`. The hidden Dense has no bias because the
    BatchNormalization that follows removes it.

    Args:
        input_dim: Size of the input vectors.
        hidden_dim: Size of the hidden layer.
        output_dim: Size of the output vectors.
        name: Model name.
        **kwargs: Passed to `keras.Model` (for example `dtype`).

    Call arguments:
        inputs: Tensor of shape `(B, input_dim)`.
        training: Whether BatchNormalization uses batch statistics.

    Returns:
        Tensor of shape `(B, output_dim)`.
    """

    def __init__(self, input_dim, hidden_dim, output_dim, name="mlp_head", **kwargs):
        _check_dim("input_dim", input_dim)
        _check_dim("hidden_dim", hidden_dim)
        _check_dim("output_dim", output_dim)

        inputs = keras.Input(shape=(input_dim,), name="features")
        x = layers.Dense(hidden_dim, use_bias=False, name="hidden")(inputs)
        x = layers.BatchNormalization(
            momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name="hidden_bn"
        )(x)
        x = layers.ReLU(name="hidden_relu")(x)
        outputs = layers.Dense(output_dim, name="output")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim

    def get_config(self):
        return {
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def projector(input_dim=512, hidden_dim=DEFAULT_HIDDEN_DIM, output_dim=DEFAULT_PROJECTION_DIM, name="projector"):
    """Build the projector (512 -> 2048 -> 128 by default)."""
    return MLPHead(input_dim, hidden_dim, output_dim, name=name)


def predictor(input_dim=DEFAULT_PROJECTION_DIM, hidden_dim=DEFAULT_HIDDEN_DIM, output_dim=DEFAULT_PROJECTION_DIM, name="predictor"):
    """Build the predictor of the online tower (128 -> 2048 -> 128 by default)."""
    return MLPHead(input_dim, hidden_dim, output_dim, name=name)
