"""Backend-specific part of the DiSSECT train step: the momentum update.

`run_train_step` runs Keras's own train step (forward pass, loss, gradients,
optimizer step, metrics) and then moves the target tower towards the online
tower with `model.update_target()`. The math lives in the model and is the
same everywhere; only the way variables are assigned differs:

- JAX: Keras's train step is stateless and returns the new state, so the
  update runs inside a `StatelessScope` mapped onto that state, and the target
  variables' new values go back into the returned non-trainable state.
- TensorFlow: the variables are assigned directly inside the `tf.function`.
- PyTorch: the variables are assigned directly, under `torch.no_grad()` so
  that the update builds no autograd graph on the online parameters.
"""

import contextlib

import keras
from keras import backend


def _no_grad():
    if backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _stateless_train_step(model, parent_train_step, state, data):
    logs, state = parent_train_step(state, data)
    trainable, non_trainable, optimizer_variables, metrics_variables = state

    mapping = list(zip(model.trainable_variables, trainable))
    mapping.extend(zip(model.non_trainable_variables, non_trainable))
    mapping.extend(zip(model.optimizer.variables, optimizer_variables))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        momentum = model.update_target()

    updated = []
    for variable, value in zip(model.non_trainable_variables, non_trainable):
        new_value = scope.get_current_value(variable)
        updated.append(value if new_value is None else new_value)

    logs = dict(logs)
    logs["momentum"] = momentum
    return logs, (trainable, updated, optimizer_variables, metrics_variables)


def _stateful_train_step(model, parent_train_step, data):
    logs = dict(parent_train_step(data))
    with _no_grad():
        logs["momentum"] = model.update_target()
    return logs


def run_train_step(model, parent_train_step, *args):
    """Run Keras's train step, then the momentum update of the target tower.

    Args:
        model: The model; it provides `update_target()`, which assigns the
            target variables and returns the momentum it used.
        parent_train_step: Keras's `train_step` bound to `model` (the
            superclass method).
        *args: The arguments Keras passed to `train_step`: `(state, data)` on
            JAX, `(data,)` on TensorFlow and PyTorch.

    Returns:
        What Keras's train step returns (logs, and the state on JAX), with
        the current momentum added to the logs under `"momentum"`.
    """
    if backend.backend() == "jax":
        return _stateless_train_step(model, parent_train_step, *args)
    return _stateful_train_step(model, parent_train_step, *args)

