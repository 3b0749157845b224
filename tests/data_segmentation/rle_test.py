"""Tests for the SIIM-ACR run-length codec, on the real label file and by hand."""

import collections
import csv
import gzip

import numpy as np
import pytest

from keras_dissect import testing
from keras_dissect.data import rle

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def real_rows():
    path = testing.data_path("label-files", "siim-pneumothorax-train-rle.csv.gz")
    with gzip.open(path, "rt", newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = list(reader)
    assert header == ["ImageId", " EncodedPixels"]
    return rows


def test_real_pixel_counts_and_round_trip(real_rows):
    positives = 0
    for image_id, encoded in real_rows:
        mask = rle.rle_decode(encoded)
        lengths = [int(value) for value in encoded.split()[1::2]]
        # Independent count: the sum of the run lengths.
        assert np.count_nonzero(mask) == sum(lengths), image_id
        if encoded.strip() != rle.EMPTY_MASK_CODE:
            positives += 1
            assert rle.rle_encode(mask) == encoded.strip(), image_id
    assert positives == 3576
    assert len(real_rows) == 12954


def test_real_masks_in_upper_lungs(real_rows):
    # Orientation check for the column-major convention: pneumothorax
    # gathers at the apices, on either side of the mediastinum.
    rows = [encoded for _, encoded in real_rows if encoded != rle.EMPTY_MASK_CODE][:500]
    centers = np.array([np.argwhere(rle.rle_decode(encoded)).mean(axis=0) for encoded in rows])
    assert (centers[:, 0] < 512).mean() > 0.7
    central_band = np.abs(centers[:, 1] - 512) < 64
    assert central_band.mean() < 0.1


def test_real_union_of_rows(real_rows):
    by_image = collections.defaultdict(list)
    for image_id, encoded in real_rows:
        by_image[image_id].append(encoded)
    multi = [encodings for encodings in by_image.values() if len(encodings) > 1]
    assert len(multi) == 624
    for encodings in multi[:50]:
        union = rle.rle_decode_union(encodings)
        expected = np.zeros_like(union, dtype=bool)
        for encoded in encodings:
            expected |= rle.rle_decode(encoded).astype(bool)
        np.testing.assert_array_equal(union, expected.astype(np.uint8))
        assert np.count_nonzero(union) >= max(np.count_nonzero(rle.rle_decode(e)) for e in encodings)


def test_small_example_by_hand():
    mask = rle.rle_decode("5 2 3 1", shape=(4, 4))
    expected = np.zeros((4, 4), np.uint8)
    expected[1, 1] = expected[2, 1] = expected[2, 2] = 1
    np.testing.assert_array_equal(mask, expected)
    assert rle.rle_encode(expected) == "5 2 3 1"


def test_random_masks_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = (rng.random((37, 23)) < 0.3).astype(np.uint8)
        np.testing.assert_array_equal(rle.rle_decode(rle.rle_encode(mask), shape=(37, 23)), mask)


def test_empty_mask():
    assert not rle.rle_decode(" -1 ", shape=(8, 8)).any()
    assert rle.rle_encode(np.zeros((8, 8))) == "-1"
    assert rle.rle_encode(np.ones((2, 2))) == "0 4"


@pytest.mark.parametrize(
    "encoded, message",
    [
        ("", "the string is empty"),
        ("5 2 3", "odd number"),
        ("5 x", "must be an integer"),
        ("-3 2", "offsets must be >= 0"),
        ("5 0", "run lengths must be > 0"),
        ("60 10", "past the 64 pixels"),
    ],
)
def test_malformed_strings(encoded, message):
    with pytest.raises(ValueError, match=message) as error:
        rle.rle_decode(encoded, shape=(8, 8))
    assert f"Received: encoded={encoded!r}" in str(error.value)


def test_invalid_shape_and_mask():
    with pytest.raises(ValueError, match="Received: shape=\\(0, 4\\)"):
        rle.rle_decode("-1", shape=(0, 4))
    with pytest.raises(ValueError, match="Received: mask.shape=\\(4,\\)"):
        rle.rle_encode(np.ones(4))
