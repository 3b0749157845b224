"""Run-directory configuration: write it, and check it when a run resumes.

This module imports neither Keras nor the library, so that the command line
can read and compare configurations before the Keras backend is chosen.
"""

import json
import pathlib

CONFIG_FILE = "config.json"

# Settings that locate the data rather than change what the run computes. A
# resumed run may point at another copy of the same data.
LOCATION_KEYS = ("data_dir", "manual_dir", "run_dir")


class ConfigMismatchError(ValueError):
    """A run directory contains a run made with other settings."""


def _comparable(config):
    return {key: value for key, value in config.items() if key not in LOCATION_KEYS}


def write_config(run_dir, config):
    """Write the resolved configuration as `config.json` in `run_dir`."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def read_config(run_dir):
    """Return the configuration stored in `run_dir`, or `None` if there is none."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def check_resume(run_dir, config):
    """Raise `ConfigMismatchError` when `run_dir` contains a run with other settings.

    Args:
        run_dir: run directory.
        config: the resolved configuration of the requested run, as plain
            JSON values.

    Returns:
        True when the directory contains the same run (so it resumes), False when
        it holds no run yet.
    """
    stored = read_config(run_dir)
    if stored is None:
        return False
    stored_values = _comparable(stored)
    requested = _comparable(json.loads(json.dumps(config)))
    differences = [
        f"{key}: stored {stored_values.get(key)!r}, requested {requested.get(key)!r}"
        for key in sorted(set(stored_values) | set(requested))
        if stored_values.get(key) != requested.get(key)
    ]
    if differences:
        raise ConfigMismatchError(
            f"Run directory {run_dir} contains a run with other settings, so it "
            "cannot resume: " + "; ".join(differences) + ". Use the stored "
            "settings to resume, or choose another run directory."
        )
    return True
