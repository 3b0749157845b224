"""Write the fake NIH ChestX-ray14 files in `dummy_data/`.

Run `python tfds_builders/nih_chest_xray14/make_dummy_data.py` from the
project root. The files follow the Kaggle layout (`images_001/images/`,
`images_002/images/`) with tiny 16 x 16 images: 8-bit gray, one RGBA file with
equal channels and one 16-bit file, as the real release mixes such files.
"""

import pathlib

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
IMAGE_SIZE = 16
DATA_ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
    "Patient Gender,View Position,OriginalImage[Width,Height],"
    "OriginalImagePixelSpacing[x,y]"
)

# (image id, findings, patient id, split). Patients 1 and 2 have two images
# each so that the patient-level validation split is exercised.
FAKE_ROWS = [
    ("00000001_000.png", "Cardiomegaly", 1, "train_val"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, "train_val"),
    ("00000002_000.png", "No Finding", 2, "train_val"),
    ("00000002_001.png", "Effusion|Infiltration", 2, "train_val"),
    ("00000003_000.png", "Atelectasis", 3, "train_val"),
    ("00000004_000.png", "Mass|Nodule", 4, "train_val"),
    ("00000005_000.png", "Pneumonia", 5, "train_val"),
    ("00000006_000.png", "Pneumothorax", 6, "train_val"),
    ("00000007_000.png", "Consolidation|Edema", 7, "train_val"),
    ("00000008_000.png", "Fibrosis", 8, "train_val"),
    ("00000009_000.png", "Pleural_Thickening", 9, "test"),
    ("00000010_000.png", "Hernia", 10, "test"),
    ("00000011_000.png", "No Finding", 11, "test"),
    ("00000011_001.png", "Nodule", 11, "test"),
]
FAKE_BOXES = [
    ("00000001_000.png", "Cardiomegaly", 300.5, 400.0, 420.25, 310.0),
    ("00000004_000.png", "Nodule", 700.0, 350.0, 60.0, 48.0),
    ("00000004_000.png", "Mass", 100.0, 120.0, 200.0, 180.0),
    ("00000011_001.png", "Infiltrate", 900.0, 900.0, 200.0, 200.0),
]
RGBA_IMAGE = "00000003_000.png"
WIDE_IMAGE = "00000009_000.png"


def write_image(path, index):
    """Write one small gradient image whose brightness depends on `index`."""
    ramp = np.linspace(0, 1, IMAGE_SIZE, dtype=np.float32)
    gray = np.outer(ramp, ramp) * (0.5 + 0.03 * index)
    if path.name == WIDE_IMAGE:
        Image.fromarray((gray * 65535).astype(np.uint16)).save(path)
        return
    pixels = (gray * 255).astype(np.uint8)
    if path.name == RGBA_IMAGE:
        alpha = np.full_like(pixels, 255)
        pixels = np.stack([pixels, pixels, pixels, alpha], axis=-1)
    Image.fromarray(pixels).save(path)


def main():
    lines = [DATA_ENTRY_HEADER]
    lists = {"train_val": [], "test": []}
    for index, (image_id, findings, patient, split) in enumerate(FAKE_ROWS):
        follow_up = int(image_id[9:12])
        sex = "M" if patient % 2 else "F"
        view = "PA" if index % 3 else "AP"
        lines.append(
            f"{image_id},{findings},{follow_up},{patient},{30 + index},{sex},"
            f"{view},1024,1024,0.143,0.143"
        )
        lists[split].append(image_id)

        # Half of the images in each archive folder, as the Kaggle copy has.
        folder = DUMMY_DIR / f"images_00{1 + index % 2}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / image_id, index)

    (DUMMY_DIR / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    (DUMMY_DIR / "train_val_list.txt").write_text("\n".join(lists["train_val"]) + "\n")
    (DUMMY_DIR / "test_list.txt").write_text("\n".join(lists["test"]) + "\n")

    box_lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    for image_id, finding, x, y, width, height in FAKE_BOXES:
        box_lines.append(f"{image_id},{finding},{x},{y},{width},{height}")
    (DUMMY_DIR / "BBox_List_2017.csv").write_text("\n".join(box_lines) + "\n")


if __name__ == "__main__":
    main()
