"""Baseline pipelines on the tabular features: random forest, logistic regression, gradient boosting.

Each ``make_*`` factory returns an :class:`imblearn.pipeline.Pipeline` with the steps

``select`` (:class:`SelectFeatures`, optional: the ``feature_set`` entries of the featurizer's
``SliceDict``, rim-profile features and/or radiomics) → ``impute`` (median) → ``scale`` (standardise)
→ ``sampler`` (:class:`SafeSMOTE` or ``"passthrough"``) → ``model``,

so ``set_params(model__C=0.1)`` or ``set_params(sampler=...)`` tune any of them, and SMOTE runs
inside ``fit`` only: cross-validation never puts a synthetic lesion in a test fold. Features are
standardised before SMOTE because SMOTE finds neighbours by Euclidean distance, which raw
radiomics features (volumes in mm³ next to ratios in [0, 1]) would dominate; trees do not mind.

:class:`SliceDictSMOTE` is SMOTE for the featurizer's ``SliceDict(patches=..., radiomics=...)``
so the network can be trained on input-level SMOTE instead of DeepSMOTE.
"""

from rimclf.baselines._factories import (
    SAMPLERS,
    SelectFeatures,
    make_gradient_boosting,
    make_logistic_regression,
    make_random_forest,
)
from rimclf.baselines._samplers import SafeSMOTE, SliceDictSMOTE

__all__ = [
    "SAMPLERS",
    "SafeSMOTE",
    "SelectFeatures",
    "SliceDictSMOTE",
    "make_gradient_boosting",
    "make_logistic_regression",
    "make_random_forest",
]
