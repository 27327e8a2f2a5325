"""The estimator: QSMRim-Net as a skorch ``NeuralNetBinaryClassifier``, with its loss settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from skorch import NeuralNetBinaryClassifier
from skorch.callbacks import LRScheduler
from skorch.dataset import get_len, unpack_data
from skorch.utils import is_dataset, to_device, to_numpy
from sklearn.utils import check_random_state

from rimclf.classifier.blend import blend_probabilities, fit_logistic_blend, logistic_probability
from rimclf.classifier.batches import DeviceBatches, LesionBatchDataset, StratifiedBatchSampler, as_lesion_dataset
from rimclf.classifier.device import (
    AutoDeviceMixin,
    autocast,
    cudnn_autotune,
    resolve_data_on_device,
    resolve_device,
    seeded_torch,
    uses_channels_last,
)
from rimclf._data_checks import check_fit_labels
from rimclf.classifier.inputs import LesionInputsMixin, check_inputs, signature_parameters
from rimclf.classifier.printlog import PrintLog, TrainingSummary
from rimclf.classifier.state import FittedStateMixin
from rimclf._validation import Bools, Interval, Options, RandomStates, is_int, validate_params
from rimclf.defaults import (
    AMP_CHOICES,
    BLENDS,
    DATA_ON_DEVICE_CHOICES,
    DEFAULT_MODEL,
    IMAGE_WEIGHTS,
    IMBALANCE_CHOICES,
    MAX_SEED,
    ModelConfig,
)
from rimclf.errors import ParameterError
from rimclf.classifier.pretrained import load_pretrained_encoder
from rimclf.nn import DeepSMOTE, PatchAugment, QSMRimNet, SurfaceMapEncoder

__all__ = ["IMBALANCE_CHOICES", "QSMRimNetClassifier", "make_classifier"]



class _FitInterrupted(BaseException):
    """A ``KeyboardInterrupt`` raised inside skorch's fit loop, carried past skorch's
    ``partial_fit`` (which catches ``KeyboardInterrupt`` and returns the half-trained net as if
    it were fitted) and raised again as the ``KeyboardInterrupt`` it was."""


class QSMRimNetClassifier(
    AutoDeviceMixin, LesionInputsMixin, FittedStateMixin, NeuralNetBinaryClassifier
):
    """QSMRim-Net lesion classifier (rim+ vs rim-) with the scikit-learn API.

    A :class:`skorch.NeuralNetBinaryClassifier` around :class:`rimclf.nn.QSMRimNet`. X is the
    ``SliceDict(rim=(n, F), patches=(n, C, D, H, W), ...)`` of ``LesionFeaturizer`` (a plain
    dict works too, but sklearn's CV tools need the SliceDict to index it); y holds 0/1.

    Defaults marked (*) come from :data:`rimclf.defaults.DEFAULT_MODEL`.

    Parameters
    ----------
    module : torch module class, default=QSMRimNet
        Called with the ``module__*`` parameters plus ``in_channels``, ``n_tabular``,
        ``smote_k`` and ``deepsmote`` (those it accepts). Its ``forward(patches, tabular,
        y=None)`` returns logits, or ``(logits, y_aug)`` when ``y`` is given. In training, ``y``
        comes on the CPU whatever the device (the labels stay on the host, so that counting the
        rim+ rows of a batch never waits for a GPU); ``y_aug`` may be on either device.
    imbalance : {"deepsmote", "class_weight", "oversample", "none"}, default="none" (*)
        ``"deepsmote"``: feature-space SMOTE inside the network (QSMRim-Net's method);
        ``"class_weight"``: BCE ``pos_weight = n_rim- / n_rim+`` of the fit's training labels;
        ``"oversample"``: rim+ lesions reused so that each epoch is class-balanced;
        ``"none"``: plain BCE.
    blend : {"logistic", "none"}, default="logistic" (*)
        ``"logistic"``: ``predict_proba`` gives the mean of the network's rim+ probability and
        that of an L2 logistic regression fitted in ``fit`` on the same standardised tabular
        features (:mod:`rimclf.classifier.blend`; needs ``module__branches`` "tabular" or
        "both"); ``"none"``: the network's alone.
    smote_k : int, default=2 (*)
        Nearest rim+ neighbours per rim+ row in DeepSMOTE (``N + 2n`` rows, as in the paper).
    min_positives : int or "auto", default="auto"
        Minimum rim+ lesions per training batch (see :class:`StratifiedBatchSampler`: when
        the training data hold too few rim+ lesions, fewer and larger batches are made).
        ``"auto"``: ``smote_k + 1`` with DeepSMOTE (every rim+ row gets its ``smote_k``
        neighbours), else 0. Rim+ lesions are always spread evenly over the batches.
    image_weights : {"random", "pretrained", "pretrained-frozen"}, default="random" (*)
        How the surface-map encoder (``module__image="surface_map"`` with an image branch) starts
        at ``fit``: from random weights; from the weights pretrained on 5,475 phantom
        lesions of 22 acquisition protocols and shipped with rimclf
        (:mod:`rimclf.classifier.pretrained`), then trained with the rest of the network; or from
        those weights kept fixed (the encoder stays in eval mode). Pretrained weights need the
        encoder's shape: ``module__width=8`` and 2-channel surface maps. They are read at ``fit``
        only: the fitted network holds its own weights, which model files save.
    amp : {"auto", True, False}, default="auto"
        bf16 autocast: ``"auto"`` uses it on CUDA (with bf16 support) only; ``True`` also on CPU.
    data_on_device : {"auto", True, False}, default="auto"
        Keep the inputs on the device for the whole ``fit`` (and ``predict_proba``) and gather
        every batch there, instead of copying batches from the host one by one. ``"auto"``: on
        CUDA when the inputs take at most ``DEVICE_DATA_FRACTION`` (25 %) of the GPU's free
        memory (1,400 lesions of 3 x 32³ float32 patches take 0.55 GB), never on the CPU;
        ``True``: always (on the CPU it runs the GPU's batch path, with identical results);
        ``False``: never.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, dropout, batch composition, DeepSMOTE weights and patch
        augmentation; torch's global generators are restored after ``fit``. On the CPU an int
        makes training repeatable bit for bit, in one process or across processes, for a given
        number of torch threads (another ``torch.get_num_threads()`` sums in another order and
        moves the probabilities by about 1e-5). On CUDA the same random numbers are drawn but
        training is *not* repeatable bit for bit: cuDNN picks its convolution algorithms by
        timing them, and the backward passes of convolutions, ``MaxPool3d`` and
        ``AdaptiveAvgPool3d`` add up in a varying order (they have no deterministic CUDA
        implementation, so ``torch.use_deterministic_algorithms(True)`` would refuse to train
        the ResNet). Two CUDA fits with the same ``random_state`` give close, not identical,
        probabilities; ``tests/test_cuda.py`` checks how close.
    device : "auto", str or torch.device, default="auto"
        ``"auto"``: CUDA when available, else CPU. Resolved into ``device_``.
    criterion : default=torch.nn.BCEWithLogitsLoss
    optimizer : default=torch.optim.AdamW
        Set its options as ``optimizer__weight_decay=...``.
    lr : float, default=1e-3 (*)
    max_epochs : int, default=30 (*)
        Fixed epoch count; the learning rate follows a cosine schedule over ``max_epochs``
        (callback ``lr_scheduler``; disable with ``callbacks__lr_scheduler=None``).
    batch_size : int, default=32 (*)
    train_split : callable or None, default=None
        No internal validation by default: model selection belongs in a grouped outer CV.
        For early stopping use ``train_split=GroupValidSplit(5)``, ``callbacks=[EarlyStopping(
        load_best=True)]`` and ``fit(X, y, groups=participant_ids)``; skorch's ``ValidSplit``
        also works but splits lesions, not subjects. With scikit-learn's metadata routing on
        (``sklearn.set_config(enable_metadata_routing=True)``), ``GroupValidSplit`` requests the
        groups itself: ``cross_validate(net, X, y, params={"groups": g})`` and
        ``Pipeline(...).fit(X, y, groups=g)`` pass them to it.
    verbose : int, default=0
        What a training prints: 0 nothing; 1 a progress bar over the epochs (on standard error,
        only where it is a terminal) and one summary line per training (epochs, lesions, time,
        last loss); 2 or more also skorch's epoch table (see :mod:`rimclf.classifier.printlog`).
    **kwargs
        Other skorch parameters, e.g. ``module__branches="both", module__depth=18,
        module__width=64`` (the paper's fused network; the default module is the MLP branch
        alone, ``branches="tabular", width=8``, as :data:`rimclf.defaults.DEFAULT_MODEL`
        says), ``module__fusion="sum"``, ``module__augment="flips"``.

    Attributes
    ----------
    module_ : QSMRimNet
        The fitted plain torch module, on ``device_``: ``net.module_.eval()(**net.preprocess(X))``
        gives the logits (under ``torch.autocast(device_.type, torch.bfloat16)`` when ``amp_``,
        as ``predict_proba`` computes them).
    in_channels_, patch_shape_ : int, tuple of int or None
        Channels and spatial shape of the training patches (None without a patch branch).
    n_radiomics_ : int or None
        Radiomic features per lesion (None without a radiomics branch).
    radiomics_median_, radiomics_mean_, radiomics_scale_ : ndarray of shape (n_radiomics_,)
        Imputation and standardisation statistics of the training rows.
    pos_weight_ : float or None
        BCE ``pos_weight`` when ``imbalance="class_weight"``.
    blend_coef_, blend_intercept_ : ndarray of shape (n_radiomics_,) and float, or None
        The blend's logistic regression on the standardised tabular features (None with
        ``blend="none"``).
    device_ : torch.device
    amp_ : bool
    classes_ : ndarray, ``[0, 1]``
    history_ : skorch History, with ``n_synthetic`` (DeepSMOTE rows made in the epoch) per
        epoch and ``n_synthetic``/``n_positive`` per training batch.

    Notes
    -----
    Training batches are drawn by a :class:`StratifiedBatchSampler` built in ``get_iterator``
    from the labels of the dataset that reaches it (a CV fold, or the training part of
    ``train_split``), and fetched whole (one tensor indexing per input, no per-lesion
    ``__getitem__``).

    On CUDA the inputs are copied to the GPU once per fit (``data_on_device``) and each batch is
    gathered there from row indices copied once per epoch (:class:`DeviceBatches`); otherwise
    batches come from pinned memory with non-blocking copies. Patches and convolution weights
    use ``torch.channels_last_3d``, ``amp="auto"`` turns on bf16 autocast and cuDNN times its
    algorithms during ``fit`` (``torch.backends.cudnn.benchmark``, restored after). A training
    step never waits for the GPU: the labels and per-batch counts stay on the host, DeepSMOTE
    finds the rim+ rows in the host labels, and the batch losses are read back once per epoch
    (``run_single_epoch``); ``predict_proba`` copies the probabilities back once. With the
    inputs on the device, ``iterator_train__*``/``iterator_valid__*`` ``DataLoader`` options do
    not apply.

    A net fitted on a GPU pickles, clones and unpickles on a CPU-only machine (skorch maps its
    tensors to the CPU; ``device="cuda"`` then becomes ``"cpu"`` with a ``DeviceWarning``, and
    ``device="auto"`` stays ``"auto"``); :func:`rimclf.load_model` loads a GPU-trained model file
    on any device.

    A fitted estimator is ``fitted_state()``: JSON-able parameters, ``module_.state_dict()``,
    the radiomics statistics and input sizes (all plain JSON with ``fitted_state(json=True)``);
    ``QSMRimNetClassifier.from_fitted_state(state)`` rebuilds it without pickle, and
    :func:`rimclf.save_model` / :func:`rimclf.load_model` store it in a model directory. skorch's
    ``save_params``/``load_params`` keep the module's weights only: a net built by
    ``initialize()`` (which then needs ``module__n_tabular``/``module__in_channels``) and
    ``load_params(f_params=...)`` has no fitted standardisation and refuses to predict.

    Tags: X is a dict of arrays (``input_tags.dict``), so scikit-learn's estimator checks that
    feed 2-D arrays do not apply; ``tests/test_estimator_checks.py`` runs the others.

    Examples
    --------
    >>> from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    >>> net = QSMRimNetClassifier(max_epochs=20, random_state=0)
    >>> scores = cross_val_score(net, X, y, groups=groups, cv=StratifiedGroupKFold(5),
    ...                          scoring="average_precision")  # doctest: +SKIP
    """

    def __init__(
        self,
        module: Any = QSMRimNet,
        *,
        criterion: Any = torch.nn.BCEWithLogitsLoss,
        optimizer: Any = torch.optim.AdamW,
        lr: float = DEFAULT_MODEL.lr,
        max_epochs: int = DEFAULT_MODEL.max_epochs,
        batch_size: int = DEFAULT_MODEL.batch_size,
        train_split: Any = None,
        callbacks: Any = None,
        imbalance: str = DEFAULT_MODEL.imbalance,
        blend: str = DEFAULT_MODEL.blend,
        smote_k: int = DEFAULT_MODEL.smote_k,
        min_positives: int | str = "auto",
        image_weights: str = DEFAULT_MODEL.image_weights,
        amp: bool | str = "auto",
        data_on_device: bool | str = "auto",
        random_state: Any = None,
        device: Any = "auto",
        verbose: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.imbalance = imbalance
        self.blend = blend
        self.smote_k = smote_k
        self.min_positives = min_positives
        self.image_weights = image_weights
        self.amp = amp
        self.data_on_device = data_on_device
        self.random_state = random_state

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        # skorch's epoch table, without colour codes where no terminal shows them
        callbacks = [(name, PrintLog() if name == "print_log" else callback)
                     for name, callback in super()._default_callbacks]
        n_epochs = self.max_epochs if is_int(self.max_epochs) and self.max_epochs > 0 else 1
        scheduler = LRScheduler(policy=torch.optim.lr_scheduler.CosineAnnealingLR, T_max=n_epochs)
        callbacks.insert(len(callbacks) - 1, ("lr_scheduler", scheduler))  # before print_log
        callbacks.append(("training_summary", TrainingSummary()))  # verbose=1: a progress bar and one line
        return callbacks

    # ------------------------------------------------------- sklearn protocol
    # Metadata routing: skorch's net routes ``fit`` metadata to ``train_split.cv``; the ``cv`` of
    # GroupValidSplit requests ``groups``, so with routing on cross_validate(..., params={"groups":
    # g}) and Pipeline.fit(X, y, groups=g) deliver the subjects to it (see GroupValidSplit).
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is the featurizer's SliceDict (or a dict) of arrays
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True  # NaN tabular features are imputed (patches must be finite)
        tags.classifier_tags.multi_class = False  # rim+ (1) against rim- (0)
        return tags

    # ------------------------------------------------------------------ checks
    _parameter_constraints = {
        "imbalance": [Options(*IMBALANCE_CHOICES)],
        "blend": [Options(*BLENDS)],
        "smote_k": [Interval(int, 1)],
        "min_positives": [Options("auto"), Interval(int, 0)],
        "image_weights": [Options(*IMAGE_WEIGHTS)],
        "batch_size": [Interval(int, 2), Options(-1)],
        "amp": [Options(*AMP_CHOICES)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "max_epochs": [Interval(int, 0)],
        "threshold": [Interval(float, 0, 1)],
        "random_state": [RandomStates()],
        "verbose": [Interval(int, 0), Bools()],
        "data_on_device": [Options(*DATA_ON_DEVICE_CHOICES)],
    }

    def _check_params(self) -> None:
        validate_params(self)
        nonlinearity = self.predict_nonlinearity
        if not (nonlinearity is None or callable(nonlinearity) or (isinstance(nonlinearity, str) and nonlinearity == "auto")):
            raise ParameterError(
                f"QSMRimNetClassifier: predict_nonlinearity={nonlinearity!r} is not valid; it must be 'auto', None or a callable"
            )
        for name in ("smote_k", "deepsmote"):
            if name in self.get_params_for("module"):
                raise ParameterError(
                    f"module__{name} is set by the estimator; use smote_k= / imbalance= instead"
                )
        if self.image_weights != "random" and (self._module_image() != "surface_map" or self._module_branches() == "tabular"):
            raise ParameterError(
                f"QSMRimNetClassifier: image_weights={self.image_weights!r} is not valid with module__branches="
                f"{self._module_branches()!r} and module__image={self._module_image()!r}; pretrained weights exist for "
                "the surface-map encoder only (module__image='surface_map' with module__branches='both' or 'patches')"
            )
        if self.blend == "logistic" and self._module_branches() == "patches":
            raise ParameterError(
                "QSMRimNetClassifier: blend='logistic' averages in a logistic regression on the tabular features, and "
                "module__branches='patches' has none; set blend='none' (--blend none) or add tabular features"
            )
        if self.blend == "logistic" and not (isinstance(nonlinearity, str) and nonlinearity == "auto"):
            raise ParameterError(
                "QSMRimNetClassifier: blend='logistic' averages probabilities and needs predict_nonlinearity='auto' (the "
                f"sigmoid); with predict_nonlinearity={nonlinearity!r} set blend='none'"
            )
        resolve_device(self.device)

    def _min_positives(self) -> int:
        if self.min_positives == "auto":
            return self.smote_k + 1 if self.imbalance == "deepsmote" else 0
        return int(self.min_positives)

    def get_iterator(self, dataset: torch.utils.data.Dataset, training: bool = False):
        """Whole-batch loading: a StratifiedBatchSampler built from ``dataset``'s own labels
        (so it follows skorch's internal split and CV subsets) for training, sequential slices
        otherwise; batches gathered on the device (:class:`DeviceBatches`) when the inputs are
        there (``data_on_device``), else a ``DataLoader``."""
        lesions = as_lesion_dataset(dataset)
        if lesions is None:
            return super().get_iterator(dataset, training=training)
        lesions = self._place(lesions, self._device())
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        kwargs.pop("shuffle", None)
        if batch_size == -1:
            batch_size = max(len(lesions), 2)
        if training:
            sampler: Any = StratifiedBatchSampler(
                lesions.labels,
                batch_size,
                min_positives=self._min_positives(),
                oversample=self.imbalance == "oversample",
                random_state=getattr(self, "batch_rng_", None),
            )
        else:
            sampler = [slice(i, i + batch_size) for i in range(0, len(lesions), batch_size)]
        if lesions.on_device:
            return DeviceBatches(lesions, sampler)
        kwargs.setdefault("pin_memory", self._device().type == "cuda")
        # a DataLoader draws a worker seed at every epoch, from torch's global generator unless
        # given its own: dropout would then differ from the DeviceBatches path
        kwargs.setdefault("generator", torch.Generator())
        return torch.utils.data.DataLoader(lesions, batch_size=None, sampler=sampler, **kwargs)

    def _place(self, dataset: LesionBatchDataset, device: torch.device) -> LesionBatchDataset:
        """``dataset`` with its inputs on ``device`` for good when ``data_on_device`` says so."""
        if dataset.on_device or not resolve_data_on_device(self.data_on_device, device, dataset.nbytes):
            return dataset
        return dataset.to(device, channels_last=uses_channels_last(device))

    def initialize_callbacks(self) -> QSMRimNetClassifier:
        """skorch's callbacks, pickled with the module and optimizer (skorch's
        ``cuda_dependent_attributes_``): the learning-rate scheduler holds the optimizer, whose
        CUDA tensors must be mapped to the CPU when a GPU-fitted net is unpickled without CUDA."""
        super().initialize_callbacks()
        if "callbacks_" not in self.cuda_dependent_attributes_:
            self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "callbacks_"]
        return self

    def initialize_module(self) -> QSMRimNetClassifier:
        kwargs = self.get_params_for("module")
        if not isinstance(self.module, torch.nn.Module):
            accepted = signature_parameters(self.module)
            derived = {
                "in_channels": getattr(self, "in_channels_", None),
                "n_tabular": getattr(self, "n_radiomics_", None),
                "smote_k": self.smote_k,
                "deepsmote": self.imbalance == "deepsmote",
            }
            for name, value in derived.items():
                if name in accepted and name not in kwargs and value is not None:
                    kwargs[name] = value
            self._check_input_sizes(kwargs, accepted)
        module = self.initialized_instance(self.module, kwargs)
        device = self._device()
        if uses_channels_last(device):
            module = module.to(device=device, memory_format=torch.channels_last_3d)
        seeds = {DeepSMOTE: getattr(self, "smote_seed_", None), PatchAugment: getattr(self, "augment_seed_", None)}
        for layer in module.modules():
            seed = seeds.get(type(layer))
            if seed is not None:
                layer.manual_seed(seed)
        self.module_ = module
        return self

    # ---------------------------------------------------------------- loss
    def _fit_loss(self, labels: np.ndarray) -> None:
        """Learn ``pos_weight_``: ``n_rim- / n_rim+`` of the training labels with
        ``imbalance="class_weight"``, else None."""
        self.pos_weight_ = None
        if self.imbalance == "class_weight":
            n_positive = int((labels > 0.5).sum())
            self.pos_weight_ = float((labels.size - n_positive) / n_positive)

    def initialize_criterion(self) -> QSMRimNetClassifier:
        """The BCE criterion, weighted by ``pos_weight_`` with ``imbalance="class_weight"``."""
        kwargs = self.get_params_for("criterion")
        pos_weight = getattr(self, "pos_weight_", None)
        weighted = self.imbalance == "class_weight" and pos_weight is not None
        if weighted and "pos_weight" not in kwargs:
            kwargs["pos_weight"] = torch.tensor(pos_weight, dtype=torch.float32)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    # ------------------------------------------------------------- fitting
    def _seed_everything(self) -> int:
        rng = check_random_state(self.random_state)
        torch_seed, smote_seed, batch_seed, augment_seed = (int(s) for s in rng.randint(0, MAX_SEED, size=4))
        self.smote_seed_ = smote_seed
        self.augment_seed_ = augment_seed
        self.batch_rng_ = np.random.default_rng(batch_seed)
        return torch_seed

    def fit(self, X: object, y: object = None, **fit_params: Any) -> QSMRimNetClassifier:
        """Fit on X (SliceDict/dict) and 0/1 labels y; returns self.

        Learns the input sizes and the radiomics statistics from X (kept as they are with
        ``warm_start=True`` on a fitted estimator), seeds everything from ``random_state`` and
        trains for ``max_epochs``.

        ``fit_params`` go to ``train_split``: pass ``groups=`` (the subject of each lesion) when
        ``train_split=GroupValidSplit(...)``.
        """
        self._check_params()
        inputs, feature_keys = check_inputs(X, self._module_branches(), image=self._module_image())
        labels = check_fit_labels(y, next(iter(inputs.values())).shape[0])
        if not (self.warm_start and self.initialized_ and hasattr(self, "pos_weight_")):
            self._fit_statistics(inputs, feature_keys, labels)  # a warm start keeps the fitted statistics
        torch_seed = self._seed_everything()
        device = resolve_device(self.device)
        dataset = self._place(LesionBatchDataset(self._as_tensors(inputs), torch.from_numpy(labels)), device)
        with self._skorch_sees_device(), seeded_torch(torch_seed, device), cudnn_autotune(device), _reraise_interrupt():
            if not self.warm_start or not self.initialized_:  # skorch's fit, with the encoder's start between
                self.initialize()
                self._start_image_encoder()
            super().partial_fit(dataset, labels, _routing_method="fit", **fit_params)
        return self

    def _fit_statistics(
        self, inputs: dict[str, np.ndarray], feature_keys: tuple[str, ...] | None, labels: np.ndarray
    ) -> None:
        """What a first fit learns from the training rows besides the weights: the input statistics,
        the loss weighting and the blend's regression."""
        self._fit_preprocessing(inputs, feature_keys)
        self._fit_loss(labels)
        self._fit_blend(inputs, labels)

    def _fit_blend(self, inputs: dict[str, np.ndarray], labels: np.ndarray) -> None:
        """Fit the logistic regression of ``blend="logistic"`` on the standardised tabular features."""
        self.blend_coef_, self.blend_intercept_ = None, None
        if self.blend == "logistic":
            self.blend_coef_, self.blend_intercept_ = fit_logistic_blend(self._standardised(inputs["tabular"]), labels)

    def _standardised(self, tabular: np.ndarray) -> np.ndarray:
        """Tabular features imputed and standardised with the training statistics, in float64."""
        return self._tabular_scaler().transform(tabular, dtype=np.float64)

    def _image_encoder(self) -> SurfaceMapEncoder:
        encoder = getattr(self.module_, "patch_encoder", None)
        if not isinstance(encoder, SurfaceMapEncoder):
            raise ParameterError(f"QSMRimNetClassifier: image_weights={self.image_weights!r} needs a module whose "
                                 f"patch_encoder is a SurfaceMapEncoder; {type(self.module_).__name__} has none")
        return encoder

    def _start_image_encoder(self) -> None:
        """Copy the pretrained weights into the surface-map encoder (``image_weights``); a width or
        channel count other than the pretrained encoder's is a :class:`ParameterError`."""
        if self.image_weights == "random":
            return
        encoder = self._image_encoder()
        if (encoder.in_channels, encoder.out_features) != (2, 64):
            raise ParameterError(
                f"QSMRimNetClassifier: image_weights={self.image_weights!r} needs the pretrained encoder's shape, 2-channel "
                f"surface maps and module__width=8 (64 features); this network's encoder takes {encoder.in_channels} "
                f"channels and gives {encoder.out_features} features"
            )
        load_pretrained_encoder(encoder)

    def _set_training(self, training: bool = True) -> None:
        """skorch's train/eval switch; with ``image_weights="pretrained-frozen"`` the surface-map
        encoder stays in eval mode (its batch-norm statistics fixed) and gets no gradients."""
        super()._set_training(training)
        if self.image_weights == "pretrained-frozen":
            encoder = self._image_encoder()
            encoder.eval()
            encoder.requires_grad_(False)

    def partial_fit(
        self, X: object, y: object = None, classes: object = None, **fit_params: Any
    ) -> QSMRimNetClassifier:
        """Continue training (the preprocessing is fitted on the first call only)."""
        if is_dataset(X):
            with _reraise_interrupt():
                return super().partial_fit(X, y, classes=classes, **fit_params)
        self._check_params()
        inputs, feature_keys = check_inputs(X, self._module_branches(), image=self._module_image())
        labels = check_fit_labels(y, next(iter(inputs.values())).shape[0])
        if not hasattr(self, "pos_weight_"):  # first call: nothing fitted yet
            self._fit_statistics(inputs, feature_keys, labels)
            self._seed_everything()
        device = resolve_device(self.device)
        dataset = self._place(LesionBatchDataset(self._as_tensors(inputs), torch.from_numpy(labels)), device)
        with self._skorch_sees_device(), cudnn_autotune(device), _reraise_interrupt():
            super().partial_fit(dataset, labels, classes=classes, **fit_params)
        return self

    def fit_loop(self, X: object, y: object = None, epochs: int | None = None, **fit_params: Any):
        """skorch's fit loop, unchanged, except that an interrupt (Ctrl-C, or SIGTERM turned into
        one by the command line) stops the fit with an error instead of leaving a half-trained
        net that looks fitted: skorch's ``partial_fit`` swallows ``KeyboardInterrupt``."""
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            if _raised_by_skorch_callback(exc):
                raise  # a callback's deliberate stop (EarlyStopping): skorch ends the fit normally
            raise _FitInterrupted(exc) from exc

    def infer(self, x: dict[str, torch.Tensor], **fit_params: Any):
        """Forward a batch on ``device_`` (non-blocking copies, channels-last 3D on CUDA) under
        bf16 autocast when ``amp_``; returns float32 logits ``(N,)`` or ``(logits, y_aug)``."""
        fit_params.pop("groups", None)
        device = self._device()
        channels_last = uses_channels_last(device)
        inputs = {}
        for name, value in x.items():
            value = torch.as_tensor(value).to(device, non_blocking=device.type == "cuda")
            if channels_last and value.ndim == 5:
                value = value.contiguous(memory_format=torch.channels_last_3d)
            inputs[name] = value
        with autocast(device, getattr(self, "amp_", False)):
            output = self.module_(**inputs, **fit_params)
        if isinstance(output, tuple):
            return output[0].reshape(-1).float(), output[1].reshape(-1).float()
        return output.reshape(-1).float()

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """Training step with the labels passed into the module, so that DeepSMOTE can add
        synthetic rim+ rows; the loss is computed on the augmented batch.

        The labels stay where the batch brings them (on the host for a
        :class:`LesionBatchDataset`): DeepSMOTE and the per-batch counts ``n_synthetic`` and
        ``n_positive`` read them there, so the step does not wait for the GPU."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        labels = torch.as_tensor(yi, dtype=torch.float32)
        output = self.infer(Xi, y=labels, **fit_params)
        logits, y_aug = output if isinstance(output, tuple) else (output, labels)
        loss = self.get_loss((logits, y_aug), labels, X=Xi, training=True)
        loss.backward()
        n_rows = int(labels.shape[0])
        self.history.record_batch("n_synthetic", int(logits.shape[0]) - n_rows)
        self.history.record_batch("n_positive", int((labels > 0.5).sum()))
        return {"loss": loss, "y_pred": logits[:n_rows]}

    def get_loss(self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False):
        """BCE on logits; ``y_pred`` may be ``(logits, y_aug)`` (the augmented batch). Labels on
        the host are copied to the logits' device without waiting."""
        if isinstance(y_pred, tuple):
            y_pred, y_true = y_pred
        y_true = torch.as_tensor(y_true).to(y_pred.device, dtype=y_pred.dtype, non_blocking=True)
        return self.criterion_(y_pred, y_true)

    def run_single_epoch(self, iterator: Any, training: bool, prefix: str, step_fn: Any, **fit_params: Any) -> None:
        """skorch's epoch loop, with the batch losses read from the device once per epoch.

        skorch records ``loss.item()`` after every batch, which makes the host wait for the GPU
        to finish that batch before it queues the next one. Here each batch's ``<prefix>_loss``
        is recorded as a detached 0-d tensor and replaced by its float in one transfer at the
        end of the loop, before ``on_epoch_end`` (a callback reading it during the epoch sees the
        tensor). Everything else is as in skorch.
        """
        if iterator is None:
            return
        records, batch_count = [], 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            self.history.record_batch(prefix + "_loss", step["loss"].detach())
            records.append(self.history[-1, "batches", -1])
            batch_size = get_len(batch[0]) if isinstance(batch, (tuple, list)) else get_len(batch)
            self.history.record_batch(prefix + "_batch_size", batch_size)
            self.notify("on_batch_end", batch=batch, training=training, **step)
            batch_count += 1
        if records:
            losses = torch.stack([record[prefix + "_loss"].float().reshape(()) for record in records])
            for record, value in zip(records, losses.cpu().tolist()):
                record[prefix + "_loss"] = value
        self.history.record(prefix + "_batch_count", batch_count)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        """Record ``n_synthetic``, the DeepSMOTE rows made in this epoch's training batches."""
        batches = self.history[-1, "batches"]
        self.history.record("n_synthetic", int(sum(b.get("n_synthetic", 0) for b in batches)))
        super().on_epoch_end(net, **kwargs)

    # ----------------------------------------------------------- prediction
    def forward_iter(self, X: object, training: bool = False, device: Any = "cpu"):
        """Module outputs batch by batch, always in the order of X."""
        iterator = self.get_iterator(self.get_dataset(X), training=False)
        for batch in iterator:
            yield to_device(self.evaluation_step(batch, training=training), device=device)

    def predict_proba(self, X: object) -> np.ndarray:
        """Probabilities ``(n, 2)``: columns rim- and rim+ (gathered on the device, copied back
        to the host once); with ``blend="logistic"`` the mean of the network's and the blend's
        logistic regression's."""
        self.check_is_fitted()
        dataset = self.get_dataset(X)
        if len(dataset) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        logits = self.forward(dataset, training=False, device=self._device())
        probabilities = to_numpy(self._get_predict_nonlinearity()(logits))
        if getattr(self, "blend_coef_", None) is None:
            return probabilities
        logistic = logistic_probability(self._standardised_rows(dataset), self.blend_coef_, self.blend_intercept_)
        rim = blend_probabilities(probabilities[:, 1], logistic).astype(probabilities.dtype)
        return np.column_stack([1 - rim, rim])

    def _standardised_rows(self, dataset: torch.utils.data.Dataset) -> np.ndarray:
        """The standardised tabular features of a dataset's rows (what the network read), float64."""
        lesions = as_lesion_dataset(dataset)
        if lesions is None or "tabular" not in lesions.inputs:
            raise ParameterError(f"QSMRimNetClassifier with blend='logistic' cannot predict a {type(dataset).__name__}: "
                                 "the blend's logistic regression needs the tabular features of X")
        tabular = lesions.inputs["tabular"]
        if lesions.index is not None:
            tabular = tabular[lesions.index.to(tabular.device)]
        return tabular.detach().cpu().numpy().astype(np.float64)

    def predict(self, X: object) -> np.ndarray:
        """0/1 decisions: rim+ where the rim+ probability is at least ``threshold``
        (as :class:`rimclf.RimModel` decides)."""
        return (self.predict_proba(X)[:, 1] >= self.threshold).astype(np.int64)


def _raised_by_skorch_callback(exc: BaseException) -> bool:
    """Whether a ``KeyboardInterrupt`` was raised by a skorch callback itself (skorch's
    ``EarlyStopping`` stops training this way), not by Ctrl-C or SIGTERM arriving in the fit."""
    traceback = exc.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return str(traceback.tb_frame.f_globals.get("__name__", "")).startswith("skorch.callbacks")


@contextlib.contextmanager
def _reraise_interrupt() -> Iterator[None]:
    """Turn :class:`_FitInterrupted` back into the ``KeyboardInterrupt`` (or subclass) it carries."""
    try:
        yield
    except _FitInterrupted as carried:
        original = carried.args[0]
        raise original.with_traceback(None) from None


def make_classifier(config: ModelConfig = DEFAULT_MODEL, **params: Any) -> QSMRimNetClassifier:
    """The classifier a model configuration describes (network, training and imbalance settings).

    Parameters
    ----------
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        Gives ``module__depth``, ``module__width``, ``module__fusion``, ``module__branches``, ``module__image``,
        ``image_weights``, ``max_epochs``, ``lr``, ``batch_size``, ``imbalance``, ``blend`` and ``smote_k``.
    **params
        Other :class:`QSMRimNetClassifier` parameters (e.g. ``device``, ``random_state``,
        ``verbose``); they override the configuration.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from rimclf.defaults import DEFAULT_MODEL
    >>> make_classifier(replace(DEFAULT_MODEL, depth=18, width=64), device="cuda")  # doctest: +SKIP
    """
    settings = {
        "module__depth": config.depth,
        "module__width": config.width,
        "module__fusion": config.fusion,
        "module__branches": config.branches,
        "module__augment": config.augment,
        "module__image": config.image,
        "max_epochs": config.max_epochs,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "imbalance": config.imbalance,
        "blend": config.blend,
        "smote_k": config.smote_k,
        "image_weights": config.image_weights,
    }
    return QSMRimNetClassifier(**{**settings, **params})
