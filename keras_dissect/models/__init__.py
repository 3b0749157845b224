"""Backbone, heads, the DiSSECT model and the downstream models.

Importing this package registers every custom class with Keras, so
`keras.saving.load_model` reads any `.keras` file of this library after
`import keras_dissect`.
"""

from keras_dissect.models.classifier import MaskedBinaryCrossentropy
from keras_dissect.models.classifier import build_classifier
from keras_dissect.models.dissect import DiSSECT
from keras_dissect.models.heads import MLPHead
from keras_dissect.models.resnet import ResNet18Backbone
from keras_dissect.models.resnet import resnet18_backbone
from keras_dissect.models.segmenter import DiceBCELoss
from keras_dissect.models.segmenter import build_segmenter
