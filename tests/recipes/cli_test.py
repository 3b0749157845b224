import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_dissect import testing
from keras_dissect_recipes import cli
from keras_dissect_recipes import pretraining

# Tiny settings shared by every command: 32 px phantoms, width-8 backbone.
DATA = ["--dataset", "cxr_phantom", "--dataset-config", "64", "--image-size", "32", "--batch-size", "16"]
PRETRAIN = ["--width", "8", "--num-codes", "16", "--code-dim", "16", "--projection-hidden-dim", "32",
            "--warmup-epochs", "0", "--steps-per-epoch", "2", "--epochs", "2"]


def invoke(*arguments):
    result = CliRunner().invoke(cli.main, [str(a) for a in arguments], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def pretrained_run(data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "pretrain"
    result = invoke("pretrain", *DATA, *PRETRAIN, "--data-dir", data_dir, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def probe_run(data_dir, pretrained_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "probe"
    result = invoke("linear-probe", *DATA, "--data-dir", data_dir, "--pretrained",
                    pretrained_run / "model.keras", "--label-percent", "10", "--epochs", "1",
                    "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "| **mean** |" in result.output
    return run_dir


def test_pretrain_run_directory(pretrained_run):
    config = json.loads((pretrained_run / "config.json").read_text())
    assert config["method"] == "dissect"
    assert (pretrained_run / "model.keras").is_file()
    assert (pretrained_run / "checkpoints" / "epoch_0001.keras").is_file()
    assert (pretrained_run / "checkpoints" / "epoch_0002.keras").is_file()
    rows = (pretrained_run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 3


def test_pretrain_resume_matches_uninterrupted(data_dir, pretrained_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "resumed"
    original = pretraining.fit_one_epoch

    def interrupt_second_epoch(model, dataset, epoch, callbacks, verbose):
        if epoch == 1:
            raise KeyboardInterrupt
        original(model, dataset, epoch, callbacks, verbose)

    monkeypatch.setattr(pretraining, "fit_one_epoch", interrupt_second_epoch)
    arguments = ["pretrain", *DATA, *PRETRAIN, "--data-dir", data_dir, "--run-dir", run_dir]
    interrupted = CliRunner().invoke(cli.main, [str(a) for a in arguments])
    assert interrupted.exit_code != 0
    assert pretraining.completed_epochs(run_dir) == 1
    assert not (run_dir / "model.keras").exists()

    monkeypatch.setattr(pretraining, "fit_one_epoch", original)
    resumed = invoke(*arguments)
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming" in resumed.output

    rows = (run_dir / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 3
    first = keras.models.load_model(run_dir / "checkpoints" / "epoch_0001.keras")
    final = keras.models.load_model(run_dir / "model.keras")
    # Two epochs of two steps: the optimizer count continues from the
    # checkpoint instead of restarting at zero.
    assert int(keras.ops.convert_to_numpy(first.optimizer.iterations)) == 2
    assert int(keras.ops.convert_to_numpy(final.optimizer.iterations)) == 4
    # Same batches and restored state: the resumed run ends with the
    # uninterrupted run's weights. Both ran in this process on the same CPU
    # kernels, so only float32 rounding noise is allowed.
    reference = keras.models.load_model(pretrained_run / "model.keras")
    for a, b in zip(reference.weights, final.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-5,
            err_msg=a.path,
        )


def test_pretrain_resume_with_other_config(data_dir, pretrained_run):
    before = (pretrained_run / "config.json").read_text()
    result = invoke("pretrain", *DATA, *PRETRAIN, "--num-codes", "32", "--data-dir", data_dir,
                    "--run-dir", pretrained_run)
    assert result.exit_code != 0
    assert "other settings" in result.output
    assert "num_codes" in result.output
    assert (pretrained_run / "config.json").read_text() == before


def test_linear_probe_outputs(probe_run):
    report = json.loads((probe_run / "test_auc.json").read_text())
    assert report["num_classes"] == 5
    assert 0.0 <= report["mean_auc"] <= 1.0
    manifest = json.loads((probe_run / "label_fractions.json").read_text())
    assert "10%" in manifest["subsets"]
    assert (probe_run / "test_auc.md").read_text().startswith("###")
    assert (probe_run / "test_roc.png").read_bytes()[:4] == b"\x89PNG"
    assert (probe_run / "classifier.json").is_file()


def test_finetune_random_init(data_dir, tmp_path):
    result = invoke("finetune", *DATA, "--data-dir", data_dir, "--width", "8", "--label-percent", "100",
                    "--epochs", "1", "--steps-per-epoch", "2", "--run-dir", tmp_path / "ft")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ft" / "test_auc.json").read_text())["config"]["mode"] == "finetune"


def test_segment_phantom(data_dir, pretrained_run, tmp_path):
    result = invoke("segment", *DATA, "--data-dir", data_dir, "--pretrained", pretrained_run / "model.keras",
                    "--epochs", "1", "--steps-per-epoch", "2", "--run-dir", tmp_path / "seg")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "seg" / "test_segmentation.json").read_text())["scores"]
    assert 0.0 <= scores["dice"] <= 1.0
    assert 0.0 <= scores["iou"] <= scores["dice"] + 1e-9


def test_segment_rejects_odd_image_size(data_dir, tmp_path):
    result = invoke("segment", "--dataset", "cxr_phantom", "--image-size", "40", "--run-dir", tmp_path)
    assert result.exit_code == 2
    assert "multiple of 32" in result.output


def test_predict_real_thumbnail(probe_run, tmp_path):
    image = sorted(testing.data_path("nih-thumbs64", "images").glob("*.png"))[0]
    result = invoke("predict", probe_run / "classifier.keras", image, "--output-dir", tmp_path)
    assert result.exit_code == 0, result.output
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    probabilities = predictions[str(image)]
    assert len(probabilities) == 5
    assert all(0.0 <= value <= 1.0 for value in probabilities.values())
    assert (tmp_path / f"{image.stem}_gradcam.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_corrupt_image(probe_run, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    result = invoke("predict", probe_run / "classifier.keras", broken, "--output-dir", tmp_path / "out")
    assert result.exit_code == 1
    assert "broken.png" in result.output


def test_export_and_predict_on_other_backend(probe_run, tmp_path):
    exported = tmp_path / "deploy" / "classifier.keras"
    result = invoke("export", probe_run / "classifier.keras", "--kind", "classifier", "--output", exported)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "deploy" / "classifier.json").is_file()

    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[keras.backend.backend()]
    image = sorted(testing.data_path("nih-thumbs64", "images").glob("*.png"))[0]
    # Without KERAS_BACKEND in the environment, only --backend selects it.
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dissect_recipes.cli", "--backend", other, "predict",
         str(exported), str(image), "--output-dir", str(tmp_path / "other")],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"Keras backend: {other}" in completed.stderr
    remote = json.loads((tmp_path / "other" / "predictions.json").read_text())[str(image)]
    local = invoke("predict", exported, image, "--output-dir", tmp_path / "local")
    assert local.exit_code == 0, local.output
    here = json.loads((tmp_path / "local" / "predictions.json").read_text())[str(image)]
    # Same weights on two backends: float32 convolution sums differ in order.
    for name, value in here.items():
        assert remote[name] == pytest.approx(value, abs=1e-4)


def test_export_encoder(pretrained_run, tmp_path):
    result = invoke("export", pretrained_run / "model.keras", "--kind", "encoder", "--output",
                    tmp_path / "encoder.keras")
    assert result.exit_code == 0, result.output
    encoder = keras.models.load_model(tmp_path / "encoder.keras")
    embedding = encoder.predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0)
    assert embedding.shape == (1, 64)


def test_report_plots(pretrained_run):
    result = invoke("report", pretrained_run, "--usage-images", 20)
    assert result.exit_code == 0, result.output
    assert (pretrained_run / "training_curves.png").is_file()
    assert (pretrained_run / "codebook_usage.png").is_file()
    assert (pretrained_run / "codebook_histogram.png").is_file()

    usage = json.loads((pretrained_run / "codebook_usage.json").read_text())["scales"]
    assert sorted(usage) == ["coarse", "fine", "medium"]
    # 20 images of 32 px: fine (stride 8) has 4 x 4 positions per image,
    # coarse (stride 32) one.
    assert sum(usage["fine"]["counts"]) == 20 * 16
    assert sum(usage["coarse"]["counts"]) == 20
    assert 1 <= usage["fine"]["used_codes"] <= 16
    assert 1.0 <= usage["fine"]["perplexity"] <= usage["fine"]["used_codes"] + 1e-9


def test_run_recipe_file(data_dir, pretrained_run, tmp_path):
    recipe = tmp_path / "probe.toml"
    recipe.write_text(f"""
[[steps]]
command = "linear-probe"
[steps.options]
dataset = "cxr_phantom"
dataset_config = "64"
image_size = 32
batch_size = 16
epochs = 1
label_percent = "5"
pretrained = "{pretrained_run / 'model.keras'}"
data_dir = "{{data_dir}}"
run_dir = "{{run_root}}/probe5"
""")
    result = invoke("run", recipe, "--run-root", tmp_path / "runs", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "probe5" / "test_auc.json").is_file()


def test_demo_tiny(data_dir, tmp_path):
    result = invoke("demo", "--run-dir", tmp_path / "demo", "--image-size", "32", "--width", "8",
                    "--epochs", "1", "--steps-per-epoch", "2", "--probe-epochs", "1", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert "| **mean** |" in result.output


def test_unknown_dataset(tmp_path):
    result = invoke("pretrain", "--dataset", "mnist", "--run-dir", tmp_path)
    assert result.exit_code == 2
    assert "mnist" in result.output


def test_missing_manual_files(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    result = invoke("linear-probe", "--dataset", "nih_chest_xray14", "--dataset-config", "64",
                    "--data-dir", tmp_path / "tfds", "--manual-dir", manual, "--run-dir", tmp_path / "run")
    assert result.exit_code == 1
    assert "Cannot prepare nih_chest_xray14" in result.output


def test_foreign_keras_file(tmp_path):
    foreign = tmp_path / "foreign.keras"
    foreign.write_text("not a model")
    result = invoke("export", foreign, "--output", tmp_path / "out.keras")
    assert result.exit_code == 1
    assert "not a Keras model file" in result.output

    images = keras.Input((8,))
    keras.Model(images, keras.layers.Dense(2)(images)).save(tmp_path / "dense.keras")
    result = invoke("export", tmp_path / "dense.keras", "--output", tmp_path / "out.keras")
    assert result.exit_code == 1
    assert "not a pretrained keras-dissect model" in result.output


def test_recipe_unknown_command(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[[steps]]\ncommand = "train"\n')
    result = invoke("run", recipe)
    assert result.exit_code == 2
    assert "unknown command 'train'" in result.output


def test_cli_imports_keras_lazily():
    code = (
        "import sys; from keras_dissect_recipes import cli; "
        "print('keras' in sys.modules, 'keras_dissect' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.stdout.split() == ["False", "False"]


def test_backend_option_conflict():
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[keras.backend.backend()]
    result = invoke("--backend", other, "report", ".")
    assert result.exit_code == 2
    assert "already imported" in result.output


def _tiny_config(**changes):
    config = {"epochs": 2, "channels": 1, "width": 8, "projection_hidden_dim": 32, "num_codes": 16,
              "code_dim": 16, "ablation": "none", "method": "dissect", "batch_size": 16,
              "warmup_epochs": 0, "base_learning_rate": 0.08}
    config.update(changes)
    return config


def test_pretrain_options_reach_model():
    byol = pretraining.build_model(_tiny_config(method="byol"), steps_per_epoch=3)
    assert byol.quantize is False
    assert byol.total_steps == 6
    concat = pretraining.build_model(_tiny_config(ablation="concat"), steps_per_epoch=3)
    assert concat.settings.fusion == "concat"
    assert concat.num_codes == 16


def test_byol_rejects_quantizer_ablation(tmp_path):
    result = invoke("pretrain", "--method", "byol", "--ablation", "concat", "--run-dir", tmp_path)
    assert result.exit_code == 2
    assert "BYOL has no quantizer" in result.output


@pytest.mark.parametrize("dataset", ["siim_acr_pneumothorax", "rsna_pneumonia"])
def test_segment_real_layout_fake_files(dataset, tmp_path):
    import importlib

    # Each builder ships fake files in its dataset's real on-disk layout.
    module = importlib.import_module(f"keras_dissect_tfds.{dataset}")
    manual_dir = pathlib.Path(module.__file__).parent / "dummy_data"
    result = invoke("segment", "--dataset", dataset, "--dataset-config", "64", "--data-dir", tmp_path / "tfds",
                    "--manual-dir", manual_dir, "--image-size", "32", "--batch-size", "2", "--epochs", "1",
                    "--width", "8", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "test Dice" in result.output


def test_demo_keeps_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    result = invoke("demo", "--run-dir", tmp_path)
    assert result.exit_code == 2
    assert "not a previous demo run" in result.output
    assert (tmp_path / "notes.txt").read_text() == "keep me"
