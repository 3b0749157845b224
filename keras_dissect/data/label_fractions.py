"""Patient-level label-fraction subsets (1 %, 5 %, 10 %, 100 %) and their manifest.

Low-label fine-tuning takes a fraction of the *patients* of the training
split, with all their images, so no patient contributes images to two
fractions by chance and none leaks from validation or test. Subsets are
nested (1 % within 5 % within 10 % within 100 %) because each takes a prefix
of one seeded permutation of the sorted patient ids. The manifest file stores
the chosen image ids, so later runs and other machines reuse exactly the same
subsets.
"""

import hashlib
import json
import math
import pathlib

import numpy as np
import tensorflow as tf

DEFAULT_FRACTIONS = (0.01, 0.05, 0.10, 1.0)
MANIFEST_FORMAT_VERSION = 1


def fraction_key(fraction):
    """Return the manifest key of a fraction, for example `0.01` -> `"1%"`."""
    return f"{fraction * 100:g}%"


def pool_fingerprint(image_ids):
    """Return a SHA-256 digest of the sorted image ids of the sampling pool."""
    digest = hashlib.sha256()
    for image_id in sorted(image_ids):
        digest.update(image_id.encode("utf-8") + b"\n")
    return digest.hexdigest()


def sample_label_fractions(
    image_ids,
    patient_ids,
    fractions=DEFAULT_FRACTIONS,
    seed=0,
    excluded_patients=(),
    dataset=None,
):
    """Sample nested patient-level subsets of a training split.

    Args:
        image_ids: image ids of the training split.
        patient_ids: patient id of each image, same length as `image_ids`.
        fractions: increasing shares of the patients in `(0, 1]`.
        seed: seed of the patient permutation.
        excluded_patients: patients of the validation and test splits. A
            training image of one of them raises an error, because it would
            leak evaluation patients into training.
        dataset: optional name stored in the manifest, for example
            `"nih_chest_xray14/train"`.

    Returns:
        A manifest dict with the settings and, under `"subsets"`, for each
        fraction key (`"1%"`, ...) the sorted `"patients"` and `"image_ids"`.
    """
    image_ids = [str(image_id) for image_id in image_ids]
    patient_ids = [str(patient) for patient in patient_ids]
    fractions = _validate_fractions(fractions)
    if len(image_ids) != len(patient_ids):
        raise ValueError(
            "`image_ids` and `patient_ids` must have the same length. "
            f"Received: {len(image_ids)} image ids and {len(patient_ids)} "
            "patient ids"
        )
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("`image_ids` must be unique. Received duplicates.")
    leaked = sorted(set(patient_ids) & {str(p) for p in excluded_patients})
    if leaked:
        raise ValueError(
            f"{len(leaked)} training patients also appear in the excluded "
            f"(validation/test) patients, for example {leaked[:3]}. Use "
            "patient-disjoint splits. Received: excluded_patients with "
            f"{len(excluded_patients)} entries"
        )

    patients = sorted(set(patient_ids))
    if not patients:
        raise ValueError("`image_ids` must not be empty. Received: []")
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[index] for index in order]

    subsets = {}
    for fraction in fractions:
        # At least one patient, so that 1 % of a small split is not empty.
        count = max(1, int(math.ceil(fraction * len(patients) - 1e-9)))
        chosen = set(shuffled[:count])
        subsets[fraction_key(fraction)] = {
            "fraction": fraction,
            "patients": sorted(chosen),
            "image_ids": sorted(
                image_id
                for image_id, patient in zip(image_ids, patient_ids)
                if patient in chosen
            ),
        }

    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "dataset": dataset,
        "seed": seed,
        "fractions": list(fractions),
        "num_patients": len(patients),
        "num_images": len(image_ids),
        "pool_fingerprint": pool_fingerprint(image_ids),
        "subsets": subsets,
    }


def write_manifest(manifest, path):
    """Write a manifest as JSON, creating parent folders."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    # Renaming makes the write atomic, so a crash never leaves half a file.
    temporary.replace(path)


def read_manifest(path):
    """Read a manifest written by `write_manifest`."""
    path = pathlib.Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Failed to read the label-fraction manifest {path} ({error}). "
            "Delete it to sample the subsets again."
        ) from error
    if manifest.get("format_version") != MANIFEST_FORMAT_VERSION:
        raise ValueError(
            f"Label-fraction manifest {path} has format version "
            f"{manifest.get('format_version')!r}, expected "
            f"{MANIFEST_FORMAT_VERSION}. Delete it to sample again."
        )
    return manifest


def load_or_create_manifest(
    path,
    image_ids,
    patient_ids,
    fractions=DEFAULT_FRACTIONS,
    seed=0,
    excluded_patients=(),
    dataset=None,
):
    """Reuse the manifest at `path` or sample the subsets and write it.

    An existing manifest must have been made with the same settings and the
    same pool of image ids; otherwise a `ValueError` names the setting
    that differs, since silently reusing it would train on other subsets than
    requested.

    Args:
        path: JSON manifest path.
        image_ids, patient_ids, fractions, seed, excluded_patients, dataset:
            as in `sample_label_fractions`.

    Returns:
        The manifest dict.
    """
    path = pathlib.Path(path)
    fresh = sample_label_fractions(
        image_ids, patient_ids, fractions, seed, excluded_patients, dataset
    )
    if not path.exists():
        write_manifest(fresh, path)
        return fresh

    stored = read_manifest(path)
    for setting in ("dataset", "seed", "fractions", "pool_fingerprint"):
        if stored.get(setting) != fresh[setting]:
            raise ValueError(
                f"Label-fraction manifest {path} was made with "
                f"{setting}={stored.get(setting)!r}, but this run requests "
                f"{setting}={fresh[setting]!r}. Use the original settings, "
                "another manifest path, or delete the file to sample again."
            )
    return stored


def subset_image_ids(manifest, fraction):
    """Return the image ids of one fraction (`0.01` or `"1%"`) as a set."""
    key = fraction if isinstance(fraction, str) else fraction_key(fraction)
    if key not in manifest["subsets"]:
        raise ValueError(
            f"`fraction` must be one of {sorted(manifest['subsets'])}. "
            f"Received: fraction={fraction!r}"
        )
    return set(manifest["subsets"][key]["image_ids"])


def filter_examples(examples, manifest, fraction, key="image_id"):
    """Keep the examples (dicts) whose `key` is in the fraction's subset."""
    chosen = subset_image_ids(manifest, fraction)
    kept = []
    for example in examples:
        value = example[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if value in chosen:
            kept.append(example)
    return kept


def filter_dataset(ds, manifest, fraction, key="image_id"):
    """Keep the elements of a `tf.data.Dataset` in the fraction's subset.

    Args:
        ds: dataset of dicts with a string entry `key`.
        manifest: manifest dict.
        fraction: fraction (`0.01`) or key (`"1%"`).
        key: name of the image-id entry.

    Returns:
        The filtered dataset.
    """
    chosen = sorted(subset_image_ids(manifest, fraction))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(chosen, tf.string),
            tf.ones(len(chosen), tf.int64),
        ),
        default_value=0,
    )
    return ds.filter(lambda example: table.lookup(example[key]) > 0)


def _validate_fractions(fractions):
    fractions = [float(fraction) for fraction in fractions]
    if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(
            f"`fractions` must be values in (0, 1]. Received: fractions={fractions}"
        )
    if fractions != sorted(set(fractions)):
        raise ValueError(
            "`fractions` must be strictly increasing. Received: "
            f"fractions={fractions}"
        )
    return fractions
