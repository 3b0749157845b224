"""Read the NIH ChestX-ray14 label files, split lists and image folders."""

import csv
import dataclasses
import os
import re

import numpy as np

from keras_dissect.data.errors import DatasetLayoutError

# The 14 findings, in the order of the ChestX-ray14 release notes (the 8 of
# ChestX-ray8 first). "No Finding" is stored separately.
NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
# BBox_List_2017.csv spells one finding differently from Data_Entry.
BOX_FINDING_ALIASES = {"Infiltrate": "Infiltration"}
# Box coordinates refer to the 1024 x 1024 pixel images of the release, even
# where a user's copy of an image was downscaled.
NIH_IMAGE_SIZE = 1024

DATA_ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
BOX_FILE = "BBox_List_2017.csv"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
IMAGE_SUFFIX = ".png"

DATA_ENTRY_COLUMNS = {
    "image_id": "Image Index",
    "findings": "Finding Labels",
    "follow_up": "Follow-up #",
    "patient_id": "Patient ID",
    "age": "Patient Age",
    "sex": "Patient Gender",
    "view_position": "View Position",
}
UNKNOWN_AGE = -1
UNKNOWN_FOLLOW_UP = -1
# Ages are plain integers in the 2020 file and may read "058Y" in older copies.
AGE_PATTERN = re.compile(r"^\s*(\d+)\s*[YyMmDd]?\s*$")


@dataclasses.dataclass
class Record:
    """One row of `Data_Entry_2017*.csv`, with the findings parsed."""

    image_id: str
    patient_id: str
    labels: np.ndarray
    no_finding: bool
    age: int
    sex: str
    view_position: str
    follow_up: int
    source: str


def read_data_entry(path, bad_input):
    """Parse the label CSV into a dict image id -> `Record`.

    Args:
        path: path of `Data_Entry_2017_v2020.csv` or `Data_Entry_2017.csv`.
        bad_input: a `BadInputPolicy`; bad rows go through `handle`.

    Returns:
        A dict mapping image ids (file names such as `00000001_000.png`) to
        records.
    """
    records = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [
            column
            for column in DATA_ENTRY_COLUMNS.values()
            if column not in (reader.fieldnames or [])
        ]
        if missing:
            raise DatasetLayoutError(
                f"Label file {path} lacks the columns {missing}. Use the "
                "Data_Entry_2017_v2020.csv file of the NIH release unchanged."
            )
        for row_number, row in enumerate(reader, start=2):
            source = f"{path.name}, line {row_number}"
            try:
                record = _parse_row(row, source)
                if record.image_id in records:
                    raise DatasetLayoutError(
                        f"Duplicate image id {record.image_id!r} in {source} "
                        f"(first seen in {records[record.image_id].source}). "
                        "Remove the duplicate row."
                    )
            except DatasetLayoutError as error:
                bad_input.handle(error)
                continue
            records[record.image_id] = record
    return records


def _parse_row(row, source):
    image_id = row[DATA_ENTRY_COLUMNS["image_id"]].strip()
    if not image_id:
        raise DatasetLayoutError(
            f"Empty image id in {source}. Fix or remove that row."
        )

    names = [
        name.strip()
        for name in row[DATA_ENTRY_COLUMNS["findings"]].split("|")
        if name.strip()
    ]
    labels = np.zeros(len(NIH_FINDINGS), dtype=np.float32)
    no_finding = False
    for name in names:
        if name == NO_FINDING:
            no_finding = True
        elif name in NIH_FINDINGS:
            labels[NIH_FINDINGS.index(name)] = 1.0
        else:
            raise DatasetLayoutError(
                f"Unknown finding {name!r} in {source} (image {image_id}). "
                f"Valid names are {list(NIH_FINDINGS) + [NO_FINDING]}; fix "
                "or remove that row."
            )
    if not names or (no_finding and labels.any()):
        raise DatasetLayoutError(
            f"Invalid finding labels {row[DATA_ENTRY_COLUMNS['findings']]!r} "
            f"in {source} (image {image_id}): give one or more findings, or "
            f"{NO_FINDING!r} alone. Fix or remove that row."
        )

    return Record(
        image_id=image_id,
        patient_id=row[DATA_ENTRY_COLUMNS["patient_id"]].strip(),
        labels=labels,
        no_finding=no_finding,
        age=_parse_age(row[DATA_ENTRY_COLUMNS["age"]]),
        sex=row[DATA_ENTRY_COLUMNS["sex"]].strip(),
        view_position=row[DATA_ENTRY_COLUMNS["view_position"]].strip(),
        follow_up=_parse_int(row[DATA_ENTRY_COLUMNS["follow_up"]], UNKNOWN_FOLLOW_UP),
        source=source,
    )


