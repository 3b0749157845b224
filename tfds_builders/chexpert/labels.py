"""Read the CheXpert `train.csv` / `valid.csv` label files."""

import csv
import dataclasses
import re

import numpy as np

from keras_dissect.data.errors import DatasetLayoutError

# The 14 observations in the column order of the CheXpert label files.
CHEXPERT_OBSERVATIONS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# The five observations of the CheXpert competition.
COMPETITION_TASKS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)
POSITIVE = 1
NEGATIVE = 0
UNCERTAIN = -1
UNMENTIONED = -2
# Cell text -> state. The files write floats; a blank cell is unmentioned.
STATE_OF_CELL = {
    "1.0": POSITIVE,
    "1": POSITIVE,
    "0.0": NEGATIVE,
    "0": NEGATIVE,
    "-1.0": UNCERTAIN,
    "-1": UNCERTAIN,
    "": UNMENTIONED,
}
UNKNOWN_AGE = -1
METADATA_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
PATH_PATTERN = re.compile(
    r"^(?P<root>CheXpert-v1\.0(?:-small)?)/(?P<split>train|valid)/"
    r"(?P<patient>patient\d+)/(?P<study>study\d+)/(?P<view>view\d+_\w+)\.jpg$"
)


@dataclasses.dataclass
class Record:
    """One row of a CheXpert label file."""

    path: str
    image_id: str
    patient_id: str
    study_id: str
    observations: np.ndarray
    sex: str
    age: int
    frontal_lateral: str
    ap_pa: str
    source: str


def read_chexpert_csv(path, bad_input, opener=open):
    """Parse a CheXpert label file into a list of `Record`s.

    Args:
        path: path of `train.csv` or `valid.csv`.
        bad_input: a `BadInputPolicy`; bad rows go through `handle`.
        opener: function opening `path` as text (for example `gzip.open`
            with mode `"rt"`).

    Returns:
        Records in file order, with `observations` int8 `(14,)` in the order
        of `CHEXPERT_OBSERVATIONS`.
    """
    records = []
    seen = {}
    name = getattr(path, "name", str(path))
    with opener(path, "rt", newline="") as file:
        reader = csv.DictReader(file)
        expected = METADATA_COLUMNS + CHEXPERT_OBSERVATIONS
        missing = [c for c in expected if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(
                f"Label file {path} lacks the columns {missing}. Use the "
                "train.csv and valid.csv of the CheXpert release unchanged."
            )
        for row_number, row in enumerate(reader, start=2):
            source = f"{name}, line {row_number}"
            try:
                record = _parse_row(row, source)
                if record.image_id in seen:
                    raise DatasetLayoutError(
                        f"Duplicate image path {record.path!r} in {source} "
                        f"(first seen in {seen[record.image_id]}). Remove the "
                        "duplicate row."
                    )
            except DatasetLayoutError as error:
                bad_input.handle(error)
                continue
            seen[record.image_id] = source
            records.append(record)
    return records


def _parse_row(row, source):
    path = row["Path"].strip()
    match = PATH_PATTERN.match(path)
    if not match:
        raise DatasetLayoutError(
            f"Unexpected image path {path!r} in {source}: expected "
            "CheXpert-v1.0[-small]/{train,valid}/patientN/studyN/viewN_x.jpg. "
            "Fix or remove that row."
        )

    observations = np.empty(len(CHEXPERT_OBSERVATIONS), dtype=np.int8)
    for index, column in enumerate(CHEXPERT_OBSERVATIONS):
        cell = (row[column] or "").strip()
        if cell not in STATE_OF_CELL:
            raise DatasetLayoutError(
                f"Invalid value {cell!r} in column {column!r} of {source}. "
                "Valid values are 1.0, 0.0, -1.0 or blank; fix that row."
            )
        observations[index] = STATE_OF_CELL[cell]

    age_text = (row["Age"] or "").strip()
    age = int(age_text) if age_text.isdigit() else UNKNOWN_AGE
    # The image id drops the release folder, so both layouts give one id.
    image_id = path.split("/", 1)[1]
    return Record(
        path=path,
        image_id=image_id,
        patient_id=match.group("patient"),
        study_id=f"{match.group('patient')}/{match.group('study')}",
        observations=observations,
        sex=(row["Sex"] or "").strip(),
        age=age,
        frontal_lateral=(row["Frontal/Lateral"] or "").strip(),
        ap_pa=(row["AP/PA"] or "").strip(),
        source=source,
    )
