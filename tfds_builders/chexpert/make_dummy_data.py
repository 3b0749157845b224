"""Write the fake CheXpert files in `dummy_data/`.

Run `python tfds_builders/chexpert/make_dummy_data.py` from the project root.
The files follow the `CheXpert-v1.0-small` layout with tiny 20 x 16 JPEGs
(non-square, as the real images are) and CSV rows that use every state.
"""

import pathlib

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
ROOT = "CheXpert-v1.0-small"
HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,"
    "Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,"
    "Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,"
    "Support Devices"
)
# (split, patient, study, view, sex, age, frontal/lateral, AP/PA, 14 cells)
FAKE_ROWS = [
    ("train", 1, 1, "view1_frontal", "Female", 68, "Frontal", "AP",
     "1.0,,,,,,,,,0.0,,,,1.0"),
    ("train", 2, 2, "view1_frontal", "Female", 87, "Frontal", "AP",
     ",,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,"),
    ("train", 2, 1, "view1_frontal", "Female", 83, "Frontal", "AP",
     ",,,1.0,,,-1.0,,,,,,1.0,"),
    ("train", 2, 1, "view2_lateral", "Female", 83, "Lateral", "",
     ",,,1.0,,,-1.0,,,,,,1.0,"),
    ("train", 3, 1, "view1_frontal", "Male", 41, "Frontal", "AP",
     ",,,,,1.0,,,,0.0,,,,"),
    ("train", 4, 1, "view1_frontal", "Female", 20, "Frontal", "PA",
     "1.0,0.0,,,,,,,,0.0,,,,"),
    ("train", 5, 1, "view1_frontal", "Male", 33, "Frontal", "PA",
     ",,1.0,,,,,,,,1.0,,,"),
    ("train", 5, 1, "view2_lateral", "Male", 33, "Lateral", "",
     ",,1.0,,,,,,,,1.0,,,"),
    ("valid", 64541, 1, "view1_frontal", "Male", 73, "Frontal", "AP",
     "0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0"),
    ("valid", 64542, 1, "view1_frontal", "Male", 70, "Frontal", "AP",
     "0.0,0.0,0.0,1.0,0.0,1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,1.0"),
    ("valid", 64542, 1, "view2_lateral", "Male", 70, "Lateral", "",
     "0.0,0.0,0.0,1.0,0.0,1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,1.0"),
]
IMAGE_HEIGHT = 20
IMAGE_WIDTH = 16


def main():
    lines = {"train": [HEADER], "valid": [HEADER]}
    for index, row in enumerate(FAKE_ROWS):
        split, patient, study, view, sex, age, frontal, projection, cells = row
        relative = f"{ROOT}/{split}/patient{patient:05d}/study{study}/{view}.jpg"
        lines[split].append(
            f"{relative},{sex},{age},{frontal},{projection},{cells}"
        )
        path = DUMMY_DIR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        gradient = np.linspace(0, 200 + index * 5, IMAGE_HEIGHT * IMAGE_WIDTH)
        pixels = gradient.reshape(IMAGE_HEIGHT, IMAGE_WIDTH).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    for split, split_lines in lines.items():
        (DUMMY_DIR / ROOT / f"{split}.csv").write_text("\n".join(split_lines) + "\n")


if __name__ == "__main__":
    main()
