"""Quantization and fusion layers of DiSSECT."""

from keras_dissect.layers.vector_quantizer import VectorQuantizer
