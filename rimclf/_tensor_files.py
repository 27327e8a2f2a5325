"""Bounded reading of tensor files before ``torch.load`` sees them (no torch here).

A model directory's ``weights.pt`` (:mod:`rimclf._model_checks`) and the pretrained encoder
shipped with rimclf (:mod:`rimclf.classifier.pretrained`) are read the same way: at most a
known number of bytes, then their zip archive inspected (every entry stored, within the file),
so that neither a large file nor a compressed entry makes rimclf allocate more than the
tensors it expects.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rimclf.errors import ModelFileError, printable


def read_at_most(path, limit: int) -> bytes:
    """The first ``limit + 1`` bytes of a file (so that a caller can tell it is larger than
    ``limit`` without reading the rest); an unreadable file is a :class:`ModelFileError`.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "f.bin")
    ...     _ = open(path, "wb").write(b"abcdef")
    ...     read_at_most(path, 3)
    b'abcd'
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def check_weights_archive(path: Path, data: bytes) -> None:
    """``data`` is a zip archive as ``torch.save`` writes it: every entry stored (never compressed,
    so nothing unpacks to more than the file's size) and within the file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path}: refused: not a tensors-only weights file (not the zip archive torch.save "
                             f"writes: {printable(exc)})") from None
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED or entry.file_size != entry.compress_size:
            raise ModelFileError(f"{path}: refused: entry {printable(entry.filename)!r} is compressed; torch.save "
                                 "stores tensors uncompressed, and a compressed entry could unpack to far more than the file")
        if entry.header_offset + entry.compress_size > len(data):
            raise ModelFileError(f"{path}: refused: entry {printable(entry.filename)!r} claims more bytes than the file has")
