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
``rimclf demo`` trains it too. Change a default by
editing :class:`ModelConfig`'s field; make a variant with ``dataclasses.replace(DEFAULT_MODEL,
...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------- choices
#: ``QSMRimNetClassifier(imbalance=...)``: DeepSMOTE in the network, BCE class weights,
#: class-balanced batches, or nothing.
IMBALANCE_CHOICES = ("deepsmote", "class_weight", "oversample", "none")
#: ``QSMRimNetClassifier(blend=...)``: the network's rim+ probability alone, or averaged with that of
#: an L2 logistic regression fitted on the same standardised tabular features.
BLENDS = ("logistic", "none")
#: Inverse L2 strength of the blend's logistic regression (scikit-learn's ``C``, on standardised features).
BLEND_LOGISTIC_C = 1.0
#: ``QSMRimNetClassifier(amp=...)``: bf16 autocast on CUDA only, always, never.
AMP_CHOICES = ("auto", True, False)
#: ``QSMRimNetClassifier(data_on_device=...)``: inputs on the GPU for the whole fit when they fit, always, never.
DATA_ON_DEVICE_CHOICES = ("auto", True, False)
#: ResNet3D depths (``module__depth``).
DEPTHS = (10, 18, 34)
#: Inputs the network uses (``module__branches``): the CNN on the patches and the MLP on the
#: tabular features, or one of them. The features themselves are those of
#: :mod:`rimclf.feature_registry`.
BRANCHES = ("both", "patches", "tabular")
#: What the image branch reads (``module__image``, ``ModelConfig.image``): cubic patches through a
#: 3D ResNet, or surface maps (depth x direction around the lesion boundary) through a small
#: direction-pooled encoder. Each is a registered image feature of :mod:`rimclf.feature_registry`.
IMAGE_INPUTS = ("patches", "surface_map")
#: How the surface-map encoder starts (``image_weights``, ``ModelConfig.image_weights``): random
#: weights, the pretrained weights shipped with rimclf (then trained on the user's cohort), or the
#: pretrained weights kept fixed (only the rest of the network trains).
IMAGE_WEIGHTS = ("random", "pretrained", "pretrained-frozen")
#: How the patch and tabular vectors are combined (``module__fusion``).
FUSIONS = ("sum", "concat")
#: Where radiomics are computed (``RadiomicsExtractor(region=...)``).
REGIONS = ("lesion", "shell", "both")
#: The image radiomics describe (``RadiomicsExtractor(image=...)``).
IMAGES = ("qsm", "flair")
#: Patch channels (``PatchExtractor(channels=...)``): images, this lesion's mask, and the signed
#: distance (mm) to its boundary.
CHANNELS = ("qsm", "flair", "mask", "distance")
#: Patch intensity normalisations (``PatchExtractor(normalize=...)``).
NORMALIZATIONS = ("nawm", "ring", "zscore", "none")
#: Training-time augmentation of the patches (``module__augment``): none, the 48 flips and 90-degree
#: turns about the world axes, or those plus small random rotations.
AUGMENTATIONS = ("none", "flips", "flips+rotations")
#: Units a QSM file may be stored in (``read_qsm(unit=...)``, a sidecar's ``"Units"``).
QSM_UNITS = ("ppb", "ppm")
#: ``load_cohort(qsm_unit=...)`` and ``--qsm-unit``: "auto" reads each QSM's JSON sidecar
#: ``Units`` and falls back on ppm (BIDS); "ppb"/"ppm" override the sidecars.
QSM_UNIT_CHOICES = ("auto", *QSM_UNITS)
#: Connectivities splitting a binary lesion mask into lesions (``load_cohort(connectivity=...)``).
CONNECTIVITIES = (6, 18, 26)
#: How a decision threshold was chosen (``ThresholdChoice.method``).
THRESHOLD_METHODS = ("cv", "in-sample", "fixed")
#: How the decision threshold is set on the (calibrated) out-of-fold probabilities
#: (``RimModel(operating_point=...)``, ``--operating-point``): a target specificity, a target
#: sensitivity, the largest F1, or the predicted number of rim+ lesions equal to the true number.
OPERATING_POINTS = ("specificity", "sensitivity", "f1", "count")
#: How the rim+ probabilities are calibrated on out-of-fold probabilities (``RimModel(calibration=...)``;
#: None: not at all). See :mod:`rimclf.calibration`.
CALIBRATIONS = ("sigmoid", "isotonic")
#: Where a scan's rim+ count interval stops (:func:`rimclf.metrics.count_interval`).
COUNT_INTERVAL_RULES = ("nearest", "at_least")
#: Imbalance handling of the radiomics baselines (``make_random_forest(sampler=...)``).
SAMPLERS = ("smote", "class_weight", "none")
#: What ``rimclf tune --model`` tunes: the network or a radiomics baseline.
TUNING_MODELS = ("qsmrimnet", "random_forest", "logistic_regression", "gradient_boosting")
#: Phantom difficulty presets (``make_phantom_cohort(difficulty=...)``).
DIFFICULTIES = ("easy", "default", "hard")
#: Phantom acquisition presets (``make_phantom_cohort(acquisition=...)``): fixed sites or drawn protocols.
PHANTOM_ACQUISITIONS = ("sites", "varied")

