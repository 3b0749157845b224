"""Exceptions raised for bad input files."""


class ImageDecodeError(ValueError):
    """An image file is missing, empty, truncated, corrupt or implausible.

    The message names the file and says what to do about it.
    """


class DatasetLayoutError(ValueError):
    """A manual-download folder or label file does not match the expected layout."""
