"""Optimizers and learning-rate schedules for pretraining."""

from keras_dissect.optimizers.defaults import pretraining_optimizer
from keras_dissect.optimizers.defaults import scaled_learning_rate
from keras_dissect.optimizers.lars import LARS
from keras_dissect.optimizers.schedules import WarmupCosine
