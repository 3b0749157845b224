"""`.keras` files saved on each backend load on each backend (3 x 3)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

BACKENDS = ("tensorflow", "jax", "torch")
# Seconds allowed to each group of child processes.
CHILD_TIMEOUT = 240

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="starts one process per backend itself, so it runs once, in the "
    "tensorflow pass",
)

COMMON = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import keras
    from keras import ops
    from keras_dissect import optimizers
    from keras_dissect.models import DiSSECT

    TINY = dict(width=4, projection_hidden_dim=16, projection_dim=8,
                prediction_hidden_dim=16, num_codes=16, code_dim=8,
                serf_num_heads=2, serf_mlp_hidden_dim=16)
    rng = np.random.default_rng(0)
    VIEWS = {k: rng.random((4, 32, 32, 1)).astype("float32") for k in ("view1", "view2")}

    def compile_cheaply(model):
        # XLA compilation would dominate these single steps on TensorFlow.
        if keras.backend.backend() == "tensorflow":
            model.jit_compile = False

    def state(model):
        arrays = {f"weight_{i}": ops.convert_to_numpy(v) for i, v in enumerate(model.weights)}
        for i, v in enumerate(model.optimizer.variables):
            arrays[f"optimizer_{i}"] = ops.convert_to_numpy(v)
        return arrays

    def outputs(model):
        result = {k: ops.convert_to_numpy(v) for k, v in model(VIEWS, training=False).items()}
        encoder = model.extract_encoder()
        result["embedding"] = ops.convert_to_numpy(encoder(VIEWS["view1"]))
        return result
    """
)

SAVE = COMMON + textwrap.dedent(
    """
    folder, backend = sys.argv[1], keras.backend.backend()
    keras.utils.set_random_seed(1)
    model = DiSSECT(total_steps=10, **TINY)
    # Each backend saves with a different optimizer; torch's AdamW is the one
    # that Keras records under a torch-only module.
    optimizer = {
        "tensorflow": optimizers.LARS(learning_rate=0.1, weight_decay=1e-4),
        "jax": keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        "torch": keras.optimizers.AdamW(learning_rate=1e-3),
    }[backend]
    model.compile(optimizer=optimizer)
    compile_cheaply(model)
    for _ in range(2):
        model.train_on_batch(VIEWS)
    model.save(f"{folder}/{backend}.keras")
    np.savez(f"{folder}/{backend}_state.npz", **state(model))
    np.savez(f"{folder}/{backend}_outputs.npz", **outputs(model))
    """
)

LOAD = COMMON + textwrap.dedent(
    """
    folder, backends = sys.argv[1], sys.argv[2].split(",")
    report = {}
    for source in backends:
        started = time.time()
        model = keras.saving.load_model(f"{folder}/{source}.keras")
        saved_state = np.load(f"{folder}/{source}_state.npz")
        saved_outputs = np.load(f"{folder}/{source}_outputs.npz")
        loaded_state = state(model)
        loaded_outputs = outputs(model)
        entry = {
            "optimizer": type(model.optimizer).__name__,
            "same_keys": sorted(saved_state.files) == sorted(loaded_state),
            "state_identical": all(
                np.array_equal(saved_state[k], loaded_state[k]) for k in saved_state.files
            ),
            # Convolutions differ in summation order between backends.
            "outputs_close": all(
                np.allclose(saved_outputs[k], loaded_outputs[k], rtol=1e-4, atol=1e-5)
                for k in saved_outputs.files
            ),
            "iterations": int(ops.convert_to_numpy(model.optimizer.iterations)),
        }
        entry["load_seconds"] = round(time.time() - started, 1)
        started = time.time()
        compile_cheaply(model)
        logs = model.train_on_batch(VIEWS, return_dict=True)
        entry["train_seconds"] = round(time.time() - started, 1)
        entry["trained_loss_finite"] = bool(np.isfinite(float(logs["loss"])))
        entry["iterations_after_step"] = int(ops.convert_to_numpy(model.optimizer.iterations))
        report[source] = entry
    print("REPORT " + json.dumps(report))
    """
)


def _run_all(script, arguments_for, tmp_path):
    path = tmp_path / "child.py"
    path.write_text(script)
    processes = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        processes[backend] = subprocess.Popen(
            [sys.executable, str(path), *arguments_for(backend)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    results = {}
    for backend, process in processes.items():
        output, _ = process.communicate(timeout=CHILD_TIMEOUT)
        assert process.returncode == 0, f"{backend} child failed:\n{output[-4000:]}"
        results[backend] = output
    return results


def test_keras_files_load_across_backends(tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    save_script = tmp_path / "save"
    save_script.mkdir()
    _run_all(SAVE, lambda backend: [str(folder)], save_script)

    load_script = tmp_path / "load"
    load_script.mkdir()
    outputs = _run_all(LOAD, lambda backend: [str(folder), ",".join(BACKENDS)], load_script)

    for target, output in outputs.items():
        line = next(line for line in output.splitlines() if line.startswith("REPORT "))
        report = json.loads(line[len("REPORT "):])
        print(target, report)
        for source, entry in report.items():
            pair = f"saved on {source}, loaded on {target}"
            assert entry["same_keys"], pair
            assert entry["state_identical"], pair
            assert entry["outputs_close"], pair
            assert entry["iterations"] == 2, pair
            assert entry["trained_loss_finite"], pair
            assert entry["iterations_after_step"] == 3, pair
