"""The logistic blend of :class:`~rimclf.classifier.QSMRimNetClassifier` (``blend="logistic"``).

With ``blend="logistic"`` the classifier fits, beside the network, an L2-penalised logistic
regression (``C = BLEND_LOGISTIC_C``, scikit-learn's lbfgs) on the same tabular features, imputed
and standardised with the same training statistics, and its rim+ probability is the mean of the
network's and the regression's. The regression is refitted at every ``fit`` from the same rows
and labels (no imbalance correction, whatever ``imbalance`` does to the network), and is kept as
two arrays, ``blend_coef_`` and ``blend_intercept_``, which model files store as tensors.

Why: on the ablation's development cohorts the mean of the two scored higher than either
(README, "Which parts help"): the network and the linear model err on different lesions.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from rimclf.defaults import BLEND_LOGISTIC_C

#: lbfgs iterations of the blend's logistic regression (it converges in well under 100 on rim features)
MAX_ITER = 5000


def fit_logistic_blend(standardised: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients ``(F,)`` and intercept of the blend's logistic regression.

    Parameters
    ----------
    standardised : ndarray of shape (n, F)
        Imputed, standardised tabular features (float64).
    labels : ndarray of shape (n,)
        0/1 labels, both classes present.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2))
    >>> y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0.5).astype(float)
    >>> coef, intercept = fit_logistic_blend(x, y)
    >>> bool(coef[0] > 1 > abs(coef[1]))
    True
    """
    model = LogisticRegression(C=BLEND_LOGISTIC_C, max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # separable toy data; the estimate is still used
        model.fit(np.asarray(standardised, dtype=np.float64), np.asarray(labels).astype(int))
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


def logistic_probability(standardised: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """Rim+ probability ``(n,)`` of the blend's logistic regression (float64).

    Examples
    --------
    >>> import numpy as np
    >>> logistic_probability(np.array([[0.0], [2.0]]), np.array([1.0]), -2.0).round(3)
    array([0.119, 0.5  ])
    """
    logits = np.asarray(standardised, dtype=np.float64) @ np.asarray(coef, dtype=np.float64) + float(intercept)
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow


def blend_probabilities(network: np.ndarray, logistic: np.ndarray) -> np.ndarray:
    """The blended rim+ probability: the mean of the network's and the logistic regression's.

    Examples
    --------
    >>> import numpy as np
    >>> blend_probabilities(np.array([0.2, 0.9]), np.array([0.4, 0.5]))
    array([0.3, 0.7])
    """
    return 0.5 * (np.asarray(network, dtype=np.float64) + np.asarray(logistic, dtype=np.float64))
