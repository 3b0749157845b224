import math
import re

import numpy as np
import pytest

import keras
from keras import ops
from keras_dissect.models import DiSSECT
from keras_dissect.models import ablations

# Tiny sizes so that one compiled train step stays cheap on every backend.
TINY = {
    "width": 8,
    "projection_hidden_dim": 32,
    "projection_dim": 16,
    "prediction_hidden_dim": 32,
    "num_codes": 64,
    "code_dim": 16,
    "serf_num_heads": 2,
    "serf_mlp_hidden_dim": 32,
}
BATCH = 4
IMAGE_SIZE = 32
STEPS = 3
# A low base momentum over few steps makes every term of the formula count.
BASE_MOMENTUM = 0.5
TOTAL_STEPS = 4


def _views(seed, channels=1, batch=BATCH):
    rng = np.random.default_rng(seed)
    shape = (batch, IMAGE_SIZE, IMAGE_SIZE, channels)
    return {
        "view1": rng.random(shape).astype("float32"),
        "view2": rng.random(shape).astype("float32"),
    }


def _numpy(variables):
    return [np.array(ops.convert_to_numpy(variable)) for variable in variables]


def _expected_momentum(step):
    cosine = 0.5 * (1 + math.cos(math.pi * min(step / TOTAL_STEPS, 1.0)))
    return 1.0 - (1.0 - BASE_MOMENTUM) * cosine


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained STEPS steps, with weights recorded after each."""
    keras.utils.set_random_seed(0)
    model = DiSSECT(total_steps=TOTAL_STEPS, base_momentum=BASE_MOMENTUM, **TINY)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))

    pairs = model.momentum_pairs()
    record = {
        "online": [_numpy(online for online, _ in pairs)],
        "target": [_numpy(target for _, target in pairs)],
        "quantizer": [_numpy(model.quantizer.non_trainable_weights)],
        "logs": [],
    }
    for step in range(STEPS):
        record["logs"].append(model.train_on_batch(_views(step), return_dict=True))
        record["online"].append(_numpy(online for online, _ in pairs))
        record["target"].append(_numpy(target for _, target in pairs))
        record["quantizer"].append(_numpy(model.quantizer.non_trainable_weights))
    return model, record


def test_target_follows_momentum_formula(trained):
    _, record = trained
    expected = record["online"][0]
    assert all(np.array_equal(a, b) for a, b in zip(expected, record["target"][0]))

    for step in range(1, STEPS + 1):
        momentum = _expected_momentum(step - 1)
        expected = [
            momentum * target + (1 - momentum) * online
            for target, online in zip(expected, record["online"][step])
        ]
        # Float32 updates against a float64 recurrence over 3 steps.
        for value, reference in zip(record["target"][step], expected):
            np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-6)


def test_online_weights_move(trained):
    _, record = trained
    changed = [
        not np.array_equal(before, after)
        for before, after in zip(record["online"][0], record["online"][-1])
    ]
    assert all(changed)


def test_momentum_logged(trained):
    _, record = trained
    for step, logs in enumerate(record["logs"]):
        assert float(logs["momentum"]) == pytest.approx(_expected_momentum(step), rel=1e-6)


def test_logs_name_every_term(trained):
    _, record = trained
    expected = {"loss", "alignment_continuous", "alignment_discrete", "commitment", "momentum"}
    for scale in ablations.ALL_SCALES:
        expected |= {f"perplexity_{scale}", f"live_code_fraction_{scale}"}
    assert set(record["logs"][-1]) == expected


def test_target_excluded_from_gradients(trained):
    model, _ = trained
    trainable = {id(variable) for variable in model.trainable_variables}
    target_variables = model.target_encoder.weights + model.target_projector.weights
    assert target_variables
    for variable in target_variables:
        assert not variable.trainable
        assert id(variable) not in trainable
        if keras.backend.backend() == "torch":
            # No autograd graph reaches the target parameters.
            assert not variable.value.requires_grad
    assert not any(id(v) in trainable for v in model.quantizer.non_trainable_weights)


def test_target_batch_norm_uses_batch_statistics(trained):
    # Frozen per variable, the target's BatchNorm still runs in training mode,
    # so its moving statistics follow the target's batches.
    model, _ = trained
    moving_mean = model.target_encoder.get_layer("stem_bn").moving_mean
    assert not np.allclose(ops.convert_to_numpy(moving_mean), 0.0)


def test_codebook_moves_in_training(trained):
    _, record = trained
    codebooks_before = record["quantizer"][0]
    codebooks_after = record["quantizer"][-1]
    moved = [not np.array_equal(a, b) for a, b in zip(codebooks_before, codebooks_after)]
    assert any(moved)


def test_codebook_frozen_in_inference(trained):
    model, _ = trained
    before = _numpy(model.non_trainable_weights)
    model.evaluate(_views(10), batch_size=BATCH, verbose=0)
    outputs = model(_views(11), training=False)
    after = _numpy(model.non_trainable_weights)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert tuple(outputs["alignment_continuous"].shape) == (BATCH,)


def test_extract_encoder_matches_online_tower(trained):
    model, _ = trained
    images = _views(11)["view1"]
    encoder = model.extract_encoder()
    expected = ops.convert_to_numpy(model.online_encoder(images, training=False)["embedding"])
    np.testing.assert_array_equal(ops.convert_to_numpy(encoder(images)), expected)

    backbone = model.extract_backbone()
    outputs = backbone(images)
    assert set(outputs) == {"stem", "stage1", "stage2", "stage3", "stage4", "embedding"}

    # The copies own their weights: changing them leaves the model untouched.
    encoder.weights[1].assign(np.zeros(encoder.weights[1].shape, "float32"))
    assert not np.array_equal(
        ops.convert_to_numpy(encoder.weights[1]),
        ops.convert_to_numpy(model.online_encoder.weights[1]),
    )


def test_config_round_trip():
    model = DiSSECT(total_steps=7, ablation="concat", vq_loss_weight=0.5, **TINY)
    clone = DiSSECT.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert len(clone.weights) == len(model.weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ablation": "no_serf"}, "ablation='no_serf'"),
        ({"vq_loss_weight": -0.1}, "vq_loss_weight=-0.1"),
        ({"base_momentum": 1.5}, "base_momentum=1.5"),
        ({"final_momentum": 0.9}, "final_momentum=0.9"),
        ({"total_steps": 0}, "total_steps=0"),
        ({"channels": 2}, "channels=2"),
        ({"quantize": False, "ablation": "concat"}, "quantize=False"),
        ({"codebook_decay": 1.0}, "decay=1.0"),
        ({"num_codes": 0}, "num_codes=0"),
    ],
)
def test_rejects_bad_hyperparameters(kwargs, message):
    arguments = {"total_steps": 10, **TINY, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        DiSSECT(**arguments)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"view1": np.zeros((2, 32, 32, 1), "float32")}, "inputs=['view1']"),
        (
            {"view1": np.zeros((2, 32, 32), "float32"), "view2": np.zeros((2, 32, 32), "float32")},
            "view1 shape=(2, 32, 32)",
        ),
        (
            {
                "view1": np.zeros((2, 32, 32, 3), "float32"),
                "view2": np.zeros((2, 32, 32, 3), "float32"),
            },
            "view1 shape=(2, 32, 32, 3)",
        ),
    ],
)
def test_rejects_bad_inputs(inputs, message):
    model = DiSSECT(total_steps=10, quantize=False, **TINY)
    with pytest.raises(ValueError, match=re.escape(message)):
        model(inputs)


def _compile_for_one_step(model, optimizer):
    # XLA compilation dominates one step on TensorFlow; the fixture above
    # covers the default (XLA) path, so single-step tests use plain graphs
    # there. Elsewhere "auto" keeps the defaults: XLA on JAX, eager PyTorch.
    jit_compile = False if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(optimizer=optimizer, jit_compile=jit_compile)


# "none" is the configuration of the `trained` fixture, and "continuous_only"
# trains in the 3-channel test below.
@pytest.mark.parametrize(
    "ablation", sorted(set(ablations.ABLATIONS) - {"none", "continuous_only"})
)
def test_ablation_trains_a_step(ablation):
    model = DiSSECT(total_steps=10, ablation=ablation, **TINY)
    _compile_for_one_step(model, keras.optimizers.SGD(learning_rate=0.1))
    logs = model.train_on_batch(_views(0), return_dict=True)

    assert np.isfinite(float(logs["loss"]))
    settings = model.settings
    assert ("alignment_discrete" in logs) == settings.quantize
    for scale in ablations.ALL_SCALES:
        assert (f"perplexity_{scale}" in logs) == (settings.quantize and scale in settings.scales)
    if ablation == "no_momentum":
        assert model.target_encoder is None
        assert float(logs["momentum"]) == 0.0
    else:
        assert float(logs["momentum"]) == pytest.approx(0.996)


def test_byol_is_continuous_only():
    model = DiSSECT.byol(total_steps=10, **TINY)
    assert model.settings == ablations.ABLATIONS["continuous_only"]
    assert model.quantizer is None
    assert model.get_config()["quantize"] is False


def test_three_channel_byol_trains_with_adamw():
    model = DiSSECT(total_steps=10, channels=3, ablation="continuous_only", **TINY)
    _compile_for_one_step(model, keras.optimizers.AdamW(learning_rate=1e-3))
    logs = model.train_on_batch(_views(0, channels=3), return_dict=True)
    assert np.isfinite(float(logs["loss"]))
    assert "alignment_discrete" not in logs
