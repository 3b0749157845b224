"""Load `.keras` files of this library and the metadata saved beside them."""

import json
import pathlib
import zipfile

import click

# Sidecar JSON written beside a classifier `.keras`: finding names and the
# input size, which the model file itself does not record.
METADATA_SUFFIX = ".json"


def metadata_path(model_path):
    return pathlib.Path(model_path).with_suffix(METADATA_SUFFIX)


def write_metadata(model_path, metadata):
    path = metadata_path(model_path)
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def read_metadata(model_path):
    path = metadata_path(model_path)
    if not path.exists():
        raise click.ClickException(
            f"Metadata file {path} is missing. It is written beside every "
            "classifier by `dissect linear-probe`, `finetune` and `export`; "
            "copy it together with the .keras file."
        )
    return json.loads(path.read_text())


def load_model(path):
    """Load a `.keras` file, raising a click error if it is not one of ours.

    Returns:
        The loaded `keras.Model`.
    """
    import keras

    # Registers the library's serializable classes.
    import keras_dissect.models.classifier  # noqa: F401
    import keras_dissect.models.dissect  # noqa: F401
    import keras_dissect.models.segmenter  # noqa: F401
    import keras_dissect.optimizers  # noqa: F401

    path = pathlib.Path(path)
    if not path.is_file():
        raise click.ClickException(f"Model file {path} not found.")
    if not zipfile.is_zipfile(path):
        raise click.ClickException(
            f"{path} is not a Keras model file (.keras files are zip archives). "
            "Pass a model saved by `dissect pretrain`, `export`, `linear-probe` "
            "or `finetune`."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for foreign files.
        raise click.ClickException(
            f"{path} could not be loaded as a keras-dissect model: {error}"
        ) from error


def encoder_from(model, path):
    """Return the image -> embedding encoder of a loaded model.

    Accepts a pretrained `DiSSECT` model or an exported encoder.
    """
    import keras

    from keras_dissect.models import dissect

    if isinstance(model, dissect.DiSSECT):
        return model.extract_encoder()
    outputs = model.outputs if isinstance(model, keras.Model) else []
    is_encoder = (
        len(outputs) == 1
        and len(outputs[0].shape) == 2
        and any(layer.name.startswith("stage4") for layer in _all_layers(model))
    )
    if is_encoder:
        return model
    raise click.ClickException(
        f"{path} is not a pretrained keras-dissect model or encoder. Pass the "
        "model.keras of a `dissect pretrain` run or an encoder from "
        "`dissect export --kind encoder`."
    )


def is_classifier(model):
    from keras_dissect.models import classifier

    names = {layer.name for layer in model.layers}
    return classifier.LOGITS_LAYER in names and classifier.PROBABILITIES_LAYER in names


def _all_layers(model):
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
