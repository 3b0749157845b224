"""Image augmentation and evaluation preprocessing for tf.data pipelines.

Everything here runs inside `tf.data` with TensorFlow ops or `keras.layers`
preprocessing layers, which Keras runs on TensorFlow inside `tf.data` whatever
the Keras backend, so the pipelines feed models on every backend.

Per-example geometry (random resized crop) uses stateless TensorFlow ops with
seeds drawn from `tf.data.Dataset.random`, so it is reproducible and varies
between epochs. The per-batch photometric and small geometric changes use
seeded `keras.layers`, which are reproducible as long as their batches pass
through a sequential `map`.
"""

import math

import keras
import tensorflow as tf

# Random resized crop: share of the image area kept and range of aspect
# ratios. The area range is narrower than ImageNet's (0.08, 1) because a
# chest radiograph crop of under a third of the area rarely shows enough
# anatomy to match the other view.
CROP_AREA_RANGE = (0.3, 1.0)
CROP_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
CROP_MAX_ATTEMPTS = 10
# Small rotation, in degrees either way.
MAX_ROTATION_DEGREES = 10.0
BRIGHTNESS_FACTOR = 0.2
CONTRAST_FACTOR = 0.2
BLUR_PROBABILITY = 0.5
BLUR_SIGMA_RANGE = (0.1, 2.0)
# Gaussian kernel side as a share of the image side (BYOL uses 10 %).
BLUR_KERNEL_FRACTION = 0.1
MASK_THRESHOLD = 0.5


def sample_crop_window(image_shape, seed, area_range=CROP_AREA_RANGE):
    """Draw a random crop window with a stateless seed.

    Args:
        image_shape: shape `(H, W, C)` of the image, a 1-D int tensor.
        seed: int32 or int64 tensor of shape `(2,)`.
        area_range: range of the share of the image area kept.

    Returns:
        `(begin, size)`, each an int32 tensor of shape `(3,)`, for `tf.slice`.
        After `CROP_MAX_ATTEMPTS` failed draws the whole image is returned.
    """
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=whole_image,
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT_RATIO_RANGE,
        area_range=area_range,
        max_attempts=CROP_MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def random_resized_crop(image, image_size, seed, area_range=CROP_AREA_RANGE):
    """Crop a random window and resize it to a square.

    Args:
        image: float32 tensor `(H, W, C)`.
        image_size: side of the output in pixels.
        seed: tensor of shape `(2,)` for the stateless draw.
        area_range: range of the share of the image area kept.

    Returns:
        A float32 tensor `(image_size, image_size, C)`.
    """
    begin, size = sample_crop_window(tf.shape(image), seed, area_range)
    crop = tf.slice(image, begin, size)
    # `tf.slice` with a tensor size loses the static channel count.
    crop.set_shape([None, None, image.shape[-1]])
    return tf.image.resize(crop, (image_size, image_size), antialias=True)


def random_resized_crop_with_mask(
    image, mask, image_size, seed, area_range=CROP_AREA_RANGE
):
    """Crop the same random window from an image and its mask.

    Args:
        image: float32 tensor `(H, W, C)`.
        mask: tensor `(H, W, 1)` with values 0 or 1.
        image_size: side of the output in pixels.
        seed: tensor of shape `(2,)` for the stateless draw.
        area_range: range of the share of the image area kept.

    Returns:
        `(image, mask)`, float32 tensors of side `image_size`; the mask is
        resized with nearest-neighbour interpolation and stays binary.
    """
    begin, size = sample_crop_window(tf.shape(image), seed, area_range)
    mask_begin = tf.concat([begin[:2], [0]], axis=0)
    mask_size = tf.concat([size[:2], [-1]], axis=0)
    image_crop = tf.slice(image, begin, size)
    image_crop.set_shape([None, None, image.shape[-1]])
    mask_crop = tf.slice(tf.cast(mask, tf.float32), mask_begin, mask_size)
    mask_crop.set_shape([None, None, 1])
    image = tf.image.resize(image_crop, (image_size, image_size), antialias=True)
    mask = tf.image.resize(mask_crop, (image_size, image_size), method="nearest")
    return image, mask


