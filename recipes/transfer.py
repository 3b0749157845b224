"""The `linear-probe`, `finetune` and `segment` recipes."""

import json
import math
import pathlib

import click

from keras_dissect_recipes import datasets
from keras_dissect_recipes import model_files
from keras_dissect_recipes import run_config

CLASSIFIER_FILE = "classifier.keras"
SEGMENTER_FILE = "segmenter.keras"
MANIFEST_FILE = "label_fractions.json"
HISTORY_FILE = "history.csv"
LABEL_FRACTION_PERCENTS = (1, 5, 10, 100)

TEST_SPLIT = "test"
VALIDATION_SPLIT = "validation"
TRAIN_SPLIT = "train"


def _encoder(config):
    from keras_dissect.models import resnet

    if config["pretrained"]:
        model = model_files.load_model(config["pretrained"])
        return model_files.encoder_from(model, config["pretrained"])
    backbone = resnet.resnet18_backbone((None, None, config["channels"]), width=config["width"])
    import keras

    return keras.Model(backbone.input, backbone.output["embedding"], name="encoder")


def _backbone(config):
    from keras_dissect.models import dissect
    from keras_dissect.models import resnet

    if config["pretrained"]:
        model = model_files.load_model(config["pretrained"])
        if isinstance(model, dissect.DiSSECT):
            return model.extract_backbone()
        if isinstance(model, resnet.ResNet18Backbone):
            return model
        raise click.ClickException(
            f"{config['pretrained']} is not a pretrained keras-dissect model. "
            "Pass the model.keras of a `dissect pretrain` run."
        )
    return resnet.resnet18_backbone((None, None, config["channels"]), width=config["width"])


def _prepare_run_dir(run_dir, config):
    run_dir = pathlib.Path(run_dir)
    if run_config.read_config(run_dir) is not None:
        run_config.check_resume(run_dir, config)
        raise click.ClickException(
            f"Run directory {run_dir} already contains this run; choose a new "
            "directory to train again (nothing was overwritten)."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    run_config.write_config(run_dir, config)
    return run_dir


def _training_split(config, run_dir):
    """Return the training split restricted to the label fraction, and its size."""
    from keras_dissect.data import label_fractions

    load = lambda split: datasets.load(  # noqa: E731
        config["dataset"], split, config["dataset_config"],
        config.get("data_dir"), config.get("manual_dir"),
    )
    train = load(TRAIN_SPLIT)
    image_ids, patient_ids = datasets.ids_of(train)
    excluded = set()
    for split in (VALIDATION_SPLIT, TEST_SPLIT):
        excluded.update(datasets.ids_of(load(split))[1])

    manifest = label_fractions.load_or_create_manifest(
        run_dir / MANIFEST_FILE,
        image_ids,
        patient_ids,
        fractions=tuple(percent / 100 for percent in LABEL_FRACTION_PERCENTS),
        seed=config["seed"],
        excluded_patients=sorted(excluded),
        dataset=f"{config['dataset']}/{TRAIN_SPLIT}",
    )
    fraction = config["label_percent"] / 100
    chosen = label_fractions.subset_image_ids(manifest, fraction)
    if not chosen:
        raise click.ClickException(
            f"The {config['label_percent']} % subset of {config['dataset']} is "
            "empty; use a larger --label-percent."
        )
    return label_fractions.filter_dataset(train, manifest, fraction), len(chosen), load


def run_classification(config, run_dir, verbose=1):
    """Train a linear probe or fine-tune, select on validation, test once.

    Returns:
        The test `AUCReport`.
    """
    import keras
    import tensorflow as tf

    from keras_dissect import evaluation
    from keras_dissect.data import pipelines
    from keras_dissect.models import classifier as classifier_lib

    run_dir = _prepare_run_dir(run_dir, config)
    names = datasets.class_names(config["dataset"])
    train, train_size, load = _training_split(config, run_dir)
    keras.utils.set_random_seed(config["seed"])

    def batches(ds, training):
        return pipelines.classification_dataset(
            ds, config["image_size"], config["batch_size"], training=training,
            channels=config["channels"], seed=config["seed"],
        )

    train_batches = batches(train, True)
    steps_per_epoch = config["steps_per_epoch"] or None
    if steps_per_epoch:
        # Repeated so that successive epochs continue through the data
        # instead of restarting it.
        train_batches = train_batches.repeat()
    else:
        # Filtering by label fraction hides the number of batches from
        # Keras, which would then warn that the data ran out.
        num_batches = math.ceil(train_size / config["batch_size"])
        train_batches = train_batches.apply(tf.data.experimental.assert_cardinality(num_batches))
    validation_batches = batches(load(VALIDATION_SPLIT), False).cache()
    test_batches = batches(load(TEST_SPLIT), False)

    model = classifier_lib.build_classifier(_encoder(config), len(names), mode=config["mode"])
    classifier_lib.compile_classifier(model, mode=config["mode"], learning_rate=config["learning_rate"])

    # Model selection uses the validation split only, and the test split is
    # read once, after training, with the selected weights.
    callbacks = [
        evaluation.ValidationAUC(validation_batches, names),
        keras.callbacks.EarlyStopping(
            monitor=evaluation.validation_auc.VALIDATION_AUC_KEY,
            mode="max",
            patience=config["patience"],
            restore_best_weights=True,
        ),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE)),
    ]
    click.echo(f"Training on {train_size} images ({config['label_percent']} % of the labels).")
    model.fit(
        train_batches, epochs=config["epochs"], steps_per_epoch=steps_per_epoch,
        callbacks=callbacks, verbose=verbose,
    )

    model_path = run_dir / CLASSIFIER_FILE
    model.save(model_path)
    model_files.write_metadata(
        model_path,
        {"class_names": names, "image_size": config["image_size"], "channels": config["channels"]},
    )

    labels, scores = evaluation.predict_with_labels(model, test_batches)
    report = evaluation.compute_auc_report(labels, scores, names)
    title = f"{config['dataset']} test, {config['mode']}, {config['label_percent']} % labels"
    evaluation.write_auc_json(report, run_dir / "test_auc.json", {"config": config})
    evaluation.write_auc_markdown(report, run_dir / "test_auc.md", title)
    evaluation.plot_roc_curves(labels, scores, report, run_dir / "test_roc.png")
    return report


