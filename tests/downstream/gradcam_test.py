import keras
import numpy as np
import pytest

from keras_dissect.models import classifier as classifier_lib
from keras_dissect.models import gradcam
from keras_dissect.models import resnet

IMAGE_SIZE = 32


def _planted_classifier():
    # A toy encoder whose feature map is the image itself (1x1 convolution
    # with weight 1): class 0 then scores the bright area, class 1 its
    # negative, so Grad-CAM of class 0 must point at the planted square.
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    features = keras.layers.Conv2D(
        1, 1, kernel_initializer="ones", bias_initializer="zeros", name="features"
    )(images)
    embedding = keras.layers.GlobalAveragePooling2D()(features)
    encoder = keras.Model(images, embedding, name="encoder")
    model = classifier_lib.build_classifier(encoder, 2)
    model.get_layer("logits").set_weights(
        [np.array([[1.0, -1.0]], "float32"), np.zeros(2, "float32")]
    )
    return model


def test_grad_cam_highlights_planted_region():
    model = _planted_classifier()
    images = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 1), "float32")
    images[0, 4:12, 20:28] = 1.0
    images[1, 20:30, 2:10] = 1.0
    heat = gradcam.grad_cam(model, images, class_index=0, feature_layer="features")
    assert heat.shape == (2, IMAGE_SIZE, IMAGE_SIZE)
    assert heat.max() == pytest.approx(1.0)

    inside = heat[0, 4:12, 20:28].mean()
    outside = np.delete(heat[0].ravel(), np.ravel_multi_index(
        np.mgrid[4:12, 20:28].reshape(2, -1), (IMAGE_SIZE, IMAGE_SIZE))).mean()
    assert inside > 0.9
    assert outside < 0.1
    peak = np.unravel_index(heat[1].argmax(), heat[1].shape)
    assert 20 <= peak[0] < 30 and 2 <= peak[1] < 10

    # The opposite class has a negative weight everywhere: an empty map.
    np.testing.assert_array_equal(
        gradcam.grad_cam(model, images, class_index=1, feature_layer="features"), 0.0
    )


def test_grad_cam_on_resnet_classifier():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    encoder = keras.Model(images, backbone(images)["embedding"])
    model = classifier_lib.build_classifier(encoder, 3)
    batch = np.random.default_rng(0).random((2, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    for layer in (gradcam.DEFAULT_FEATURE_LAYER, "stage3_block2_out"):
        heat = gradcam.grad_cam(model, batch, class_index=2, feature_layer=layer)
        assert heat.shape == (2, IMAGE_SIZE, IMAGE_SIZE)
        assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_split_model_matches_full_model():
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    encoder = keras.Model(images, backbone(images)["embedding"])
    model = classifier_lib.build_classifier(encoder, 3)
    batch = np.random.default_rng(1).random((2, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    to_features, from_features = gradcam.split_model(model, "stage3_block1_out")
    # Same float32 operations in the same order: equal to rounding.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(from_features(to_features(batch))),
        keras.ops.convert_to_numpy(model(batch)),
        atol=1e-6,
    )


def test_grad_cam_rejects_bad_arguments():
    model = _planted_classifier()
    images = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), "float32")
    with pytest.raises(ValueError, match="class_index"):
        gradcam.grad_cam(model, images, class_index=5, feature_layer="features")
    with pytest.raises(ValueError, match="No layer named"):
        gradcam.grad_cam(model, images, class_index=0, feature_layer="missing")
