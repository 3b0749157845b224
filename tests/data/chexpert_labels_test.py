import csv
import gzip
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_dissect_tfds.chexpert as chexpert_package
from keras_dissect import testing
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect_tfds import _common
from keras_dissect_tfds.chexpert import CHEXPERT_OBSERVATIONS
from keras_dissect_tfds.chexpert import Chexpert
from keras_dissect_tfds.chexpert.labels import read_chexpert_csv

pytestmark = pytest.mark.backend_independent

# Independent mapping of the cells, written out again on purpose.
STATES = {"1.0": 1, "0.0": 0, "-1.0": -1, "": -2}
DUMMY_DIR = chexpert_package.__path__[0] + "/dummy_data"
TRAIN_CSV = "CheXpert-v1.0-small/train.csv"


def test_real_train_csv_state_counts():
    path = testing.data_path("label-files", "chexpert_train.csv.gz")
    records = read_chexpert_csv(path, _common.BadInputPolicy(skip=False), gzip.open)

    expected = np.zeros((len(CHEXPERT_OBSERVATIONS), 4), dtype=np.int64)
    with gzip.open(path, "rt", newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for index, name in enumerate(CHEXPERT_OBSERVATIONS):
            expected[index, [1, 0, -1, -2].index(STATES[row[name]])] += 1

    observations = np.stack([record.observations for record in records])
    counts = np.stack(
        [(observations == state).sum(axis=0) for state in (1, 0, -1, -2)], axis=1
    )
    assert len(records) == len(rows) == 223414
    np.testing.assert_array_equal(counts, expected)
    assert len({record.patient_id for record in records}) == 64540


def test_real_train_csv_views_kept():
    path = testing.data_path("label-files", "chexpert_train.csv.gz")
    records = read_chexpert_csv(path, _common.BadInputPolicy(skip=False), gzip.open)
    views = {record.frontal_lateral for record in records}
    projections = {record.ap_pa for record in records if record.frontal_lateral == "Frontal"}
    assert views == {"Frontal", "Lateral"}
    assert {"AP", "PA"} <= projections


@pytest.fixture
def manual_dir(tmp_path):
    copy = tmp_path / "manual"
    shutil.copytree(DUMMY_DIR, copy)
    return copy


def _prepare(manual_dir, data_dir, **kwargs):
    builder = Chexpert(data_dir=data_dir, config="64", **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def _append_row(manual_dir, path_text, cells="1.0,,,,,,,,,,,,,"):
    with open(manual_dir / TRAIN_CSV, "a") as file:
        file.write(f"{path_text},Male,50,Frontal,PA,{cells}\n")


def test_path_escaping_manual_dir(manual_dir, tmp_path):
    _append_row(manual_dir, "CheXpert-v1.0-small/train/../../../etc/passwd")
    with pytest.raises(DatasetLayoutError, match="train.csv, line 10"):
        _prepare(manual_dir, tmp_path / "data")


def test_invalid_state(manual_dir, tmp_path):
    path = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    (manual_dir / TRAIN_CSV).write_text(
        (manual_dir / TRAIN_CSV).read_text().replace(f"{path},Female,68,Frontal,AP,1.0", f"{path},Female,68,Frontal,AP,2.0")
    )
    with pytest.raises(DatasetLayoutError, match="Invalid value '2.0'.*line 2"):
        _prepare(manual_dir, tmp_path / "data")


def test_missing_image(manual_dir, tmp_path):
    _append_row(manual_dir, "CheXpert-v1.0-small/train/patient00009/study1/view1_frontal.jpg")
    with pytest.raises(DatasetLayoutError, match="patient00009.*is missing"):
        _prepare(manual_dir, tmp_path / "data")
    builder = _prepare(manual_dir, tmp_path / "skipped", skip_bad_input=True)
    assert len(builder.skipped_input) == 1


def test_missing_release_folder(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "readme.txt").write_text("nothing here")
    with pytest.raises(DatasetLayoutError, match="CheXpert-v1.0 or CheXpert-v1.0-small"):
        _prepare(tmp_path / "manual", tmp_path / "data")


def test_missing_valid_csv(manual_dir, tmp_path):
    (manual_dir / "CheXpert-v1.0-small" / "valid.csv").unlink()
    with pytest.raises(DatasetLayoutError, match="valid.csv"):
        _prepare(manual_dir, tmp_path / "data")
