"""Run-length encoding of SIIM-ACR pneumothorax masks.

The SIIM-ACR `train-rle.csv` stores each mask as space-separated pairs
`offset length`. Pixels are numbered in column-major order (down the first
column, then the next), starting at 0. The first offset is the index of the
first masked pixel; every later offset counts the background pixels between
the end of the previous run and the start of the next one. `-1` marks an
image without pneumothorax. One image may have several rows, one per region,
and its mask is their union.

Example:

```python
mask = rle_decode("5 2 3 1", shape=(4, 4))
# Pixels 5, 6 and 10 in column-major order: (1, 1), (2, 1) and (2, 2).
assert rle_encode(mask) == "5 2 3 1"
```
"""

import numpy as np

SIIM_MASK_SHAPE = (1024, 1024)
EMPTY_MASK_CODE = "-1"


def _describe(encoded):
    # Masks of large regions run to thousands of characters; the start of the
    # string is enough to find the offending row.
    text = str(encoded)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_runs(encoded, shape=SIIM_MASK_SHAPE):
    """Parse a run-length string into absolute column-major runs.

    Args:
        encoded: string of `offset length` pairs, or `-1` for an empty mask.
            Surrounding whitespace is ignored.
        shape: `(H, W)` of the mask the string describes.

    Returns:
        A pair `(starts, lengths)` of int64 arrays with one entry per run,
        `starts` being absolute indices into the column-major flattened mask.

    Raises:
        ValueError: the string is not a sequence of non-negative integer
            pairs with positive lengths, or a run ends past the last pixel.
    """
    height, width = _check_shape(shape)
    text = str(encoded).strip()
    if text == EMPTY_MASK_CODE:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    tokens = text.split()
    if not tokens:
        raise ValueError(
            "Invalid run-length encoding: the string is empty; an image without "
            f"mask is written {EMPTY_MASK_CODE}. Received: encoded={_describe(encoded)}"
        )
    if len(tokens) % 2:
        raise ValueError(
            "Invalid run-length encoding: expected `offset length` pairs but got "
            f"an odd number of values ({len(tokens)}). "
            f"Received: encoded={_describe(encoded)}"
        )
    try:
        values = np.array([int(token) for token in tokens], dtype=np.int64)
    except ValueError:
        raise ValueError(
            "Invalid run-length encoding: every value must be an integer. "
            f"Received: encoded={_describe(encoded)}"
        ) from None

    offsets, lengths = values[0::2], values[1::2]
    if (offsets < 0).any():
        raise ValueError(
            "Invalid run-length encoding: offsets must be >= 0. "
            f"Received: encoded={_describe(encoded)}"
        )
    if (lengths <= 0).any():
        raise ValueError(
            "Invalid run-length encoding: run lengths must be > 0. "
            f"Received: encoded={_describe(encoded)}"
        )

    # Each offset is relative to the end of the previous run, so the absolute
    # end of run k is the sum of all offsets and lengths up to k.
    ends = np.cumsum(offsets + lengths)
    starts = ends - lengths
    if ends[-1] > height * width:
        raise ValueError(
            f"Invalid run-length encoding: the runs end at pixel {ends[-1]}, past "
            f"the {height * width} pixels of a {height}x{width} mask. Check the "
            f"mask shape. Received: encoded={_describe(encoded)}"
        )
    return starts, lengths


def rle_decode(encoded, shape=SIIM_MASK_SHAPE):
    """Decode one SIIM-ACR run-length string into a binary mask.

    Args:
        encoded: string of `offset length` pairs, or `-1` for an empty mask.
        shape: `(H, W)` of the mask, `(1024, 1024)` for SIIM-ACR.

    Returns:
        uint8 array `(H, W)` with 1 inside the runs and 0 elsewhere.

    Raises:
        ValueError: the string is malformed (see `parse_runs`).
    """
    height, width = _check_shape(shape)
    starts, lengths = parse_runs(encoded, shape)
    mask = np.zeros((height, width), dtype=np.uint8)

    # The pixel indices of all runs at once: a running index over the masked
    # pixels, shifted by how far each run starts after the previous run ends.
    total = int(lengths.sum())
    if total:
        shifts = starts - (np.cumsum(lengths) - lengths)
        indices = np.arange(total) + np.repeat(shifts, lengths)

        # Column-major order: index = column * H + row.
        mask[indices % height, indices // height] = 1
    return mask


def rle_decode_union(encodings, shape=SIIM_MASK_SHAPE):
    """Decode several run-length strings of one image into their union.

    Args:
        encodings: iterable of run-length strings (each may be `-1`).
        shape: `(H, W)` of the mask.

    Returns:
        uint8 array `(H, W)` with 1 where any string marks a pixel.
    """
    mask = np.zeros(_check_shape(shape), dtype=np.uint8)
    for encoded in encodings:
        np.maximum(mask, rle_decode(encoded, shape), out=mask)
    return mask


def rle_encode(mask):
    """Encode a binary mask as a SIIM-ACR run-length string.

    Args:
        mask: array `(H, W)`; every non-zero pixel counts as masked.

    Returns:
        The run-length string, or `-1` when the mask is empty.

    Raises:
        ValueError: `mask` is not two-dimensional.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"`mask` must be a 2-D array (H, W). Received: mask.shape={mask.shape}"
        )
    # Only the band of columns that contain masked pixels is searched, because
    # a column-major search copies what it searches and masks are mostly
    # background.
    columns = np.flatnonzero(mask.any(axis=0))
    if not columns.size:
        return EMPTY_MASK_CODE
    first, last = columns[0], columns[-1] + 1
    indices = np.flatnonzero(mask[:, first:last].T) + first * mask.shape[0]

    # A new run begins wherever the next masked pixel is not adjacent.
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = indices[np.concatenate([[0], breaks])]
    ends = indices[np.concatenate([breaks - 1, [indices.size - 1]])] + 1
    previous_ends = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1)
    return " ".join(str(value) for value in pairs.ravel())


def _check_shape(shape):
    try:
        height, width = (int(size) for size in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`shape` must be a pair (H, W) of positive integers. Received: shape={shape}"
        ) from None
    if height <= 0 or width <= 0:
        raise ValueError(
            f"`shape` must be a pair (H, W) of positive integers. Received: shape={shape}"
        )
    return height, width
