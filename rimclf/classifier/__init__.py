"""QSMRimNetClassifier: QSMRim-Net as a scikit-learn classifier (a skorch net).

- :mod:`~rimclf.classifier.estimator`: the estimator, its training hooks and its loss settings,
  and :func:`make_classifier`, the estimator a :class:`~rimclf.defaults.ModelConfig` describes;
- :mod:`~rimclf.classifier.inputs`: checks of X and y, radiomics standardisation;
- :mod:`~rimclf.classifier.batches`: whole-batch datasets, the rim+-spreading batch sampler,
  batches gathered on the device (``DeviceBatches``) and a subject-grouped validation split;
- :mod:`~rimclf.classifier.device`: ``device="auto"``, bf16 autocast, inputs kept on the device
  (``data_on_device``) and cuDNN autotuning;
- :mod:`~rimclf.classifier.state`: the fitted estimator as plain data for model files.
- :mod:`~rimclf.classifier.pretrained`: the pretrained surface-map encoder shipped with rimclf
  (``image_weights="pretrained"``), read with bounded memory and checked.
"""

from rimclf.classifier.batches import GroupValidSplit, StratifiedBatchSampler
from rimclf.classifier.estimator import IMBALANCE_CHOICES, QSMRimNetClassifier, make_classifier

__all__ = ["GroupValidSplit", "IMBALANCE_CHOICES", "QSMRimNetClassifier", "StratifiedBatchSampler", "make_classifier"]
