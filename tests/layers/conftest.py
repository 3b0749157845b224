"""Fixtures shared by the layer tests."""

import numpy as np
import pytest

import keras


def _trainable_gradients(layers, loss_function):
    """Return the gradient of `loss_function()` for each trainable variable of `layers`."""
    variables = [v for layer in layers for v in layer.trainable_variables]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_function()
        gradients = tape.gradient(loss, variables)
        return variables, [np.asarray(g) for g in gradients]
    if backend == "jax":
        import jax

        def stateless_loss(values):
            mapping = list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping):
                return loss_function()

        # Compiled as a whole: op-by-op differentiation on JAX takes many
        # seconds for a few layers.
        gradients = jax.jit(jax.grad(stateless_loss))([v.value for v in variables])
        return variables, [np.asarray(g) for g in gradients]
    if backend == "torch":
        for variable in variables:
            variable.value.grad = None
        loss_function().backward()
        return variables, [v.value.grad.detach().cpu().numpy() for v in variables]
    raise NotImplementedError(f"no gradient helper for backend {backend}")


@pytest.fixture
def trainable_gradients():
    """Compute gradients of a loss for the trainable variables of some layers."""
    return _trainable_gradients
