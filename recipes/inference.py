"""The `export`, `predict` and `report` recipes."""

import csv
import json
import pathlib
import sys

import click
import numpy as np

from keras_dissect_recipes import model_files

HEATMAP_ALPHA = 0.4
FIGURE_DPI = 100


def export_model(source, kind, output):
    """Write a standalone encoder or classifier `.keras` for deployment."""
    model = model_files.load_model(source)
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "encoder":
        model_files.encoder_from(model, source).save(output)
        return output

    if not model_files.is_classifier(model):
        raise click.ClickException(
            f"{source} is not a keras-dissect classifier. Pass the classifier.keras "
            "of a `dissect linear-probe` or `finetune` run."
        )
    metadata = model_files.read_metadata(source)
    model.save(output)
    model_files.write_metadata(output, metadata)
    return output


def _load_image(path, image_size, channels):
    import tensorflow as tf

    from keras_dissect.data import decode
    from keras_dissect.data import errors

    try:
        pixels = decode.read_image(path)
    except errors.ImageDecodeError as error:
        raise click.ClickException(str(error)) from error
    image = tf.image.resize(pixels[None, ..., None], (image_size, image_size), antialias=True)
    image = np.clip(image.numpy(), 0.0, 1.0)
    return np.repeat(image, channels, axis=-1).astype("float32"), pixels


def _save_heatmap(pixels, heat, path, title):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5, 5))
    axes.imshow(pixels, cmap="gray", vmin=0, vmax=1)
    height, width = pixels.shape
    axes.imshow(heat, cmap="jet", alpha=HEATMAP_ALPHA, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    axes.set_title(title)
    axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)
    pyplot.close(figure)


def predict(model_path, image_paths, output_dir, finding=None, feature_layer=None):
    """Write per-finding probabilities and a Grad-CAM PNG for each image.

    Returns:
        A dict image path -> {finding: probability}.
    """
    import keras

    click.echo(f"Keras backend: {keras.backend.backend()}", err=True)
    model = model_files.load_model(model_path)
    if not model_files.is_classifier(model):
        raise click.ClickException(
            f"{model_path} is not a keras-dissect classifier; pass one from "
            "`dissect linear-probe`, `finetune` or `export --kind classifier`."
        )
    metadata = model_files.read_metadata(model_path)
    names = metadata["class_names"]
    if finding is not None and finding not in names:
        raise click.BadParameter(
            f"{finding!r} is not a finding of this model; use one of {', '.join(names)}",
            param_hint="--finding",
        )

    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    with click.progressbar(image_paths, label="Predicting", file=sys.stderr) as bar:
        for path in bar:
            results[str(path)] = _predict_one(model, metadata, path, output_dir, finding, feature_layer)
    (output_dir / "predictions.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _predict_one(model, metadata, path, output_dir, finding, feature_layer):
    """Return one image's probabilities and write its Grad-CAM PNG."""
    import keras

    from keras_dissect.models import gradcam

    names = metadata["class_names"]
    image, pixels = _load_image(path, metadata["image_size"], metadata["channels"])
    probabilities = keras.ops.convert_to_numpy(model.predict_on_batch(image))[0]

    index = names.index(finding) if finding else int(np.argmax(probabilities))
    heat = gradcam.grad_cam(
        model, image, index, feature_layer=feature_layer or gradcam.DEFAULT_FEATURE_LAYER
    )[0]
    heat_full = keras.ops.convert_to_numpy(
        keras.ops.image.resize(heat[None, ..., None], pixels.shape, interpolation="bilinear")
    )[0, ..., 0]
    title = f"Grad-CAM: {names[index]} ({probabilities[index]:.2f})"
    _save_heatmap(pixels, heat_full, output_dir / f"{pathlib.Path(path).stem}_gradcam.png", title)
    return {name: float(value) for name, value in zip(names, probabilities)}


def _read_history(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                continue
    return columns


def write_report(run_dir):
    """Plot training curves and codebook usage per scale from a run's history.

    Returns:
        The list of PNG files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    run_dir = pathlib.Path(run_dir)
    history_path = run_dir / "history.csv"
    if not history_path.exists():
        raise click.ClickException(
            f"{history_path} not found; pass the directory of a `dissect` run."
        )
    columns = _read_history(history_path)
    epochs = [int(value) + 1 for value in columns.pop("epoch", [])]
    if not epochs:
        raise click.ClickException(f"{history_path} contains no completed epoch yet.")

    # Columns missing from some rows (for example logged by a later run
    # version) cannot be drawn against the epochs, so they are skipped.
    columns = {key: values for key, values in columns.items() if len(values) == len(epochs)}
    written = []
    curve_keys = [key for key in columns if not key.startswith(("perplexity_", "live_code_fraction_"))]
    figure, axes = pyplot.subplots(len(curve_keys), 1, figsize=(6, 2.2 * len(curve_keys)), squeeze=False)
    for axis, key in zip(axes[:, 0], curve_keys):
        axis.plot(epochs, columns[key], marker="o")
        axis.set_ylabel(key)
    axes[-1, 0].set_xlabel("epoch")
    figure.tight_layout()
    figure.savefig(run_dir / "training_curves.png", dpi=FIGURE_DPI)
    pyplot.close(figure)
    written.append(run_dir / "training_curves.png")

    scales = sorted(key.removeprefix("perplexity_") for key in columns if key.startswith("perplexity_"))
    if scales:
        figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
        for scale in scales:
            left.plot(epochs, columns[f"perplexity_{scale}"], marker="o", label=scale)
            if f"live_code_fraction_{scale}" in columns:
                right.plot(epochs, columns[f"live_code_fraction_{scale}"], marker="o", label=scale)
        left.set_title("codebook perplexity (codes)")
        right.set_title("live-code fraction")
        for axis in (left, right):
            axis.set_xlabel("epoch")
            axis.legend()
        figure.tight_layout()
        figure.savefig(run_dir / "codebook_usage.png", dpi=FIGURE_DPI)
        pyplot.close(figure)
        written.append(run_dir / "codebook_usage.png")
    return written
