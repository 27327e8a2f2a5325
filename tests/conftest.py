"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests (restored after): on a shared 2-core machine,
    OpenMP threads that wait for each other make tiny networks many times slower. A module asks
    for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
