import re

import numpy as np
import pytest
from keras import ops

import keras
from keras_dissect.models import resnet

WIDTH = 8
IMAGE_SIZE = 32
STRIDES = {"stem": 2, "stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}
STAGE_CHANNELS = {
    "stem": WIDTH,
    "stage1": WIDTH,
    "stage2": 2 * WIDTH,
    "stage3": 4 * WIDTH,
    "stage4": 8 * WIDTH,
}


@pytest.mark.parametrize("channels", [1, 3])
def test_backbone_output_shapes(channels):
    model = resnet.resnet18_backbone(input_shape=(None, None, channels), width=WIDTH)
    images = np.random.default_rng(0).random((2, IMAGE_SIZE, IMAGE_SIZE, channels))
    outputs = model(images.astype("float32"))

    assert set(outputs) == set(STRIDES) | {"embedding"}
    for key, stride in STRIDES.items():
        size = IMAGE_SIZE // stride
        assert tuple(outputs[key].shape) == (2, size, size, STAGE_CHANNELS[key])
    assert tuple(outputs["embedding"].shape) == (2, 8 * WIDTH)
    assert model.embedding_dim == 8 * WIDTH
    assert model.channels == channels


def test_backbone_standard_parameter_count():
    # torchvision's resnet18 without its classifier has 11,176,512 parameters
    # for 3-channel input; Keras also counts the 9,600 BatchNorm moving
    # statistics (2 per BatchNorm channel).
    model = resnet.resnet18_backbone(input_shape=(64, 64, 3), width=64)
    assert model.count_params() == 11_176_512 + 9_600


def test_backbone_standardizes_inputs():
    model = resnet.resnet18_backbone(width=WIDTH)
    standardize = model.get_layer("standardize")
    value = ops.convert_to_numpy(standardize(np.array([[resnet.PIXEL_MEAN]], "float32")))
    np.testing.assert_allclose(value, 0.0, atol=1e-6)


def test_backbone_saving_round_trip(tmp_path):
    model = resnet.resnet18_backbone(input_shape=(None, None, 1), width=WIDTH)
    images = np.random.default_rng(1).random((2, IMAGE_SIZE, IMAGE_SIZE, 1))
    images = images.astype("float32")
    path = tmp_path / "backbone.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, resnet.ResNet18Backbone)
    assert loaded.get_config() == model.get_config()
    expected = model(images)
    restored = loaded(images)
    for key in expected:
        np.testing.assert_array_equal(
            ops.convert_to_numpy(restored[key]), ops.convert_to_numpy(expected[key])
        )


def test_backbone_config_round_trip():
    model = resnet.ResNet18Backbone(input_shape=(32, 32, 3), width=WIDTH, name="tower")
    clone = resnet.ResNet18Backbone.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.name == "tower"
    assert len(clone.weights) == len(model.weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (32, 32)}, "input_shape=(32, 32)"),
        ({"input_shape": (32, 32, 2)}, "input_shape=(32, 32, 2)"),
        ({"width": 0}, "width=0"),
        ({"width": 8.0}, "width=8.0"),
    ],
)
def test_backbone_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resnet.ResNet18Backbone(**kwargs)
