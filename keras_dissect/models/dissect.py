"""DiSSECT: BYOL-style pretraining with a quantized, fused momentum target."""

import math

import keras
from keras import ops

from keras_dissect import layers as dissect_layers
from keras_dissect.models import ablations
from keras_dissect.models import momentum as momentum_step
from keras_dissect.models import saving
from keras_dissect.models.heads import DEFAULT_HIDDEN_DIM
from keras_dissect.models.heads import DEFAULT_PROJECTION_DIM
from keras_dissect.models.heads import MLPHead
from keras_dissect.models.losses import normalized_squared_error
from keras_dissect.models.resnet import ResNet18Backbone

# Target momentum: cosine schedule from 0.996 to 1.0 over the run.
BASE_MOMENTUM = 0.996
FINAL_MOMENTUM = 1.0
# Weight lambda of the commitment loss in L = L_sim + lambda * L_VQ. The
# method's text does not give it; the commitment loss already carries the
# quantizer's own weight beta (default 0.25), so lambda = 1 leaves that
# weighting as it is.
DEFAULT_VQ_LOSS_WEIGHT = 1.0
DEFAULT_NUM_CODES = 2048
DEFAULT_CODE_DIM = 128
DEFAULT_CODEBOOK_DECAY = 0.99
DEFAULT_COMMITMENT_WEIGHT = 0.25
DEFAULT_SERF_HEADS = 4
DEFAULT_SERF_MLP_HIDDEN_DIM = 512
# Image size of the symbolic pass that creates the quantizer and SERF
# weights in the constructor (weights do not depend on it).
BUILD_IMAGE_SIZE = 64
VIEW_KEYS = ("view1", "view2")


