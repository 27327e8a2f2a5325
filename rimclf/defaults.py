"""Choices and defaults, in one place: what every setting may be, and what it is unless given.

The library's estimators and functions, the command line (``choices=`` and ``default=`` of
every option), the demo, the benchmarks and tuning all read this module, so that a default
changes here and nowhere else. It is pure Python (no numpy, no torch), so the command line
imports it without slowing ``rimclf --help``, and every layer of the package may use it.

Choices
-------
Tuples of the allowed values of each setting (``IMBALANCE_CHOICES``, ``REGIONS``, ...).

Defaults
--------
:data:`DEFAULT_MODEL` is the default configuration of the rim-detection model: what
``RimModel()``, ``rimclf train``, :func:`rimclf.features.make_featurizer`,
:func:`rimclf.classifier.make_classifier` and tuning use when nothing else is given.
:data:`DEMO_MODEL` is the CPU-size variant that ``rimclf demo`` trains. Change a default by
editing :class:`ModelConfig`'s field; make a variant with ``dataclasses.replace(DEFAULT_MODEL,
...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------- choices
#: ``QSMRimNetClassifier(imbalance=...)``: DeepSMOTE in the network, BCE class weights,
#: class-balanced batches, or nothing.
IMBALANCE_CHOICES = ("deepsmote", "class_weight", "oversample", "none")
#: ``QSMRimNetClassifier(amp=...)``: bf16 autocast on CUDA only, always, never.
AMP_CHOICES = ("auto", True, False)
#: ResNet3D depths (``module__depth``).
DEPTHS = (10, 18, 34)
#: Inputs the network uses (``module__branches``).
BRANCHES = ("both", "patches", "radiomics")
#: How the patch and radiomics vectors are combined (``module__fusion``).
FUSIONS = ("sum", "concat")
#: Where radiomics are computed (``RadiomicsExtractor(region=...)``).
REGIONS = ("lesion", "shell", "both")
#: The image radiomics describe (``RadiomicsExtractor(image=...)``).
IMAGES = ("qsm", "flair")
#: Patch channels (``PatchExtractor(channels=...)``).
CHANNELS = ("qsm", "flair", "mask")
#: Patch intensity normalisations (``PatchExtractor(normalize=...)``).
NORMALIZATIONS = ("nawm", "zscore", "none")
#: Units a QSM file may be stored in (``read_qsm(unit=...)``, a sidecar's ``"Units"``).
QSM_UNITS = ("ppb", "ppm")
#: ``load_cohort(qsm_unit=...)`` and ``--qsm-unit``: "auto" reads each QSM's JSON sidecar
#: ``Units`` and falls back on ppm (BIDS); "ppb"/"ppm" override the sidecars.
QSM_UNIT_CHOICES = ("auto", *QSM_UNITS)
#: Connectivities splitting a binary lesion mask into lesions (``load_cohort(connectivity=...)``).
CONNECTIVITIES = (6, 18, 26)
#: How a decision threshold was chosen (``ThresholdChoice.method``).
THRESHOLD_METHODS = ("cv", "in-sample", "fixed")
#: Imbalance handling of the radiomics baselines (``make_random_forest(sampler=...)``).
SAMPLERS = ("smote", "class_weight", "none")
#: What ``rimclf tune --model`` tunes: the network or a radiomics baseline.
TUNING_MODELS = ("qsmrimnet", "random_forest", "logistic_regression", "gradient_boosting")
#: Phantom difficulty presets (``make_phantom_cohort(difficulty=...)``).
DIFFICULTIES = ("easy", "default", "hard")

# ------------------------------------------------------------------------- cohort reading
#: ``load_cohort(min_voxels=...)``: smaller lesions are left out.
MIN_VOXELS = 8
#: ``load_cohort(connectivity=...)``.
CONNECTIVITY = 26
#: ``load_cohort(qsm_unit=...)``: the sidecar's ``Units``, else ppm as BIDS defines ``Chimap``.
QSM_UNIT = "auto"


# --------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelConfig:
    """A configuration of the rim-detection model: features, network, decision threshold.

    Attributes
    ----------
    radiomics_params : str, default="qsmrim"
        pyradiomics settings (``"qsmrim"``: QSMRim-Net's, shipped with rimclf; or a file path).
    region : {"lesion", "shell", "both"}, default="lesion"
        Radiomics of the lesion, of a ring ``shell_mm`` wide around it, or both.
    shell_mm : float, default=2.0
    patch_size_mm : float, default=32.0
        Edge of the cubic patch around each lesion.
    patch_shape : int, default=32
        Samples per patch edge.
    normalize : {"nawm", "zscore", "none"}, default="nawm"
        Patch intensity normalisation.
    channels : tuple of {"qsm", "flair", "mask"}, default=("qsm", "flair", "mask")
    depth : {10, 18, 34}, default=10
        ResNet3D depth (the paper's is 18).
    width : int, default=16
        ResNet3D base width (the paper's is 64); 10/16 trains in minutes on a CPU.
    fusion : {"sum", "concat"}, default="sum"
    branches : {"both", "patches", "radiomics"}, default="both"
    max_epochs : int, default=30
    lr : float, default=1e-3
        AdamW learning rate, cosine schedule over ``max_epochs``.
    batch_size : int, default=32
    imbalance : {"deepsmote", "class_weight", "oversample", "none"}, default="deepsmote"
    smote_k : int, default=2
        DeepSMOTE neighbours (the paper's ``N + 2n`` rows).
    target_specificity : float, default=0.9
        Specificity the decision threshold is chosen for (the paper's FPR <= 0.1).
    threshold_cv : int, default=5
        Subject-grouped CV folds whose out-of-fold probabilities set the threshold.
    """

    # features (rimclf.features.make_featurizer)
    radiomics_params: str = "qsmrim"
    region: str = "lesion"
    shell_mm: float = 2.0
    patch_size_mm: float = 32.0
    patch_shape: int = 32
    normalize: str = "nawm"
    channels: tuple[str, ...] = ("qsm", "flair", "mask")
    # network (rimclf.classifier.make_classifier)
    depth: int = 10
    width: int = 16
    fusion: str = "sum"
    branches: str = "both"
    max_epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 32
    imbalance: str = "deepsmote"
    smote_k: int = 2
    # decision threshold (rimclf.RimModel)
    target_specificity: float = 0.9
    threshold_cv: int = 5


#: The default model: ``RimModel()``, ``rimclf train`` and tuning.
DEFAULT_MODEL = ModelConfig()

#: The CPU-size model ``rimclf demo`` trains in minutes: a width-8 ResNet-10 on 16^3 patches of
#: 32 mm, lesion and ring radiomics, concatenated branches, 10 epochs, a 3-fold threshold CV.
DEMO_MODEL = ModelConfig(
    region="both", patch_shape=16, width=8, fusion="concat", max_epochs=10, threshold_cv=3
)
