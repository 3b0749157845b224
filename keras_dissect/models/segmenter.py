"""U-Net-style segmenter on the multi-scale backbone, with a Dice + BCE loss."""

import keras
from keras import layers
from keras import ops

# Skip connections from deep to shallow; the decoder starts at "stage4"
# (stride 32) and doubles the resolution at each step.
DECODER_SKIPS = ("stage3", "stage2", "stage1", "stem")
REQUIRED_OUTPUTS = ("stage4",) + DECODER_SKIPS

# Input sizes must be multiples of the backbone's total stride so that every
# upsampled map lines up with its skip connection.
TOTAL_STRIDE = 32

# Additive smoothing of the soft Dice ratio: keeps it defined (and equal to 1)
# on an empty mask predicted empty.
DICE_SMOOTHING = 1.0

MASK_LAYER = "mask"


@keras.saving.register_keras_serializable(package="keras_dissect")
class DiceBCELoss(keras.losses.Loss):
    """Soft Dice loss plus binary cross-entropy for binary masks.

    Args:
        dice_weight: weight of `1 - soft Dice` (per image).
        bce_weight: weight of the pixel-averaged binary cross-entropy.
        smoothing: additive smoothing of the Dice ratio.
        name: loss name.
        reduction: Keras reduction over the batch.

    Call arguments:
        y_true: `(B, H, W, 1)` masks in {0, 1}.
        y_pred: `(B, H, W, 1)` probabilities.

    Returns:
        Per-image losses `(B,)` before reduction.
    """

    def __init__(
        self,
        dice_weight=1.0,
        bce_weight=1.0,
        smoothing=DICE_SMOOTHING,
        name="dice_bce",
        reduction="sum_over_batch_size",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        for argument, value in (("dice_weight", dice_weight), ("bce_weight", bce_weight)):
            if value < 0:
                raise ValueError(
                    f"`{argument}` must be non-negative. Received: {argument}={value}"
                )
        if smoothing <= 0:
            raise ValueError(f"`smoothing` must be positive. Received: smoothing={smoothing}")
        self.dice_weight = dice_weight
        self.bce_weight = bce_weight
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        batch = ops.shape(y_pred)[0]
        truth = ops.reshape(y_true, (batch, -1))
        prediction = ops.reshape(y_pred, (batch, -1))

        intersection = ops.sum(truth * prediction, axis=-1)
        total = ops.sum(truth, axis=-1) + ops.sum(prediction, axis=-1)
        dice = (2.0 * intersection + self.smoothing) / (total + self.smoothing)

        bce = keras.losses.binary_crossentropy(truth[..., None], prediction[..., None])
        bce = ops.mean(bce, axis=-1)
        return self.dice_weight * (1.0 - dice) + self.bce_weight * bce

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dice_weight": self.dice_weight,
                "bce_weight": self.bce_weight,
                "smoothing": self.smoothing,
            }
        )
        return config


def _conv_block(x, filters, name):
    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def build_segmenter(backbone, freeze_backbone=False, input_shape=None, name="segmenter"):
    """Build a U-Net decoder on a multi-scale backbone.

    The decoder upsamples `"stage4"` (stride 32) by 2 and merges it with
    `"stage3"`, `"stage2"`, `"stage1"` and `"stem"` in turn. Each merge is a
    concatenation followed by two 3x3 convolutions with as many channels as
    the skip. A last upsampling reaches full resolution, where a 1x1
    convolution predicts one sigmoid channel.

    Args:
        backbone: `keras.Model` mapping images `(B, H, W, C)` to a dict with
            at least `"stem"`, `"stage1"`, ..., `"stage4"` (see
            `ResNet18Backbone`). H and W must be multiples of 32.
        freeze_backbone: train the decoder only, with the backbone's
            BatchNormalization in inference mode.
        input_shape: `(H, W, C)` of the segmenter's input; defaults to the
            backbone's. Give fixed H and W when the backbone accepts any
            size, because bilinear `UpSampling2D` fails on the TensorFlow
            backend when the spatial size is unknown while tracing.
        name: model name.

    Returns:
        A functional `keras.Model` mapping images to mask probabilities
        `(B, H, W, 1)`.
    """
    if not isinstance(backbone, keras.Model) or not isinstance(backbone.output, dict):
        raise ValueError(
            "`backbone` must be a keras.Model with dict outputs (for example "
            "`ResNet18Backbone` or `DiSSECT.extract_backbone()`). "
            f"Received: backbone={backbone!r}"
        )
    missing = [key for key in REQUIRED_OUTPUTS if key not in backbone.output]
    if missing:
        raise ValueError(
            f"`backbone` must output {REQUIRED_OUTPUTS}. Received: backbone "
            f"with outputs {sorted(backbone.output)}, missing {missing}"
        )

    if input_shape is None:
        input_shape = backbone.inputs[0].shape[1:]
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (H, W, C). Received: input_shape={input_shape}"
        )
    for size in input_shape[:2]:
        if size is not None and size % TOTAL_STRIDE:
            raise ValueError(
                f"Image height and width must be multiples of {TOTAL_STRIDE} "
                f"for the U-Net skips to align. Received: input_shape={tuple(input_shape)}"
            )

    images = keras.Input(shape=input_shape, name="images")
    if freeze_backbone:
        backbone.trainable = False
        features = backbone(images, training=False)
    else:
        backbone.trainable = True
        features = backbone(images)

    x = features["stage4"]
    for skip_name in DECODER_SKIPS:
        skip = features[skip_name]
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up_{skip_name}")(x)
        x = layers.Concatenate(name=f"merge_{skip_name}")([x, skip])
        x = _conv_block(x, skip.shape[-1], name=f"decoder_{skip_name}")

    x = layers.UpSampling2D(2, interpolation="bilinear", name="up_full")(x)
    x = _conv_block(x, max(x.shape[-1] // 2, 1), name="decoder_full")
    masks = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name=MASK_LAYER)(x)
    return keras.Model(images, masks, name=name)
