"""TFDS builders for chest X-ray datasets.

Importing this package registers every builder with TFDS, so that
`tfds.load("nih_chest_xray14/224", ...)` and `tfds.builder(...)` find them.
"""

from keras_dissect_tfds import chexpert
from keras_dissect_tfds import cxr_phantom
from keras_dissect_tfds import nih_chest_xray14
from keras_dissect_tfds import rsna_pneumonia
from keras_dissect_tfds import siim_acr_pneumothorax
