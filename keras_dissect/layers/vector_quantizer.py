"""Vector quantization with an EMA-updated codebook."""

import keras
from keras import ops

DEFAULT_NUM_CODES = 2048
DEFAULT_CODE_DIM = 128
DEFAULT_DECAY = 0.99
DEFAULT_COMMITMENT_WEIGHT = 0.25
DEFAULT_EPSILON = 1e-5
DEFAULT_LIVE_CODE_WINDOW = 100
# 8192 rows x 2048 codes of float32 distances is 64 MiB per chunk.
DEFAULT_CHUNK_SIZE = 8192
# The per-code step counters saturate here so that they never overflow int32.
MAX_STEPS_SINCE_ASSIGNED = 2**30


def _check_int_at_least(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="keras_dissect")
class VectorQuantizer(keras.layers.Layer):
    """Vector quantizer whose codebook follows EMAs of the vectors assigned to it.

    Each input vector (the last axis) is replaced by its nearest code in a
    codebook of `num_codes` vectors of size `code_dim`. The search uses the
    expanded squared distance `||z||^2 - 2 z.e + ||e||^2`, with one matmul
    per chunk of `chunk_size` input vectors, so memory stays bounded on
    large inputs.
    Gradients pass straight through the quantization to the inputs.

    The codebook is not trained by gradients. In each call with
    `training=True` it is set to `ema_sum / smoothed(ema_count)`, where
    `ema_count` and `ema_sum` are exponential moving averages (weight
    `decay` on the old value) of the number of input vectors assigned to each
    code and of their sum. The counts are Laplace-smoothed before the
    division: `smoothed_k = (n_k + epsilon) / (N + K * epsilon) * N` with
    `N = sum_k n_k`, so that a rarely used code never divides by zero.

    EMA convention: the averages start from the codebook with unit counts
    (`ema_count = 1`, `ema_sum = codebook`) and are not bias-corrected. After
    `t` training calls with assignment counts `n_1 .. n_t`, the count of a code
    is `decay^t + (1 - decay) * sum_s decay^(t - s) * n_s`. An unassigned
    code keeps its vector while its count is much larger than `epsilon`,
    because its count and sum decay together. After about
    `log(epsilon) / log(decay)` calls without an assignment (about 1150 with
    the defaults) the smoothing pulls it toward zero, unless a dead-code
    restart re-seeds it first.

    Codebook health:
    - `perplexity`: `exp(-sum_k p_k log p_k)` of the distribution `p` of
      codes assigned in the current batch (1 when one code takes every vector,
      `num_codes` when all are used equally).
    - `live_code_fraction`: the fraction of codes that were assigned in at
      least one of the last `live_code_window` training calls, counting the
      current one. Creation, initialization from a batch and a dead-code
      restart count as an assignment, so every code is live during the first
      `live_code_window` training calls.

    Dead-code restart (`dead_code_steps > 0`): after the EMA update, each
    code not assigned for `dead_code_steps` training calls is re-seeded with a
    randomly drawn input vector of the current batch, and its EMA state is
    reset to the convention above (`ema_count = 1`, `ema_sum = vector`).

    The codebook, EMA state and counters are float32 (int32 for counters)
    non-trainable weights that are never autocast, so the distances and EMA
    updates run in float32 under a `mixed_bfloat16` policy too. The quantized
    output is cast back to the compute dtype.

    Args:
        num_codes: Number of codes K in the codebook.
        code_dim: Size D of each code; the last axis of the inputs must match.
        decay: EMA decay in [0, 1). 0 sets each assigned code to the batch
            mean of its vectors (with the smoothing above) and each unassigned
            code to zero.
        commitment_weight: Weight beta >= 0 of the commitment loss.
        epsilon: Laplace smoothing constant (> 0) of the EMA counts.
        dead_code_steps: Training calls without assignment after which a code
            is re-seeded from the inputs. 0 turns the restart off.
        init_from_first_batch: If True, the first training call sets the
            codebook to K input vectors drawn at random (with replacement, so
            a batch with fewer than K vectors gives duplicate codes) before
            quantizing.
        live_code_window: Window, in training calls, of `live_code_fraction`.
        chunk_size: Number of input vectors per distance matmul.
        codebook_initializer: Initializer of the codebook.
        seed: Seed of the random draws of dead-code restart and first-batch
            initialization. The codebook initializer takes its own seed.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tensor of shape `(..., D)`.
        training: Whether to update the codebook and its EMA state.

    Returns:
        A dict with `"quantized"` (same shape as `inputs`, compute dtype, the
        straight-through estimate `inputs + stop_gradient(code - inputs)`),
        `"indices"` (int32, `inputs.shape[:-1]`), `"commitment_loss"` (float32
        scalar, `commitment_weight * mean((inputs - stop_gradient(code))^2)`,
        the mean taken over all elements, i.e. the per-vector squared distance
        divided by D), `"perplexity"` and `"live_code_fraction"` (float32
        scalars, defined above).

    Example:

    >>> quantizer = VectorQuantizer(num_codes=16, code_dim=4)
    >>> outputs = quantizer(keras.random.normal((2, 8, 8, 4)), training=True)
    >>> outputs["indices"].shape
    (2, 8, 8)
    """

    def __init__(
        self,
        num_codes=DEFAULT_NUM_CODES,
        code_dim=DEFAULT_CODE_DIM,
        decay=DEFAULT_DECAY,
        commitment_weight=DEFAULT_COMMITMENT_WEIGHT,
        epsilon=DEFAULT_EPSILON,
        dead_code_steps=0,
        init_from_first_batch=False,
        live_code_window=DEFAULT_LIVE_CODE_WINDOW,
        chunk_size=DEFAULT_CHUNK_SIZE,
        codebook_initializer="random_normal",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_int_at_least("num_codes", num_codes, 1)
        _check_int_at_least("code_dim", code_dim, 1)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1). Received: decay={decay}")
        if commitment_weight < 0:
            raise ValueError(
                "`commitment_weight` must be >= 0. "
                f"Received: commitment_weight={commitment_weight}"
            )
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon}")
        _check_int_at_least("dead_code_steps", dead_code_steps, 0)
        _check_int_at_least("live_code_window", live_code_window, 1)
        _check_int_at_least("chunk_size", chunk_size, 1)

        self.num_codes = num_codes
        self.code_dim = code_dim
        self.decay = float(decay)
        self.commitment_weight = float(commitment_weight)
        self.epsilon = float(epsilon)
        self.dead_code_steps = dead_code_steps
        self.init_from_first_batch = bool(init_from_first_batch)
        self.live_code_window = live_code_window
        self.chunk_size = chunk_size
        self.codebook_initializer = keras.initializers.get(codebook_initializer)
        self.seed = seed
        if self.dead_code_steps > 0 or self.init_from_first_batch:
            self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self._check_code_dim(input_shape)
        weight_options = dict(trainable=False, autocast=False)

        # The EMA sums start equal to the codebook, which is the EMA
        # convention of the class docstring. They get a copy so that the two variables
        # never share one buffer (JAX rejects donating a buffer twice).
        initial_codebook = self.codebook_initializer(
            (self.num_codes, self.code_dim), "float32"
        )
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.code_dim),
            initializer=lambda shape, dtype: initial_codebook,
            dtype="float32",
            name="codebook",
            **weight_options,
        )
        self.ema_count = self.add_weight(
            shape=(self.num_codes,),
            initializer="ones",
            dtype="float32",
            name="ema_count",
            **weight_options,
        )
        self.ema_sum = self.add_weight(
            shape=(self.num_codes, self.code_dim),
            initializer=lambda shape, dtype: ops.copy(initial_codebook),
            dtype="float32",
            name="ema_sum",
            **weight_options,
        )
        self.steps_since_assigned = self.add_weight(
            shape=(self.num_codes,),
            initializer="zeros",
            dtype="int32",
            name="steps_since_assigned",
            **weight_options,
        )
        self.initialized = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            name="initialized",
            **weight_options,
        )

    def _check_code_dim(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.code_dim:
            raise ValueError(
                f"The last axis of the inputs must have size code_dim="
                f"{self.code_dim}. Received: inputs.shape={tuple(input_shape)}"
            )

    def _distance_argmin(self, vectors, codebook, half_code_sq_norms):
        # argmin_e ||z||^2 - 2 z.e + ||e||^2 = argmax_e z.e - ||e||^2 / 2,
        # because ||z||^2 is the same for every code. This form needs one
        # elementwise pass over the (rows, K) matmul output instead of two.
        scores = ops.matmul(vectors, ops.transpose(codebook)) - half_code_sq_norms
        return ops.cast(ops.argmax(scores, axis=-1), "int32")

    def _nearest_codes(self, flat, codebook):
        """Return the int32 index of the nearest code of each row of `flat`."""
        half_code_sq_norms = 0.5 * ops.sum(ops.square(codebook), axis=-1)
        num_rows = flat.shape[0]
        if num_rows is not None and num_rows <= self.chunk_size:
            return self._distance_argmin(flat, codebook, half_code_sq_norms)

        # Pad to whole chunks and map over them, so that at most chunk_size x K
        # distances exist at a time. `ops.map` compiles to a loop under jit.
        num_rows = ops.shape(flat)[0]
        num_chunks = (num_rows + self.chunk_size - 1) // self.chunk_size
        padding = num_chunks * self.chunk_size - num_rows
        padded = ops.pad(flat, [[0, padding], [0, 0]])
        chunks = ops.reshape(padded, (-1, self.chunk_size, self.code_dim))
        indices = ops.map(
            lambda chunk: self._distance_argmin(chunk, codebook, half_code_sq_norms),
            chunks,
        )
        return ops.reshape(indices, (-1,))[:num_rows]

    def _sample_rows(self, flat):
        """Draw `num_codes` rows of `flat` uniformly, with replacement."""
        num_rows = ops.shape(flat)[0]
        uniform = keras.random.uniform((self.num_codes,), seed=self.seed_generator)
        rows = ops.cast(ops.floor(uniform * ops.cast(num_rows, "float32")), "int32")
        rows = ops.minimum(rows, ops.cast(num_rows, "int32") - 1)
        return ops.take(flat, rows, axis=0)

    def _initialize_from_batch(self, flat):
        # Branch-free, so that it runs under jit on every backend: once the flag
        # is set, each `where` keeps the current state.
        keep = ops.cast(self.initialized.value, "bool")
        sampled = self._sample_rows(flat)
        self.codebook.assign(ops.where(keep, self.codebook.value, sampled))
        self.ema_sum.assign(ops.where(keep, self.ema_sum.value, sampled))
        self.ema_count.assign(
            ops.where(keep, self.ema_count.value, ops.ones_like(self.ema_count.value))
        )
        self.steps_since_assigned.assign(
            ops.where(
                keep,
                self.steps_since_assigned.value,
                ops.zeros_like(self.steps_since_assigned.value),
            )
        )
        self.initialized.assign(ops.ones_like(self.initialized.value))

    def _sum_per_code(self, values, indices):
        """Sum the rows of `values` `(N, ...)` per code index: `(num_codes, ...)`."""
        # A scatter-add, because torch's `ops.segment_sum` repeats the indices
        # over every element for `scatter_reduce` (measured 2-3x slower on CPU).
        # A one-hot matmul would cost N x K x D multiply-adds. TF and JAX
        # lower both forms to the same scatter.
        zeros = ops.zeros((self.num_codes,) + tuple(values.shape[1:]), "float32")
        return ops.scatter_update(
            zeros, ops.expand_dims(indices, -1), values, reduction="add"
        )

    def _update_ema(self, flat, indices, counts):
        decay = self.decay
        sums = self._sum_per_code(flat, indices)
        ema_count = decay * self.ema_count.value + (1.0 - decay) * counts
        ema_sum = decay * self.ema_sum.value + (1.0 - decay) * sums

        total = ops.sum(ema_count)
        smoothed = (
            (ema_count + self.epsilon)
            / (total + self.num_codes * self.epsilon)
            * total
        )
        self.ema_count.assign(ema_count)
        self.ema_sum.assign(ema_sum)
        self.codebook.assign(ema_sum / smoothed[:, None])

        steps = ops.minimum(
            self.steps_since_assigned.value + 1, MAX_STEPS_SINCE_ASSIGNED
        )
        self.steps_since_assigned.assign(
            ops.where(counts > 0, ops.zeros_like(steps), steps)
        )

    def _restart_dead_codes(self, flat):
        steps = self.steps_since_assigned.value
        dead = steps >= self.dead_code_steps
        sampled = self._sample_rows(flat)
        self.codebook.assign(ops.where(dead[:, None], sampled, self.codebook.value))
        self.ema_sum.assign(ops.where(dead[:, None], sampled, self.ema_sum.value))
        self.ema_count.assign(
            ops.where(dead, ops.ones_like(self.ema_count.value), self.ema_count.value)
        )
        self.steps_since_assigned.assign(ops.where(dead, ops.zeros_like(steps), steps))

    def call(self, inputs, training=None):
        self._check_code_dim(inputs.shape)
        training = bool(training)

        # Distances, losses and EMA statistics are computed in float32; the
        # codebook weights are float32 and never autocast.
        flat = ops.cast(ops.reshape(inputs, (-1, self.code_dim)), "float32")
        flat_constant = ops.stop_gradient(flat)
        if training and self.init_from_first_batch:
            self._initialize_from_batch(flat_constant)

        codebook = self.codebook.value
        indices = self._nearest_codes(flat_constant, codebook)
        codes = ops.take(codebook, indices, axis=0)

        commitment_loss = self.commitment_weight * ops.mean(
            ops.square(flat - ops.stop_gradient(codes))
        )
        codes = ops.cast(ops.reshape(codes, ops.shape(inputs)), inputs.dtype)
        quantized = inputs + ops.stop_gradient(codes - inputs)

        counts = self._sum_per_code(ops.ones_like(indices, dtype="float32"), indices)
        if training:
            self._update_ema(flat_constant, indices, counts)
            if self.dead_code_steps > 0:
                self._restart_dead_codes(flat_constant)

        probabilities = counts / ops.maximum(ops.sum(counts), 1.0)
        entropy = -ops.sum(
            probabilities * ops.log(ops.maximum(probabilities, keras.config.epsilon()))
        )
        live = self.steps_since_assigned.value < self.live_code_window
        return {
            "quantized": quantized,
            "indices": ops.reshape(indices, ops.shape(inputs)[:-1]),
            "commitment_loss": commitment_loss,
            "perplexity": ops.exp(entropy),
            "live_code_fraction": ops.mean(ops.cast(live, "float32")),
        }

    def lookup(self, indices):
        """Return the code vectors `(..., D)` of int `indices` `(...)`, in compute dtype."""
        codes = ops.take(self.codebook.value, ops.cast(indices, "int32"), axis=0)
        return ops.cast(codes, self.compute_dtype)

    def compute_output_spec(self, inputs, training=None):
        scalar = keras.KerasTensor((), dtype="float32")
        return {
            "quantized": keras.KerasTensor(inputs.shape, dtype=self.compute_dtype),
            "indices": keras.KerasTensor(inputs.shape[:-1], dtype="int32"),
            "commitment_loss": scalar,
            "perplexity": keras.KerasTensor((), dtype="float32"),
            "live_code_fraction": keras.KerasTensor((), dtype="float32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_codes": self.num_codes,
                "code_dim": self.code_dim,
                "decay": self.decay,
                "commitment_weight": self.commitment_weight,
                "epsilon": self.epsilon,
                "dead_code_steps": self.dead_code_steps,
                "init_from_first_batch": self.init_from_first_batch,
                "live_code_window": self.live_code_window,
                "chunk_size": self.chunk_size,
                "codebook_initializer": keras.initializers.serialize(
                    self.codebook_initializer
                ),
                "seed": self.seed,
            }
        )
        return config
