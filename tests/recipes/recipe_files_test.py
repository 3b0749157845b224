import importlib.resources
import tomllib

import pytest

from keras_dissect_recipes import cli

RECIPES = sorted(
    path for path in importlib.resources.files("keras_dissect_recipes").iterdir()
    if path.name.endswith(".toml")
)


@pytest.mark.backend_independent
def test_recipe_files_present():
    names = {path.name for path in RECIPES}
    for percent in (1, 5, 10, 100):
        assert f"nih_linear_probe_{percent}pct.toml" in names
        assert f"nih_finetune_{percent}pct.toml" in names
    for name in ("chexpert_to_nih", "siim_acr_segmentation", "rsna_segmentation",
                 "byol_baseline", "nih_sample_comparison", "ablation_concat"):
        assert f"{name}.toml" in names


@pytest.mark.backend_independent
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_recipe_steps_parse(recipe):
    # Parsing each step with the real click command checks every option
    # name and value without training anything.
    content = tomllib.loads(recipe.read_text())
    placeholders = {"run_root": "runs", "data_dir": "data"}
    for step in content["steps"]:
        command = cli.main.commands[step["command"]]
        arguments = cli._recipe_arguments(step.get("options", {}), placeholders)
        context = command.make_context(step["command"], arguments)
        assert context.params["run_dir"].startswith("runs/")


@pytest.mark.backend_independent
def test_run_rejects_bad_override(tmp_path):
    from click.testing import CliRunner

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[steps]]\ncommand = "report"\n')
    result = CliRunner().invoke(cli.main, ["run", str(recipe), "--set", "seed"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


@pytest.mark.backend_independent
def test_run_override_reaches_step(tmp_path):
    from click.testing import CliRunner

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[steps]]\ncommand = "report"\narguments = ["{}"]\n'.format(tmp_path / "missing"))
    result = CliRunner().invoke(cli.main, ["run", str(recipe), "--set", "epochs=3"])
    # `report` has no --epochs option, so click rejects the override.
    assert result.exit_code == 2
    assert "--epochs" in result.output
