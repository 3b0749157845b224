"""tf.data input pipelines from the TFDS builders to the models.

The pipelines use TensorFlow ops and `keras.layers` preprocessing layers
only (never `keras.ops`), so one pipeline feeds a model on TensorFlow, JAX or
PyTorch. Input datasets yield the dicts of the builders in
`keras_dissect_tfds`: `"image"` uint8 `(H, W, 1)` and, as the task needs,
`"labels"`, `"observations"` or `"mask"`.
"""

import tensorflow as tf

from keras_dissect.data import augment
from keras_dissect.data.loading import load_split  # noqa: F401

UNCERTAINTY_POLICIES = ("u_ones", "u_zeros", "u_ignore")
# CheXpert observation states as stored by the builder.
POSITIVE = 1
NEGATIVE = 0
UNCERTAIN = -1
UNMENTIONED = -2
# Label value that the masked losses and metrics skip.
IGNORE_LABEL = -1.0
DEFAULT_SHUFFLE_BUFFER = 1024
# Fine-tuning and segmentation crop gentler than SSL pretraining, because
# a small crop can cut away the finding that the label describes.
CLASSIFICATION_CROP_AREA_RANGE = (0.7, 1.0)
SEGMENTATION_CROP_AREA_RANGE = (0.5, 1.0)
# Offsets that give each augmentation stage its own seeds.
VIEW1_SEED_OFFSET = 1000
VIEW2_SEED_OFFSET = 2000
PHOTOMETRIC_SEED_OFFSET = 3000
SUPPORTED_CHANNELS = (1, 3)


def pretraining_dataset(
    ds,
    image_size,
    batch_size,
    seed=0,
    channels=1,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    crop_area_range=augment.CROP_AREA_RANGE,
    drop_remainder=True,
    blur_probability=augment.BLUR_PROBABILITY,
    view_options=None,
):
    """Build the two-view self-supervised pretraining pipeline.

    Each image gives two views, each with its own random resized crop,
    horizontal flip, small rotation, brightness and contrast jitter and
    Gaussian blur (see `augment.random_gaussian_blur` and
    `augment.ViewAugmentation`). Crops and blur are drawn per example and per
    epoch from `seed`; the layers are seeded too, so a pipeline built twice
    with the same seed yields the same batches.

    Args:
        ds: `tf.data.Dataset` of dicts with an `"image"` entry `(H, W, 1)`.
        image_size: side of the square views in pixels.
        batch_size: number of images per batch.
        seed: integer seed of the shuffle and the augmentations.
        channels: 1, or 3 to repeat the gray channel.
        shuffle_buffer: size of the shuffle buffer, `0` to keep the order.
        crop_area_range: range of the share of the image area each view keeps.
        drop_remainder: whether to drop the last incomplete batch (the
            default, since BatchNorm statistics of a tiny batch are noisy).
        blur_probability: probability of blurring each view.
        view_options: optional dict of `augment.ViewAugmentation` arguments
            (for example `{"flip": False}`), used for both views.

    Returns:
        A `tf.data.Dataset` of dicts `{"view1": (B, S, S, C), "view2":
        (B, S, S, C)}`, float32 in `[0, 1]`, with S = `image_size` and C =
        `channels`.
    """
    _validate_common(image_size, batch_size, channels)
    view_options = dict(view_options or {})

    images = ds.map(_select_image, num_parallel_calls=tf.data.AUTOTUNE)
    images = _maybe_shuffle(images, shuffle_buffer, seed)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def make_view(image, key, view):
        crop_seed = tf.stack([key, 2 * view])
        blur_seed = tf.stack([key, 2 * view + 1])
        crop = augment.random_resized_crop(
            image, image_size, crop_seed, crop_area_range
        )
        return augment.random_gaussian_blur(crop, blur_seed, blur_probability)

    def crop_two_views(image, key):
        image = _to_float(image)
        return {"view1": make_view(image, key, 1), "view2": make_view(image, key, 2)}

    views = tf.data.Dataset.zip((images, keys)).map(
        crop_two_views, num_parallel_calls=tf.data.AUTOTUNE
    )
    views = views.batch(batch_size, drop_remainder=drop_remainder)

    first = augment.ViewAugmentation(
        image_size, seed=seed + VIEW1_SEED_OFFSET, **view_options
    )
    second = augment.ViewAugmentation(
        image_size, seed=seed + VIEW2_SEED_OFFSET, **view_options
    )

    def augment_batch(batch):
        return {
            "view1": _repeat_channels(first(batch["view1"]), channels),
            "view2": _repeat_channels(second(batch["view2"]), channels),
        }

    # Sequential on purpose: the Keras layers keep a seed state, and parallel
    # calls would consume it in an unpredictable order.
    return views.map(augment_batch).prefetch(tf.data.AUTOTUNE)


