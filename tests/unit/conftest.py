"""Tiny random-weight HuMo pieces shared by the HuMo unit tests (built once per test module)."""

import pytest
from humo_tiny import tiny_humo, tiny_wan_vae


@pytest.fixture(scope="module")
def vae():
    return tiny_wan_vae()


@pytest.fixture(scope="module")
def model_17b():
    return tiny_humo(36)


@pytest.fixture(scope="module")
def model_1_7b():
    return tiny_humo(16, seed=1)
