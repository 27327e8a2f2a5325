"""RimModel and the train/predict workflows, importable from here as before.

:class:`RimModel` lives in :mod:`rimclf.rim_model` (also ``rimclf.RimModel``), the workflows
(:func:`train_model`, :func:`predict_cohort`, :func:`predict_subject`, :func:`subject_table`) in
:mod:`rimclf.workflows`.
"""

from rimclf.rim_model import RimModel
from rimclf.workflows import predict_cohort, predict_subject, subject_table, train_model

__all__ = ["RimModel", "predict_cohort", "predict_subject", "subject_table", "train_model"]
