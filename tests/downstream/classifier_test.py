import keras
import numpy as np
import pytest

from keras_dissect.evaluation import ValidationAUC
from keras_dissect.models import classifier as classifier_lib
from keras_dissect.models import resnet

IMAGE_SIZE = 32
NUM_CLASSES = 3


def _encoder():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    return keras.Model(images, backbone(images)["embedding"], name="encoder")


def _data(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    labels = rng.integers(0, 2, (batch, NUM_CLASSES)).astype("float32")
    labels[0, 0] = -1
    return images, labels


def test_masked_bce_matches_numpy():
    y_true = np.array([[1.0, 0.0, -1.0], [0.0, -1.0, -1.0]])
    y_pred = np.array([[0.8, 0.3, 0.99], [0.6, 0.01, 0.5]])
    loss = classifier_lib.MaskedBinaryCrossentropy()(y_true, y_pred)

    # Ignored entries add zero; each row is divided by K = 3. Keras clips
    # probabilities at 1e-7, far from these values, so 1e-6 covers float32.
    row0 = -(np.log(0.8) + np.log(0.7)) / 3
    row1 = -np.log(0.4) / 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), (row0 + row1) / 2, rtol=1e-5)


def test_masked_bce_ignored_entries_get_no_gradient_effect():
    loss = classifier_lib.MaskedBinaryCrossentropy()
    y_pred = np.array([[0.8, 0.3]])
    a = loss(np.array([[1.0, -1.0]]), y_pred)
    b = loss(np.array([[1.0, -1.0]]), np.array([[0.8, 0.99]]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-6)


def test_masked_bce_serialization():
    loss = classifier_lib.MaskedBinaryCrossentropy(from_logits=True)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, classifier_lib.MaskedBinaryCrossentropy)
    assert restored.from_logits is True


def test_linear_probe_trains_head_only():
    encoder = _encoder()
    model = classifier_lib.build_classifier(encoder, NUM_CLASSES, mode="linear_probe")
    classifier_lib.compile_classifier(model, mode="linear_probe")
    images, labels = _data()
    assert model.output_shape == (None, NUM_CLASSES)
    assert len(model.trainable_weights) == 2

    frozen_before = [keras.ops.convert_to_numpy(w) for w in encoder.weights]
    head_before = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)

    # Frozen kernels and BatchNorm moving statistics stay exactly the same.
    for before, weight in zip(frozen_before, encoder.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(weight))
    head_after = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    assert not np.allclose(head_before, head_after)

    probabilities = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    assert probabilities.shape == (8, NUM_CLASSES)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_finetune_trains_encoder(tmp_path):
    encoder = _encoder()
    model = classifier_lib.build_classifier(
        encoder, NUM_CLASSES, mode="finetune", dropout_rate=0.1
    )
    classifier_lib.compile_classifier(model, mode="finetune", learning_rate=1e-2)
    assert len(model.trainable_weights) > 2
    images, labels = _data()
    before = [keras.ops.convert_to_numpy(w) for w in encoder.trainable_weights]
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    moved = [
        not np.allclose(b, keras.ops.convert_to_numpy(w))
        for b, w in zip(before, encoder.trainable_weights)
    ]
    assert all(moved)

    path = tmp_path / "classifier.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored.predict(images, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(images, verbose=0)),
        atol=1e-6,
    )


def test_validation_auc_callback_logs():
    encoder = _encoder()
    model = classifier_lib.build_classifier(encoder, NUM_CLASSES)
    classifier_lib.compile_classifier(model)
    images, labels = _data(batch=16, seed=1)
    callback = ValidationAUC([(images[:8], labels[:8]), (images[8:], labels[8:])])
    history = model.fit(images, labels, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert len(history.history["val_auc"]) == 2
    assert 0.0 <= history.history["val_auc"][-1] <= 1.0
    assert callback.last_report.num_classes == NUM_CLASSES


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "probe"}, "mode"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
    ],
)
def test_build_classifier_rejects(kwargs, message):
    arguments = {"num_classes": NUM_CLASSES}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        classifier_lib.build_classifier(_encoder(), **arguments)


def test_build_classifier_rejects_dict_backbone():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    with pytest.raises(ValueError, match="extract_encoder"):
        classifier_lib.build_classifier(backbone, NUM_CLASSES)
