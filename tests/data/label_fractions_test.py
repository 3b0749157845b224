import csv
import gzip
import json
import math

import pytest
import tensorflow as tf

from keras_dissect import testing
from keras_dissect.data import label_fractions

pytestmark = pytest.mark.backend_independent

# Every fifth patient of the real label file plays the held-out patients.
HELD_OUT_MODULUS = 5


@pytest.fixture(scope="module")
def real_pool():
    path = testing.data_path("label-files", "Data_Entry_2017_v2020.csv.gz")
    with gzip.open(path, "rt", newline="") as file:
        rows = [(row["Image Index"], row["Patient ID"]) for row in csv.DictReader(file)]
    train = [row for row in rows if int(row[1]) % HELD_OUT_MODULUS]
    held_out = {row[1] for row in rows if not int(row[1]) % HELD_OUT_MODULUS}
    return train, held_out


@pytest.fixture(scope="module")
def manifest(real_pool):
    train, held_out = real_pool
    return label_fractions.sample_label_fractions(
        [image for image, _ in train],
        [patient for _, patient in train],
        seed=3,
        excluded_patients=held_out,
        dataset="nih_chest_xray14/train",
    )


def test_fractions_nested(manifest):
    keys = ["1%", "5%", "10%", "100%"]
    assert list(manifest["subsets"]) == keys
    for smaller, larger in zip(keys, keys[1:]):
        small = manifest["subsets"][smaller]
        large = manifest["subsets"][larger]
        assert set(small["patients"]) < set(large["patients"])
        assert set(small["image_ids"]) < set(large["image_ids"])


def test_fraction_sizes_by_patient(manifest):
    total = manifest["num_patients"]
    for key, fraction in (("1%", 0.01), ("5%", 0.05), ("10%", 0.10)):
        # The count is rounded up to whole patients.
        expected = math.ceil(round(fraction * total, 6))
        assert len(manifest["subsets"][key]["patients"]) == expected
    assert len(manifest["subsets"]["100%"]["image_ids"]) == manifest["num_images"]


def test_subsets_keep_whole_patients(manifest, real_pool):
    train, _ = real_pool
    chosen = set(manifest["subsets"]["1%"]["patients"])
    expected = sorted(image for image, patient in train if patient in chosen)
    assert manifest["subsets"]["1%"]["image_ids"] == expected


def test_disjoint_from_held_out(manifest, real_pool):
    _, held_out = real_pool
    for subset in manifest["subsets"].values():
        assert not set(subset["patients"]) & held_out


def test_leak_into_training_rejected():
    with pytest.raises(ValueError, match="excluded"):
        label_fractions.sample_label_fractions(
            ["a.png", "b.png"], ["1", "2"], excluded_patients={"2"}
        )


def test_seed_changes_subsets_and_repeats():
    ids = [f"{i:05d}.png" for i in range(2000)]
    patients = [str(i // 2) for i in range(2000)]
    first = label_fractions.sample_label_fractions(ids, patients, seed=0)
    again = label_fractions.sample_label_fractions(ids, patients, seed=0)
    other = label_fractions.sample_label_fractions(ids, patients, seed=1)
    assert first == again
    assert first["subsets"]["5%"] != other["subsets"]["5%"]


def test_manifest_round_trip(tmp_path):
    ids = [f"{i}.png" for i in range(300)]
    patients = [str(i // 3) for i in range(300)]
    path = tmp_path / "fractions" / "nih.json"
    created = label_fractions.load_or_create_manifest(path, ids, patients, seed=7)
    assert json.loads(path.read_text()) == created
    reloaded = label_fractions.load_or_create_manifest(path, ids, patients, seed=7)
    assert reloaded == created


@pytest.mark.parametrize(
    "change, setting",
    [
        ({"seed": 8}, "seed"),
        ({"fractions": (0.1, 1.0)}, "fractions"),
        ({"image_ids": [f"{i}.png" for i in range(1, 301)]}, "pool_fingerprint"),
        ({"dataset": "chexpert/train"}, "dataset"),
    ],
)
def test_manifest_reload_with_other_settings(tmp_path, change, setting):
    settings = {
        "image_ids": [f"{i}.png" for i in range(300)],
        "patient_ids": [str(i // 3) for i in range(300)],
        "seed": 7,
        "fractions": label_fractions.DEFAULT_FRACTIONS,
        "dataset": None,
    }
    path = tmp_path / "nih.json"
    label_fractions.load_or_create_manifest(path, **settings)
    with pytest.raises(ValueError, match=f"made with {setting}="):
        label_fractions.load_or_create_manifest(path, **{**settings, **change})


def test_invalid_fractions():
    with pytest.raises(ValueError, match="strictly increasing"):
        label_fractions.sample_label_fractions(["a"], ["1"], fractions=(0.1, 0.05))
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        label_fractions.sample_label_fractions(["a"], ["1"], fractions=(0.0, 1.0))


def test_filter_dataset_and_examples():
    ids = [f"{i}.png" for i in range(200)]
    patients = [str(i // 2) for i in range(200)]
    manifest = label_fractions.sample_label_fractions(ids, patients, seed=1)
    chosen = set(manifest["subsets"]["5%"]["image_ids"])
    assert len(chosen) == 10

    examples = [{"image_id": image_id, "value": index} for index, image_id in enumerate(ids)]
    kept = label_fractions.filter_examples(examples, manifest, 0.05)
    assert {example["image_id"] for example in kept} == chosen

    ds = tf.data.Dataset.from_tensor_slices({"image_id": ids, "value": list(range(200))})
    filtered = label_fractions.filter_dataset(ds, manifest, "5%")
    assert {x["image_id"].decode() for x in filtered.as_numpy_iterator()} == chosen