def run_segmentation(config, run_dir, verbose=1):
    """Train the U-Net segmenter and score Dice and IoU on the test split.

    Returns:
        The test scores as a dict.
    """
    import keras
    import tensorflow as tf

    from keras_dissect import evaluation
    from keras_dissect.data import pipelines
    from keras_dissect.models import segmenter as segmenter_lib

    run_dir = _prepare_run_dir(run_dir, config)
    keras.utils.set_random_seed(config["seed"])

    def batches(split, training):
        ds = datasets.load(
            config["dataset"], split, config["dataset_config"],
            config.get("data_dir"), config.get("manual_dir"),
        )
        size = config["image_size"]
        image_shape = (None, size, size, config["channels"])
        mask_shape = (None, size, size, 1)

        # NOTE: the pipeline leaves the spatial size unknown for datasets
        # stored at varying sizes, and bilinear UpSampling2D fails while
        # TensorFlow traces such shapes, so the known size is set here.
        return pipelines.segmentation_dataset(
            ds, size, config["batch_size"], training=training,
            channels=config["channels"], seed=config["seed"],
        ).map(lambda images, masks: (tf.ensure_shape(images, image_shape), tf.ensure_shape(masks, mask_shape)))

    train_batches = batches(TRAIN_SPLIT, True)
    steps_per_epoch = config["steps_per_epoch"] or None
    if steps_per_epoch:
        train_batches = train_batches.repeat()
    validation_batches = batches(VALIDATION_SPLIT, False).cache()

    model = segmenter_lib.build_segmenter(
        _backbone(config),
        freeze_backbone=config["freeze_backbone"],
        input_shape=(config["image_size"], config["image_size"], config["channels"]),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=config["learning_rate"]),
        loss=segmenter_lib.DiceBCELoss(),
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config["patience"], restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE)),
    ]
    model.fit(
        train_batches, validation_data=validation_batches, epochs=config["epochs"],
        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
    )
    model.save(run_dir / SEGMENTER_FILE)

    truths, predictions = [], []
    for images, masks in batches(TEST_SPLIT, False).as_numpy_iterator():
        predictions.append(keras.ops.convert_to_numpy(model.predict_on_batch(images)))
        truths.append(masks)
    import numpy as np

    scores = evaluation.segmentation_scores(np.concatenate(truths), np.concatenate(predictions))
    (run_dir / "test_segmentation.json").write_text(
        json.dumps({"scores": scores, "config": config}, indent=2) + "\n"
    )
    return scores
