"""DiSSECT self-supervised pretraining for chest X-rays, in Keras 3."""

__version__ = "0.1.0"
