"""Prepare (once) and load a split of one of the project's TFDS builders."""

import tensorflow_datasets as tfds

BUILDER_NAMES = (
    "nih_chest_xray14",
    "chexpert",
    "siim_acr_pneumothorax",
    "rsna_pneumonia",
    "cxr_phantom",
)


def load_split(
    name,
    split,
    config="224",
    data_dir=None,
    manual_dir=None,
    skip_bad_input=None,
    shuffle_files=False,
):
    """Return one split of a dataset, preparing the dataset first if needed.

    Args:
        name: builder name, one of `BUILDER_NAMES`.
        split: split name or TFDS split expression, for example `"train"`
            or `"validation[:50%]"`.
        config: builder config name: `"64"`, `"128"`, `"224"`, `"256"`,
            `"512"` or `"full"`.
        data_dir: folder of prepared datasets; `None` uses TFDS's default
            (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        manual_dir: folder of the manually downloaded files; `None` uses
            `<data_dir>/downloads/manual`.
        skip_bad_input: passed to the builder when not `None`: whether bad
            items are skipped and counted instead of stopping preparation.
        shuffle_files: whether TFDS shuffles the order of the record files.

    Returns:
        A `tf.data.Dataset` of the builder's example dicts.
    """
    # Importing the package registers every builder with TFDS.
    import keras_dissect_tfds  # noqa: F401

    if name not in BUILDER_NAMES:
        raise ValueError(
            f"`name` must be one of {BUILDER_NAMES}. Received: name={name!r}"
        )
    builder_kwargs = {}
    if skip_bad_input is not None:
        builder_kwargs["skip_bad_input"] = skip_bad_input
    builder = tfds.builder(name, config=config, data_dir=data_dir, **builder_kwargs)
    if not builder.is_prepared():
        download_config = None
        if manual_dir is not None:
            download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        builder.download_and_prepare(download_config=download_config)
    return builder.as_dataset(split=split, shuffle_files=shuffle_files)
