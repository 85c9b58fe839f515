"""Fixtures shared by the unit tests: tiny random-weight HuMo pieces (built once per test module) and one CPU thread."""

import pytest
import torch
from humo_tiny import tiny_humo
from hv_fixtures.humo import tiny_wan_vae


@pytest.fixture(scope="module")
def vae():
    return tiny_wan_vae()


@pytest.fixture(scope="module")
def model_17b():
    return tiny_humo(36)


@pytest.fixture(scope="module")
def model_1_7b():
    return tiny_humo(16, seed=1)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: OpenMP threads only add spin-waiting on a shared CPU (x30 slower measured). A module opts in
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
