"""CheXpert dataset builder."""

from keras_dissect_tfds.chexpert.chexpert import Chexpert
from keras_dissect_tfds.chexpert.chexpert import ChexpertConfig
from keras_dissect_tfds.chexpert.labels import CHEXPERT_OBSERVATIONS
from keras_dissect_tfds.chexpert.labels import COMPETITION_TASKS
