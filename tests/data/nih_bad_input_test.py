import pathlib
import shutil

import pytest
import tensorflow_datasets as tfds

import keras_dissect_tfds.nih_chest_xray14 as nih_package
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.errors import ImageDecodeError
from keras_dissect_tfds import _common
from keras_dissect_tfds.nih_chest_xray14 import NihChestXray14

pytestmark = pytest.mark.backend_independent

DUMMY_DIR = pathlib.Path(nih_package.__file__).resolve().parent / "dummy_data"
ENTRY_FILE = "Data_Entry_2017_v2020.csv"
TRAIN_IMAGE = "00000005_000.png"


@pytest.fixture
def manual_dir(tmp_path):
    copy = tmp_path / "manual"
    shutil.copytree(DUMMY_DIR, copy)
    return copy


def _prepare(manual_dir, data_dir, **kwargs):
    builder = NihChestXray14(data_dir=data_dir, config="64", **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def _image_path(manual_dir, image_id):
    return next(manual_dir.glob(f"images_*/images/{image_id}"))


def _append_to_entry(manual_dir, line):
    with open(manual_dir / ENTRY_FILE, "a") as file:
        file.write(line + "\n")


def test_missing_manual_files_listed(manual_dir, tmp_path):
    (manual_dir / ENTRY_FILE).unlink()
    (manual_dir / "test_list.txt").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        _prepare(manual_dir, tmp_path / "data")
    message = str(info.value)
    assert "Data_Entry_2017_v2020.csv or Data_Entry_2017.csv" in message
    assert "test_list.txt" in message
    assert "train_val_list.txt" not in message.split("Place the files")[0]
    assert "MANUAL" not in message
    assert "images_001/images" in message


def test_missing_manual_dir(tmp_path):
    with pytest.raises(AssertionError, match="does not exist or is empty"):
        _prepare(tmp_path / "nowhere", tmp_path / "data")


def test_unknown_finding_name(manual_dir, tmp_path):
    _append_to_entry(
        manual_dir, "00000099_000.png,Pneumonitis,0,99,40,M,PA,1024,1024,0.1,0.1"
    )
    pattern = "Unknown finding 'Pneumonitis'.*Data_Entry_2017_v2020.csv, line 16"
    with pytest.raises(DatasetLayoutError, match=pattern):
        _prepare(manual_dir, tmp_path / "data")


def test_duplicate_image_id(manual_dir, tmp_path):
    _append_to_entry(
        manual_dir, f"{TRAIN_IMAGE},Nodule,0,5,40,M,PA,1024,1024,0.1,0.1"
    )
    with pytest.raises(DatasetLayoutError, match=f"Duplicate image id '{TRAIN_IMAGE}'"):
        _prepare(manual_dir, tmp_path / "data")


def test_duplicate_in_split_list(manual_dir, tmp_path):
    with open(manual_dir / "test_list.txt", "a") as file:
        file.write("00000010_000.png\n")
    with pytest.raises(DatasetLayoutError, match="test_list.txt, line 5"):
        _prepare(manual_dir, tmp_path / "data")


def test_image_listed_but_absent(manual_dir, tmp_path):
    _image_path(manual_dir, TRAIN_IMAGE).unlink()
    with pytest.raises(DatasetLayoutError, match=f"{TRAIN_IMAGE} is listed"):
        _prepare(manual_dir, tmp_path / "data")


def test_image_absent_skipped_on_request(manual_dir, tmp_path):
    _image_path(manual_dir, TRAIN_IMAGE).unlink()
    builder = _prepare(manual_dir, tmp_path / "data", skip_bad_input=True)
    assert builder.info.splits["train"].num_examples == 7
    assert len(builder.skipped_input) == 1
    assert TRAIN_IMAGE in builder.skipped_input[0]


def test_empty_split(manual_dir, tmp_path):
    (manual_dir / "test_list.txt").write_text("\n")
    with pytest.raises(DatasetLayoutError, match="Split 'test' has no example"):
        _prepare(manual_dir, tmp_path / "data")


def test_truncated_image_fails_cleanly(manual_dir, tmp_path):
    path = _image_path(manual_dir, TRAIN_IMAGE)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    data_dir = tmp_path / "data"
    with pytest.raises(ImageDecodeError, match=TRAIN_IMAGE):
        _prepare(manual_dir, data_dir)

    # TFDS writes into an "incomplete" folder and renames it only on success,
    # so nothing of the failed run is left for a later run to take as done.
    # (TFDS keeps a config listing in .config/, which contains no examples.)
    assert list((data_dir / "nih_chest_xray14" / "64").iterdir()) == []
    assert not [p for p in data_dir.rglob("*incomplete*")]
    assert not NihChestXray14(data_dir=data_dir, config="64").is_prepared()

    path.write_bytes(original)
    builder = _prepare(manual_dir, data_dir)
    assert builder.info.splits["train"].num_examples == 8


def test_empty_image_skipped_with_env_variable(manual_dir, tmp_path, monkeypatch):
    _image_path(manual_dir, TRAIN_IMAGE).write_bytes(b"")
    monkeypatch.setenv(_common.SKIP_BAD_INPUT_VARIABLE, "1")
    builder = _prepare(manual_dir, tmp_path / "data")
    assert builder.info.splits["train"].num_examples == 7
    assert "0 bytes" in builder.skipped_input[0]


def test_validation_fraction_validated():
    with pytest.raises(ValueError, match="validation_fraction=1.5"):
        nih_package.NihChestXray14Config(name="bad", validation_fraction=1.5)
