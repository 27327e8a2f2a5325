"""Calibrating the network's rim+ probabilities on out-of-fold probabilities.

A network trained on ~4 % rim+ lesions ranks lesions well but its raw outputs are not
probabilities one can read as frequencies. :class:`RimModel <rimclf.RimModel>` already predicts
every training lesion out of fold in its subject-grouped threshold CV; a calibration map fitted on
those honest probabilities against the labels turns the final model's outputs into calibrated
ones (what ``CalibratedClassifierCV(ensemble=False)`` does, on predictions made once):

- ``"sigmoid"`` (Platt scaling on the logit): ``p' = 1 / (1 + exp(-(a * logit(p) + b)))``, a
  :class:`~sklearn.linear_model.LogisticRegression` of the labels on ``logit(p)`` with Platt's
  smoothed targets (as scikit-learn's ``CalibratedClassifierCV(method="sigmoid")``). Two numbers;
  strictly increasing (for ``a > 0``), so the ranking (ROC, pAUC) is unchanged. ``RimModel``
  passes the fold of each out-of-fold probability: the slope ``a`` is then fitted with one
  intercept per fold model (their different offsets would flatten a pooled slope), and ``b`` on
  all lesions with ``a`` held (``docs/benchmarks.md``, "With the logistic blend").
- ``"isotonic"``: :class:`~sklearn.isotonic.IsotonicRegression` of the labels on ``p``, stored as
  its knots and applied by linear interpolation. More flexible; ties lesions on its flat steps.

A :class:`Calibration` is small and JSON-safe (:meth:`Calibration.to_dict`), so a model file
stores it beside the threshold.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import warnings

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from rimclf.defaults import CALIBRATIONS
from rimclf.errors import DataWarning, ParameterError
from rimclf.metrics import logit

__all__ = ["Calibration", "calibrate_out_of_fold", "fit_calibration", "reliability_figure"]

#: most knots a stored isotonic calibration may have (one per distinct out-of-fold probability at most)
MAX_KNOTS = 20_000


@dataclass(frozen=True)
class Calibration:
    """A monotone map from the network's rim+ probability to a calibrated one.

    Attributes
    ----------
    method : {"sigmoid", "isotonic"}
    coef, intercept : float or None
        ``"sigmoid"``: ``p' = expit(coef * logit(p) + intercept)``.
    knots_x, knots_y : tuple of float or None
        ``"isotonic"``: ``p' = interp(p, knots_x, knots_y)`` (constant beyond the ends).
    n_lesions, n_rim_pos : int or None
        The out-of-fold probabilities it was fitted on.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> raw = rng.uniform(size=2000)
    >>> y = (rng.uniform(size=raw.size) < raw ** 3).astype(int)      # raw overstates the risk
    >>> calibration = fit_calibration(y, raw, "sigmoid")
    >>> calibration.apply([0.5, 0.9]).round(2)
    array([0.12, 0.75])
    >>> Calibration.from_dict(calibration.to_dict()) == calibration  # what a model file stores
    True
    """

    method: str
    coef: float | None = None
    intercept: float | None = None
    knots_x: tuple[float, ...] | None = None
    knots_y: tuple[float, ...] | None = None
    n_lesions: int | None = None
    n_rim_pos: int | None = None

    def apply(self, probability: object) -> np.ndarray:
        """The calibrated probabilities of ``probability`` (float64, same shape)."""
        p = np.asarray(probability, dtype=np.float64)
        if self.method == "sigmoid":
            z = self.coef * logit(p) + self.intercept
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # expit without overflow warnings
        return np.interp(p, self.knots_x, self.knots_y)

    def invert(self, value: float) -> float:
        """The smallest probability that :meth:`apply` maps to ``value`` or more (for a threshold).

        Examples
        --------
        >>> calibration = Calibration("sigmoid", coef=2.0, intercept=-1.0)
        >>> round(float(calibration.apply(calibration.invert(0.3))), 6)
        0.3
        """
        value = min(max(float(value), 0.0), 1.0)
        if self.method == "sigmoid":
            if value <= 0.0 or value >= 1.0:
                return value
            from rimclf.metrics import logit

            z = (float(logit(value)) - self.intercept) / self.coef
            return float(0.5 * (1.0 + np.tanh(0.5 * z)))
        knots_x, knots_y = np.asarray(self.knots_x), np.asarray(self.knots_y)
        above = np.flatnonzero(knots_y >= value)
        if not above.size:
            return float(np.nextafter(knots_x[-1], np.inf))
        k = int(above[0])
        if k == 0 or knots_y[k] == knots_y[k - 1]:
            return float(knots_x[k]) if k else 0.0
        share = (value - knots_y[k - 1]) / (knots_y[k] - knots_y[k - 1])
        return float(knots_x[k - 1] + share * (knots_x[k] - knots_x[k - 1]))

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (tuples as lists)."""
        fields = dataclasses.asdict(self)
        for key in ("knots_x", "knots_y"):
            if fields[key] is not None:
                fields[key] = list(fields[key])
        return fields

    @classmethod
    def from_dict(cls, fields: object) -> Calibration:
        """The calibration :meth:`to_dict` describes, after checking it.

        Raises
        ------
        ParameterError
            Unknown keys, an unknown method, missing or non-finite numbers, knots that are not
            increasing or outside [0, 1].
        """
        known = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(fields, dict) or not set(fields) <= known or "method" not in fields:
            shown = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
            raise ParameterError(f"calibration must have the key 'method' and optionally {sorted(known - {'method'})}; got {shown}")
        method = fields["method"]
        if method not in CALIBRATIONS:
            raise ParameterError(f"calibration method {method!r} is not one of {CALIBRATIONS}")
        fields = dict(fields)
        for key in ("n_lesions", "n_rim_pos"):
            if fields.get(key) is not None and (not isinstance(fields[key], int) or isinstance(fields[key], bool) or fields[key] < 0):
                raise ParameterError(f"calibration['{key}'] must be a count, got {fields[key]!r}")
        if method == "sigmoid":
            for key in ("coef", "intercept"):
                value = fields.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ParameterError(f"calibration['{key}'] must be a finite number, got {value!r}")
                fields[key] = float(value)
            return cls(**fields)
        knots = []
        for key in ("knots_x", "knots_y"):
            value = fields.get(key)
            if isinstance(value, (list, tuple)) and len(value) > MAX_KNOTS:
                raise ParameterError(f"calibration['{key}'] has {len(value)} knots; at most {MAX_KNOTS} are read")
            if not isinstance(value, (list, tuple)) or not value or any(
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0 for v in value):
                raise ParameterError(f"calibration['{key}'] must be a non-empty list of probabilities in [0, 1]")
            knots.append(tuple(float(v) for v in value))
        if len(knots[0]) != len(knots[1]) or np.any(np.diff(knots[0]) < 0) or np.any(np.diff(knots[1]) < 0):
            raise ParameterError("calibration knots must be two lists of the same length, both non-decreasing")
        fields["knots_x"], fields["knots_y"] = knots
        return cls(**fields)

    def describe(self) -> str:
        """One line for people.

        Examples
        --------
        >>> print(Calibration("sigmoid", coef=0.8, intercept=-0.4, n_lesions=500, n_rim_pos=20).describe())
        sigmoid calibration p' = expit(0.8 * logit(p) - 0.4), fitted on 500 out-of-fold probabilities (20 rim+)
        """
        if self.method == "sigmoid":
            text = f"sigmoid calibration p' = expit({self.coef:.3g} * logit(p) {'-' if self.intercept < 0 else '+'} {abs(self.intercept):.3g})"
        else:
            text = f"isotonic calibration ({len(self.knots_x)} knots)"
        if self.n_lesions is not None:
            text += f", fitted on {self.n_lesions} out-of-fold probabilities ({self.n_rim_pos} rim+)"
        return text