def classification_dataset(
    ds,
    image_size,
    batch_size,
    training=False,
    channels=1,
    seed=0,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    uncertainty_policy="u_ignore",
    label_indices=None,
    drop_remainder=False,
):
    """Build a classification pipeline yielding `(image, labels)`.

    Multi-hot `"labels"` are used as stored. CheXpert-style `"observations"`
    (1 positive, 0 negative, -1 uncertain, -2 unmentioned) become labels under
    `uncertainty_policy`: `"u_ones"` maps uncertain to 1, `"u_zeros"` to 0 and
    `"u_ignore"` to -1, the value that the masked losses skip. Unmentioned
    observations count as negative under every policy, as in the CheXpert
    paper's baselines.

    Args:
        ds: `tf.data.Dataset` of builder dicts.
        image_size: side of the square images in pixels.
        batch_size: number of images per batch.
        training: whether to shuffle and augment (mild random resized crop,
            flip, rotation, brightness and contrast). Evaluation resizes the
            shorter side and crops the center, deterministically.
        channels: 1, or 3 to repeat the gray channel.
        seed: integer seed of the shuffle and the augmentations.
        shuffle_buffer: shuffle buffer size in training, `0` to keep order.
        uncertainty_policy: one of `"u_ones"`, `"u_zeros"`, `"u_ignore"`.
        label_indices: optional list of label columns to keep, for example
            the five CheXpert competition tasks.
        drop_remainder: whether to drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: images float32
        `(B, S, S, C)` in `[0, 1]`, labels float32 `(B, K)` with -1 marking
        ignored entries.
    """
    _validate_common(image_size, batch_size, channels)
    if uncertainty_policy not in UNCERTAINTY_POLICIES:
        raise ValueError(
            f"`uncertainty_policy` must be one of {UNCERTAINTY_POLICIES}. "
            f"Received: uncertainty_policy={uncertainty_policy!r}"
        )
    label_key = _label_key(ds.element_spec)

    def select(example):
        labels = example[label_key]
        if label_key == "observations":
            labels = observations_to_labels(labels, uncertainty_policy)
        labels = tf.cast(labels, tf.float32)
        if label_indices is not None:
            labels = tf.gather(labels, label_indices, axis=-1)
        return example["image"], labels

    pairs = ds.map(select, num_parallel_calls=tf.data.AUTOTUNE)
    if not training:
        return _evaluation_batches(pairs, image_size, batch_size, channels, drop_remainder)

    pairs = _maybe_shuffle(pairs, shuffle_buffer, seed)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def crop(pair, key):
        image, labels = pair
        image = augment.random_resized_crop(
            _to_float(image),
            image_size,
            tf.stack([key, 1]),
            CLASSIFICATION_CROP_AREA_RANGE,
        )
        return image, labels

    pairs = tf.data.Dataset.zip((pairs, keys)).map(
        crop, num_parallel_calls=tf.data.AUTOTUNE
    )
    pairs = pairs.batch(batch_size, drop_remainder=drop_remainder)
    photometric = augment.ViewAugmentation(
        image_size, seed=seed + PHOTOMETRIC_SEED_OFFSET
    )

    def augment_batch(images, labels):
        return _repeat_channels(photometric(images), channels), labels

    # Sequential: see `pretraining_dataset`.
    return pairs.map(augment_batch).prefetch(tf.data.AUTOTUNE)