def _parse_age(text):
    match = AGE_PATTERN.match(text or "")
    return int(match.group(1)) if match else UNKNOWN_AGE


def _parse_int(text, default):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def read_split_list(path):
    """Read a split list (one image id per line), rejecting duplicates."""
    image_ids = []
    seen = set()
    with open(path) as file:
        for line_number, line in enumerate(file, start=1):
            image_id = line.strip()
            if not image_id:
                continue
            if image_id in seen:
                raise DatasetLayoutError(
                    f"Duplicate image id {image_id!r} in {path.name}, line "
                    f"{line_number}. Remove the duplicate line."
                )
            seen.add(image_id)
            image_ids.append(image_id)
    return image_ids


def read_boxes(path, bad_input):
    """Parse `BBox_List_2017.csv` into image id -> list of `(bbox, finding)`.

    Boxes are returned as `(ymin, xmin, ymax, xmax)` normalized by the
    1024-pixel size of the release images and clipped to `[0, 1]`.
    """
    boxes = {}
    with open(path, newline="") as file:
        reader = csv.reader(file)
        next(reader, None)
        for row_number, row in enumerate(reader, start=2):
            source = f"{path.name}, line {row_number}"
            try:
                image_id, finding, box = _parse_box_row(row, source)
            except DatasetLayoutError as error:
                bad_input.handle(error)
                continue
            boxes.setdefault(image_id, []).append((box, finding))
    return boxes


def _parse_box_row(row, source):
    if len(row) < 6 or not row[0].strip():
        raise DatasetLayoutError(
            f"Invalid box row in {source}: expected image id, finding, x, y, "
            f"w, h. Received: {row}"
        )
    image_id = row[0].strip()
    finding = BOX_FINDING_ALIASES.get(row[1].strip(), row[1].strip())
    if finding not in NIH_FINDINGS:
        raise DatasetLayoutError(
            f"Unknown finding {row[1]!r} in {source} (image {image_id}). "
            f"Valid names are {list(NIH_FINDINGS)}; fix or remove that row."
        )
    try:
        x, y, width, height = (float(value) for value in row[2:6])
    except ValueError as error:
        raise DatasetLayoutError(
            f"Invalid box coordinates {row[2:6]} in {source}. Fix or remove "
            "that row."
        ) from error
    corners = np.array([y, x, y + height, x + width]) / NIH_IMAGE_SIZE
    box = np.clip(corners, 0.0, 1.0).astype(np.float32)
    return image_id, finding, box


def find_images(manual_dir, bad_input):
    """Map image ids to files in `images/` or `images_XXX/images/`."""
    folders = []
    if (manual_dir / "images").is_dir():
        folders.append(manual_dir / "images")
    for entry in sorted(manual_dir.glob("images_*")):
        if (entry / "images").is_dir():
            folders.append(entry / "images")

    paths = {}
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.lower().endswith(IMAGE_SUFFIX):
                    continue
                path = folder / entry.name
                if entry.name in paths:
                    bad_input.handle(
                        DatasetLayoutError(
                            f"Image {entry.name} is present twice: "
                            f"{paths[entry.name]} and {path}. Delete one copy."
                        )
                    )
                    continue
                paths[entry.name] = path
    return paths