#: The BIDS version of the datasets rimclf writes (phantom cohorts, prediction derivatives).
BIDS_VERSION = "1.9.0"
#: Seeds rimclf draws from a ``random_state`` (folds, bootstraps, network seeds) lie in ``[0, MAX_SEED)``.
MAX_SEED = 2**31 - 1

# ------------------------------------------------------------------------- cohort reading
#: ``load_cohort(min_voxels=...)``: smaller lesions are left out.
MIN_VOXELS = 8
#: ``load_cohort(connectivity=...)``.
CONNECTIVITY = 26
#: ``load_cohort(qsm_unit=...)``: the sidecar's ``Units``, else ppm as BIDS defines ``Chimap``.
QSM_UNIT = "auto"

# ---------------------------------------------------------------------------- predict outputs
#: ``rimclf predict --montage-lesions``: the most probable lesions a scan's montage shows (every
#: lesion called rim+ is shown besides); 0 draws no montage.
MONTAGE_LESIONS = 12
#: how a scan's rim+ count interval is cut (:func:`rimclf.metrics.count_interval`)
COUNT_INTERVAL_RULE = "nearest"


# ----------------------------------------------------------------------------- upper bounds
#: Largest sizes rimclf builds or reads, so that a small hostile file (a model directory, a NIfTI
#: header) cannot make it allocate gigabytes. Model files are refused above them
#: (``docs/saved_models.md``); the limits sit well above any real use.
#: ``module__width``: the paper's network has 64; 128 makes a ResNet-34 of about 1 GiB.
MAX_WIDTH = 128
#: Samples per patch edge (``PatchExtractor(shape=...)``, ``module__`` input ``patch_shape``).
MAX_PATCH_SHAPE = 128
#: Patch channels a network may take (``in_channels``).
MAX_IN_CHANNELS = 64
#: Tabular features per lesion the MLP may take (``n_radiomics``; pyradiomics with every image
#: type and class on lesion and shell gives about 3,000).
MAX_TABULAR_FEATURES = 50_000
#: Bytes of a model's tensors (``weights.pt``): a width-128 ResNet-34 with both branches is ~1 GiB.
MAX_WEIGHTS_BYTES = 2 * 2**30
#: Voxels of one NIfTI image (512^3; a real QSM has at most about 512 x 512 x 256).
MAX_VOXELS = 512**3


