"""ResNet-18 backbone with multi-scale outputs for chest X-rays.

Written with `keras.layers` rather than taken from a model library: keras-hub
0.32 pulls the full `tensorflow` wheel beside `tensorflow-cpu`, and keras-cv 0.9
pulls the abandoned keras-core 0.1.7, whose layers fail inside a jit-compiled
JAX model.
"""

import keras
from keras import layers

# Intensity statistics used to standardize [0, 1] inputs, rounded from those
# of NIH ChestX-ray14 thumbnails (mean 0.52, standard deviation 0.25 over 300
# images). Every channel uses the same values because the 3-channel input is
# the gray image repeated.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25

# Basic blocks per stage for ResNet-18, and the channel multiplier of each
# stage relative to `width`.
RESNET18_BLOCKS = (2, 2, 2, 2)
STAGE_WIDTH_MULTIPLIERS = (1, 2, 4, 8)

# PyTorch's BatchNorm defaults (running-average momentum 0.1, epsilon 1e-5),
# so that the network matches the usual ResNet-18 reference.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

SUPPORTED_CHANNELS = (1, 3)

# Axis permutations from (B, H, W, C) to (B, C, H, W) and back.
TO_CHANNELS_FIRST = (3, 1, 2)
TO_CHANNELS_LAST = (2, 3, 1)


class _Layout:
    """The layout the convolutions run in, and the permutes to and from it.

    Keras's torch convolutions copy each channels-last input to a
    channels-first array and then to channels-last memory again. On torch the
    layers therefore run channels-first on permuted views, so PyTorch uses its
    channels-last kernels without copies. TF and JAX stay channels-last. The
    math and the weights are the same in both layouts.
    """

    def __init__(self):
        self.channels_first = keras.backend.backend() == "torch"
        self.data_format = "channels_first" if self.channels_first else "channels_last"
        self.channel_axis = 1 if self.channels_first else -1

    def to_internal(self, x, name):
        if not self.channels_first:
            return x
        return layers.Permute(TO_CHANNELS_FIRST, name=name)(x)

    def to_channels_last(self, x, name):
        if not self.channels_first:
            return x
        return layers.Permute(TO_CHANNELS_LAST, name=name)(x)


def _conv_initializer():
    # He initialization over the output fan, as in the reference ResNet.
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _batch_norm(name, layout):
    return layers.BatchNormalization(
        axis=layout.channel_axis,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        name=name,
    )


def _basic_block(x, filters, stride, name, layout):
    """Apply one basic residual block (two 3x3 convolutions) to channels-last `x`.

    The block's output layer `{name}_out` is channels-last on every backend,
    so that a model can be cut there (Grad-CAM does).
    """
    in_channels = x.shape[-1]
    x = layout.to_internal(x, f"{name}_in")
    shortcut = x
    if stride != 1 or in_channels != filters:
        shortcut = layers.Conv2D(
            filters,
            1,
            strides=stride,
            use_bias=False,
            kernel_initializer=_conv_initializer(),
            data_format=layout.data_format,
            name=f"{name}_shortcut_conv",
        )(x)
        shortcut = _batch_norm(f"{name}_shortcut_bn", layout)(shortcut)

    x = layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        data_format=layout.data_format,
        name=f"{name}_conv1",
    )(x)
    x = _batch_norm(f"{name}_bn1", layout)(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        data_format=layout.data_format,
        name=f"{name}_conv2",
    )(x)
    x = _batch_norm(f"{name}_bn2", layout)(x)

    x = layers.Add(name=f"{name}_add")([x, shortcut])
    if not layout.channels_first:
        return layers.ReLU(name=f"{name}_out")(x)
    x = layers.ReLU(name=f"{name}_relu2")(x)
    return layout.to_channels_last(x, f"{name}_out")


