"""Ablation switches of the DiSSECT model and what each one changes."""

import dataclasses

ALL_SCALES = ("fine", "medium", "coarse")

# Backbone stage tapped for each quantization scale: fine = stride 8,
# medium = stride 16, coarse = stride 32.
SCALE_STAGES = {"fine": "stage2", "medium": "stage3", "coarse": "stage4"}


@dataclasses.dataclass(frozen=True)
class AblationSettings:
    """What one ablation changes in the model.

    Attributes:
        momentum_target: Whether the target tower is a separate momentum copy
            (False: the online tower serves as target, with shared weights).
        quantize: Whether the target is quantized and fused into `q_t`.
        scales: Quantization scales in use.
        fusion: `"serf"` or `"concat"`, passed to `SERF(fusion=...)`.
        continuous_target: Whether the loss aligns `h_theta` with `h_phi`.
        discrete_target: Whether the loss aligns `h_theta` with `q_t`.
    """

    momentum_target: bool = True
    quantize: bool = True
    scales: tuple = ALL_SCALES
    fusion: str = "serf"
    continuous_target: bool = True
    discrete_target: bool = True


ABLATIONS = {
    "none": AblationSettings(),
    # Quantizing the fast-moving online tower is expected to collapse.
    "no_momentum": AblationSettings(momentum_target=False),
    "coarse_only": AblationSettings(scales=("coarse",)),
    "medium_only": AblationSettings(scales=("medium",)),
    "fine_only": AblationSettings(scales=("fine",)),
    "concat": AblationSettings(fusion="concat"),
    # The h_phi-only target is BYOL: nothing is quantized.
    "continuous_only": AblationSettings(quantize=False, discrete_target=False),
    "discrete_only": AblationSettings(continuous_target=False),
}


def ablation_settings(ablation, quantize=True):
    """Return the `AblationSettings` of an ablation name.

    Args:
        ablation: One of the keys of `ABLATIONS`.
        quantize: False turns quantization off (BYOL), which is only valid
            with `"none"` or `"continuous_only"`.

    Returns:
        An `AblationSettings`.
    """
    if ablation not in ABLATIONS:
        raise ValueError(
            f"Unknown `ablation`; expected one of {sorted(ABLATIONS)}. "
            f"Received: ablation={ablation!r}"
        )
    if quantize:
        return ABLATIONS[ablation]
    if ablation not in ("none", "continuous_only"):
        raise ValueError(
            f"The ablation {ablation!r} changes the quantized target, so it "
            "needs `quantize=True`; use ablation='none' or 'continuous_only' "
            f"for BYOL. Received: ablation={ablation!r}, quantize=False"
        )
    return ABLATIONS["continuous_only"]