def fit_calibration(y: object, probability: object, method: str = "sigmoid", folds: object = None) -> Calibration:
    """Fit a :class:`Calibration` of ``probability`` (out-of-fold) against the labels ``y``.

    Parameters
    ----------
    y : array-like of shape (n_lesions,)
        0/1 labels (both classes needed).
    probability : array-like of shape (n_lesions,)
        Out-of-fold rim+ probabilities of the same lesions.
    method : {"sigmoid", "isotonic"}, default="sigmoid"
    folds : array-like of shape (n_lesions,) or None, default=None
        The cross-validation fold whose model gave each probability. With ``"sigmoid"``, Platt's
        slope is then fitted with one intercept per fold model, so that the fold models' different
        offsets do not flatten it, and the intercept is refitted on all lesions with that slope
        held; the map is the same two-number sigmoid. Ignored by ``"isotonic"``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 1, 0, 1])
    >>> raw = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    >>> fit_calibration(y, raw, "isotonic").apply([0.2, 0.65]).round(3)
    array([0. , 0.5])
    """
    if method not in CALIBRATIONS:
        raise ParameterError(f"calibration={method!r} is not valid; it must be one of {CALIBRATIONS} or None")
    labels = np.asarray(y, dtype=int)
    p = np.asarray(probability, dtype=np.float64)
    if labels.shape != p.shape or labels.ndim != 1 or len(np.unique(labels)) < 2 or not np.isfinite(p).all():
        raise ParameterError("calibration needs finite out-of-fold probabilities of rim+ and rim- lesions")
    size = {"n_lesions": int(labels.size), "n_rim_pos": int(labels.sum())}
    if method == "sigmoid":
        # Platt's targets, as scikit-learn's sigmoid calibration: (N+ + 1) / (N+ + 2) for rim+ and
        # 1 / (N- + 2) for rim-, so that a few rim+ lesions do not make the map over-confident;
        # fitted as a logistic regression of each lesion twice, as rim+ and rim-, weighted by its target
        n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
        target = np.where(labels == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        z = logit(p)[:, None]
        if folds is not None:
            return _sigmoid_within_folds(z[:, 0], target, _fold_codes(folds, p.size), size)
        fit = LogisticRegression(C=np.inf).fit(np.vstack([z, z]), np.r_[np.ones(p.size), np.zeros(p.size)],
                                               sample_weight=np.r_[target, 1.0 - target])
        return Calibration("sigmoid", coef=float(fit.coef_[0, 0]), intercept=float(fit.intercept_[0]), **size)
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, labels)
    return Calibration("isotonic", knots_x=tuple(float(v) for v in fit.X_thresholds_),
                       knots_y=tuple(float(v) for v in fit.y_thresholds_), **size)


