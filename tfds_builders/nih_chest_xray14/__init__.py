"""NIH ChestX-ray14 dataset builder."""

from keras_dissect_tfds.nih_chest_xray14.labels import NIH_FINDINGS
from keras_dissect_tfds.nih_chest_xray14.nih_chest_xray14 import NihChestXray14
from keras_dissect_tfds.nih_chest_xray14.nih_chest_xray14 import (
    NihChestXray14Config,
)
