import keras
import numpy as np
import pytest

from keras_dissect.models import resnet
from keras_dissect.models import segmenter as segmenter_lib

IMAGE_SIZE = 32


def test_dice_bce_loss_matches_numpy():
    y_true = np.zeros((2, 2, 2, 1), "float32")
    y_true[0, 0, 0] = 1
    y_pred = np.full((2, 2, 2, 1), 0.25, "float32")
    loss = keras.ops.convert_to_numpy(segmenter_lib.DiceBCELoss()(y_true, y_pred))

    expected = []
    for truth, prediction in zip(y_true.reshape(2, -1), y_pred.reshape(2, -1)):
        dice = (2 * (truth * prediction).sum() + 1) / (truth.sum() + prediction.sum() + 1)
        bce = -(truth * np.log(prediction) + (1 - truth) * np.log(1 - prediction)).mean()
        expected.append(1 - dice + bce)
    # float32 logs and sums of 4 pixels: 1e-5 relative is ample.
    np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)


def test_dice_bce_serialization():
    loss = segmenter_lib.DiceBCELoss(dice_weight=0.5, bce_weight=2.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (restored.dice_weight, restored.bce_weight) == (0.5, 2.0)


def test_segmenter_shape_and_training_step():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    model = segmenter_lib.build_segmenter(backbone)
    model.compile(optimizer="adam", loss=segmenter_lib.DiceBCELoss())
    rng = np.random.default_rng(0)
    images = rng.random((4, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    masks = np.zeros_like(images)
    masks[:, 8:16, 8:16] = 1
    history = model.fit(images, masks, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    prediction = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    assert prediction.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 1)
    assert ((prediction >= 0) & (prediction <= 1)).all()


def test_frozen_backbone_keeps_weights():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    model = segmenter_lib.build_segmenter(backbone, freeze_backbone=True)
    assert all(not w.trainable for w in backbone.weights)
    assert len(model.trainable_weights) > 0


def test_segmenter_rejects_bad_backbone():
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    flat = keras.Model(images, keras.layers.GlobalAveragePooling2D()(images))
    with pytest.raises(ValueError, match="dict outputs"):
        segmenter_lib.build_segmenter(flat)

    odd = resnet.resnet18_backbone((48, 40, 1), width=8)
    with pytest.raises(ValueError, match="multiples of 32"):
        segmenter_lib.build_segmenter(odd)


def test_segmenter_fixed_input_on_any_size_backbone():
    backbone = resnet.resnet18_backbone((None, None, 1), width=8)
    model = segmenter_lib.build_segmenter(backbone, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1))
    model.compile(optimizer="adam", loss=segmenter_lib.DiceBCELoss())
    images = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 1), "float32")
    model.fit(images, images, batch_size=2, epochs=1, verbose=0)
    assert model.output_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 1)
