"""Setting checks of the metric functions: a fraction such as ``max_fpr`` is a setting
(:class:`~rimclf.errors.ParameterError`). The data checks (labels, scores, groups) live
in :mod:`rimclf._data_checks`.
"""

from __future__ import annotations

from rimclf._validation import check_real


def check_fraction(value: object, name: str, *, low_open: bool) -> float:
    """Return ``value`` as a float in (0, 1] (``low_open``) or [0, 1], or raise naming ``name``."""
    return check_real(value, name, min=0.0, max=1.0, closed="right" if low_open else "both")
