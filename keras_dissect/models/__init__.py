"""Backbone, heads and the DiSSECT model."""

from keras_dissect.models.resnet import ResNet18Backbone
from keras_dissect.models.resnet import resnet18_backbone
