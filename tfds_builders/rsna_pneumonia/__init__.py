"""RSNA pneumonia detection dataset builder."""

from keras_dissect_tfds.rsna_pneumonia.rsna_pneumonia import RSNA_FINDINGS
from keras_dissect_tfds.rsna_pneumonia.rsna_pneumonia import RsnaPneumonia
from keras_dissect_tfds.rsna_pneumonia.rsna_pneumonia import RsnaPneumoniaConfig
