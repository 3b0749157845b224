"""Resolve file paths read from label files inside a manual-download folder."""

import os
import pathlib

from keras_dissect.data.errors import DatasetLayoutError


def resolve_manual_path(manual_dir, relative_path, source=None):
    """Join a path read from a CSV file to the manual folder, safely.

    The path must be relative and must stay inside `manual_dir` once `.` and
    `..` parts are removed, so a crafted label file cannot make a builder
    read files elsewhere on the machine. The check is lexical: symbolic links
    placed inside the manual folder by the user (for example to images on
    another disk) are followed as usual.

    Args:
        manual_dir: the manual-download folder.
        relative_path: the path as written in the label file, with `/` or the
            platform's separator.
        source: where the path was read (for example `"train.csv, row 12"`),
            quoted in the error message.

    Returns:
        The joined `pathlib.Path`.

    Raises:
        DatasetLayoutError: when the path is empty, absolute, or escapes
            `manual_dir`.
    """
    where = f" ({source})" if source else ""
    text = str(relative_path).strip()
    if not text:
        raise DatasetLayoutError(
            f"Empty file path{where}. Fix or remove that row of the label "
            "file."
        )

    # Windows-style separators in a label file are accepted everywhere.
    text = text.replace("\\", "/")
    if text.startswith("/") or pathlib.PureWindowsPath(text).drive:
        raise DatasetLayoutError(
            f"File path {relative_path!r}{where} is absolute, but label files "
            f"must give paths relative to the manual folder {manual_dir}. "
            "Fix that row of the label file."
        )

    root = os.path.normpath(os.path.abspath(manual_dir))
    joined = os.path.normpath(os.path.join(root, *text.split("/")))
    if os.path.commonpath([root, joined]) != root:
        raise DatasetLayoutError(
            f"File path {relative_path!r}{where} points outside the manual "
            f"folder {manual_dir}. Fix that row of the label file; paths may "
            "not climb out of the folder with '..'."
        )
    return pathlib.Path(joined)
