"""Helpers for tests and benchmarks that read the real chest X-ray data.

The data lives outside the repository, in the folder named by the environment
variable `DISSECT_DATA_DIR` (default: `shared/data` beside the project root).
Where it is absent (a user's machine) the tests that need it skip with the
reason; with `DISSECT_REQUIRE_DATA=1` (set by CI) they fail instead.
"""

import os
import pathlib

DATA_DIR_VARIABLE = "DISSECT_DATA_DIR"
REQUIRE_DATA_VARIABLE = "DISSECT_REQUIRE_DATA"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def _missing(message):
    import pytest

    if os.environ.get(REQUIRE_DATA_VARIABLE) == "1":
        pytest.fail(message)
    pytest.skip(message)


def data_dir():
    """Return the real-data folder, or skip (fail under CI) when it is missing."""
    path = pathlib.Path(os.environ.get(DATA_DIR_VARIABLE, DEFAULT_DATA_DIR))
    if not path.is_dir():
        _missing(
            f"real chest X-ray data not found at {path}; set "
            f"{DATA_DIR_VARIABLE} to the folder that contains "
            "nih-chestxray14-sample/, nih-thumbs64/, siim-acr-sample/ and "
            "label-files/"
        )
    return path


def data_path(*parts):
    """Return a file or folder below the real-data folder, or skip/fail as above."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        _missing(f"real data file or folder {path} is missing")
    return path
