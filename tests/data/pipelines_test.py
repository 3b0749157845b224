"""Pipeline tests. They run under every Keras backend, because the
augmentations use `keras.layers` inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from keras_dissect.data import augment
from keras_dissect.data import pipelines

NUM_EXAMPLES = 12
HEIGHT, WIDTH = 48, 40


def _fake_dataset(seed=0):
    rng = np.random.default_rng(seed)
    images = (rng.random((NUM_EXAMPLES, HEIGHT, WIDTH, 1)) * 255).astype(np.uint8)
    observations = rng.integers(-2, 2, (NUM_EXAMPLES, 5)).astype(np.int8)
    masks = np.zeros((NUM_EXAMPLES, HEIGHT, WIDTH, 1), np.uint8)
    masks[:, 10:30, 5:18] = 1
    return tf.data.Dataset.from_tensor_slices(
        {"image": images, "observations": observations, "mask": masks}
    ), observations


def _as_list(ds):
    return list(ds.as_numpy_iterator())


def test_pretraining_shapes_and_range():
    ds, _ = _fake_dataset()
    batch = next(iter(pipelines.pretraining_dataset(ds, 32, 4, seed=1, channels=3)))
    for name in ("view1", "view2"):
        assert batch[name].shape == (4, 32, 32, 3)
        assert batch[name].dtype == tf.float32
        assert float(tf.reduce_min(batch[name])) >= 0.0
        assert float(tf.reduce_max(batch[name])) <= 1.0
    assert not np.allclose(batch["view1"], batch["view2"])


def test_pretraining_seeded_and_varies_by_epoch():
    ds, _ = _fake_dataset()
    first = pipelines.pretraining_dataset(ds, 32, 4, seed=5)
    again = pipelines.pretraining_dataset(ds, 32, 4, seed=5)
    epoch_one = _as_list(first)
    np.testing.assert_array_equal(epoch_one[0]["view1"], _as_list(again)[0]["view1"])
    epoch_two = _as_list(first)
    assert not np.allclose(epoch_one[0]["view1"], epoch_two[0]["view1"])
    assert len(epoch_one) == NUM_EXAMPLES // 4


def test_classification_uncertainty_policies():
    ds, observations = _fake_dataset()
    expected_uncertain = {"u_ones": 1.0, "u_zeros": 0.0, "u_ignore": -1.0}
    for policy, uncertain in expected_uncertain.items():
        batches = _as_list(
            pipelines.classification_dataset(
                ds, 32, 5, uncertainty_policy=policy, shuffle_buffer=0
            )
        )
        labels = np.concatenate([labels for _, labels in batches])
        expected = np.where(observations == 1, 1.0, 0.0)
        expected[observations == -1] = uncertain
        np.testing.assert_array_equal(labels, expected)


def test_classification_label_indices():
    ds, observations = _fake_dataset()
    pipeline = pipelines.classification_dataset(
        ds, 32, NUM_EXAMPLES, uncertainty_policy="u_zeros", label_indices=[4, 0]
    )
    _, labels = next(iter(pipeline))
    np.testing.assert_array_equal(labels, (observations[:, [4, 0]] == 1).astype(np.float32))


def test_classification_evaluation_deterministic():
    ds, _ = _fake_dataset()
    pipeline = pipelines.classification_dataset(ds, 32, 4, training=False)
    first = _as_list(pipeline)
    second = _as_list(pipeline)
    for (image_a, _), (image_b, _) in zip(first, second):
        np.testing.assert_array_equal(image_a, image_b)
    assert first[0][0].shape == (4, 32, 32, 1)


def test_classification_training_augments():
    ds, _ = _fake_dataset()
    images, labels = next(
        iter(pipelines.classification_dataset(ds, 32, 4, training=True, channels=3))
    )
    assert images.shape == (4, 32, 32, 3)
    assert labels.shape == (4, 5)


def test_segmentation_image_and_mask_share_geometry():
    # The image is the mask itself, so any geometry applied to one only
    # would break their agreement.
    masks = np.zeros((8, 64, 64, 1), np.uint8)
    masks[:, 8:40, 4:24] = 1
    ds = tf.data.Dataset.from_tensor_slices({"image": masks * 255, "mask": masks})
    batches = _as_list(pipelines.segmentation_dataset(ds, 32, 8, training=True, seed=2))
    images, out_masks = batches[0]
    assert out_masks.shape == (8, 32, 32, 1)
    assert set(np.unique(out_masks)) <= {0.0, 1.0}
    # Brightness and contrast move 0/1 pixels by at most 0.4, so 0.5 still
    # separates them; the antialiased image and nearest-neighbour mask may
    # differ on a one-pixel rim.
    agreement = np.mean((images > 0.5) == (out_masks > 0.5))
    assert agreement > 0.9
    reference = np.zeros((32, 32, 1), np.float32)
    reference[4:20, 2:12] = 1
    moved = [not np.array_equal(mask, reference) for mask in out_masks]
    assert any(moved)


def test_segmentation_evaluation_resizes_mask_nearest():
    ds, _ = _fake_dataset()
    images, masks = next(iter(pipelines.segmentation_dataset(ds, 20, 3)))
    assert images.shape == (3, 20, 20, 1)
    assert set(np.unique(masks)) == {0.0, 1.0}


def test_resize_and_center_crop_matches_numpy():
    # A 4 x 2 image whose rows differ: resizing to the 2-pixel width keeps it,
    # and the center crop takes rows 1 and 2.
    image = np.arange(8, dtype=np.float32).reshape(4, 2, 1)
    cropped = augment.resize_and_center_crop(tf.constant(image), 2)
    np.testing.assert_allclose(cropped, image[1:3])


def test_invalid_arguments():
    ds, _ = _fake_dataset()
    with pytest.raises(ValueError, match="uncertainty_policy='u_maybe'"):
        pipelines.classification_dataset(ds, 32, 4, uncertainty_policy="u_maybe")
    with pytest.raises(ValueError, match="channels=2"):
        pipelines.pretraining_dataset(ds, 32, 4, channels=2)
    with pytest.raises(ValueError, match="image_size=0"):
        pipelines.pretraining_dataset(ds, 0, 4)
    labels_only = tf.data.Dataset.from_tensor_slices({"image": np.zeros((2, 4, 4, 1), np.uint8)})
    with pytest.raises(ValueError, match="'labels' or 'observations'"):
        pipelines.classification_dataset(labels_only, 32, 4)


def test_gaussian_blur_matches_numpy():
    image = np.zeros((15, 15, 1), np.float32)
    image[7, 7] = 1.0
    blurred = augment.gaussian_blur(tf.constant(image), 1.5, 5).numpy()
    offsets = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (offsets / 1.5) ** 2)
    kernel /= kernel.sum()
    expected = np.zeros((15, 15), np.float32)
    expected[5:10, 5:10] = np.outer(kernel, kernel)
    # float32 convolution sums of five terms: rounding stays below 1e-6.
    np.testing.assert_allclose(blurred[..., 0], expected, atol=1e-6)


def test_random_gaussian_blur_probability():
    image = tf.constant(np.random.default_rng(0).random((32, 32, 1)), tf.float32)
    never = augment.random_gaussian_blur(image, tf.constant([1, 2]), probability=0.0)
    always = augment.random_gaussian_blur(image, tf.constant([1, 2]), probability=1.0)
    np.testing.assert_array_equal(never, image)
    assert not np.allclose(always, image)
