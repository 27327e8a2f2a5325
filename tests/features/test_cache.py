"""The feature cache runs no code and uses no damaged entry: a planted pickle is inert, corruption is recomputed."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shlex
import threading
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from rimclf import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, load_cohort
from rimclf.errors import DataWarning, OutputError
from rimclf.features._cache import CorruptEntry, FeatureCache
from tests.features.builders import make_qsm, write_subject

RADIOMICS = RadiomicsExtractor(
    params={"imageType": {"Original": {}}, "featureClass": {"firstorder": ["Mean", "Energy"]}, "setting": {"binWidth": 25}}
)
PATCHES = PatchExtractor(size_mm=12.0, shape=(6, 5, 4))


def featurizer(cache: Path, **params) -> LesionFeaturizer:
    return LesionFeaturizer([("radiomics", RADIOMICS), ("patches", PATCHES)], memory=cache, progress=False, **params)


@pytest.fixture
def two_subjects(tmp_path: Path) -> pd.DataFrame:
    write_subject(tmp_path / "cohort", "01", seed=0)
    write_subject(tmp_path / "cohort", "02", seed=1)
    return load_cohort(tmp_path / "cohort")


@pytest.fixture
def filled(two_subjects: pd.DataFrame, tmp_path: Path):
    """(table, cache folder, reference features, keys) after one cached transform."""
    cache = tmp_path / "cache"
    reference = featurizer(cache).transform(two_subjects)
    keys = sorted(path.stem for path in cache.glob("*.json"))
    assert len(keys) == 2 and sorted(p.stem for p in cache.glob("*.npz")) == keys
    return two_subjects, cache, reference, keys


def extracted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split()[3] for r in caplog.records if r.getMessage().startswith("extracting features")]


def assert_same(features, reference) -> None:
    for name in ("radiomics", "patches"):
        np.testing.assert_array_equal(features[name], reference[name])


class Payload:
    """A pickle that runs a shell command when loaded: what an attacker plants in a shared cache."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _consistent_json(cache: Path, key: str, npz_bytes: bytes, arrays: dict) -> None:
    """Rewrite the entry's JSON so that its recorded hash matches the planted ``.npz``."""
    import hashlib

    metadata = json.loads((cache / f"{key}.json").read_text())
    metadata["npz_sha256"] = hashlib.sha256(npz_bytes).hexdigest()
    metadata["arrays"] = arrays
    (cache / f"{key}.json").write_text(json.dumps(metadata))


def test_the_payload_is_live(tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()  # so its absence below means: never unpickled


@pytest.mark.parametrize("plant", ["npz_is_a_pickle", "object_array_in_npz", "joblib_output_pkl"])
def test_a_planted_pickle_never_runs(filled, tmp_path: Path, caplog: pytest.LogCaptureFixture, plant: str) -> None:
    table, cache, reference, keys = filled
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Payload(marker))
    key = keys[0]
    if plant == "npz_is_a_pickle":
        (cache / f"{key}.npz").write_bytes(payload)
        _consistent_json(cache, key, payload, json.loads((cache / f"{key}.json").read_text())["arrays"])
    elif plant == "object_array_in_npz":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in ("patches", "radiomics"):
                with archive.open(f"{name}.npy", "w") as handle:
                    np.lib.format.write_array(handle, np.array([Payload(marker)], dtype=object), allow_pickle=True)
        (cache / f"{key}.npz").write_bytes(buffer.getvalue())
        arrays = json.loads((cache / f"{key}.json").read_text())["arrays"]
        _consistent_json(cache, key, buffer.getvalue(), arrays)
    else:  # the layout of the joblib.Memory cache rimclf used before
        planted = cache / "joblib" / "rimclf" / "features" / "featurizer" / "_featurize_subject" / key
        planted.mkdir(parents=True)
        (planted / "output.pkl").write_bytes(payload)
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = featurizer(cache).transform(table)
    assert not marker.exists()
    assert_same(features, reference)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    if plant == "joblib_output_pkl":
        assert messages == [] and extracted(caplog) == []  # ignored: not a rimclf entry
    else:
        assert len(messages) == 1 and f"feature cache entry {cache / key} was not used" in messages[0]
        assert len(extracted(caplog)) == 1
    assert not marker.exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _edit_json(change):
    def edit(path: Path) -> None:
        metadata = json.loads(path.read_text())
        change(metadata)
        path.write_text(json.dumps(metadata))

    return edit