# --------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelConfig:
    """A configuration of the rim-detection model: features, network, decision threshold.

    Attributes
    ----------
    feature_set : tuple of str, default=("rim", "rim_fit")
        The tabular features of each lesion, the MLP branch's input: names registered in
        :mod:`rimclf.feature_registry` (``"rim"``, ``"rim_fit"``, ``"radiomics"``);
        ``"rim+rim_fit"`` on the command line.
    radiomics_params : str, default="qsmrim"
        pyradiomics settings (``"qsmrim"``: QSMRim-Net's, shipped with rimclf; or a file path).
    region : {"lesion", "shell", "both"}, default="both"
        Radiomics (when ``feature_set`` has them) of the lesion, of a ring ``shell_mm`` wide
        around it, or both.
    shell_mm : float, default=2.0
    patch_size_mm : float, default=24.0
        Edge of the cubic patch around each lesion (CNN branch).
    patch_shape : int, default=16
        Samples per patch edge.
    normalize : {"nawm", "ring", "zscore", "none"}, default="ring"
        Patch intensity normalisation.
    channels : tuple of {"qsm", "flair", "mask", "distance"}, default=("qsm", "flair", "mask", "distance")
    depth : {10, 18, 34}, default=10
        ResNet3D depth (the paper's is 18).
    width : int, default=8
        Base width: the MLP's vectors have ``8 * width`` entries, the ResNet3D's first stage
        ``width`` channels (the paper's is 64).
    fusion : {"sum", "concat"}, default="concat"
    branches : {"both", "patches", "tabular"}, default="tabular"
        The network's inputs: the image branch (``"patches"``) and the MLP on the tabular
        features (``feature_set``), or one of them.
    image : {"patches", "surface_map"}, default="patches"
        What the image branch reads: cubic patches through the 3D ResNet, or surface maps
        (:class:`~rimclf.features.surface_map.SurfaceMapExtractor`) through
        :class:`~rimclf.nn.SurfaceMapEncoder`.
    image_weights : {"random", "pretrained", "pretrained-frozen"}, default="random"
        How the surface-map encoder starts (``image="surface_map"`` only): from random weights,
        from the pretrained weights shipped with rimclf and trained further, or from those kept
        fixed (:mod:`rimclf.classifier.pretrained`).
    augment : {"none", "flips", "flips+rotations"}, default="flips+rotations"
        Training-time augmentation of the patches (:class:`rimclf.nn.PatchAugment`).
    max_epochs : int, default=30
    lr : float, default=1e-3
        AdamW learning rate, cosine schedule over ``max_epochs``.
    batch_size : int, default=32
    imbalance : {"deepsmote", "class_weight", "oversample", "none"}, default="none"
    blend : {"logistic", "none"}, default="logistic"
        ``"logistic"``: the rim+ probability is the mean of the network's and that of an L2
        logistic regression (``C=BLEND_LOGISTIC_C``) fitted on the same standardised tabular
        features (needs tabular features: ``branches`` "tabular" or "both"); ``"none"``: the
        network's alone.
    smote_k : int, default=2
        DeepSMOTE neighbours (the paper's ``N + 2n`` rows).
    target_specificity : float, default=0.9
        Specificity the decision threshold is chosen for (the paper's FPR <= 0.1).
    threshold_cv : int, default=5
        Subject-grouped CV folds whose out-of-fold probabilities set the threshold.
    operating_point : {"specificity", "sensitivity", "f1", "count"}, default="specificity"
        How the threshold is set (:data:`OPERATING_POINTS`).
    target_sensitivity : float, default=0.8
        Sensitivity of ``operating_point="sensitivity"``.
    calibration : {"sigmoid", "isotonic"} or None, default="sigmoid"
        Calibration of the probabilities on the threshold CV's out-of-fold probabilities.

    Examples
    --------
    >>> from dataclasses import replace
    >>> DEFAULT_MODEL.feature_set, DEFAULT_MODEL.branches, DEFAULT_MODEL.imbalance
    (('rim', 'rim_fit'), 'tabular', 'none')
    >>> fused = replace(DEFAULT_MODEL, branches="both", imbalance="deepsmote", blend="none")
    >>> describe_config(fused)
    'rim features + rim-fit features -> MLP + CNN (ResNet-10, width 8) on 16^3 patches of 24 mm [qsm, flair, mask, distance; ring; augment flips+rotations], concat, deepsmote, 30 epochs'

    :func:`rimclf.features.make_featurizer` and :func:`rimclf.classifier.make_classifier` build
    the estimators of a configuration:

    >>> from rimclf.features import make_featurizer
    >>> make_featurizer(fused).get_output_shapes()
    {'rim': (20,), 'rim_fit': (6,), 'patches': (4, 16, 16, 16)}
    """

    # features (rimclf.features.make_featurizer)
    feature_set: tuple[str, ...] = ("rim", "rim_fit")
    radiomics_params: str = "qsmrim"
    region: str = "both"
    shell_mm: float = 2.0
    patch_size_mm: float = 24.0
    patch_shape: int = 16
    normalize: str = "ring"
    channels: tuple[str, ...] = ("qsm", "flair", "mask", "distance")
    # network (rimclf.classifier.make_classifier)
    depth: int = 10
    width: int = 8
    fusion: str = "concat"
    branches: str = "tabular"
    image: str = "patches"
    image_weights: str = "random"
    augment: str = "flips+rotations"
    max_epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 32
    imbalance: str = "none"
    blend: str = "logistic"
    smote_k: int = 2
    # decision threshold (rimclf.RimModel)
    target_specificity: float = 0.9
    threshold_cv: int = 5
    operating_point: str = "specificity"
    target_sensitivity: float = 0.8
    calibration: str | None = "sigmoid"


