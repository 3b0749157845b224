"""Pytest configuration shared by tests/ and the dataset builders' tests."""

import os
import pathlib

import pytest

os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(pathlib.Path(__file__).resolve().parent / ".jax_cache"),
)


@pytest.fixture(scope="session")
def real_data_dir():
    from keras_dissect import testing

    return testing.data_dir()


def pytest_collection_modifyitems(config, items):
    # TensorFlow/NumPy-only tests give the same result under every Keras
    # backend, so they run once, in the tensorflow pass.
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason="backend-independent test; it runs in the tensorflow pass"
    )
    for item in items:
        if "backend_independent" in item.keywords:
            item.add_marker(skip)
