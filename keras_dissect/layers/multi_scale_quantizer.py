"""Projection and vector quantization of feature maps at several scales."""

import keras

from keras_dissect.layers import scales as scales_lib
from keras_dissect.layers import vector_quantizer as vq_lib

FEATURE_MAP_RANK = 4


def check_feature_map_shape(shape, name):
    """Raise a `ValueError` unless `shape` is a channels-last `(B, h, w, C)` shape."""
    if shape is None or len(shape) != FEATURE_MAP_RANK:
        raise ValueError(
            f"`{name}` must be a 4-D channels-last feature map (B, h, w, C). "
            f"Received: {name}.shape={None if shape is None else tuple(shape)}"
        )


@keras.saving.register_keras_serializable(package="keras_dissect")
class MultiScaleQuantizer(keras.layers.Layer):
    """Projects feature maps of several scales and quantizes each with its own codebook.

    The scales are "fine", "medium" and "coarse", the stride 8, 16 and 32
    maps of the encoder. For each scale in use, a 1x1 convolution projects
    the map to `code_dim` channels. A `VectorQuantizer` with its own codebook
    then quantizes every position of the projected map.

    Args:
        scales: Names of the scales in use, a non-empty subset of
            `("fine", "medium", "coarse")`.
        num_codes: Number of codes K per codebook.
        code_dim: Size D of the codes and of the projected maps.
        decay: EMA decay of the codebooks, in [0, 1).
        commitment_weight: Weight beta >= 0 of each scale's commitment loss.
        epsilon: Laplace smoothing constant of the EMA counts.
        dead_code_steps: Training calls without assignment after which a
            code is re-seeded from the inputs. 0 turns the restart off.
        init_from_first_batch: Whether each codebook starts from input vectors
            of the first training batch.
        live_code_window: Window, in training calls, of the live-code fraction.
        chunk_size: Number of vectors per distance matmul.
        codebook_initializer: Initializer of the codebooks.
        seed: Seed of the quantizers' random draws. Scale number i (in the
            order fine, medium, coarse) uses `seed + i`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        features: Dict from scale name to a `(B, h, w, C)` feature map, with
            an entry for each scale in use. Entries for other known scales
            are ignored.
        training: Whether to update the codebooks.

    Returns:
        A flat dict with, for each scale `s` in use: `"quantized_s"`
        `(B, h, w, D)` (straight-through), `"continuous_s"` `(B, h, w, D)` (the
        projection before quantization), `"indices_s"` int32 `(B, h, w)`,
        `"commitment_loss_s"`, `"perplexity_s"` and `"live_code_fraction_s"`
        (float32 scalars). `"commitment_loss"` is the sum over scales.
    """

    def __init__(
        self,
        scales=scales_lib.SCALES,
        num_codes=vq_lib.DEFAULT_NUM_CODES,
        code_dim=vq_lib.DEFAULT_CODE_DIM,
        decay=vq_lib.DEFAULT_DECAY,
        commitment_weight=vq_lib.DEFAULT_COMMITMENT_WEIGHT,
        epsilon=vq_lib.DEFAULT_EPSILON,
        dead_code_steps=0,
        init_from_first_batch=False,
        live_code_window=vq_lib.DEFAULT_LIVE_CODE_WINDOW,
        chunk_size=vq_lib.DEFAULT_CHUNK_SIZE,
        codebook_initializer="random_normal",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(scales, str) or not scales:
            raise ValueError(
                f"`scales` must be a non-empty list of scale names from "
                f"{list(scales_lib.SCALES)}. Received: scales={scales!r}"
            )
        scales_lib.check_scale_names(scales, "scales")
        if len(set(scales)) != len(scales):
            raise ValueError(
                f"`scales` must not repeat a scale. Received: scales={scales!r}"
            )

        self.scales = tuple(scales)
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.decay = decay
        self.commitment_weight = commitment_weight
        self.epsilon = epsilon
        self.dead_code_steps = dead_code_steps
        self.init_from_first_batch = init_from_first_batch
        self.live_code_window = live_code_window
        self.chunk_size = chunk_size
        self.codebook_initializer = keras.initializers.get(codebook_initializer)
        self.seed = seed

        # The quantizers validate their arguments here, so that a bad value
        # fails at construction and not at the first call.
        self.quantizers = {}
        for number, scale in enumerate(scales_lib.ordered_scales(self.scales)):
            self.quantizers[scale] = vq_lib.VectorQuantizer(
                num_codes=num_codes,
                code_dim=code_dim,
                decay=decay,
                commitment_weight=commitment_weight,
                epsilon=epsilon,
                dead_code_steps=dead_code_steps,
                init_from_first_batch=init_from_first_batch,
                live_code_window=live_code_window,
                chunk_size=chunk_size,
                codebook_initializer=codebook_initializer,
                seed=None if seed is None else seed + number,
                dtype=self.dtype_policy,
                name=f"quantizer_{scale}",
            )

    def _check_features(self, features):
        if not isinstance(features, dict):
            raise ValueError(
                "`features` must be a dict from scale name to feature map. "
                f"Received: features of type {type(features).__name__}"
            )
        scales_lib.check_scale_names(list(features), "features")
        missing = [scale for scale in self.scales if scale not in features]
        if missing:
            raise ValueError(
                f"`features` has no map for the scales {missing} in use. "
                f"Received: features with keys {sorted(features)}"
            )

    def build(self, features_shape):
        self._check_features(features_shape)
        self.projections = {}
        for scale in scales_lib.ordered_scales(self.scales):
            shape = features_shape[scale]
            check_feature_map_shape(shape, f"features['{scale}']")
            projection = keras.layers.Conv2D(
                self.code_dim,
                kernel_size=1,
                dtype=self.dtype_policy,
                name=f"projection_{scale}",
            )
            projection.build(tuple(shape))
            self.projections[scale] = projection
            self.quantizers[scale].build(tuple(shape[:-1]) + (self.code_dim,))

    def call(self, features, training=None):
        self._check_features(features)
        outputs = {}
        commitment_losses = []
        for scale in scales_lib.ordered_scales(self.scales):
            check_feature_map_shape(features[scale].shape, f"features['{scale}']")
            continuous = self.projections[scale](features[scale])
            quantized = self.quantizers[scale](continuous, training=training)

            outputs[f"quantized_{scale}"] = quantized["quantized"]
            outputs[f"continuous_{scale}"] = continuous
            outputs[f"indices_{scale}"] = quantized["indices"]
            outputs[f"commitment_loss_{scale}"] = quantized["commitment_loss"]
            outputs[f"perplexity_{scale}"] = quantized["perplexity"]
            outputs[f"live_code_fraction_{scale}"] = quantized["live_code_fraction"]
            commitment_losses.append(quantized["commitment_loss"])
        outputs["commitment_loss"] = sum(commitment_losses[1:], commitment_losses[0])
        return outputs

    def compute_output_spec(self, features, training=None):
        self._check_features(features)
        outputs = {"commitment_loss": keras.KerasTensor((), dtype="float32")}
        for scale in scales_lib.ordered_scales(self.scales):
            shape = tuple(features[scale].shape)
            check_feature_map_shape(shape, f"features['{scale}']")
            map_shape = shape[:-1] + (self.code_dim,)
            for prefix in ("quantized", "continuous"):
                outputs[f"{prefix}_{scale}"] = keras.KerasTensor(
                    map_shape, dtype=self.compute_dtype
                )
            outputs[f"indices_{scale}"] = keras.KerasTensor(shape[:-1], dtype="int32")
            for prefix in ("commitment_loss", "perplexity", "live_code_fraction"):
                outputs[f"{prefix}_{scale}"] = keras.KerasTensor((), dtype="float32")
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scales": list(self.scales),
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
