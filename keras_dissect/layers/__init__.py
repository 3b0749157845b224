"""Quantization and fusion layers of DiSSECT."""

from keras_dissect.layers.multi_scale_quantizer import MultiScaleQuantizer
from keras_dissect.layers.scales import SCALE_STRIDES
from keras_dissect.layers.scales import SCALES
from keras_dissect.layers.serf import SERF
from keras_dissect.layers.vector_quantizer import VectorQuantizer
