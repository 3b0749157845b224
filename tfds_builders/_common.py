"""Shared pieces of the chest X-ray dataset builders.

Every builder stores images once, at preparation, as 1-channel uint8 PNGs at
one of the sizes in `IMAGE_SIZE_CONFIGS`, so that training never pays for
decoding the large originals again.

Bad input (a corrupt or missing image, an inconsistent label row) stops the
preparation with an error naming the file and what to do. A user who prefers a
slightly smaller dataset can opt in to skipping such items instead, either
with `skip_bad_input=True` (for example `tfds.load(...,
builder_kwargs={"skip_bad_input": True})`) or by setting the environment
variable `DISSECT_SKIP_BAD_INPUT=1`. Each skip is logged, and their count is
reported at the end of preparation and stored in `builder.skipped_input`.
"""

import dataclasses
import logging
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from keras_dissect.data.decode import DEFAULT_MAX_PIXELS
from keras_dissect.data.decode import read_image
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.errors import ImageDecodeError

logger = logging.getLogger(__name__)

SKIP_BAD_INPUT_VARIABLE = "DISSECT_SKIP_BAD_INPUT"

# Config name -> length of the shorter image side after resizing; `None` keeps
# the original size.
IMAGE_SIZE_CONFIGS = {
    "64": 64,
    "128": 128,
    "224": 224,
    "256": 256,
    "512": 512,
    "full": None,
}
UINT8_MAX = 255


@dataclasses.dataclass(eq=False)
class ImageSizeConfig(tfds.core.BuilderConfig):
    """Builder config that fixes the stored image size.

    Args:
        image_size: length in pixels of the shorter image side after
            resizing (the aspect ratio is kept), or `None` to keep the
            original size.
    """

    image_size: int | None = None


