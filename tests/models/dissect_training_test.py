"""Training DiSSECT on real chest X-ray thumbnails."""

import numpy as np
import tensorflow as tf

import keras
from keras_dissect import optimizers
from keras_dissect import testing
from keras_dissect.models import DiSSECT

IMAGE_SIZE = 32
BATCH = 16
STEPS = 20
# Losses compared: mean of the first and of the last WINDOW steps.
WINDOW = 4
MAX_IMAGES = 256
TINY = {
    "width": 8,
    "projection_hidden_dim": 64,
    "projection_dim": 32,
    "prediction_hidden_dim": 64,
    "num_codes": 64,
    "code_dim": 16,
    "serf_num_heads": 2,
    "serf_mlp_hidden_dim": 32,
}


def _augment(image, seed):
    """Random crop of 75-100 % of the side, resize, flip, brightness."""
    crop = tf.random.stateless_uniform([], seed, 48, 65, dtype=tf.int32)
    image = tf.image.stateless_random_crop(image, [crop, crop, 1], seed + 1)
    image = tf.image.resize(image, [IMAGE_SIZE, IMAGE_SIZE])
    image = tf.image.stateless_random_flip_left_right(image, seed + 2)
    image = tf.image.stateless_random_brightness(image, 0.1, seed + 3)
    return tf.clip_by_value(image, 0.0, 1.0)


def _read_gray(path):
    image = tf.io.decode_png(tf.io.read_file(path), channels=1)
    return tf.image.convert_image_dtype(image, tf.float32)


def _two_views(image, seed):
    return {"view1": _augment(image, seed * 8), "view2": _augment(image, seed * 8 + 4)}


def _two_view_dataset(folder):
    files = sorted(str(path) for path in folder.glob("*.png"))[:MAX_IMAGES]
    images = tf.data.Dataset.from_tensor_slices(files).map(_read_gray).cache().repeat()
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    views = tf.data.Dataset.zip(images, seeds).map(_two_views)
    return views.batch(BATCH, drop_remainder=True).prefetch(2)


def test_loss_decreases_on_thumbnails():
    folder = testing.data_path("nih-thumbs64") / "images"
    keras.utils.set_random_seed(0)
    model = DiSSECT(total_steps=STEPS, **TINY)
    model.compile(
        optimizer=optimizers.LARS(
            learning_rate=optimizers.WarmupCosine(1.0, total_steps=STEPS, warmup_steps=3)
        )
    )
    # One step per epoch, so that the history records each step's loss.
    history = model.fit(_two_view_dataset(folder), epochs=STEPS, steps_per_epoch=1, verbose=0)
    losses = np.array(history.history["loss"])

    assert np.all(np.isfinite(losses))
    assert losses[-WINDOW:].mean() < losses[:WINDOW].mean()
