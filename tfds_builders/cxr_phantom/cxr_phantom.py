"""Procedural chest X-ray phantom dataset builder (no download)."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_dissect.data import phantom
from keras_dissect.data.phantom import FINDINGS
from keras_dissect.data.phantom import MASK_FINDINGS

PHANTOM_FINDINGS = FINDINGS
IMAGE_SIZES = (64, 128, 224, 256, 512)
# Default split sizes: small enough that a demo pretrains on the 64 px train
# split in minutes on two CPU cores.
DEFAULT_SPLIT_SIZES = {"train": 512, "validation": 128, "test": 128}
DEFAULT_SEED = 1234
MARKER_FINDING = "pneumothorax"
# (given the finding, given its absence) per split: correlated in train and
# validation, independent of the finding in test.
MARKER_PROBABILITIES = {"train": (0.9, 0.1), "validation": (0.9, 0.1), "test": (0.5, 0.5)}
SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}

_DESCRIPTION = f"""\
Procedural chest radiograph phantoms generated offline from a seed: body,
lungs with vessel texture, ribs, clavicles, spine, heart and diaphragm, with
random positioning, exposure and noise. Five findings {FINDINGS} appear
independently (20 % each) as the multi-hot `labels`. `mask` is the union of the
pixel masks of {MASK_FINDINGS}; `finding_map` stores them per finding as bit
flags (bit k set where finding `MASK_FINDINGS[k]` is). Each image is its own
patient.

Configs are named by image size ("64", "128", "224", "256", "512"); split sizes
default to {DEFAULT_SPLIT_SIZES}. The "<size>_marker" configs add a bright
"L"-shaped tag in an upper corner that follows {MARKER_FINDING}: in train and
validation 90 % of images with {MARKER_FINDING} carry it and 10 % of the
others, in test 50 % of both, so a model that relies on the tag loses accuracy
on test. `has_marker` and `marker_box` record the tag.
"""


@dataclasses.dataclass(eq=False)
class CxrPhantomConfig(tfds.core.BuilderConfig):
    """Config of `CxrPhantom`.

    Args:
        image_size: side of the square images in pixels.
        num_train: number of train images.
        num_validation: number of validation images.
        num_test: number of test images.
        seed: seed of the whole dataset.
        spurious_marker: whether the marker follows `MARKER_FINDING` in train
            and validation (see `MARKER_PROBABILITIES`).
    """

    image_size: int = 64
    num_train: int = DEFAULT_SPLIT_SIZES["train"]
    num_validation: int = DEFAULT_SPLIT_SIZES["validation"]
    num_test: int = DEFAULT_SPLIT_SIZES["test"]
    seed: int = DEFAULT_SEED
    spurious_marker: bool = False

    def __post_init__(self):
        for field in ("num_train", "num_validation", "num_test"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{field}` must be a positive integer. Received: {field}={value!r}")
        if not isinstance(self.image_size, int) or self.image_size < phantom.MIN_IMAGE_SIZE:
            raise ValueError(
                f"`image_size` must be an integer >= {phantom.MIN_IMAGE_SIZE}. "
                f"Received: image_size={self.image_size!r}"
            )

    def split_sizes(self):
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


def _make_configs():
    configs = []
    for size in IMAGE_SIZES:
        for marker in (False, True):
            name = f"{size}_marker" if marker else str(size)
            detail = f" with a spurious marker tied to {MARKER_FINDING}" if marker else ""
            configs.append(
                CxrPhantomConfig(
                    name=name,
                    description=f"{size} x {size} phantoms{detail}.",
                    image_size=size,
                    spurious_marker=marker,
                )
            )
    return configs


class CxrPhantom(tfds.core.GeneratorBasedBuilder):
    """Procedural chest radiograph phantoms with findings, masks and a marker option."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _make_configs()
    DEFAULT_CONFIG_NAME = "64"

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 1), dtype=np.uint8),
                    "mask": tfds.features.Image(shape=(size, size, 1), dtype=np.uint8),
                    "finding_map": tfds.features.Image(shape=(size, size, 1), dtype=np.uint8),
                    "labels": tfds.features.Tensor(shape=(len(FINDINGS),), dtype=np.float32),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                    "has_marker": tfds.features.Scalar(dtype=np.bool_),
                    "marker_box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "labels"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything is generated locally.
        return {
            split: self._generate_examples(split, count)
            for split, count in self.builder_config.split_sizes().items()
        }

    def _generate_examples(self, split, count):
        config = self.builder_config
        marker_finding = MARKER_FINDING if config.spurious_marker else None
        bits = (1 << np.arange(len(MASK_FINDINGS))).astype(np.uint8)
        for index in range(count):
            example = phantom.generate_phantom(
                (config.seed, SPLIT_INDEX[split], index),
                image_size=config.image_size,
                marker_finding=marker_finding,
                marker_probability=MARKER_PROBABILITIES[split],
            )
            image_id = f"{split}_{index:06d}"
            finding_map = (example["finding_masks"] * bits).sum(axis=-1).astype(np.uint8)
            yield image_id, {
                "image": _to_uint8(example["image"]),
                "mask": example["mask"][..., np.newaxis],
                "finding_map": finding_map[..., np.newaxis],
                "labels": example["labels"],
                "image_id": image_id,
                "patient_id": image_id,
                "has_marker": example["has_marker"],
                "marker_box": example["marker_box"],
            }


def _to_uint8(image):
    return np.round(image * 255.0).astype(np.uint8)[..., np.newaxis]
