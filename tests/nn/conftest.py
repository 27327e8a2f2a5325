"""Shared settings for the rimclf.nn tests."""

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads that wait for each
    other make tiny networks many times slower."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
