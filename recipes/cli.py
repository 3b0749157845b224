"""The `dissect` command line: pretraining and transfer recipes.

Keras reads its backend once, at import, so this module imports neither
Keras nor `keras_dissect` at top level: the group callback sets
`KERAS_BACKEND` and each command imports what it needs.
"""

import os
import pathlib
import sys
import tomllib

import click

from keras_dissect_recipes import datasets

BACKENDS = ("tensorflow", "jax", "torch")
ABLATIONS = (
    "none",
    "no_momentum",
    "coarse_only",
    "medium_only",
    "fine_only",
    "concat",
    "continuous_only",
    "discrete_only",
)

# Epochs without a better validation AUC before the demo's probe stops.
DEMO_PROBE_PATIENCE = 5
DEMO_RUN_FOLDERS = ("pretrain", "probe")


@click.group()
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend (default: $KERAS_BACKEND, else tensorflow).",
)
def main(backend):
    """DiSSECT self-supervised pretraining and transfer for chest X-rays."""
    if backend is None:
        return
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise click.UsageError(
                f"Keras is already imported with the {keras.backend.backend()} "
                f"backend in this process, so --backend {backend} cannot apply."
            )
    os.environ["KERAS_BACKEND"] = backend


def _check_multiple_of(value, divisor, name):
    if value % divisor:
        raise click.BadParameter(f"must be a multiple of {divisor}, got {value}", param_hint=name)


def data_options(choices, default_dataset):
    """Options shared by every command that reads a dataset."""

    def decorate(function):
        options = [
            click.option("--dataset", type=click.Choice(choices), default=default_dataset, show_default=True,
                         help="TFDS dataset name."),
            click.option("--dataset-config", type=click.Choice(datasets.IMAGE_CONFIGS), default="224",
                         show_default=True, help="Stored image size of the prepared dataset (pixels per side)."),
            click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                         help="Folder of prepared TFDS datasets (default: TFDS's, ~/tensorflow_datasets)."),
            click.option("--manual-dir", type=click.Path(file_okay=False), default=None,
                         help="Folder with the manually downloaded files of a real dataset."),
            click.option("--image-size", type=click.IntRange(32, 1024), default=224, show_default=True,
                         help="Side of the square model input (pixels)."),
            click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
                         help="Images per optimizer step."),
            click.option("--epochs", type=click.IntRange(1), default=100, show_default=True,
                         help="Maximum number of training epochs."),
            click.option("--steps-per-epoch", type=click.IntRange(0), default=0, show_default=True,
                         help="Optimizer steps per epoch (0: one pass over the training split)."),
            click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
                         help="Input channels: 1 (gray) or 3 (gray repeated)."),
            click.option("--seed", type=int, default=0, show_default=True,
                         help="Seed of weights, sampling and augmentation."),
        ]
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _base_config(values):
    config = {key: values[key] for key in (
        "dataset", "dataset_config", "image_size", "batch_size", "epochs", "steps_per_epoch", "seed",
    )}
    config["channels"] = int(values["channels"])
    config["data_dir"] = values["data_dir"]
    config["manual_dir"] = values["manual_dir"]
    return config


@main.command()
@data_options(datasets.PRETRAINING_DATASETS, "nih_chest_xray14")
@click.option("--split", default="train", show_default=True, help="Split (TFDS split expression) to pretrain on.")
@click.option("--method", type=click.Choice(["dissect", "byol"]), default="dissect", show_default=True,
              help="DiSSECT, or BYOL (the same network with quantization off).")
@click.option("--ablation", type=click.Choice(ABLATIONS), default="none", show_default=True,
              help="DiSSECT ablation switch.")
@click.option("--width", type=click.IntRange(1), default=64, show_default=True,
              help="ResNet-18 first-stage channels (64: standard).")
@click.option("--num-codes", type=click.IntRange(1), default=2048, show_default=True, help="Codes per scale.")
@click.option("--code-dim", type=click.IntRange(1), default=128, show_default=True, help="Dimensions of each code.")
@click.option("--projection-hidden-dim", type=click.IntRange(1), default=2048, show_default=True,
              help="Hidden units of the projector and predictor MLPs.")
@click.option("--base-learning-rate", type=click.FloatRange(0, min_open=True), default=0.08, show_default=True,
              help="LARS learning rate for a batch of 256 (scaled linearly with --batch-size).")
@click.option("--warmup-epochs", type=click.IntRange(0), default=20, show_default=True,
              help="Epochs of linear learning-rate warm-up.")
@click.option("--run-dir", type=click.Path(file_okay=False), required=True,
              help="Run directory; an existing run with the same settings resumes.")
