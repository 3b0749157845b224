"""Procedural chest-radiograph phantoms with findings, masks and a spurious marker.

Each phantom is a frontal (PA) chest radiograph drawn in NumPy directly at the
requested size: body outline, two lungs with branching vessel texture, ribs and
clavicles, spine, heart and both hemidiaphragms, with random positioning,
exposure and noise. Five findings can be present, independently:

- `nodule`: a small round opacity in a lung.
- `effusion`: fluid filling the base of a lung up to a meniscus.
- `pneumothorax`: a crescent of air without lung markings along the apex and
  lateral wall of a lung, bounded by a thin pleural line.
- `cardiomegaly`: a heart wider than half the thorax.
- `consolidation`: a patchy opacity inside a lung.

All but cardiomegaly come with a pixel mask (`MASK_FINDINGS`). Cardiomegaly is
a global finding: the heart is drawn in every image, so it has no mask.

An optional spurious marker, a bright letter-like tag in an upper corner, can
be tied to one finding: with `marker_finding="pneumothorax"` and
`marker_probability=(0.9, 0.1)`, 90 % of images with pneumothorax carry the
tag and 10 % of those without. A model trained on such images and tested on
images with `marker_probability=(0.5, 0.5)` reveals shortcut learning.

Every phantom is a pure function of its seed, so the same seed gives the same
patient at every size (only the pixel noise is drawn per size).

Example:

```python
batch = generate_phantoms(16, image_size=64, seed=0)
batch["image"].shape  # (16, 64, 64, 1), float32 in [0, 1]
batch["labels"].shape  # (16, 5), multi-hot in FINDINGS order
batch["mask"].shape  # (16, 64, 64, 1), uint8 union of the finding masks
```
"""

import numpy as np

from keras_dissect.data import phantom_anatomy

FINDINGS = ("nodule", "effusion", "pneumothorax", "cardiomegaly", "consolidation")
MASK_FINDINGS = ("nodule", "effusion", "pneumothorax", "consolidation")
DEFAULT_FINDING_PROBABILITY = 0.2
# Train-time marker probabilities (given the finding, given its absence).
DEFAULT_MARKER_PROBABILITY = (0.9, 0.1)
MIN_IMAGE_SIZE = 16
# Parameters of a mask-bearing finding are redrawn this many times when its
# mask misses the lung at the current size. Afterwards the finding is dropped,
# so that a label never lacks its mask.
MAX_FINDING_ATTEMPTS = 8


def generate_phantom(
    seed,
    image_size=64,
    finding_probability=DEFAULT_FINDING_PROBABILITY,
    marker_finding=None,
    marker_probability=DEFAULT_MARKER_PROBABILITY,
):
    """Generate one phantom radiograph with its labels and masks.

    Args:
        seed: int or sequence of ints for `np.random.default_rng`; the phantom
            is a deterministic function of it.
        image_size: side `S` of the square image in pixels, at least 16.
        finding_probability: probability of each finding, a float or a
            sequence with one value per entry of `FINDINGS`.
        marker_finding: name of the finding the spurious marker follows, or
            `None` for no marker.
        marker_probability: pair (probability of the marker when
            `marker_finding` is present, probability when it is absent).

    Returns:
        A dict with `"image"` float32 `(S, S)` in [0, 1], `"labels"` float32
        `(5,)` multi-hot in `FINDINGS` order, `"finding_masks"` uint8
        `(S, S, 4)` with one 0/1 channel per entry of `MASK_FINDINGS`,
        `"mask"` uint8 `(S, S)` their union, `"has_marker"` bool, and
        `"marker_box"` float32 `(4,)` as `(ymin, xmin, ymax, xmax)` in [0, 1]
        (zeros without marker).
    """
    image_size = _check_image_size(image_size)
    probabilities = _check_finding_probability(finding_probability)
    marker_index, marker_probability = _check_marker(marker_finding, marker_probability)
    rng = np.random.default_rng(seed)

    # Scalars first, in a fixed order, so that the patient does not depend on
    # the image size; pixel noise is drawn last.
    present = rng.random(len(FINDINGS)) < probabilities
    anatomy = phantom_anatomy.draw_anatomy(rng, cardiomegaly=bool(present[3]))
    finding_params = {
        name: [phantom_anatomy.draw_finding(rng, name, anatomy) for _ in range(MAX_FINDING_ATTEMPTS)]
        for name in MASK_FINDINGS
    }
    texture_grids = phantom_anatomy.draw_texture_grids(rng)
    marker_roll, marker_corner = rng.random(), int(rng.integers(2))
    render = phantom_anatomy.draw_render_params(rng)

    grid = phantom_anatomy.coordinate_grid(image_size, anatomy)
    parts = phantom_anatomy.render_anatomy(grid, anatomy, texture_grids)

    labels = present.astype(np.float32)
    finding_masks = np.zeros((image_size, image_size, len(MASK_FINDINGS)), np.uint8)
    for channel, name in enumerate(MASK_FINDINGS):
        index = FINDINGS.index(name)
        if not present[index]:
            continue
        for params in finding_params[name]:
            density, mask = phantom_anatomy.render_finding(grid, parts, name, params, texture_grids)
            if mask.any():
                parts["density"] = parts["density"] + density
                finding_masks[..., channel] = mask
                break
        else:
            labels[index] = 0.0

    image = phantom_anatomy.expose(parts["density"], render, rng)

    has_marker = False
    marker_box = np.zeros(4, np.float32)
    if marker_index is not None:
        given_present, given_absent = marker_probability
        threshold = given_present if labels[marker_index] else given_absent
        has_marker = bool(marker_roll < threshold)
    if has_marker:
        marker_box = phantom_anatomy.draw_marker(image, marker_corner)

    return {
        "image": image,
        "labels": labels,
        "finding_masks": finding_masks,
        "mask": finding_masks.max(axis=-1),
        "has_marker": has_marker,
        "marker_box": marker_box,
    }


