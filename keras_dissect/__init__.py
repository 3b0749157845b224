"""DiSSECT self-supervised pretraining for chest X-rays, in Keras 3.

Choose the Keras backend (`KERAS_BACKEND=tensorflow|jax|torch`) before the
first import. Subpackages: `layers` (quantizers, SERF), `models` (backbone,
DiSSECT, downstream models), `optimizers` (LARS, schedules), `data`
(decoding, tf.data pipelines, label fractions), `evaluation` (AUC, Dice).
"""

__version__ = "0.1.0"

from keras_dissect.layers import SERF
from keras_dissect.layers import MultiScaleQuantizer
from keras_dissect.layers import VectorQuantizer
from keras_dissect.models import DiSSECT
from keras_dissect.models import resnet18_backbone
from keras_dissect.optimizers import LARS
from keras_dissect.optimizers import WarmupCosine
