"""SERF: fusion of quantized multi-scale maps into the discrete target q_t."""

import keras
from keras import ops

from keras_dissect.layers import scales as scales_lib
from keras_dissect.layers.multi_scale_quantizer import check_feature_map_shape

FUSIONS = ("serf", "concat")
QUERY_MODES = ("tokens", "pooled")
DEFAULT_OUTPUT_DIM = 128
DEFAULT_NUM_HEADS = 4
DEFAULT_MLP_HIDDEN_DIM = 512


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="keras_dissect")
class SERF(keras.layers.Layer):
    """Structured Embedding Refinement Fusion of quantized maps into one target vector.

    With `fusion="serf"` (the default):
    1. Each quantized map is average-pooled to the grid of the coarsest scale
       present (by the stride ratio, e.g. 4 x 4 from fine to coarse).
    2. The maps are summed with learned scale weights
       `alpha = softmax(scale_logits)`, one logit per scale, starting equal.
       The softmax keeps the fused map a convex combination, so its magnitude
       stays that of one quantized map while the weights are learned, and no
       scale weight can grow without bound or change sign. With a single
       scale there is nothing to weigh, so the layer has no scale logits.
    3. Cross-attention (`keras.layers.MultiHeadAttention`, with a residual
       connection and layer normalization) takes the fused quantized tokens as
       queries. Keys and values are h_phi, projected to D as one token,
       followed by the `context_tokens` when they are given.
    4. The attended tokens are averaged and an MLP
       (Dense, LayerNormalization, ReLU, Dense) maps them to `output_dim`.

    `query_mode="tokens"` (default) uses every position of the fused map as a
    query. `query_mode="pooled"` averages the fused map into a single query
    first, which is the literal form of the method's description. With a
    single key (h_phi alone, when `context_tokens` is None) attention is
    degenerate in both modes. The softmax over one element is 1, so every
    query receives the same function of h_phi, whatever the quantized map
    is. The quantized map then reaches the output only through the residual.
    With context tokens the attention weights depend on the queries. The token
    form is the default because each position of the quantized map then
    weighs the keys on its own, where the pooled form has one weighting for
    the whole image.

    `fusion="concat"` is the ablation without SERF: each quantized map is
    averaged over its positions, the scale vectors are concatenated in the
    order fine, medium, coarse and the same MLP maps them to `output_dim`.
    It has no scale weights and no attention, and it ignores
    `target_embedding`, `context_tokens` and `query_mode`.

    NOTE: pooling uses `padding="same"`, so a map whose size is not a multiple
    of the stride ratio gets a partial window at its edge, averaged over its
    valid positions only (the same on all three backends). The pooled grid
    then matches the coarse map of a ResNet whose stride-2 layers round sizes
    up.

    Args:
        output_dim: Size of the output q_t.
        fusion: `"serf"` or `"concat"`, as described above.
        query_mode: `"tokens"` or `"pooled"`, as described above.
        num_heads: Number of attention heads.
        key_dim: Size of each attention head. Defaults to D // num_heads
            (at least 1).
        mlp_hidden_dim: Width of the MLP's hidden layer.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        quantized: Dict from scale name to a quantized `(B, h, w, D)` map, for
            1 to 3 of the scales "fine", "medium", "coarse".
        target_embedding: h_phi, `(B, P)`. Required when `fusion="serf"`.
        context_tokens: Optional `(B, N, D)` continuous target tokens (e.g. the
            projected coarse map, flattened), appended to the keys and values.
        training: Unused; accepted for the Keras call convention.

    Returns:
        q_t, `(B, output_dim)`.
    """

    def __init__(
        self,
        output_dim=DEFAULT_OUTPUT_DIM,
        fusion="serf",
        query_mode="tokens",
        num_heads=DEFAULT_NUM_HEADS,
        key_dim=None,
        mlp_hidden_dim=DEFAULT_MLP_HIDDEN_DIM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("output_dim", output_dim)
        _check_choice("fusion", fusion, FUSIONS)
        _check_choice("query_mode", query_mode, QUERY_MODES)
        _check_positive_int("num_heads", num_heads)
        if key_dim is not None:
            _check_positive_int("key_dim", key_dim)
        _check_positive_int("mlp_hidden_dim", mlp_hidden_dim)

        self.output_dim = output_dim
        self.fusion = fusion
        self.query_mode = query_mode
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.mlp_hidden_dim = mlp_hidden_dim

    def _check_quantized(self, quantized):
        if not isinstance(quantized, dict) or not quantized:
            raise ValueError(
                "`quantized` must be a non-empty dict from scale name to a "
                "quantized (B, h, w, D) map. "
                f"Received: quantized of type {type(quantized).__name__}"
            )
        scales_lib.check_scale_names(list(quantized), "quantized")
        for scale, value in quantized.items():
            shape = value if isinstance(value, (tuple, list)) else value.shape
            check_feature_map_shape(shape, f"quantized['{scale}']")

    def build(self, quantized_shape, target_embedding_shape=None, context_tokens_shape=None):
        self._check_quantized(quantized_shape)
        self.scales = scales_lib.ordered_scales(quantized_shape)
        code_dims = {quantized_shape[scale][-1] for scale in self.scales}
        if len(code_dims) != 1 or None in code_dims:
            raise ValueError(
                "All quantized maps must have the same known last axis D. "
                f"Received: quantized shapes {dict(quantized_shape)}"
            )
        self.code_dim = code_dims.pop()

        mlp_input_dim = self.code_dim
        if self.fusion == "concat":
            mlp_input_dim = self.code_dim * len(self.scales)
        else:
            self._build_attention(
                quantized_shape, target_embedding_shape, context_tokens_shape
            )
        self._build_mlp(mlp_input_dim)

    def _build_attention(self, quantized_shape, target_embedding_shape, context_tokens_shape):
        if target_embedding_shape is None or len(target_embedding_shape) != 2:
            raise ValueError(
                "`target_embedding` must be a (B, P) tensor when fusion='serf'. "
                f"Received: target_embedding.shape={target_embedding_shape}"
            )
        if context_tokens_shape is not None:
            self._check_context_shape(context_tokens_shape)

        # Maps finer than the coarsest scale present are pooled to its grid.
        coarsest_stride = max(scales_lib.SCALE_STRIDES[s] for s in self.scales)
        self.pools = {}
        for scale in self.scales:
            factor = coarsest_stride // scales_lib.SCALE_STRIDES[scale]
            if factor > 1:
                self.pools[scale] = keras.layers.AveragePooling2D(
                    pool_size=factor,
                    strides=factor,
                    padding="same",
                    dtype=self.dtype_policy,
                    name=f"pool_{scale}",
                )
        self.scale_logits = None
        if len(self.scales) > 1:
            self.scale_logits = self.add_weight(
                shape=(len(self.scales),), initializer="zeros", name="scale_logits"
            )

        self.target_projection = keras.layers.Dense(
            self.code_dim, dtype=self.dtype_policy, name="target_projection"
        )
        self.target_projection.build(tuple(target_embedding_shape))
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.key_dim or max(1, self.code_dim // self.num_heads),
            dtype=self.dtype_policy,
            name="cross_attention",
        )
        token_shape = (None, None, self.code_dim)
        self.attention.build(token_shape, token_shape, token_shape)
        self.attention_norm = keras.layers.LayerNormalization(
            dtype=self.dtype_policy, name="attention_norm"
        )
        self.attention_norm.build(token_shape)

    def _build_mlp(self, input_dim):
        self.mlp_hidden = keras.layers.Dense(
            self.mlp_hidden_dim, dtype=self.dtype_policy, name="mlp_hidden"
        )
        self.mlp_hidden.build((None, input_dim))
        self.mlp_norm = keras.layers.LayerNormalization(
            dtype=self.dtype_policy, name="mlp_norm"
        )
        self.mlp_norm.build((None, self.mlp_hidden_dim))
        self.mlp_output = keras.layers.Dense(
            self.output_dim, dtype=self.dtype_policy, name="mlp_output"
        )
        self.mlp_output.build((None, self.mlp_hidden_dim))

    def _check_context_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.code_dim:
            raise ValueError(
                f"`context_tokens` must have shape (B, N, D) with D={self.code_dim}, "
                "the size of the quantized maps. "
                f"Received: context_tokens.shape={tuple(shape)}"
            )

    def _check_call_scales(self, quantized):
        self._check_quantized(quantized)
        if scales_lib.ordered_scales(quantized) != self.scales:
            raise ValueError(
                f"`quantized` must have the scales {list(self.scales)} that the "
                f"layer was built with. Received: quantized with keys {sorted(quantized)}"
            )

    def _fuse_maps(self, quantized):
        """Pool the maps to one grid and sum them with softmax scale weights."""
        if self.scale_logits is None:
            return quantized[self.scales[0]]

        weights = ops.softmax(ops.cast(self.scale_logits, "float32"))
        weights = ops.cast(weights, self.compute_dtype)
        fused = None
        for number, scale in enumerate(self.scales):
            feature_map = quantized[scale]
            if scale in self.pools:
                feature_map = self.pools[scale](feature_map)
            weighted = weights[number] * feature_map
            if fused is not None:
                self._check_same_grid(fused.shape, weighted.shape, scale)
            fused = weighted if fused is None else fused + weighted
        return fused

    def _check_same_grid(self, fused_shape, pooled_shape, scale):
        for fused_size, pooled_size in zip(fused_shape[1:3], pooled_shape[1:3]):
            if None not in (fused_size, pooled_size) and fused_size != pooled_size:
                raise ValueError(
                    f"The map of scale '{scale}', pooled by its stride ratio, does "
                    f"not match the grid of the finer scales: {tuple(pooled_shape)} "
                    f"vs {tuple(fused_shape)}. The maps must have strides 8, 16 "
                    "and 32 relative to one image. Received: quantized shapes "
                    f"{tuple(pooled_shape)} after pooling"
                )

    def _attend(self, quantized, target_embedding, context_tokens):
        fused = self._fuse_maps(quantized)
        if self.query_mode == "pooled":
            queries = ops.mean(fused, axis=(1, 2))[:, None, :]
        else:
            queries = ops.reshape(fused, (ops.shape(fused)[0], -1, self.code_dim))

        keys = self.target_projection(target_embedding)[:, None, :]
        if context_tokens is not None:
            self._check_context_shape(context_tokens.shape)
            context_tokens = ops.cast(context_tokens, self.compute_dtype)
            keys = ops.concatenate([keys, context_tokens], axis=1)

        attended = self.attention(query=queries, value=keys, key=keys)
        # The residual keeps the quantized tokens in the output even where the
        # attention is degenerate (a single key).
        tokens = self.attention_norm(queries + attended)
        return ops.mean(tokens, axis=1)

    def call(self, quantized, target_embedding=None, context_tokens=None, training=None):
        self._check_call_scales(quantized)
        if self.fusion == "concat":
            pooled = [ops.mean(quantized[scale], axis=(1, 2)) for scale in self.scales]
            features = ops.concatenate(pooled, axis=-1)
        else:
            if target_embedding is None:
                raise ValueError(
                    "`target_embedding` (B, P) is required when fusion='serf'. "
                    "Received: target_embedding=None"
                )
            features = self._attend(quantized, target_embedding, context_tokens)

        hidden = ops.relu(self.mlp_norm(self.mlp_hidden(features)))
        return self.mlp_output(hidden)

    def compute_output_spec(
        self, quantized, target_embedding=None, context_tokens=None, training=None
    ):
        batch_size = next(iter(quantized.values())).shape[0]
        return keras.KerasTensor((batch_size, self.output_dim), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "fusion": self.fusion,
                "query_mode": self.query_mode,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "mlp_hidden_dim": self.mlp_hidden_dim,
            }
        )
        return config