def pretrain(run_dir, **values):
    """Pretrain DiSSECT, an ablation or BYOL on a TFDS dataset."""
    from keras_dissect_recipes import pretraining
    from keras_dissect_recipes import run_config

    if values["method"] == "byol" and values["ablation"] not in ("none", "continuous_only"):
        raise click.BadParameter("BYOL has no quantizer to ablate; use --ablation none", param_hint="--ablation")
    config = _base_config(values)
    for key in ("split", "method", "ablation", "width", "num_codes", "code_dim",
                "projection_hidden_dim", "base_learning_rate", "warmup_epochs"):
        config[key] = values[key]
    try:
        path = pretraining.run_pretraining(config, run_dir)
    except run_config.ConfigMismatchError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Pretrained model: {path}")


def classification_command(mode):
    @data_options(datasets.CLASSIFICATION_DATASETS, "nih_chest_xray14")
    @click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
                  help="Pretrained .keras (pretrain run's model.keras or an exported encoder); "
                       "omit for random initialization.")
    @click.option("--width", type=click.IntRange(1), default=64, show_default=True,
                  help="Backbone width for random initialization (ignored with --pretrained).")
    @click.option("--label-percent", type=click.Choice([str(p) for p in (1, 5, 10, 100)]), default="100",
                  show_default=True, help="Share of training patients whose labels are used (percent).")
    @click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=None,
                  help="AdamW learning rate (default: 3e-3 probe, 1e-4 fine-tune).")
    @click.option("--patience", type=click.IntRange(1), default=10, show_default=True,
                  help="Epochs without a better validation AUC before stopping.")
    @click.option("--run-dir", type=click.Path(file_okay=False), required=True,
                  help="New run directory for the model, manifest and reports.")
    def command(run_dir, **values):
        from keras_dissect import evaluation
        from keras_dissect_recipes import transfer

        config = _base_config(values)
        config.update(
            mode=mode, pretrained=values["pretrained"], width=values["width"],
            label_percent=int(values["label_percent"]), learning_rate=values["learning_rate"],
            patience=values["patience"],
        )
        if config["pretrained"] and not pathlib.Path(config["pretrained"]).is_file():
            raise click.BadParameter(f"file {config['pretrained']} not found", param_hint="--pretrained")
        report = transfer.run_classification(config, run_dir)
        click.echo(evaluation.auc_markdown_table(report, title=f"test AUC ({run_dir})"))

    return command


main.command(
    "linear-probe",
    help="Train a linear classifier on a frozen encoder and report test AUC.",
)(classification_command("linear_probe"))
main.command(
    "finetune",
    help="Fine-tune the encoder with a linear head and report test AUC.",
)(classification_command("finetune"))


@main.command()
@data_options(datasets.SEGMENTATION_DATASETS, "siim_acr_pneumothorax")
@click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
              help="model.keras of a pretrain run; omit for random initialization.")
@click.option("--width", type=click.IntRange(1), default=64, show_default=True,
              help="Backbone width for random initialization (ignored with --pretrained).")
@click.option("--freeze-backbone", is_flag=True, help="Train the decoder only.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True,
              help="AdamW learning rate.")
@click.option("--patience", type=click.IntRange(1), default=10, show_default=True,
              help="Epochs without a lower validation loss before stopping.")
@click.option("--run-dir", type=click.Path(file_okay=False), required=True, help="New run directory.")
def segment(run_dir, **values):
    """Train a U-Net on the pretrained encoder; report Dice and IoU on test."""
    from keras_dissect_recipes import transfer

    _check_multiple_of(values["image_size"], 32, "--image-size")
    config = _base_config(values)
    config.update(
        pretrained=values["pretrained"], width=values["width"], freeze_backbone=values["freeze_backbone"],
        learning_rate=values["learning_rate"], patience=values["patience"],
    )
    scores = transfer.run_segmentation(config, run_dir)
    click.echo(f"test Dice {scores['dice']:.4f}, IoU {scores['iou']:.4f} over {scores['num_images']} images")


@main.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(["encoder", "classifier"]), default="encoder", show_default=True,
              help="What to export: the image -> embedding encoder or the whole classifier.")
@click.option("--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")
def export(source, kind, output):
    """Export a standalone encoder or classifier .keras for deployment."""
    from keras_dissect_recipes import inference

    if not output.endswith(".keras"):
        raise click.BadParameter(f"must end with .keras, got {output}", param_hint="--output")
    path = inference.export_model(source, kind, output)
    click.echo(f"Exported {kind}: {path}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", type=click.Path(dir_okay=False), nargs=-1, required=True)
@click.option("--output-dir", type=click.Path(file_okay=False), required=True,
              help="Folder for predictions.json and the Grad-CAM PNGs.")
