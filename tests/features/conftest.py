"""Fixtures for the feature tests: a tiny 4-subject cohort written once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rimclf.cohort import load_cohort
from tests.features.builders import write_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("features") / "cohort")


@pytest.fixture
def table(cohort: Path) -> pd.DataFrame:
    return load_cohort(cohort)
