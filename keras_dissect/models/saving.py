"""Helpers that keep DiSSECT models portable between backends."""

import keras
import numpy as np
from keras import ops

BACKEND_MODULE_PREFIX = "keras.src.backend."


def copy_weights(source, destination):
    """Assign fresh copies of `source`'s weights to `destination`, in order.

    Each value goes through its own NumPy copy, so that no two variables ever
    share one buffer (JAX rejects donating the same buffer twice).
    """
    for source_variable, variable in zip(source.weights, destination.weights):
        variable.assign(np.array(ops.convert_to_numpy(source_variable), copy=True))


def portable_compile_config(config):
    """Return a compile config that loads and trains on every backend.

    Built-in optimizers serialize under a backend-only module on some backends
    (`keras.src.backend.torch.optimizers...` on PyTorch, Keras 3.15), which
    the other backends cannot import, so the public `keras.optimizers` module
    is named instead. `jit_compile=True` means XLA on TensorFlow and JAX but
    `torch.compile` on PyTorch, so the file records `"auto"`.
    """
    if not config:
        return config
    config = dict(config)

    optimizer = config.get("optimizer")
    if (
        isinstance(optimizer, dict)
        and str(optimizer.get("module", "")).startswith(BACKEND_MODULE_PREFIX)
        and hasattr(keras.optimizers, optimizer.get("class_name", ""))
    ):
        config["optimizer"] = dict(optimizer, module="keras.optimizers", registered_name=None)

    if "jit_compile" in config:
        config["jit_compile"] = "auto"
    return config