@click.option("--finding", default=None, help="Finding to explain with Grad-CAM (default: the most probable).")
@click.option("--feature-layer", default=None, help="Layer whose feature map Grad-CAM explains (default: last block).")
def predict(model, images, output_dir, finding, feature_layer):
    """Predict per-finding probabilities for PNG or DICOM images, with Grad-CAM."""
    import json

    from keras_dissect_recipes import inference

    results = inference.predict(model, images, output_dir, finding, feature_layer)
    click.echo(json.dumps(results, indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--usage-images", type=click.IntRange(0), default=256, show_default=True,
              help="Images of the pretraining split to measure code usage on (0: skip).")
def report(run_dir, usage_images):
    """Plot training curves and codebook usage per scale of a run."""
    from keras_dissect_recipes import codebook_usage
    from keras_dissect_recipes import inference

    paths = inference.write_report(run_dir)
    if usage_images:
        paths += codebook_usage.write_usage(run_dir, usage_images)
    for path in paths:
        click.echo(f"Wrote {path}")


def _recipe_arguments(options, placeholders):
    arguments = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                arguments.append(flag)
            continue
        if isinstance(value, str):
            value = value.format_map(placeholders)
        arguments += [flag, str(value)]
    return arguments


@main.command("run")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option("--run-root", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Folder that replaces {run_root} in the recipe's paths.")
@click.option("--data-dir", type=click.Path(file_okay=False), default="", help="Replaces {data_dir} in the recipe.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override an option in every step, for example --set seed=1 (repeatable).")
@click.pass_context
def run_recipe(context, recipe, run_root, data_dir, overrides):
    """Run the steps of a recipe file (TOML) in order."""
    override_options = {}
    for override in overrides:
        key, separator, value = override.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {override!r}", param_hint="--set")
        override_options[key.strip().replace("-", "_")] = value

    try:
        with open(recipe, "rb") as handle:
            content = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise click.BadParameter(f"{recipe} is not valid TOML: {error}", param_hint="RECIPE") from error
    steps = content.get("steps")
    if not steps:
        raise click.BadParameter(f"{recipe} has no [[steps]] table", param_hint="RECIPE")

    placeholders = {"run_root": run_root, "data_dir": data_dir}
    for number, step in enumerate(steps, start=1):
        name = step.get("command")
        command = main.get_command(context, name) if name else None
        if command is None or name == "run":
            raise click.BadParameter(f"step {number} names an unknown command {name!r}", param_hint="RECIPE")
        options = dict(step.get("options", {}), **override_options)
        arguments = list(step.get("arguments", [])) + _recipe_arguments(options, placeholders)
        click.echo(f"[{number}/{len(steps)}] dissect {name} {' '.join(arguments)}")
        with command.make_context(name, arguments, parent=context) as step_context:
            command.invoke(step_context)


@main.command()
@click.option("--run-dir", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Folder for the demo's pretraining and probe runs (replaced if it exists).")
@click.option("--image-size", type=click.IntRange(32, 64), default=64, show_default=True, help="Input side (pixels).")
@click.option("--width", type=click.IntRange(1), default=16, show_default=True, help="Backbone width.")
@click.option("--epochs", type=click.IntRange(1), default=6, show_default=True, help="Pretraining epochs.")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=32, show_default=True,
              help="Pretraining steps per epoch.")
@click.option("--probe-epochs", type=click.IntRange(1), default=20, show_default=True, help="Maximum linear-probe epochs.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the generated phantom dataset (default: TFDS's).")
@click.pass_context
def demo(context, run_dir, image_size, width, epochs, steps_per_epoch, probe_epochs, data_dir):
    """Pretrain on the built-in phantom, linear-probe at 10 % labels, print AUCs."""
    import shutil

    run_dir = pathlib.Path(run_dir)
    if run_dir.exists():
        # Only a previous demo's folder is removed, never other user data.
        contents = {path.name for path in run_dir.iterdir()}
        if not contents <= set(DEMO_RUN_FOLDERS):
            raise click.BadParameter(
                f"{run_dir} exists and is not a previous demo run; choose a new folder",
                param_hint="--run-dir",
            )
        shutil.rmtree(run_dir)
    common = ["--dataset", "cxr_phantom", "--dataset-config", "64", "--image-size", str(image_size),
              "--batch-size", "16", "--seed", "0"]
    if data_dir:
        common += ["--data-dir", data_dir]
    steps = [
        ("pretrain", common + [
            "--run-dir", str(run_dir / "pretrain"), "--width", str(width), "--epochs", str(epochs),
            "--steps-per-epoch", str(steps_per_epoch), "--num-codes", "64", "--code-dim", "32",
            "--projection-hidden-dim", "256", "--warmup-epochs", "1",
        ]),
        ("linear-probe", common + [
            "--run-dir", str(run_dir / "probe"), "--pretrained", str(run_dir / "pretrain" / "model.keras"),
            "--label-percent", "10", "--epochs", str(probe_epochs), "--patience", str(DEMO_PROBE_PATIENCE),
        ]),
    ]
    for name, arguments in steps:
        command = main.get_command(context, name)
        with command.make_context(name, arguments, parent=context) as step_context:
            command.invoke(step_context)


if __name__ == "__main__":
    main()
