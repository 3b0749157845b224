"""CheXpert dataset builder (manual download)."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.paths import resolve_manual_path
from keras_dissect_tfds import _common
from keras_dissect_tfds.chexpert import labels as chexpert_labels
from keras_dissect_tfds.chexpert.labels import CHEXPERT_OBSERVATIONS

# The public download has no test labels, so the official validation set
# (234 radiologist-labelled images) is the `test` split, and `validation`
# takes this share of the training patients, seeded.
VALIDATION_FRACTION = 0.05
VALIDATION_SEED = 20190101
# Release folders, the full-resolution one first because it is preferred
# when both are present.
RELEASE_FOLDERS = ("CheXpert-v1.0", "CheXpert-v1.0-small")

_DESCRIPTION = """\
CheXpert: 224,316 chest radiographs of 65,240 patients with 14 observations
labelled positive (1), negative (0), uncertain (-1) or unmentioned (-2) in the
int8 vector `observations` (order in `CHEXPERT_OBSERVATIONS`). The pipelines
turn them into labels under an uncertainty policy. Frontal and lateral views
are both kept (`frontal_lateral`), with the projection in `ap_pa`.
Splits: `test` is the official validation set (valid.csv); `train` and
`validation` divide train.csv by patient (validation: `validation_fraction`
of the patients, 5 % by default, seeded). Images are stored once as 1-channel
uint8 PNGs with the shorter side resized to the config size.
"""

_CITATION = """\
@inproceedings{irvin2019chexpert,
  title={CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels
         and Expert Comparison},
  author={Irvin, Jeremy and Rajpurkar, Pranav and Ko, Michael and others},
  booktitle={AAAI},
  year={2019}
}
"""


@dataclasses.dataclass(eq=False)
class ChexpertConfig(_common.ImageSizeConfig):
    """Config of `Chexpert`.

    Args:
        image_size: shorter image side in pixels, or `None` for full size.
        validation_fraction: share of the train.csv patients that form the
            validation split.
    """

    validation_fraction: float = VALIDATION_FRACTION

    def __post_init__(self):
        _common.check_split_fraction(self, "validation_fraction")


class Chexpert(_common.ManualImageBuilder):
    """CheXpert chest radiographs with four-state observation labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _common.make_image_size_configs(ChexpertConfig)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download CheXpert from https://stanfordmlgroup.github.io/competitions/chexpert/
(the full "CheXpert-v1.0" or the downsampled "CheXpert-v1.0-small") and
extract it into the manual folder, keeping the release folder:

  <manual_dir>/CheXpert-v1.0-small/train.csv
  <manual_dir>/CheXpert-v1.0-small/valid.csv
  <manual_dir>/CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg ...
  <manual_dir>/CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg ...

(or the same under CheXpert-v1.0/). The paths inside the CSV files are
relative to <manual_dir>.
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
                    "study_id": tfds.features.Text(),
                    "observations": tfds.features.Tensor(
                        shape=(len(CHEXPERT_OBSERVATIONS),), dtype=np.int8
                    ),
                    "sex": tfds.features.Text(),
                    "age": tfds.features.Scalar(dtype=np.int32),
                    "frontal_lateral": tfds.features.Text(),
                    "ap_pa": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "observations"),
            homepage="https://stanfordmlgroup.github.io/competitions/chexpert/",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        root = next(
            (manual_dir / name for name in RELEASE_FOLDERS if (manual_dir / name).is_dir()),
            None,
        )
        if root is None:
            _common.check_manual_files(
                manual_dir,
                [("the CheXpert release folder", list(RELEASE_FOLDERS))],
                self.MANUAL_DOWNLOAD_INSTRUCTIONS,
            )
        _common.check_manual_files(
            manual_dir,
            [
                ("the training labels", [f"{root.name}/train.csv"]),
                ("the official validation labels", [f"{root.name}/valid.csv"]),
            ],
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )

        train_records = self._checked_records(root / "train.csv", manual_dir)
        test_records = self._checked_records(root / "valid.csv", manual_dir)
        shared = {r.patient_id for r in train_records} & {
            r.patient_id for r in test_records
        }
        if shared:
            raise DatasetLayoutError(
                f"{len(shared)} patients are in both train.csv and valid.csv, "
                f"for example {sorted(shared)[:3]}. Use the release files "
                "unchanged."
            )

        by_id = {record.image_id: record for record in train_records}
        train_ids, validation_ids = _common.split_by_patient(
            list(by_id),
            {image_id: record.patient_id for image_id, record in by_id.items()},
            self.builder_config.validation_fraction,
            VALIDATION_SEED,
        )
        splits = {
            "train": [by_id[i] for i in train_ids],
            "validation": [by_id[i] for i in validation_ids],
            "test": test_records,
        }
        for name, records in splits.items():
            self.check_split_not_empty(name, len(records), root)
        return {
            name: self._generate_examples(records, manual_dir, name)
            for name, records in splits.items()
        }

    def _checked_records(self, csv_path, manual_dir):
        kept = []
        for record in chexpert_labels.read_chexpert_csv(csv_path, self.bad_input):
            try:
                path = resolve_manual_path(manual_dir, record.path, record.source)
            except DatasetLayoutError as error:
                self.bad_input.handle(error)
                continue
            if not path.is_file():
                self.bad_input.handle(
                    DatasetLayoutError(
                        f"Image {record.path} ({record.source}) is missing "
                        f"from {manual_dir}. Extract the whole release."
                    )
                )
                continue
            kept.append(record)
        return kept

    def _generate_examples(self, records, manual_dir, split):
        count = 0
        for record in records:
            image = self.load_image(resolve_manual_path(manual_dir, record.path))
            if image is None:
                continue
            count += 1
            yield record.image_id, {
                "image": image,
                "image_id": record.image_id,
                "patient_id": record.patient_id,
                "study_id": record.study_id,
                "observations": record.observations,
                "sex": record.sex,
                "age": record.age,
                "frontal_lateral": record.frontal_lateral,
                "ap_pa": record.ap_pa,
            }
        self.check_split_not_empty(split, count, "the images")
