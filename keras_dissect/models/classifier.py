"""Multi-label classifier on a pretrained encoder: linear probe or fine-tune."""

import keras
from keras import layers
from keras import ops

LINEAR_PROBE = "linear_probe"
FINETUNE = "finetune"
MODES = (LINEAR_PROBE, FINETUNE)

IGNORE_LABEL = -1.0

# Optimizer settings of the CoBooM reference code, the default of the DiSSECT
# evaluation: AdamW with these learning rates for the probe and fine-tuning.
LINEAR_PROBE_LEARNING_RATE = 3e-3
FINETUNE_LEARNING_RATE = 1e-4
DEFAULT_WEIGHT_DECAY = 1e-4

LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"


@keras.saving.register_keras_serializable(package="keras_dissect")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy over multi-label targets that skips ignored entries.

    Entries of `y_true` equal to -1 (an uncertain CheXpert label under the
    U-ignore policy, or a finding a dataset does not annotate) add nothing to
    the loss and get no gradient. The per-example loss is the sum over valid
    entries divided by the number of classes K, so each valid entry carries
    the same weight however many of its neighbours are ignored.

    Args:
        from_logits: whether `y_pred` contains logits rather than probabilities.
        name: loss name.
        reduction: Keras reduction over the batch.

    Call arguments:
        y_true: `(B, K)` labels in {1, 0, -1}.
        y_pred: `(B, K)` probabilities (or logits with `from_logits=True`).

    Returns:
        Per-example losses `(B,)` before reduction.
    """

    def __init__(
        self,
        from_logits=False,
        name="masked_binary_crossentropy",
        reduction="sum_over_batch_size",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        valid = ops.cast(ops.not_equal(y_true, IGNORE_LABEL), y_pred.dtype)
        targets = y_true * valid

        # Element-wise cross-entropy: add a trailing axis so Keras's
        # reduction over the last axis averages a single element.
        elementwise = keras.losses.binary_crossentropy(
            targets[..., None], y_pred[..., None], from_logits=self.from_logits
        )
        num_classes = ops.cast(ops.shape(y_true)[-1], y_pred.dtype)
        return ops.sum(elementwise * valid, axis=-1) / num_classes

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits})
        return config


def _check_encoder(encoder):
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`encoder` must be a keras.Model mapping images to embeddings. "
            f"Received: encoder={encoder!r}"
        )
    outputs = encoder.outputs
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(output.shape) for output in outputs]
        raise ValueError(
            "`encoder` must have one output of shape (B, D). Received: "
            f"encoder with output shapes {shapes}; use the model's "
            "`extract_encoder()` rather than the multi-scale backbone"
        )


def build_classifier(
    encoder,
    num_classes,
    mode=LINEAR_PROBE,
    dropout_rate=0.0,
    name="classifier",
):
    """Build a multi-label classifier: encoder, linear layer, sigmoid.

    In `"linear_probe"` mode the encoder is frozen: its layers are set
    non-trainable, which in Keras also runs BatchNormalization in inference
    mode, and it is called with `training=False` so its statistics never
    move. In `"finetune"` mode every weight trains.

    Args:
        encoder: `keras.Model` mapping images `(B, H, W, C)` in [0, 1] to
            embeddings `(B, D)`.
        num_classes: number of findings K.
        mode: `"linear_probe"` or `"finetune"`.
        dropout_rate: dropout before the linear layer, in [0, 1).
        name: model name.

    Returns:
        A functional `keras.Model` mapping images to probabilities `(B, K)`.
        Its layers `"logits"` and `"probabilities"` give the pre- and
        post-sigmoid scores (Grad-CAM uses the logits).
    """
    _check_encoder(encoder)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"`num_classes` must be a positive integer. Received: num_classes={num_classes}"
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}"
        )

    images = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
    if mode == LINEAR_PROBE:
        encoder.trainable = False
        embedding = encoder(images, training=False)
    else:
        encoder.trainable = True
        embedding = encoder(images)

    if dropout_rate:
        embedding = layers.Dropout(dropout_rate, name="dropout")(embedding)
    # The head computes in float32 so that mixed-precision encoders still
    # give well-calibrated probabilities.
    logits = layers.Dense(num_classes, name=LOGITS_LAYER, dtype="float32")(embedding)
    probabilities = layers.Activation(
        "sigmoid", name=PROBABILITIES_LAYER, dtype="float32"
    )(logits)
    return keras.Model(images, probabilities, name=name)


def compile_classifier(
    classifier,
    mode=LINEAR_PROBE,
    learning_rate=None,
    weight_decay=DEFAULT_WEIGHT_DECAY,
):
    """Compile `classifier` with AdamW and the masked cross-entropy.

    Args:
        classifier: a model from `build_classifier`.
        mode: `"linear_probe"` or `"finetune"`; picks the default learning rate.
        learning_rate: AdamW learning rate; defaults to 3e-3 for the probe and
            1e-4 for fine-tuning.
        weight_decay: AdamW decoupled weight decay.

    Returns:
        The compiled classifier.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if learning_rate is None:
        learning_rate = (
            LINEAR_PROBE_LEARNING_RATE if mode == LINEAR_PROBE else FINETUNE_LEARNING_RATE
        )
    if learning_rate <= 0:
        raise ValueError(
            f"`learning_rate` must be positive. Received: learning_rate={learning_rate}"
        )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=weight_decay
        ),
        loss=MaskedBinaryCrossentropy(),
    )
    return classifier
