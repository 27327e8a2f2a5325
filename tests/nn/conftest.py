"""Shared settings for the rimclf.nn tests."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _nn_tests_use_one_torch_thread(one_torch_thread):
    """Every rimclf.nn test module runs with one torch thread (tests/conftest.py)."""
    yield
