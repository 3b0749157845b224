"""LARS: SGD with momentum and a layer-wise trust ratio."""

import keras
from keras import ops

DEFAULT_MOMENTUM = 0.9
# Trust coefficient eta: the common choice for LARS in self-supervised
# pretraining, and the value of the torch reference step in benchmarks/.
DEFAULT_TRUST_COEFFICIENT = 1e-3


@keras.saving.register_keras_serializable(package="keras_dissect")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling, written with `keras.ops` only.

    For each variable `w` with gradient `g` that is not excluded:

    ```python
    g = g + weight_decay * w
    trust = trust_coefficient * norm(w) / norm(g)  # 1 where a norm is 0
    velocity = momentum * velocity + trust * g
    w = w - learning_rate * velocity
    ```

    Excluded variables get neither the weight decay nor the trust ratio, only
    the momentum step. With `exclude_bias_and_norm`, every variable of rank 1
    or less is excluded: biases and the scales and offsets of normalization
    layers, found by shape rather than by name. Variables named through
    `exclude_from_weight_decay(var_list=..., var_names=...)` before the
    optimizer is built are excluded too.

    The weight decay is the coupled (L2) form that LARS adds to the gradient,
    not the decoupled form of AdamW, so the base class's decoupled decay step
    is switched off.

    Args:
        learning_rate: Float, `keras.optimizers.schedules.LearningRateSchedule`
            or callable with no arguments.
        momentum: Momentum of the velocity, in [0, 1).
        trust_coefficient: Trust coefficient eta, > 0.
        weight_decay: L2 coefficient added to the gradient, >= 0.
        exclude_bias_and_norm: Whether rank-1 variables skip the weight decay
            and the trust ratio.
        name: Optimizer name.
        **kwargs: Other `keras.optimizers.Optimizer` arguments (`clipnorm`,
            `global_clipnorm`, `use_ema`, `loss_scale_factor`, ...).
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=DEFAULT_MOMENTUM,
        trust_coefficient=DEFAULT_TRUST_COEFFICIENT,
        weight_decay=0.0,
        exclude_bias_and_norm=True,
        name="lars",
        **kwargs,
    ):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1). Received: momentum={momentum}"
            )
        if not trust_coefficient > 0.0:
            raise ValueError(
                "`trust_coefficient` must be positive. "
                f"Received: trust_coefficient={trust_coefficient}"
            )
        if weight_decay is None or not weight_decay >= 0.0:
            raise ValueError(
                "`weight_decay` must be a number >= 0. "
                f"Received: weight_decay={weight_decay}"
            )
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=float(weight_decay),
            name=name,
            **kwargs,
        )
        self.momentum = float(momentum)
        self.trust_coefficient = float(trust_coefficient)
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def _apply_weight_decay(self, variables):
        # LARS adds its weight decay to the gradient inside `update_step`.
        return

    def is_adapted(self, variable):
        """Return whether `variable` gets the weight decay and trust ratio."""
        if self.exclude_bias_and_norm and len(variable.shape) <= 1:
            return False
        return self._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        velocity = self.velocities[self._get_variable_index(variable)]

        if self.is_adapted(variable):
            gradient = gradient + ops.cast(self.weight_decay, dtype) * variable
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            gradient_norm = ops.sqrt(ops.sum(ops.square(gradient)))

            # A zero norm (fresh zero-initialized kernel, or no gradient)
            # would make the ratio 0 or undefined, so the step stays unscaled.
            both_positive = ops.logical_and(weight_norm > 0, gradient_norm > 0)
            trust_ratio = ops.where(
                both_positive,
                self.trust_coefficient
                * weight_norm
                / ops.where(both_positive, gradient_norm, ops.ones_like(gradient_norm)),
                ops.ones_like(weight_norm),
            )
            gradient = gradient * trust_ratio

        self.assign(velocity, ops.cast(self.momentum, dtype) * velocity + gradient)
        self.assign_sub(variable, learning_rate * velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "trust_coefficient": self.trust_coefficient,
                "exclude_bias_and_norm": self.exclude_bias_and_norm,
            }
        )
        return config