@keras.saving.register_keras_serializable(package="keras_dissect")
class DiSSECT(keras.Model):
    """DiSSECT self-supervised model with a momentum target tower.

    Online tower: ResNet-18 encoder, projector and predictor, giving
    `h_theta`. Target tower: a copy of the encoder and projector, giving
    `h_phi`, whose weights follow the online ones after each optimizer step:
    `phi <- mu * phi + (1 - mu) * theta`, with `mu` rising from
    `base_momentum` to `final_momentum` on a cosine over `total_steps`. The
    target's BatchNorm moving statistics are not averaged: they follow the
    target's own batches.

    The target's stride-8/16/32 maps (stages 2/3/4: fine, medium, coarse) go
    through a `MultiScaleQuantizer`, and `SERF` fuses the quantized maps,
    with `h_phi` and the continuous coarsest-scale tokens as keys and values,
    into the discrete target `q_t`. Both target views are quantized in one
    call, so each step makes one EMA update of each codebook.

    Loss, with `l(a, b) = 2 - 2 cos(a, b)` and each term averaged over the
    two directions (view 1 online against view 2 target, and the reverse):
    `L = 1/2 (l(h_theta, h_phi) + l(h_theta, q_t)) + lambda * L_VQ`, where
    `L_VQ` is the commitment loss summed over scales.

    Gradients: the target encoder and projector outputs are stop-gradient
    and their variables are frozen one by one (not with `layer.trainable`,
    which would switch their BatchNorm to inference mode). The quantizer's
    1x1 projections and SERF are trained through `q_t` and the commitment
    loss. The codebooks move only by their EMA, and only in training calls.
    NOTE: since `l(h_theta, q_t)` also trains SERF, `q_t` can learn to match
    the predictor: in a 30-step run on 32 px thumbnails the discrete term fell
    to 0.08 while the continuous term stayed near 1.3. Watch
    `alignment_discrete` in long runs.

    Ablations (`ablation=`): `"none"`; `"no_momentum"` (the online tower is
    the target, with shared weights, and its maps are quantized: expected to
    collapse); `"coarse_only"`, `"medium_only"`, `"fine_only"` (one scale);
    `"concat"` (concatenation in place of SERF); `"continuous_only"` (target
    `h_phi` only, which is BYOL: `quantize=False` or `DiSSECT.byol()`);
    `"discrete_only"` (target `q_t` only).

    `fit` expects batches `{"view1": (B, H, W, C), "view2": (B, H, W, C)}` of
    float32 images in [0, 1], and logs `loss`, `alignment_continuous`,
    `alignment_discrete`, `commitment`, `perplexity_<scale>`,
    `live_code_fraction_<scale>` and `momentum` (the `mu` of the last step).

    Args:
        total_steps: Optimizer steps of the whole run; sets the momentum
            schedule.
        channels: Input channels, 1 (gray) or 3 (gray repeated).
        width: Backbone width (64 is the standard ResNet-18).
        projection_hidden_dim: Hidden size of the projector.
        projection_dim: Size of `h_theta`, `h_phi` and `q_t`.
        prediction_hidden_dim: Hidden size of the predictor.
        num_codes: Codes per scale.
        code_dim: Size of each code (and of the 1x1 projections).
        codebook_decay: EMA decay of the codebooks, in [0, 1).
        commitment_weight: Weight beta of the commitment loss inside the
            quantizer.
        dead_code_steps: Quantizer dead-code restart period (0: off).
        serf_num_heads: Attention heads of SERF.
        serf_query_mode: `"tokens"` or `"pooled"` (see `SERF`).
        serf_mlp_hidden_dim: Hidden size of the MLP at the end of SERF.
        vq_loss_weight: Weight lambda >= 0 of the commitment loss.
        base_momentum: Target momentum at the first step, in [0, 1].
        final_momentum: Target momentum at `total_steps`, in
            [base_momentum, 1].
        ablation: One of the names above.
        quantize: False turns quantization off (BYOL).
        name: Model name.
        **kwargs: Passed to `keras.Model`.

    Call arguments:
        inputs: Dict `{"view1": (B, H, W, C), "view2": (B, H, W, C)}`.
        training: Whether BatchNorm uses batch statistics and the codebooks
            are updated.

    Returns:
        A dict of per-example tensors of shape `(B,)`: `alignment_continuous`
        and, with quantization, `alignment_discrete`, `commitment`,
        `perplexity_<scale>` and `live_code_fraction_<scale>` (batch
        statistics repeated over the batch). Use `extract_encoder()` for
        embeddings.
    """

    def __init__(
        self,
        total_steps,
        channels=1,
        width=64,
        projection_hidden_dim=DEFAULT_HIDDEN_DIM,
        projection_dim=DEFAULT_PROJECTION_DIM,
        prediction_hidden_dim=DEFAULT_HIDDEN_DIM,
        num_codes=DEFAULT_NUM_CODES,
        code_dim=DEFAULT_CODE_DIM,
        codebook_decay=DEFAULT_CODEBOOK_DECAY,
        commitment_weight=DEFAULT_COMMITMENT_WEIGHT,
        dead_code_steps=0,
        serf_num_heads=DEFAULT_SERF_HEADS,
        serf_query_mode="tokens",
        serf_mlp_hidden_dim=DEFAULT_SERF_MLP_HIDDEN_DIM,
        vq_loss_weight=DEFAULT_VQ_LOSS_WEIGHT,
        base_momentum=BASE_MOMENTUM,
        final_momentum=FINAL_MOMENTUM,
        ablation="none",
        quantize=True,
        name="dissect",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(
                f"`total_steps` must be an integer >= 1. Received: total_steps={total_steps!r}"
            )
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
        if not vq_loss_weight >= 0:
            raise ValueError(
                f"`vq_loss_weight` must be >= 0. Received: vq_loss_weight={vq_loss_weight!r}"
            )
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(
                f"`base_momentum` must be in [0, 1]. Received: base_momentum={base_momentum!r}"
            )
        if not base_momentum <= final_momentum <= 1.0:
            raise ValueError(
                f"`final_momentum` must be in [base_momentum={base_momentum}, 1]. "
                f"Received: final_momentum={final_momentum!r}"
            )
        self.settings = ablations.ablation_settings(ablation, quantize)

        self.total_steps = total_steps
        self.channels = channels
        self.width = width
        self.projection_hidden_dim = projection_hidden_dim
        self.projection_dim = projection_dim
        self.prediction_hidden_dim = prediction_hidden_dim
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.codebook_decay = codebook_decay
        self.commitment_weight = commitment_weight
        self.dead_code_steps = dead_code_steps
        self.serf_num_heads = serf_num_heads
        self.serf_query_mode = serf_query_mode
        self.serf_mlp_hidden_dim = serf_mlp_hidden_dim
        self.vq_loss_weight = float(vq_loss_weight)
        self.base_momentum = float(base_momentum)
        self.final_momentum = float(final_momentum)
        self.ablation = ablation
        self.quantize = bool(quantize)

        self.online_encoder, self.online_projector = self._build_tower("online")
        self.predictor = MLPHead(
            projection_dim, prediction_hidden_dim, projection_dim, name="predictor"
        )
        self.target_encoder = None
        self.target_projector = None
        if self.settings.momentum_target:
            self.target_encoder, self.target_projector = self._build_tower("target")
            for online, target in [
                (self.online_encoder, self.target_encoder),
                (self.online_projector, self.target_projector),
            ]:
                saving.copy_weights(online, target)
                for variable in target.weights:
                    variable.trainable = False

        self.quantizer = None
        self.serf = None
        if self.settings.quantize:
            self._build_quantization()

        self._tracker_names = ["alignment_continuous"]
        if self.settings.quantize:
            self._tracker_names += ["alignment_discrete", "commitment"]
            for scale in self.settings.scales:
                self._tracker_names += [f"perplexity_{scale}", f"live_code_fraction_{scale}"]
        self.trackers = [keras.metrics.Mean(name=key) for key in self._tracker_names]
        self.built = True

    @classmethod
    def byol(cls, total_steps, **kwargs):
        """Build the model with quantization off, which is BYOL."""
        return cls(total_steps, quantize=False, **kwargs)

    def _build_tower(self, prefix):
        encoder = ResNet18Backbone(
            input_shape=(None, None, self.channels), width=self.width, name=f"{prefix}_encoder"
        )
        projector = MLPHead(
            encoder.embedding_dim,
            self.projection_hidden_dim,
            self.projection_dim,
            name=f"{prefix}_projector",
        )
        return encoder, projector

    def _build_quantization(self):
        self.quantizer = dissect_layers.MultiScaleQuantizer(
            scales=self.settings.scales,
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            decay=self.codebook_decay,
            commitment_weight=self.commitment_weight,
            dead_code_steps=self.dead_code_steps,
            name="quantizer",
        )
        self._flatten_tokens = keras.layers.Reshape((-1, self.code_dim), name="flatten_tokens")
        self.serf = dissect_layers.SERF(
            output_dim=self.projection_dim,
            fusion=self.settings.fusion,
            query_mode=self.serf_query_mode,
            num_heads=self.serf_num_heads,
            mlp_hidden_dim=self.serf_mlp_hidden_dim,
            name="serf",
        )

        # A symbolic pass creates the weights now, so that `.keras` loading
        # and the optimizer find every variable right after construction.
        images = keras.KerasTensor((None, BUILD_IMAGE_SIZE, BUILD_IMAGE_SIZE, self.channels))
        features = self.online_encoder(images)
        target_embedding = keras.KerasTensor((None, self.projection_dim))
        self._discrete_target(features, target_embedding, training=False)

    def _discrete_target(self, features, target_embedding, training):
        """Quantize the target maps and fuse them into `q_t` `(B, projection_dim)`."""
        scales = self.settings.scales
        selected = {scale: features[ablations.SCALE_STAGES[scale]] for scale in scales}
        quantized = self.quantizer(selected, training=training)

        # The coarsest scale in use gives the continuous context tokens.
        coarsest = max(scales, key=ablations.ALL_SCALES.index)
        context_tokens = self._flatten_tokens(quantized[f"continuous_{coarsest}"])
        q_t = self.serf(
            {scale: quantized[f"quantized_{scale}"] for scale in scales},
            target_embedding,
            context_tokens=context_tokens,
            training=training,
        )
        return q_t, quantized

    def _check_views(self, inputs):
        if not isinstance(inputs, dict) or set(inputs) != set(VIEW_KEYS):
            keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                "DiSSECT takes a dict with the keys 'view1' and 'view2' (two "
                f"augmented views of the same images). Received: inputs={keys}"
            )
        views = []
        for key in VIEW_KEYS:
            shape = tuple(inputs[key].shape)
            if len(shape) != 4:
                raise ValueError(
                    f"Each view must have rank 4, (B, H, W, C). Received: {key} shape={shape}"
                )
            if shape[-1] != self.channels:
                raise ValueError(
                    f"Each view must have {self.channels} channel(s), as set by "
                    f"`channels`. Received: {key} shape={shape}"
                )
            views.append(inputs[key])
        return views

    def call(self, inputs, training=False):
        view1, view2 = self._check_views(inputs)

        online1 = self.online_encoder(view1, training=training)
        online2 = self.online_encoder(view2, training=training)
        projection1 = self.online_projector(online1["embedding"], training=training)
        projection2 = self.online_projector(online2["embedding"], training=training)
        prediction1 = self.predictor(projection1, training=training)
        prediction2 = self.predictor(projection2, training=training)

        if self.settings.momentum_target:
            target1 = self.target_encoder(view1, training=training)
            target2 = self.target_encoder(view2, training=training)
            h_phi1 = self.target_projector(target1["embedding"], training=training)
            h_phi2 = self.target_projector(target2["embedding"], training=training)
        else:
            # No momentum branch: the online tower itself is the target.
            target1, target2 = online1, online2
            h_phi1, h_phi2 = projection1, projection2
        h_phi1 = ops.stop_gradient(h_phi1)
        h_phi2 = ops.stop_gradient(h_phi2)

        # Each term averages the two directions: view 1 online against view 2
        # target, and the reverse.
        outputs = {
            "alignment_continuous": 0.5
            * (
                normalized_squared_error(prediction1, h_phi2)
                + normalized_squared_error(prediction2, h_phi1)
            )
        }
        if not self.settings.quantize:
            return outputs

        # Both target views go through the quantizer together: one EMA update
        # per step, over the whole batch of target maps.
        features = {
            stage: ops.stop_gradient(ops.concatenate([target1[stage], target2[stage]], axis=0))
            for stage in (ablations.SCALE_STAGES[scale] for scale in self.settings.scales)
        }
        q_t, quantized = self._discrete_target(
            features, ops.concatenate([h_phi1, h_phi2], axis=0), training=training
        )
        q_t1, q_t2 = ops.split(q_t, 2, axis=0)
        outputs["alignment_discrete"] = 0.5 * (
            normalized_squared_error(prediction1, q_t2)
            + normalized_squared_error(prediction2, q_t1)
        )

        # Batch statistics are repeated over the batch so that every output
        # is per example (and `predict` can concatenate batches).
        ones = ops.ones_like(outputs["alignment_continuous"])
        outputs["commitment"] = ones * ops.cast(quantized["commitment_loss"], "float32")
        for scale in self.settings.scales:
            for key in (f"perplexity_{scale}", f"live_code_fraction_{scale}"):
                outputs[key] = ones * ops.cast(quantized[key], "float32")
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.settings.continuous_target and self.settings.discrete_target:
            similarity = 0.5 * (y_pred["alignment_continuous"] + y_pred["alignment_discrete"])
        elif self.settings.continuous_target:
            similarity = y_pred["alignment_continuous"]
        else:
            similarity = y_pred["alignment_discrete"]
        loss = ops.mean(similarity)

        if self.settings.quantize:
            loss = loss + self.vq_loss_weight * ops.mean(y_pred["commitment"])
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for tracker in self.trackers:
            tracker.update_state(y_pred[tracker.name])
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def momentum_at(self, step):
        """Return the target momentum `mu` after `step` completed steps (cosine)."""
        fraction = ops.clip(ops.cast(step, "float32") / self.total_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
        return self.final_momentum - (self.final_momentum - self.base_momentum) * cosine

    def momentum_pairs(self):
        """Return `(online, target)` variable pairs that the momentum update moves."""
        if not self.settings.momentum_target:
            return []
        pairs = []
        for online, target in [
            (self.online_encoder, self.target_encoder),
            (self.online_projector, self.target_projector),
        ]:
            for online_variable, target_variable in zip(online.weights, target.weights):
                if online_variable.trainable:
                    pairs.append((online_variable, target_variable))
        return pairs

    def update_target(self):
        """Move the target towards the online weights; return the momentum used.

        Runs after the optimizer step, so the step index of the schedule is
        the optimizer's iteration count minus one (0 at the first update).
        Without a momentum branch it changes nothing and returns 0.
        """
        if not self.settings.momentum_target:
            return ops.convert_to_tensor(0.0, "float32")
        momentum = self.momentum_at(ops.cast(self.optimizer.iterations, "float32") - 1.0)
        for online, target in self.momentum_pairs():
            mixed = momentum * ops.cast(target.value, "float32") + (1.0 - momentum) * ops.cast(
                online.value, "float32"
            )
            target.assign(ops.cast(mixed, target.dtype))
        return momentum

    def train_step(self, *args):
        return momentum_step.run_train_step(self, super().train_step, *args)

    def get_compile_config(self):
        return saving.portable_compile_config(super().get_compile_config())

    def extract_backbone(self):
        """Return a standalone copy of the online encoder (multi-scale dict outputs)."""
        backbone = ResNet18Backbone(
            input_shape=(None, None, self.channels), width=self.width, name="backbone"
        )
        saving.copy_weights(self.online_encoder, backbone)
        return backbone

    def extract_encoder(self):
        """Return a standalone `keras.Model`: images `(B, H, W, C)` -> embedding `(B, 8 * width)`."""
        backbone = self.extract_backbone()
        return keras.Model(backbone.input, backbone.output["embedding"], name="encoder")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "total_steps": self.total_steps,
                "channels": self.channels,
                "width": self.width,
                "projection_hidden_dim": self.projection_hidden_dim,
                "projection_dim": self.projection_dim,
                "prediction_hidden_dim": self.prediction_hidden_dim,
                "num_codes": self.num_codes,
                "code_dim": self.code_dim,
                "codebook_decay": self.codebook_decay,
                "commitment_weight": self.commitment_weight,
                "dead_code_steps": self.dead_code_steps,
                "serf_num_heads": self.serf_num_heads,
                "serf_query_mode": self.serf_query_mode,
                "serf_mlp_hidden_dim": self.serf_mlp_hidden_dim,
                "vq_loss_weight": self.vq_loss_weight,
                "base_momentum": self.base_momentum,
                "final_momentum": self.final_momentum,
                "ablation": self.ablation,
                "quantize": self.quantize,
            }
        )
        return config