@keras.saving.register_keras_serializable(package="keras_dissect")
class ResNet18Backbone(keras.Model):
    """ResNet-18 (basic blocks, [2, 2, 2, 2]) returning its multi-scale features.

    The input is a float32 image in [0, 1]; the model standardizes it with
    `PIXEL_MEAN` and `PIXEL_STD`, so a saved model takes raw [0, 1] images.

    Args:
        input_shape: Shape `(H, W, C)` of one image without the batch axis. `H`
            and `W` may be `None`; `C` is 1 (gray, the default) or 3 (gray
            repeated, for code that expects RGB).
        width: Channels of the first stage; the stages have `width`,
            `2 * width`, `4 * width` and `8 * width` channels. 64 is the
            standard ResNet-18; small values such as 8 make tests fast.
        name: Model name.
        **kwargs: Passed to `keras.Model` (for example `dtype`).

    Call arguments:
        inputs: Images of shape `(B, H, W, C)` with values in [0, 1].
        training: Whether BatchNormalization uses batch statistics.

    Returns:
        A dict with `"stem"` `(B, H/2, W/2, width)` (before the max pool),
        `"stage1"` `(B, H/4, W/4, width)`, `"stage2"` `(B, H/8, W/8, 2*width)`,
        `"stage3"` `(B, H/16, W/16, 4*width)`, `"stage4"`
        `(B, H/32, W/32, 8*width)` and `"embedding"` `(B, 8*width)`, the global
        average pool of stage 4. Strides round up for sizes that are not
        multiples of 32.
    """

    def __init__(self, input_shape=(None, None, 1), width=64, name="resnet18", **kwargs):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                "`input_shape` must be (H, W, C) without the batch axis. "
                f"Received: input_shape={input_shape}"
            )
        if input_shape[-1] not in SUPPORTED_CHANNELS:
            raise ValueError(
                "The backbone takes 1-channel (gray) or 3-channel images, so "
                "the last entry of `input_shape` must be 1 or 3. "
                f"Received: input_shape={input_shape}"
            )
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"`width` must be a positive integer. Received: width={width}"
            )

        images = keras.Input(shape=input_shape, name="images")
        x = layers.Rescaling(
            scale=1.0 / PIXEL_STD,
            offset=-PIXEL_MEAN / PIXEL_STD,
            name="standardize",
        )(images)

        layout = _Layout()
        x = layout.to_internal(x, "stem_in")
        x = layers.Conv2D(
            width,
            7,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_conv_initializer(),
            data_format=layout.data_format,
            name="stem_conv",
        )(x)
        x = _batch_norm("stem_bn", layout)(x)
        stem = layers.ReLU(name="stem_relu")(x)
        x = layers.MaxPooling2D(
            3,
            strides=2,
            padding="same",
            data_format=layout.data_format,
            name="stem_pool",
        )(stem)
        x = layout.to_channels_last(x, "stem_pool_out")

        outputs = {"stem": layout.to_channels_last(stem, "stem_out")}
        for stage_index, (blocks, multiplier) in enumerate(
            zip(RESNET18_BLOCKS, STAGE_WIDTH_MULTIPLIERS), start=1
        ):
            # Stage 1 keeps the resolution of the max pool; the later stages
            # halve it in their first block.
            first_stride = 1 if stage_index == 1 else 2
            for block_index in range(1, blocks + 1):
                x = _basic_block(
                    x,
                    width * multiplier,
                    first_stride if block_index == 1 else 1,
                    name=f"stage{stage_index}_block{block_index}",
                    layout=layout,
                )
            outputs[f"stage{stage_index}"] = x

        outputs["embedding"] = layers.GlobalAveragePooling2D(name="embedding")(x)
        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)

        self.width = width
        self.image_shape = input_shape
        self.embedding_dim = width * STAGE_WIDTH_MULTIPLIERS[-1]

    @property
    def channels(self):
        """Number of input channels (1 or 3)."""
        return self.image_shape[-1]

    def get_config(self):
        return {
            "input_shape": self.image_shape,
            "width": self.width,
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


def resnet18_backbone(input_shape=(None, None, 1), width=64, name="resnet18"):
    """Build a `ResNet18Backbone`; see that class for the arguments and outputs."""
    return ResNet18Backbone(input_shape=input_shape, width=width, name=name)
