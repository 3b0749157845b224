"""The `pretrain` recipe: DiSSECT, an ablation or BYOL, resumable per epoch."""

import importlib.util
import json
import os
import pathlib

import click

from keras_dissect_recipes import datasets
from keras_dissect_recipes import run_config

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
FINAL_MODEL = "model.keras"
HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "tensorboard"


def checkpoint_path(run_dir, epoch):
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / f"epoch_{epoch:04d}.keras"


def completed_epochs(run_dir):
    """Return the number of epochs whose checkpoint is complete in `run_dir`."""
    path = pathlib.Path(run_dir) / STATE_FILE
    if not path.exists():
        return 0
    return int(json.loads(path.read_text())["completed_epochs"])


def _save_atomically(model, path):
    # Write to a temporary name first, so an interruption while saving never
    # leaves a truncated checkpoint under the final name.
    temporary = path.with_name(path.stem + ".partial.keras")
    model.save(temporary)
    os.replace(temporary, path)


def build_model(config, steps_per_epoch):
    """Build and compile the pretraining model described by `config`."""
    from keras_dissect import optimizers
    from keras_dissect.models import dissect

    total_steps = config["epochs"] * steps_per_epoch
    model = dissect.DiSSECT(
        total_steps=total_steps,
        channels=config["channels"],
        width=config["width"],
        projection_hidden_dim=config["projection_hidden_dim"],
        prediction_hidden_dim=config["projection_hidden_dim"],
        num_codes=config["num_codes"],
        code_dim=config["code_dim"],
        ablation=config["ablation"],
        quantize=config["method"] == "dissect",
    )
    optimizer = optimizers.pretraining_optimizer(
        config["batch_size"],
        steps_per_epoch,
        epochs=config["epochs"],
        warmup_epochs=min(config["warmup_epochs"], config["epochs"] - 1),
        base_learning_rate=config["base_learning_rate"],
    )
    model.compile(optimizer=optimizer)
    return model


def _load_checkpoint(path):
    import keras

    # Importing the models registers the custom classes for deserialization.
    import keras_dissect.models.dissect  # noqa: F401
    import keras_dissect.optimizers  # noqa: F401

    return keras.models.load_model(path)


class EpochEndSaver:
    """Save a checkpoint and the completed-epoch count after each epoch."""

    def __init__(self, run_dir):
        self.run_dir = pathlib.Path(run_dir)

    def __call__(self, model, epoch):
        path = checkpoint_path(self.run_dir, epoch + 1)
        _save_atomically(model, path)
        state = {"completed_epochs": epoch + 1, "checkpoint": str(path.name)}
        (self.run_dir / STATE_FILE).write_text(json.dumps(state) + "\n")


def fit_one_epoch(model, dataset, epoch, callbacks, verbose):
    """Train one epoch; split out so that tests can interrupt a run."""
    model.fit(dataset, initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks, verbose=verbose)


def run_pretraining(config, run_dir, verbose=1):
    """Pretrain as `config` describes, in `run_dir`, resuming a partial run.

    Each epoch reads a pipeline seeded with `seed + epoch`, so an epoch sees
    the same batches whether or not the run was interrupted before it; with
    the model, optimizer and codebook state restored from the checkpoint, a
    resumed run ends where an uninterrupted one would.

    Returns:
        The path of the final `.keras` model.
    """
    import keras

    from keras_dissect.data import pipelines

    run_dir = pathlib.Path(run_dir)
    resuming = run_config.check_resume(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
    if not resuming:
        run_config.write_config(run_dir, config)

    final_path = run_dir / FINAL_MODEL
    done = completed_epochs(run_dir)
    if done >= config["epochs"] and final_path.exists():
        click.echo(f"Run in {run_dir} is already complete ({done} epochs).")
        return final_path

    ds = datasets.load(
        config["dataset"], config["split"], config["dataset_config"],
        config.get("data_dir"), config.get("manual_dir"),
    )
    available = int(ds.cardinality()) // config["batch_size"]
    if available < 1:
        raise click.ClickException(
            f"Split {config['split']!r} of {config['dataset']} has fewer images "
            f"than one batch of {config['batch_size']}; lower --batch-size."
        )
    steps_per_epoch = min(config["steps_per_epoch"] or available, available)

    # Seeded after loading the data, because preparing a dataset the first
    # time may draw random numbers and would shift the initial weights.
    keras.utils.set_random_seed(config["seed"])
    if done:
        model = _load_checkpoint(checkpoint_path(run_dir, done))
        click.echo(f"Resuming {run_dir} after epoch {done} of {config['epochs']}.")
    else:
        model = build_model(config, steps_per_epoch)

    callbacks = [keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True)]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD_DIR), write_graph=False)
        )
    else:
        click.echo(
            "TensorBoard is not installed, so only the CSV log is written; "
            "`pip install tensorboard` adds TensorBoard logs.",
            err=True,
        )
    save = EpochEndSaver(run_dir)
    for epoch in range(done, config["epochs"]):
        dataset = pipelines.pretraining_dataset(
            ds,
            config["image_size"],
            config["batch_size"],
            seed=config["seed"] + epoch,
            channels=config["channels"],
        ).take(steps_per_epoch)
        # Each epoch is its own `fit` call, so Keras's counter shows only
        # "Epoch N/N"; this line gives the position in the whole run.
        if verbose:
            click.echo(f"Pretraining epoch {epoch + 1} of {config['epochs']}")
        fit_one_epoch(model, dataset, epoch, callbacks, verbose)
        save(model, epoch)

    _save_atomically(model, final_path)
    return final_path
