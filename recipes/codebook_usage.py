"""Codebook usage per scale of a pretrained DiSSECT model, measured on images."""

import json
import pathlib

import click
import numpy as np

from keras_dissect_recipes import datasets
from keras_dissect_recipes import model_files

USAGE_JSON = "codebook_usage.json"
USAGE_PNG = "codebook_histogram.png"
BATCH_SIZE = 32
FIGURE_DPI = 100


def _images(config, num_images):
    import tensorflow as tf

    ds = datasets.load(
        config["dataset"], config["split"], config["dataset_config"],
        config.get("data_dir"), config.get("manual_dir"),
    )
    size = config["image_size"]

    def prepare(example):
        image = tf.image.convert_image_dtype(example["image"], tf.float32)
        image = tf.image.resize(image, (size, size), antialias=True)
        return tf.repeat(tf.clip_by_value(image, 0.0, 1.0), config["channels"], axis=-1)

    return ds.take(num_images).map(prepare).batch(BATCH_SIZE)


def _perplexity(counts):
    probabilities = counts / max(counts.sum(), 1)
    nonzero = probabilities[probabilities > 0]
    return float(np.exp(-(nonzero * np.log(nonzero)).sum()))


def measure_usage(run_dir, num_images):
    """Count how often each code of each scale is chosen on `num_images` images.

    The target tower (or the online tower for the `no_momentum` ablation)
    encodes the images of the run's own pretraining split in inference mode,
    and the quantizer assigns every feature position to its nearest code.

    Returns:
        A dict scale -> {"counts", "used_codes", "perplexity"}, or `None` for
        a run without quantization (BYOL).
    """
    import keras

    from keras_dissect.models import ablations

    run_dir = pathlib.Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    model = model_files.load_model(run_dir / "model.keras")
    if not model.settings.quantize:
        return None

    # NOTE: this reads DiSSECT's towers and quantizer directly, because the
    # model has no public method that returns code indices.
    tower = model.target_encoder if model.settings.momentum_target else model.online_encoder
    counts = {scale: np.zeros(model.num_codes, np.int64) for scale in model.settings.scales}
    for batch in _images(config, num_images).as_numpy_iterator():
        features = tower(batch, training=False)
        selected = {scale: features[ablations.SCALE_STAGES[scale]] for scale in counts}
        outputs = model.quantizer(selected, training=False)
        for scale in counts:
            indices = keras.ops.convert_to_numpy(outputs[f"indices_{scale}"]).ravel()
            counts[scale] += np.bincount(indices, minlength=model.num_codes)

    return {
        scale: {
            "counts": values.tolist(),
            "used_codes": int((values > 0).sum()),
            "perplexity": _perplexity(values),
        }
        for scale, values in counts.items()
    }


def write_usage(run_dir, num_images):
    """Write the usage JSON and a per-scale histogram PNG; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "model.keras").exists():
        raise click.ClickException(
            f"{run_dir / 'model.keras'} not found; finish the pretraining run first."
        )
    usage = measure_usage(run_dir, num_images)
    if usage is None:
        click.echo("This run has no quantizer (BYOL), so there is no codebook usage to measure.")
        return []

    json_path = run_dir / USAGE_JSON
    json_path.write_text(json.dumps({"num_images": num_images, "scales": usage}, indent=2) + "\n")

    figure, axes = pyplot.subplots(1, len(usage), figsize=(4.5 * len(usage), 3.5), squeeze=False)
    for axis, (scale, values) in zip(axes[0], usage.items()):
        counts = np.sort(np.asarray(values["counts"]))[::-1]
        axis.bar(np.arange(len(counts)), counts, width=1.0)
        axis.set_title(
            f"{scale}: {values['used_codes']}/{len(counts)} codes used, "
            f"perplexity {values['perplexity']:.1f}",
            fontsize="small",
        )
        axis.set_xlabel("code rank")
        axis.set_ylabel("assignments (feature positions)")
    figure.tight_layout()
    figure.savefig(run_dir / USAGE_PNG, dpi=FIGURE_DPI)
    pyplot.close(figure)
    return [json_path, run_dir / USAGE_PNG]