def segmentation_dataset(
    ds,
    image_size,
    batch_size,
    training=False,
    channels=1,
    seed=0,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    drop_remainder=False,
):
    """Build a segmentation pipeline yielding `(image, mask)`.

    In training the image and its mask share every geometric change (random
    resized crop, flip, rotation); brightness and contrast touch the image
    only. Evaluation resizes and center-crops both, the mask with
    nearest-neighbour interpolation.

    Args:
        ds: `tf.data.Dataset` of dicts with `"image"` and `"mask"` entries.
        image_size: side of the square outputs in pixels.
        batch_size: number of images per batch.
        training: whether to shuffle and augment.
        channels: 1, or 3 to repeat the gray channel.
        seed: integer seed of the shuffle and the augmentations.
        shuffle_buffer: shuffle buffer size in training, `0` to keep order.
        drop_remainder: whether to drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(images, masks)`: images float32 `(B, S, S,
        C)` in `[0, 1]`, masks float32 `(B, S, S, 1)` with values 0 or 1.
    """
    _validate_common(image_size, batch_size, channels)
    if "mask" not in ds.element_spec:
        raise ValueError(
            "`ds` must yield dicts with a 'mask' entry for segmentation. "
            f"Received: keys={sorted(ds.element_spec)}"
        )
    pairs = ds.map(
        lambda example: (example["image"], example["mask"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

    if not training:

        def preprocess(image, mask):
            image = augment.resize_and_center_crop(_to_float(image), image_size)
            mask = augment.resize_and_center_crop(
                tf.cast(mask, tf.float32), image_size, method="nearest"
            )
            return _repeat_channels(image, channels), mask

        pairs = pairs.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
        return pairs.batch(batch_size, drop_remainder=drop_remainder).prefetch(
            tf.data.AUTOTUNE
        )

    pairs = _maybe_shuffle(pairs, shuffle_buffer, seed)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def crop(pair, key):
        image, mask = pair
        return augment.random_resized_crop_with_mask(
            _to_float(image),
            mask,
            image_size,
            tf.stack([key, 1]),
            SEGMENTATION_CROP_AREA_RANGE,
        )

    pairs = tf.data.Dataset.zip((pairs, keys)).map(
        crop, num_parallel_calls=tf.data.AUTOTUNE
    )
    pairs = pairs.batch(batch_size, drop_remainder=drop_remainder)
    geometry = augment.JointGeometryAugmentation(seed=seed)
    photometric = augment.ViewAugmentation(
        image_size,
        seed=seed + PHOTOMETRIC_SEED_OFFSET,
        flip=False,
        max_rotation_degrees=0.0,
    )

    def augment_batch(images, masks):
        images, masks = geometry(images, masks)
        return _repeat_channels(photometric(images), channels), masks

    # Sequential: see `pretraining_dataset`.
    return pairs.map(augment_batch).prefetch(tf.data.AUTOTUNE)


def observations_to_labels(observations, uncertainty_policy):
    """Map CheXpert observation states to float32 labels under a policy.

    Args:
        observations: int tensor `(..., K)` with values 1, 0, -1 or -2.
        uncertainty_policy: one of `"u_ones"`, `"u_zeros"`, `"u_ignore"`.

    Returns:
        float32 tensor `(..., K)` with values 1, 0 or -1 (ignore).
    """
    if uncertainty_policy not in UNCERTAINTY_POLICIES:
        raise ValueError(
            f"`uncertainty_policy` must be one of {UNCERTAINTY_POLICIES}. "
            f"Received: uncertainty_policy={uncertainty_policy!r}"
        )
    uncertain_value = {"u_ones": 1.0, "u_zeros": 0.0, "u_ignore": IGNORE_LABEL}[
        uncertainty_policy
    ]
    observations = tf.cast(observations, tf.int32)
    labels = tf.cast(tf.equal(observations, POSITIVE), tf.float32)
    return tf.where(tf.equal(observations, UNCERTAIN), uncertain_value, labels)


def _evaluation_batches(pairs, image_size, batch_size, channels, drop_remainder):
    def preprocess(image, labels):
        image = augment.resize_and_center_crop(_to_float(image), image_size)
        return _repeat_channels(image, channels), labels

    pairs = pairs.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return pairs.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )


def _label_key(element_spec):
    if not isinstance(element_spec, dict):
        raise ValueError(
            "`ds` must yield dicts as the keras_dissect_tfds builders do. "
            f"Received: element_spec={element_spec}"
        )
    for key in ("observations", "labels"):
        if key in element_spec:
            return key
    raise ValueError(
        "`ds` must yield dicts with a 'labels' or 'observations' entry for "
        f"classification. Received: keys={sorted(element_spec)}"
    )


def _select_image(example):
    return example["image"] if isinstance(example, dict) else example


def _to_float(image):
    # uint8 is divided by 255 and uint16 by 65535; floats pass unchanged.
    return tf.image.convert_image_dtype(image, tf.float32)


def _repeat_channels(images, channels):
    if channels == 1:
        return images
    return tf.repeat(images, channels, axis=-1)


def _maybe_shuffle(ds, shuffle_buffer, seed):
    if not shuffle_buffer:
        return ds
    return ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)


def _validate_common(image_size, batch_size, channels):
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(
            f"`image_size` must be a positive integer. Received: image_size={image_size!r}"
        )
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(
            f"`channels` must be 1 or 3. Received: channels={channels!r}"
        )
