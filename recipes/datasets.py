"""Dataset names, class names and loading for the command line."""

import importlib

import click

CLASSIFICATION_DATASETS = ("nih_chest_xray14", "chexpert", "cxr_phantom")
SEGMENTATION_DATASETS = ("siim_acr_pneumothorax", "rsna_pneumonia", "cxr_phantom")
PRETRAINING_DATASETS = (
    "nih_chest_xray14",
    "chexpert",
    "siim_acr_pneumothorax",
    "rsna_pneumonia",
    "cxr_phantom",
)
IMAGE_CONFIGS = ("64", "128", "224", "256", "512", "full")

# Module attribute that lists each classification dataset's findings.
CLASS_NAME_ATTRIBUTES = {
    "nih_chest_xray14": "NIH_FINDINGS",
    "chexpert": "CHEXPERT_OBSERVATIONS",
    "cxr_phantom": "PHANTOM_FINDINGS",
}


def _builder_module(dataset):
    # Importing a builder's package registers it with TFDS.
    return importlib.import_module(f"keras_dissect_tfds.{dataset}")


def class_names(dataset):
    """Return the finding names of a classification dataset, in label order."""
    if dataset in CLASS_NAME_ATTRIBUTES:
        return list(getattr(_builder_module(dataset), CLASS_NAME_ATTRIBUTES[dataset]))
    raise click.BadParameter(
        f"{dataset!r} is not a classification dataset; use one of "
        f"{', '.join(CLASSIFICATION_DATASETS)}",
        param_hint="--dataset",
    )


def load(dataset, split, image_config, data_dir, manual_dir):
    """Load one split, turning data-layout problems into click errors."""
    from keras_dissect.data import errors
    from keras_dissect.data import loading

    _builder_module(dataset)
    try:
        return loading.load_split(
            dataset,
            split,
            config=image_config,
            data_dir=data_dir,
            manual_dir=manual_dir,
        )
    except (errors.DatasetLayoutError, errors.ImageDecodeError) as error:
        raise click.ClickException(f"Cannot prepare {dataset}: {error}") from error
    except AssertionError as error:
        # TFDS asserts that the manual folder exists before the builder runs.
        raise click.ClickException(
            f"Cannot prepare {dataset}: {error}. Put the manually downloaded "
            "files in --manual-dir (see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS)."
        ) from error


def ids_of(ds):
    """Return the image ids and patient ids of a split, as two lists of str."""
    ids = ds.map(lambda example: (example["image_id"], example["patient_id"]))
    image_ids = []
    patient_ids = []
    for image_id, patient_id in ids.as_numpy_iterator():
        image_ids.append(image_id.decode("utf-8"))
        patient_ids.append(patient_id.decode("utf-8"))
    return image_ids, patient_ids