def resize_and_center_crop(image, image_size, method="bilinear"):
    """Resize the shorter side to `image_size`, then crop the center square.

    The deterministic evaluation transform: the same input always gives the
    same output. Square inputs (NIH ChestX-ray14) are only resized.

    Args:
        image: tensor `(H, W, C)`.
        image_size: side of the output in pixels.
        method: `tf.image.resize` method; use `"nearest"` for masks.

    Returns:
        A float32 tensor `(image_size, image_size, C)`.
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = float(image_size) / tf.reduce_min(shape)
    new_shape = tf.maximum(
        tf.cast(tf.round(shape * scale), tf.int32), image_size
    )
    resized = tf.image.resize(
        image, new_shape, method=method, antialias=method != "nearest"
    )
    top = (new_shape[0] - image_size) // 2
    left = (new_shape[1] - image_size) // 2
    return resized[top : top + image_size, left : left + image_size, :]


def blur_kernel_size(image_size):
    """Return the odd Gaussian kernel side for images of side `image_size`."""
    size = max(3, int(math.ceil(BLUR_KERNEL_FRACTION * image_size)))
    return size if size % 2 == 1 else size + 1


def gaussian_blur(image, sigma, kernel_size):
    """Blur an image with a separable Gaussian kernel and reflected borders.

    Args:
        image: float32 tensor `(H, W, C)` with H and W above `kernel_size // 2`.
        sigma: scalar standard deviation in pixels.
        kernel_size: odd kernel side in pixels.

    Returns:
        The blurred image, same shape.
    """
    radius = kernel_size // 2
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(offsets / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = image.shape[-1]
    vertical = tf.tile(tf.reshape(kernel, [kernel_size, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, kernel_size, 1, 1]), [1, 1, channels, 1])

    padded = tf.pad(
        image[tf.newaxis],
        [[0, 0], [radius, radius], [radius, radius], [0, 0]],
        mode="REFLECT",
    )
    strides = [1, 1, 1, 1]
    blurred = tf.nn.depthwise_conv2d(padded, vertical, strides, "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, horizontal, strides, "VALID")
    return blurred[0]


def random_gaussian_blur(
    image, seed, probability=BLUR_PROBABILITY, sigma_range=BLUR_SIGMA_RANGE
):
    """Blur an image with probability `probability` and a random sigma.

    Written with TensorFlow ops rather than `keras.layers.RandomGaussianBlur`,
    because that layer convolves with a full 2-D kernel and draws one sigma
    per batch. On a 2-core CPU (Keras 3.15.1, 224 px views, batch 64) the
    two-view pipeline ran at about 20 images/s with that layer and about 160
    with this separable, per-example blur in the parallel map.

    Args:
        image: float32 tensor `(H, W, C)` with a static channel count.
        seed: tensor of shape `(2,)` for the stateless draws.
        probability: probability of blurring.
        sigma_range: range of the Gaussian standard deviation in pixels.

    Returns:
        The image, blurred or not, same shape.
    """
    draws = tf.random.stateless_uniform([2], seed)
    sigma = sigma_range[0] + draws[0] * (sigma_range[1] - sigma_range[0])
    kernel_size = blur_kernel_size(image.shape[0])
    return tf.cond(
        draws[1] < probability,
        lambda: gaussian_blur(image, sigma, kernel_size),
        lambda: image,
    )


class ViewAugmentation:
    """Seeded per-batch augmentation of one view, from `keras.layers`.

    Applies horizontal flip, a small rotation, and brightness and contrast
    jitter; every image of the batch draws its own. The Gaussian blur is
    `random_gaussian_blur`, applied per example before this.

    Args:
        image_size: side of the images in pixels.
        seed: integer seed of the layers.
        flip: whether to flip horizontally at random.
        max_rotation_degrees: maximum rotation either way, `0` to disable.
        brightness_factor: maximum brightness shift as a share of the value
            range, `0` to disable.
        contrast_factor: maximum contrast change, `0` to disable.

    Call arguments:
        images: float32 tensor `(B, H, W, C)` with values in `[0, 1]`.

    Returns:
        The augmented batch, same shape, values in `[0, 1]`.
    """

    def __init__(
        self,
        image_size,
        seed=0,
        flip=True,
        max_rotation_degrees=MAX_ROTATION_DEGREES,
        brightness_factor=BRIGHTNESS_FACTOR,
        contrast_factor=CONTRAST_FACTOR,
    ):
        self.image_size = image_size
        self.seed = seed
        self.flip = flip
        self.max_rotation_degrees = max_rotation_degrees
        self.brightness_factor = brightness_factor
        self.contrast_factor = contrast_factor

        # Each layer gets its own seed so that their draws are independent.
        self.layers = []
        if flip:
            self.layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if max_rotation_degrees:
            self.layers.append(
                keras.layers.RandomRotation(
                    max_rotation_degrees / 360.0, fill_mode="reflect", seed=seed + 1
                )
            )
        if brightness_factor:
            self.layers.append(
                keras.layers.RandomBrightness(
                    brightness_factor, value_range=(0.0, 1.0), seed=seed + 2
                )
            )
        if contrast_factor:
            self.layers.append(
                keras.layers.RandomContrast(
                    contrast_factor, value_range=(0.0, 1.0), seed=seed + 3
                )
            )

    def __call__(self, images):
        for layer in self.layers:
            images = layer(images, training=True)
        return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)

    def get_config(self):
        return {
            "image_size": self.image_size,
            "seed": self.seed,
            "flip": self.flip,
            "max_rotation_degrees": self.max_rotation_degrees,
            "brightness_factor": self.brightness_factor,
            "contrast_factor": self.contrast_factor,
        }


class JointGeometryAugmentation:
    """Seeded flip and rotation applied identically to images and masks.

    The image and mask are stacked along the channel axis so that one draw of
    `keras.layers.RandomFlip` and `keras.layers.RandomRotation` moves both;
    the rotated mask is thresholded at 0.5 to stay binary.

    Args:
        seed: integer seed of the layers.
        flip: whether to flip horizontally at random.
        max_rotation_degrees: maximum rotation either way, `0` to disable.

    Call arguments:
        images: float32 tensor `(B, H, W, C)`.
        masks: float32 tensor `(B, H, W, 1)` with values 0 or 1.

    Returns:
        `(images, masks)` with the same shapes.
    """

    def __init__(self, seed=0, flip=True, max_rotation_degrees=MAX_ROTATION_DEGREES):
        self.seed = seed
        self.flip = flip
        self.max_rotation_degrees = max_rotation_degrees
        self.layers = []
        if flip:
            self.layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if max_rotation_degrees:
            # Constant zero fill keeps the mask empty outside the rotated image.
            self.layers.append(
                keras.layers.RandomRotation(
                    max_rotation_degrees / 360.0,
                    fill_mode="constant",
                    fill_value=0.0,
                    seed=seed + 1,
                )
            )

    def __call__(self, images, masks):
        # The static channel count keeps the output shapes known to Keras.
        channels = images.shape[-1]
        if channels is None:
            raise ValueError(
                "`images` must have a static channel count. Received: "
                f"images.shape={images.shape}"
            )
        stacked = tf.concat([images, masks], axis=-1)
        for layer in self.layers:
            stacked = layer(stacked, training=True)
        stacked = tf.cast(stacked, tf.float32)
        images = stacked[..., :channels]
        masks = tf.cast(stacked[..., channels:] > MASK_THRESHOLD, tf.float32)
        return images, masks

    def get_config(self):
        return {
            "seed": self.seed,
            "flip": self.flip,
            "max_rotation_degrees": self.max_rotation_degrees,
        }
