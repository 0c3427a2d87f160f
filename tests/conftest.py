"""Shared fixtures: quiet TensorFlow, deterministic seeds, and the real data sets."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

DATA_ENV = "ZOO_DATA_DIR"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def data_dir():
    """The folder of real data sets (`../shared/data`), named by `$ZOO_DATA_DIR`.

    Unset (a user's clone): tests that need it are skipped. Set but missing (a broken CI): fail.
    """
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set: real-data tests need ../shared/data")
    path = pathlib.Path(value)
    if not path.is_dir():
        pytest.fail(f"{DATA_ENV}={value} does not exist")
    return path


@pytest.fixture(scope="session")
def data_file(data_dir):
    """Returns a function that resolves a file under the data folder and fails when it is absent."""

    def resolve(relative):
        path = data_dir / relative
        if not path.is_file():
            pytest.fail(f"data file {path} is missing")
        return path

    return resolve