def generate_phantoms(
    num_images,
    image_size=64,
    seed=0,
    start_index=0,
    finding_probability=DEFAULT_FINDING_PROBABILITY,
    marker_finding=None,
    marker_probability=DEFAULT_MARKER_PROBABILITY,
):
    """Generate a batch of phantoms as stacked NumPy arrays, without TFDS.

    Image `i` of the batch is `generate_phantom((seed, start_index + i), ...)`,
    so batches can be generated in pieces with the same result.

    Args:
        num_images: number of images `N`.
        image_size: side `S` of the square images in pixels.
        seed: int seed of the whole set.
        start_index: index of the first image within the set.
        finding_probability: see `generate_phantom`.
        marker_finding: see `generate_phantom`.
        marker_probability: see `generate_phantom`.

    Returns:
        A dict with `"image"` float32 `(N, S, S, 1)`, `"labels"` float32
        `(N, 5)`, `"mask"` uint8 `(N, S, S, 1)`, `"finding_masks"` uint8
        `(N, S, S, 4)`, `"has_marker"` bool `(N,)` and `"marker_box"` float32
        `(N, 4)`.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 0:
        raise ValueError(
            f"`num_images` must be a non-negative integer. Received: num_images={num_images!r}"
        )
    image_size = _check_image_size(image_size)
    phantoms = [
        generate_phantom(
            (int(seed), int(start_index) + index),
            image_size=image_size,
            finding_probability=finding_probability,
            marker_finding=marker_finding,
            marker_probability=marker_probability,
        )
        for index in range(num_images)
    ]
    empty_shapes = {
        "image": (0, image_size, image_size),
        "labels": (0, len(FINDINGS)),
        "finding_masks": (0, image_size, image_size, len(MASK_FINDINGS)),
        "mask": (0, image_size, image_size),
        "has_marker": (0,),
        "marker_box": (0, 4),
    }
    batch = {}
    for key, shape in empty_shapes.items():
        if phantoms:
            batch[key] = np.stack([phantom[key] for phantom in phantoms])
        else:
            batch[key] = np.zeros(shape, np.float32)
    batch["image"] = batch["image"][..., np.newaxis].astype(np.float32)
    batch["mask"] = batch["mask"][..., np.newaxis].astype(np.uint8)
    batch["finding_masks"] = batch["finding_masks"].astype(np.uint8)
    batch["has_marker"] = batch["has_marker"].astype(bool)
    return batch


def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(
            f"`image_size` must be an integer >= {MIN_IMAGE_SIZE}. Received: image_size={image_size!r}"
        )
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"`image_size` must be an integer >= {MIN_IMAGE_SIZE}. Received: image_size={image_size}"
        )
    return int(image_size)


def _check_finding_probability(finding_probability):
    probabilities = np.broadcast_to(
        np.asarray(finding_probability, dtype=np.float64), (len(FINDINGS),)
    ) if np.ndim(finding_probability) == 0 else np.asarray(finding_probability, dtype=np.float64)
    if probabilities.shape != (len(FINDINGS),) or not ((probabilities >= 0) & (probabilities <= 1)).all():
        raise ValueError(
            "`finding_probability` must be a probability or one probability per "
            f"finding {FINDINGS}. Received: finding_probability={finding_probability!r}"
        )
    return probabilities


def _check_marker(marker_finding, marker_probability):
    if marker_finding is None:
        return None, None
    if marker_finding not in FINDINGS:
        raise ValueError(
            f"`marker_finding` must be None or one of {FINDINGS}. "
            f"Received: marker_finding={marker_finding!r}"
        )
    try:
        given_present, given_absent = (float(value) for value in marker_probability)
    except (TypeError, ValueError):
        given_present = given_absent = -1.0
    if not (0 <= given_present <= 1 and 0 <= given_absent <= 1):
        raise ValueError(
            "`marker_probability` must be a pair of probabilities (given the "
            "finding, given its absence). "
            f"Received: marker_probability={marker_probability!r}"
        )
    return FINDINGS.index(marker_finding), (given_present, given_absent)
