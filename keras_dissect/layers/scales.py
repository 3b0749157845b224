"""Names and strides of the feature-map scales that DiSSECT quantizes."""

# Output stride of each scale relative to the input image, from the ResNet
# stages the scales are taken from: stage 2, stage 3 and stage 4.
SCALE_STRIDES = {"fine": 8, "medium": 16, "coarse": 32}
SCALES = tuple(SCALE_STRIDES)


def check_scale_names(names, argument):
    """Raise a `ValueError` naming `argument` if a name is not a known scale."""
    unknown = [name for name in names if name not in SCALE_STRIDES]
    if unknown:
        raise ValueError(
            f"`{argument}` may only contain the scales {list(SCALES)}, but "
            f"{unknown} is not one of them. Received: {argument}={names!r}"
        )


def ordered_scales(names):
    """Return `names` in the order fine, medium, coarse."""
    return tuple(scale for scale in SCALES if scale in names)
