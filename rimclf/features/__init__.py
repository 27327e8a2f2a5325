"""Lesion features as sklearn transformers: rim-profile features, pyradiomics and patches.

:class:`LesionFeaturizer` turns the lesion table of :func:`rimclf.load_cohort` into the
``SliceDict(rim=..., radiomics=..., patches=...)`` that :class:`rimclf.QSMRimNetClassifier`
takes, reading each subject once, in parallel over subjects and cached by file content.
:class:`RimProfileExtractor` (the QSM at the lesion edge against its core and surroundings),
:class:`RimFitExtractor` (a rim model fitted to the QSM across the lesion edge),
:class:`RadiomicsExtractor`, :class:`PatchExtractor` and :class:`SurfaceMapExtractor` (each lesion's
surroundings unwrapped into a depth x direction map) are its parts, usable alone;
:func:`make_featurizer` builds the featurizer of a :class:`~rimclf.defaults.ModelConfig`.
"""

from rimclf.features._export import save_features
from rimclf.features._output import LesionFeatures
from rimclf.features.featurizer import LesionFeaturizer, make_featurizer
from rimclf.features.patches import PatchExtractor
from rimclf.features.radiomics import RadiomicsExtractor
from rimclf.features.rim_fit import RimFitExtractor
from rimclf.features.rim_profile import RimProfileExtractor
from rimclf.features.surface_map import SurfaceMapExtractor

__all__ = [
    "LesionFeatures", "LesionFeaturizer", "PatchExtractor", "RadiomicsExtractor", "RimFitExtractor", "RimProfileExtractor",
    "SurfaceMapExtractor", "make_featurizer", "save_features",
]
