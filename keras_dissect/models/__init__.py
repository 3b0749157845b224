"""Backbone, heads and the DiSSECT model."""

from keras_dissect.models.dissect import DiSSECT
from keras_dissect.models.heads import MLPHead
from keras_dissect.models.resnet import ResNet18Backbone
from keras_dissect.models.resnet import resnet18_backbone