def _fold_codes(folds: object, n: int) -> np.ndarray:
    codes = np.asarray(folds)
    if codes.shape != (n,):
        raise ParameterError(f"folds must give the fold of each of the {n} probabilities; got shape {codes.shape}")
    return np.unique(codes, return_inverse=True)[1]


def _sigmoid_within_folds(z: np.ndarray, target: np.ndarray, fold: np.ndarray, size: dict) -> Calibration:
    """Platt's slope with one intercept per fold (no shared intercept), then the common intercept
    that makes the mean calibrated probability equal the mean target, the slope held."""
    design = np.column_stack([z, np.eye(int(fold.max()) + 1)[fold]])
    fit = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=1000).fit(
        np.vstack([design, design]), np.r_[np.ones(z.size), np.zeros(z.size)], sample_weight=np.r_[target, 1.0 - target])
    slope = float(fit.coef_[0, 0])
    # the intercept's score equation, monotone in b; the bracket spans every scaled logit, so the
    # mean calibrated probability runs from about 0 to about 1 across it whatever the slope
    reach = float(np.max(np.abs(slope * z))) + 50.0
    intercept = brentq(lambda b: float(np.sum(expit(slope * z + b)) - target.sum()), -reach, reach)
    return Calibration("sigmoid", coef=slope, intercept=float(intercept), **size)


def calibrate_out_of_fold(y: object, probability: object, method: str | None, *, folds: object = None,
                          stacklevel: int = 2) -> Calibration | None:
    """The calibration a :class:`~rimclf.RimModel` keeps: :func:`fit_calibration` of the
    out-of-fold ``probability`` (with the fold of each, ``folds``, when given), or None when
    ``method`` is None or the probabilities do not rank rim+ above rim- lesions (a sigmoid slope
    <= 0, with a :class:`~rimclf.errors.DataWarning`).

    The benchmark's cross-validation calls it in every outer training part, so that it scores
    what a trained model outputs.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 1, 0, 1])
    >>> raw = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    >>> calibrate_out_of_fold(y, raw, "sigmoid").method
    'sigmoid'
    >>> calibrate_out_of_fold(y, raw, None) is None
    True
    """
    if method is None:
        return None
    calibration = fit_calibration(y, probability, method, folds=folds)
    if calibration.method == "sigmoid" and calibration.coef <= 0:
        warnings.warn(f"the out-of-fold probabilities do not rank rim+ above rim- lesions (calibration slope "
                      f"{calibration.coef:.3g}); the probabilities are left uncalibrated", DataWarning, stacklevel=stacklevel + 1)
        return None
    return calibration


def reliability_figure(curves: dict, *, title: str = "", n_bins: int = 10):
    """A reliability diagram (:class:`sklearn.calibration.CalibrationDisplay`, ``n_bins`` bins of
    equal width; empty ones left out) of one or more probability sets of the same question.

    Equal-width bins, not quantiles: with a few per cent rim+ lesions nearly all quantile bins
    would sit near 0 and one bin would hold every probable lesion; equal widths show the high
    probabilities, where calibration decides the counts, bin by bin (a bin of few lesions is noisy).

    Parameters
    ----------
    curves : dict of str to (y, probability)
        One curve per entry, labelled by its key (e.g. ``{"calibrated": (y, p), "uncalibrated": (y, raw)}``).
    title : str, default=""
    n_bins : int, default=10

    Returns
    -------
    matplotlib.figure.Figure
        Drawn with matplotlib's object API (no pyplot state); save it with ``fig.savefig(path)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=500)
    >>> y = (rng.uniform(size=500) < p).astype(int)
    >>> fig = reliability_figure({"calibrated": (y, p), "squared": (y, p ** 2)}, title="example")
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:3]
    ['Perfectly calibrated', 'calibrated', 'squared']
    """
    from matplotlib.figure import Figure
    from sklearn.calibration import CalibrationDisplay

    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.subplots()
    for index, (name, (y, probability)) in enumerate(curves.items()):
        CalibrationDisplay.from_predictions(np.asarray(y, dtype=int), np.asarray(probability, dtype=np.float64), n_bins=n_bins,
                                            strategy="uniform", ax=ax, name=name, ref_line=index == 0)
    ax.set(xlabel="predicted rim+ probability (bin mean)", ylabel="fraction rim+ (bin)", title=title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