CORRUPTIONS = {
    "npz truncated": ("npz", _truncate, "does not match the SHA-256"),
    "npz bit flip": ("npz", _flip, "does not match the SHA-256"),
    "npz missing": ("npz", Path.unlink, "cannot be read"),
    "json garbage": ("json", lambda p: p.write_bytes(b"\xff\xfe{not json"), "is not readable JSON"),
    "json truncated": ("json", _truncate, "is not readable JSON"),
    "json NaN": ("json", lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": NaN')), "is not readable JSON"),
    "json foreign": ("json", lambda p: p.write_text('{"format": "something-else"}'), "is not a rimclf feature-cache entry"),
    "json other key": ("json", _edit_json(lambda m: m.update(key="0" * 64)), "another format version or key"),
    "json wrong shape": ("json", _edit_json(lambda m: m["arrays"]["patches"].update(shape=[1, 2])), "array 'patches' is"),
    "json unknown warning": (
        "json", _edit_json(lambda m: m["notes"].append({"category": "os.system", "message": "x"})), "not a known warning",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_damaged_entry_is_recomputed_with_a_warning_and_overwritten(
    filled, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    table, cache, reference, keys = filled
    which, damage, reason = CORRUPTIONS[name]
    damage(cache / f"{keys[1]}.{which}")
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with pytest.warns(DataWarning, match=rf"feature cache entry {cache / keys[1]} was not used: .*{reason}.*recomputed and overwritten"):
        features = featurizer(cache).transform(table)
    assert_same(features, reference)
    assert len(extracted(caplog)) == 1  # only the damaged subject
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert_same(featurizer(cache).transform(table), reference)  # the entry was rewritten: a clean hit
    assert extracted(caplog) == []
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_an_npz_without_its_json_is_an_entry_not_yet_written(filled, caplog: pytest.LogCaptureFixture) -> None:
    """What a concurrent writer (or one killed between its two renames) leaves: recomputed quietly."""
    table, cache, reference, keys = filled
    (cache / f"{keys[0]}.json").unlink()
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert_same(featurizer(cache).transform(table), reference)
    assert len(extracted(caplog)) == 1 and (cache / f"{keys[0]}.json").exists()


def test_warnings_are_cached_by_category_and_issued_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    qsm = make_qsm(1)
    qsm[0, 0, :2] = np.nan  # outside the brain: zero-filled with a warning
    write_subject(tmp_path / "cohort", "01", qsm=qsm)
    table = load_cohort(tmp_path / "cohort")
    cache = tmp_path / "cache"
    with pytest.warns(DataWarning, match="2 NaN/Inf voxels outside the brain"):
        first = featurizer(cache).transform(table)
    entry = json.loads(next(cache.glob("*.json")).read_text())
    assert {"category": "DataWarning"} .items() <= entry["notes"][0].items()
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with pytest.warns(DataWarning, match="2 NaN/Inf voxels outside the brain"):
        again = featurizer(cache).transform(table)
    assert extracted(caplog) == []
    assert_same(again, first)


def test_a_joblib_memory_stands_for_its_folder(filled, caplog: pytest.LogCaptureFixture) -> None:
    table, cache, reference, _ = filled
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    assert_same(featurizer(joblib.Memory(cache, verbose=0)).transform(table), reference)
    assert extracted(caplog) == []
    assert_same(featurizer(joblib.Memory(None)).transform(table), reference)  # no location: no cache
    assert len(extracted(caplog)) == 2


def test_an_unusable_cache_folder_fails_before_any_extraction(two_subjects: pd.DataFrame, tmp_path: Path, caplog) -> None:
    (tmp_path / "file").write_text("x")
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with pytest.raises(OutputError, match=r"memory=.*file: the feature cache folder cannot be created"):
        featurizer(tmp_path / "file").transform(two_subjects)
    assert extracted(caplog) == []


def test_concurrent_writers_never_show_a_reader_half_an_entry(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    key = "ab" * 32
    arrays = {"radiomics": np.arange(60, dtype=np.float64).reshape(3, 20), "patches": np.ones((3, 2, 16, 16, 16), np.float32)}
    expected = {name: array.shape for name, array in arrays.items()}
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        for _ in range(30):
            cache.save(key, arrays, [(DataWarning, "note")])

    def read() -> None:
        while not stop.is_set():
            try:
                entry = cache.load(key, expected)
            except CorruptEntry as exc:
                errors.append(exc)
                continue
            if entry is not None:
                np.testing.assert_array_equal(entry[0]["patches"], arrays["patches"])

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write) for _ in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in cache.folder.iterdir()) == [f"{key}.json", f"{key}.npz"]


@pytest.mark.slow
def test_parallel_and_dask_workers_share_the_cache(two_subjects: pd.DataFrame, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "cache"
    reference = featurizer(None).transform(two_subjects)
    assert_same(featurizer(cache, n_jobs=2).transform(two_subjects), reference)  # loky processes write
    distributed = pytest.importorskip("distributed")
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        with joblib.parallel_backend("dask"), warnings.catch_warnings():
            warnings.simplefilter("error", DataWarning)
            assert_same(featurizer(cache).transform(two_subjects), reference)  # Dask workers read
    assert extracted(caplog) == []


def test_old_temporary_files_of_dead_workers_are_removed(filled) -> None:
    table, cache, reference, keys = filled
    old, fresh = cache / f".{keys[0]}.npz.abc.tmp", cache / f".{keys[1]}.json.def.tmp"
    for path in (old, fresh):
        path.write_bytes(b"half")
    os.utime(old, (0, 0))
    featurizer(cache).transform(table)
    assert not old.exists() and fresh.exists()  # a recent one may belong to a live worker


@pytest.mark.slow
def test_rimclf_extract_with_a_planted_cache_runs_no_code(two_subjects: pd.DataFrame, tmp_path: Path) -> None:
    """The attack of issue #14, through the command line: every cache entry replaced by a pickle."""
    from rimclf.cli import main

    cohort, cache = tmp_path / "cohort", tmp_path / "cache"
    params = tmp_path / "params.yaml"
    params.write_text("imageType: {Original: {}}\nfeatureClass: {firstorder: [Mean]}\nsetting: {binWidth: 25}\n")
    command = ["extract", str(cohort), "-o", str(tmp_path / "out"), "--cache", str(cache), "--radiomics-params", str(params),
               "--feature-set", "rim+radiomics", "--patch-shape", "4", "--quiet"]
    assert main(command) == 0
    first = (tmp_path / "out" / "radiomics.tsv").read_text()
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Payload(marker))
    for npz in cache.glob("*.npz"):
        npz.write_bytes(payload)
    with pytest.warns(DataWarning, match="was not used"):
        assert main([*command, "--force"]) == 0
    assert not marker.exists()
    assert (tmp_path / "out" / "radiomics.tsv").read_text() == first
    assert (tmp_path / "out" / "rim.tsv").is_file()


def test_a_cache_write_failing_on_a_full_disk_leaves_no_orphan_array_file(tmp_path: Path, monkeypatch) -> None:
    import errno

    from rimclf.features import _cache

    real = _cache._write_atomically

    def full_disk_for_json(path: Path, writer) -> None:
        if path.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, writer)

    monkeypatch.setattr(_cache, "_write_atomically", full_disk_for_json)
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(OSError, match="No space left"):
        cache.save("a" * 64, {"radiomics": np.zeros((2, 3))}, [])
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_old_array_file_without_its_json_is_removed(filled) -> None:
    table, cache, reference, keys = filled
    (cache / f"{keys[0]}.json").unlink()
    os.utime(cache / f"{keys[0]}.npz", (0, 0))
    FeatureCache(cache).remove_stale_temporaries()
    assert not (cache / f"{keys[0]}.npz").exists() and (cache / f"{keys[1]}.npz").exists()


def test_stale_clean_up_leaves_other_files_alone(tmp_path: Path) -> None:
    """--cache may name a folder that holds the user's own files: only the cache's names are removed."""
    folder = tmp_path / "project"
    folder.mkdir()
    mine = [folder / "results.npz", folder / ".notes.tmp", folder / f"{'a' * 63}.npz"]
    ours = [folder / f"{'b' * 64}.npz", folder / f".{'c' * 64}.npz.x1y2.tmp"]
    for path in (*mine, *ours):
        path.write_bytes(b"data")
        os.utime(path, (0, 0))  # older than a day
    FeatureCache(folder).remove_stale_temporaries()
    assert all(path.exists() for path in mine) and not any(path.exists() for path in ours)
