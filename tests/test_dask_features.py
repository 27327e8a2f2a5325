"""Featurisation on a Dask cluster through joblib's "dask" backend gives the same features."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from rimclf import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, load_cohort

pytestmark = pytest.mark.slow


distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'rimclf[dask]')")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from tests.features.builders import write_cohort

    return load_cohort(write_cohort(tmp_path_factory.mktemp("dask") / "cohort", n_subjects=4))


def _featurizer(n_jobs):
    radiomics = RadiomicsExtractor(
        params={"imageType": {"Original": {}, "Wavelet": {}}, "featureClass": {"firstorder": None, "glcm": ["Contrast"]},
                "setting": {"binWidth": 25}}
    )
    return LesionFeaturizer(
        [("radiomics", radiomics), ("patches", PatchExtractor(size_mm=12.0, shape=(6, 5, 4)))], n_jobs=n_jobs, progress=False,
    )


def test_features_on_a_dask_cluster_equal_the_serial_ones(table):
    serial = _featurizer(n_jobs=1).transform(table)
    # two worker processes of one thread each: subjects really travel to other processes
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="1GiB",
    ) as cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
            on_dask = _featurizer(n_jobs=-1).transform(table)
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 1 and workers  # the subjects were featurised by the cluster's workers
    assert set(on_dask) == set(serial) == {"patches", "radiomics"}
    for key in serial:
        assert on_dask[key].dtype == serial[key].dtype
        np.testing.assert_array_equal(on_dask[key], serial[key])

