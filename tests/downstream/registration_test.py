"""A fresh process that imports only `keras_dissect` loads the library's `.keras` files."""

import os
import subprocess
import sys

import keras
import numpy as np

from keras_dissect.models import classifier as classifier_lib
from keras_dissect.models import resnet

IMAGE_SIZE = 32
LOAD_SCRIPT = """
import sys
import keras
import numpy as np
import keras_dissect

model = keras.saving.load_model(sys.argv[1])
images = np.load(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(images)))
"""


def test_compiled_classifier_loads_after_package_import(tmp_path):
    backbone = resnet.resnet18_backbone((IMAGE_SIZE, IMAGE_SIZE, 1), width=8)
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    encoder = keras.Model(images, backbone(images)["embedding"])
    model = classifier_lib.build_classifier(encoder, num_classes=2)
    # The compiled loss is a custom class, which a plain load must resolve.
    classifier_lib.compile_classifier(model, mode="linear_probe")
    model_path = tmp_path / "classifier.keras"
    model.save(model_path)

    batch = np.random.default_rng(0).random((2, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    np.save(tmp_path / "images.npy", batch)
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(model_path), str(tmp_path / "images.npy"),
         str(tmp_path / "outputs.npy")],
        env=dict(os.environ),
        capture_output=True,
        text=True,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    expected = keras.ops.convert_to_numpy(model(batch))
    # Same backend, same weights: only float32 summation order can differ.
    np.testing.assert_allclose(np.load(tmp_path / "outputs.npy"), expected, rtol=1e-5, atol=1e-6)
