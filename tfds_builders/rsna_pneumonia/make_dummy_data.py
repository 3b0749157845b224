"""Write the fake RSNA files in dummy_data/ (run from any folder).

The layout is the Kaggle one: `stage_2_train_labels.csv` and
`stage_2_train_images/<patientId>.dcm`, with 32 x 32 uncompressed DICOMs.
"""

import pathlib

import numpy as np

from keras_dissect_tfds.siim_acr_pneumothorax.make_dummy_data import fake_radiograph
from keras_dissect_tfds.siim_acr_pneumothorax.make_dummy_data import write_dicom

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
# patientId -> boxes (x, y, width, height) in pixels; no box means Target 0.
IMAGES = {
    f"0000000{index}-fake-rsna": boxes
    for index, boxes in enumerate(
        [[], [(4, 6, 8, 10)], [], [(2, 2, 5, 5), (20, 10, 6, 12)], [], [], [(10, 10, 4, 4)], [], [], []]
    )
}


def main():
    rng = np.random.default_rng(1)
    lines = ["patientId,x,y,width,height,Target"]
    for patient_id, boxes in IMAGES.items():
        write_dicom(DUMMY_DIR / "stage_2_train_images" / f"{patient_id}.dcm", fake_radiograph(rng), patient_id)
        if not boxes:
            lines.append(f"{patient_id},,,,,0")
        for x, y, width, height in boxes:
            lines.append(f"{patient_id},{x}.0,{y}.0,{width}.0,{height}.0,1")
    (DUMMY_DIR / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