#: The default model: ``RimModel()``, ``rimclf train``, ``rimclf demo``, ``rimclf benchmark`` (its
#: reference) and tuning. Chosen by the ablation (``benchmarks/bench_ablation.py``, README "Which
#: parts help"): the network's MLP branch on the rim-profile and rim-fit features, no CNN branch, no
#: imbalance correction, its probability averaged with a logistic regression's on the same features. The patch settings are those of the CNN branch when it is switched on
#: (``branches="both"``): 24 mm patches of 16^3 samples with the distance channel, QSM referenced
#: to the lesion's ring, flips, turns and small rotations.
DEFAULT_MODEL = ModelConfig()


def describe_config(config: ModelConfig) -> str:
    """A one-line description of a model configuration, for logs and reports.

    Examples
    --------
    >>> describe_config(DEFAULT_MODEL)
    'rim features + rim-fit features -> MLP (width 8), no imbalance correction, 30 epochs, averaged with a logistic regression'
    """
    names = {"rim": "rim features", "rim_fit": "rim-fit features", "radiomics": f"radiomics ({config.region})"}
    features = " + ".join(names.get(name, f"{name} features") for name in config.feature_set)
    cnn = (f"CNN (ResNet-{config.depth}, width {config.width}) on {config.patch_shape}^3 patches of "
           f"{config.patch_size_mm:g} mm [{', '.join(config.channels)}; {config.normalize}; augment {config.augment}]")
    if config.image == "surface_map":
        cnn = f"surface-map encoder (width {config.width})"
        if config.image_weights != "random":
            cnn = f"surface-map encoder ({config.image_weights}, width {config.width})"
    if config.branches == "tabular":
        network = f"{features} -> MLP (width {config.width})"
    elif config.branches == "patches":
        network = cnn
    else:
        network = f"{features} -> MLP + {cnn}, {config.fusion}"
    imbalance = "no imbalance correction" if config.imbalance == "none" else config.imbalance.replace("_", " ")
    blend = ", averaged with a logistic regression" if config.blend == "logistic" else ""
    return f"{network}, {imbalance}, {config.max_epochs} epochs{blend}"