def check_split_fraction(config, field):
    """Raise `ValueError` unless `config.<field>` is a split share in [0, 1)."""
    value = getattr(config, field)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{field}` must be in [0, 1). Received: {field}={value}")


def make_image_size_configs(config_class=ImageSizeConfig, **fields):
    """Create one config per entry of `IMAGE_SIZE_CONFIGS`.

    Args:
        config_class: the `ImageSizeConfig` subclass to instantiate.
        **fields: further fields given to every config.

    Returns:
        A list of configs named "64", "128", ..., "full".
    """
    configs = []
    for name, size in IMAGE_SIZE_CONFIGS.items():
        if size is None:
            description = "Images at their original size."
        else:
            description = (
                f"Images resized so that the shorter side is {size} pixels."
            )
        configs.append(
            config_class(
                name=name, image_size=size, description=description, **fields
            )
        )
    return configs


def resize_gray(image, image_size):
    """Resize a gray image and quantize it for storage.

    Args:
        image: float32 array `(H, W)` with values in `[0, 1]`.
        image_size: length of the shorter side after resizing, or `None` to
            keep the size. The longer side is scaled by the same factor and
            rounded, so the aspect ratio is kept.

    Returns:
        A uint8 array `(H', W', 1)`.
    """
    height, width = image.shape
    if image_size is not None and min(height, width) != image_size:
        scale = image_size / min(height, width)
        new_height = max(1, round(height * scale))
        new_width = max(1, round(width * scale))
        resized = Image.fromarray(image.astype(np.float32), mode="F").resize(
            (new_width, new_height), Image.Resampling.LANCZOS
        )
        image = np.asarray(resized)

    # Lanczos overshoots slightly at sharp edges, hence the clip.
    quantized = np.round(np.clip(image, 0.0, 1.0) * UINT8_MAX).astype(np.uint8)
    return quantized[..., np.newaxis]


def check_manual_files(manual_dir, required, instructions):
    """Raise one error listing every missing file or folder.

    Args:
        manual_dir: the manual-download folder.
        required: list of `(description, candidates)`, where `candidates` is
            a list of paths relative to `manual_dir` of which at least one
            must exist.
        instructions: the builder's download instructions, appended to the
            error.

    Raises:
        DatasetLayoutError: when any required entry is missing.
    """
    missing = []
    for description, candidates in required:
        if not any((manual_dir / name).exists() for name in candidates):
            alternatives = " or ".join(candidates)
            missing.append(f"  - {alternatives} ({description})")
    if missing:
        listing = "\n".join(missing)
        raise DatasetLayoutError(
            f"The manual folder {manual_dir} lacks:\n{listing}\n"
            f"Place the files as described below and run again.\n"
            f"{instructions}"
        )


class BadInputPolicy:
    """Raise on bad input, or skip it and count the skips.

    Args:
        skip: whether to skip bad items instead of raising.
    """

    def __init__(self, skip):
        self.skip = skip
        self.skipped = []

    def handle(self, error):
        """Raise `error` unless skipping is enabled, then record it."""
        if not self.skip:
            raise error
        logger.warning("Skipping bad input: %s", error)
        self.skipped.append(str(error))


class ManualImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders that read a manual folder of chest X-ray images.

    Args:
        skip_bad_input: whether bad items are skipped and counted instead of
            stopping preparation. `None` reads the environment variable
            `DISSECT_SKIP_BAD_INPUT` (`1` means skip).
        **kwargs: arguments of `tfds.core.GeneratorBasedBuilder`.
    """

    BUILDER_CONFIGS = make_image_size_configs()
    MAX_PIXELS = DEFAULT_MAX_PIXELS

    def __init__(self, *, skip_bad_input=None, **kwargs):
        super().__init__(**kwargs)
        # TFDS rebuilds builders from this state when pickling them.
        self._original_state["skip_bad_input"] = skip_bad_input
        if skip_bad_input is None:
            skip_bad_input = os.environ.get(SKIP_BAD_INPUT_VARIABLE) == "1"
        self.skip_bad_input = skip_bad_input
        self.bad_input = BadInputPolicy(skip_bad_input)
        self.skipped_input = []

    def _download_and_prepare(self, dl_manager, download_config=None):
        self.bad_input = BadInputPolicy(self.skip_bad_input)
        result = super()._download_and_prepare(
            dl_manager=dl_manager, download_config=download_config
        )
        self.skipped_input = list(self.bad_input.skipped)
        if self.skipped_input:
            logger.warning(
                "Prepared %s with %d bad items skipped (details above). Unset "
                "%s or pass skip_bad_input=False to stop on them instead.",
                self.name,
                len(self.skipped_input),
                SKIP_BAD_INPUT_VARIABLE,
            )
        return result

    def load_image(self, path):
        """Decode and resize an image, or return `None` if it is skipped."""
        try:
            image = read_image(path, max_pixels=self.MAX_PIXELS)
        except ImageDecodeError as error:
            self.bad_input.handle(error)
            return None
        return resize_gray(image, self.builder_config.image_size)

    def check_split_not_empty(self, split, count, source):
        """Raise when a split has no example, whatever the skip policy."""
        if count == 0:
            raise DatasetLayoutError(
                f"Split {split!r} has no example after reading {source}. "
                "Check that the split lists name images present in the "
                "manual folder."
            )


def split_by_patient(image_ids, patient_of, fraction, seed):
    """Move a seeded random `fraction` of the patients to a second list.

    Args:
        image_ids: image ids to split.
        patient_of: dict image id -> patient id.
        fraction: share of the patients to move, in `[0, 1)`.
        seed: seed of the permutation of the sorted patient ids.

    Returns:
        `(kept, moved)` lists of image ids, in the input order. No patient
        appears in both.
    """
    patients = sorted({patient_of[image_id] for image_id in image_ids})
    count = int(round(fraction * len(patients)))
    # A non-zero fraction of a small dataset still moves one patient, so the
    # second split is never empty by rounding alone.
    if fraction > 0 and patients:
        count = max(1, count)
    order = np.random.default_rng(seed).permutation(len(patients))
    moved_patients = {patients[index] for index in order[:count]}
    kept = [i for i in image_ids if patient_of[i] not in moved_patients]
    moved = [i for i in image_ids if patient_of[i] in moved_patients]
    return kept, moved
