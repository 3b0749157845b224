"""NIH ChestX-ray14 dataset builder (manual download)."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect_tfds import _common
from keras_dissect_tfds.nih_chest_xray14 import labels as nih_labels
from keras_dissect_tfds.nih_chest_xray14.labels import NIH_FINDINGS

# Share of the train_val patients moved to the validation split. The official
# release has only train_val and test lists, so validation is carved from
# train_val by patient, with a fixed seed so that every run agrees.
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 20170101

_DESCRIPTION = """\
NIH ChestX-ray14: 112,120 frontal chest radiographs of 30,805 patients with
14 text-mined finding labels (multi-hot in `labels`, order in `NIH_FINDINGS`),
"No Finding", age, sex, view position and, for 984 images, expert boxes.
Images are stored once as 1-channel uint8 PNGs; the release images are square
(1024 x 1024), so a config of size S stores S x S images. Splits: `test` is
the official test list; `train` and `validation` divide the official train_val
list by patient (validation: `validation_fraction` of the patients, 10 % by
default, seeded).
"""

_CITATION = """\
@inproceedings{wang2017chestxray,
  title={ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on
         Weakly-Supervised Classification and Localization of Common Thorax
         Diseases},
  author={Wang, Xiaosong and Peng, Yifan and Lu, Le and Lu, Zhiyong and
          Bagheri, Mohammadhadi and Summers, Ronald M.},
  booktitle={CVPR},
  year={2017}
}
"""


@dataclasses.dataclass(eq=False)
class NihChestXray14Config(_common.ImageSizeConfig):
    """Config of `NihChestXray14`.

    Args:
        image_size: stored image size in pixels, or `None` for full size.
        validation_fraction: share of the train_val patients that form the
            validation split. To change it, create a config with a new name,
            for example `NihChestXray14Config(name="224_val20",
            image_size=224, validation_fraction=0.2)`.
    """

    validation_fraction: float = VALIDATION_FRACTION

    def __post_init__(self):
        _common.check_split_fraction(self, "validation_fraction")


class NihChestXray14(_common.ManualImageBuilder):
    """NIH ChestX-ray14 chest radiographs with 14 finding labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _common.make_image_size_configs(NihChestXray14Config)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download NIH ChestX-ray14 from https://nihcc.app.box.com/v/ChestXray-NIHCC
(or its Kaggle mirror "nih-chest-xrays/data") and arrange the manual folder as:

  <manual_dir>/Data_Entry_2017_v2020.csv   (or Data_Entry_2017.csv)
  <manual_dir>/train_val_list.txt
  <manual_dir>/test_list.txt
  <manual_dir>/BBox_List_2017.csv          (optional: boxes)
  <manual_dir>/images/00000001_000.png ... (all PNGs in one folder)
or, as the Kaggle mirror ships them,
  <manual_dir>/images_001/images/*.png ... <manual_dir>/images_012/images/*.png

Extract every images_XXX.tar.gz archive; each one unpacks into images/.
"""

    def _info(self):
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(None, None, 1), dtype=np.uint8
                    ),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                    "labels": tfds.features.Tensor(
                        shape=(len(NIH_FINDINGS),), dtype=np.float32
                    ),
                    "no_finding": tfds.features.Scalar(dtype=np.bool_),
                    "age": tfds.features.Scalar(dtype=np.int32),
                    "sex": tfds.features.Text(),
                    "view_position": tfds.features.Text(),
                    "follow_up": tfds.features.Scalar(dtype=np.int32),
                    "boxes": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "finding": tfds.features.ClassLabel(
                                names=NIH_FINDINGS
                            ),
                        }
                    ),
                }
            ),
            supervised_keys=("image", "labels"),
            homepage="https://nihcc.app.box.com/v/ChestXray-NIHCC",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        _common.check_manual_files(
            manual_dir,
            [
                ("the label file", list(nih_labels.DATA_ENTRY_FILES)),
                ("the train_val split list", [nih_labels.TRAIN_VAL_LIST]),
                ("the test split list", [nih_labels.TEST_LIST]),
                ("the images", ["images", "images_001/images"]),
            ],
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )

        entry_file = next(
            manual_dir / name
            for name in nih_labels.DATA_ENTRY_FILES
            if (manual_dir / name).exists()
        )
        records = nih_labels.read_data_entry(entry_file, self.bad_input)
        box_file = manual_dir / nih_labels.BOX_FILE
        boxes = {}
        if box_file.exists():
            boxes = nih_labels.read_boxes(box_file, self.bad_input)
        image_paths = nih_labels.find_images(manual_dir, self.bad_input)

        train_val = self._checked_split_list(
            manual_dir / nih_labels.TRAIN_VAL_LIST, records, image_paths
        )
        test = self._checked_split_list(
            manual_dir / nih_labels.TEST_LIST, records, image_paths
        )
        overlap = sorted(set(train_val) & set(test))
        if overlap:
            raise DatasetLayoutError(
                f"{len(overlap)} images are in both {nih_labels.TRAIN_VAL_LIST} "
                f"and {nih_labels.TEST_LIST}, for example {overlap[:3]}. Use "
                "the official lists unchanged."
            )

        patient_of = {image_id: records[image_id].patient_id for image_id in records}
        train, validation = _common.split_by_patient(
            train_val,
            patient_of,
            self.builder_config.validation_fraction,
            VALIDATION_SEED,
        )
        splits = {"train": train, "validation": validation, "test": test}
        for name, image_ids in splits.items():
            self.check_split_not_empty(name, len(image_ids), manual_dir)

        return {
            name: self._generate_examples(
                [(records[i], image_paths[i], boxes.get(i, [])) for i in image_ids],
                name,
            )
            for name, image_ids in splits.items()
        }

    def _checked_split_list(self, path, records, image_paths):
        kept = []
        for image_id in nih_labels.read_split_list(path):
            if image_id not in records:
                self.bad_input.handle(
                    DatasetLayoutError(
                        f"Image {image_id} is listed in {path.name} but has "
                        "no row in the label file. Use the label file and "
                        "split lists of the same release."
                    )
                )
                continue
            if image_id not in image_paths:
                self.bad_input.handle(
                    DatasetLayoutError(
                        f"Image {image_id} is listed in {path.name} but is "
                        f"not in the image folders of {path.parent}. Extract "
                        "all images_XXX archives."
                    )
                )
                continue
            kept.append(image_id)
        return kept

    def _generate_examples(self, items, split):
        count = 0
        for record, path, image_boxes in items:
            image = self.load_image(path)
            if image is None:
                continue
            count += 1
            yield record.image_id, {
                "image": image,
                "image_id": record.image_id,
                "patient_id": record.patient_id,
                "labels": record.labels,
                "no_finding": record.no_finding,
                "age": record.age,
                "sex": record.sex,
                "view_position": record.view_position,
                "follow_up": record.follow_up,
                "boxes": [
                    {"bbox": tfds.features.BBox(*box), "finding": finding}
                    for box, finding in image_boxes
                ],
            }
        self.check_split_not_empty(split, count, "the images")
