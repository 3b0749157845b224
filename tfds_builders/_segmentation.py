"""Patient splits and mask resizing shared by the SIIM-ACR and RSNA builders.

Both datasets ship only labelled training images, so train, validation and test
are carved from them by patient: the sorted unique patient ids are permuted
with a fixed seed, the first `test_fraction` of them form test, the next
`validation_fraction` validation, and the rest train. The result depends only
on the set of patients, the fractions and the seed.
"""

import dataclasses

import numpy as np
from PIL import Image

from keras_dissect_tfds import _common

VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.1
SPLIT_SEED = 20190801


@dataclasses.dataclass(eq=False)
class PatientSplitConfig(_common.ImageSizeConfig):
    """Builder config with an image size and patient split fractions.

    Args:
        image_size: stored size of the shorter image side, or `None`.
        validation_fraction: share of patients in the validation split.
        test_fraction: share of patients in the test split.
        split_seed: seed of the patient permutation. To change a field,
            create a config with a new name, for example
            `SiimAcrPneumothoraxConfig(name="256_val20", image_size=256,
            validation_fraction=0.2)`.
    """

    validation_fraction: float = VALIDATION_FRACTION
    test_fraction: float = TEST_FRACTION
    split_seed: int = SPLIT_SEED

    def __post_init__(self):
        _common.check_split_fraction(self, "validation_fraction")
        _common.check_split_fraction(self, "test_fraction")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                "`validation_fraction + test_fraction` must be below 1 so that train "
                f"keeps patients. Received: validation_fraction={self.validation_fraction}, "
                f"test_fraction={self.test_fraction}"
            )


def split_items_by_patient(items, patient_of, config):
    """Divide items into train / validation / test by patient.

    Args:
        items: list of items (any type).
        patient_of: function item -> patient id.
        config: a `PatientSplitConfig`.

    Returns:
        A dict split name -> list of items, each list in the input order.
        A split whose fraction is 0 is left out.
    """
    patients = np.array(sorted({patient_of(item) for item in items}), dtype=object)
    order = np.random.default_rng(config.split_seed).permutation(len(patients))
    patients = patients[order]
    num_test = _share(config.test_fraction, len(patients))
    num_validation = _share(config.validation_fraction, len(patients))
    split_of = {}
    for position, patient in enumerate(patients):
        if position < num_test:
            split_of[patient] = "test"
        elif position < num_test + num_validation:
            split_of[patient] = "validation"
        else:
            split_of[patient] = "train"

    splits = {"train": [], "validation": [], "test": []}
    for item in items:
        splits[split_of[patient_of(item)]].append(item)
    if config.validation_fraction == 0:
        del splits["validation"]
    if config.test_fraction == 0:
        del splits["test"]
    return splits


def _share(fraction, count):
    # A positive fraction keeps at least one patient, so small datasets still
    # get every split.
    if fraction == 0 or count == 0:
        return 0
    return max(1, int(round(fraction * count)))


def resize_mask(mask, shape):
    """Resize a 0/1 mask `(H, W)` to `shape` with nearest neighbour.

    Returns:
        uint8 array `(H', W', 1)`.
    """
    height, width = shape
    if mask.shape != (height, width):
        resized = Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
        mask = np.asarray(resized)
    return mask.astype(np.uint8)[..., np.newaxis]
