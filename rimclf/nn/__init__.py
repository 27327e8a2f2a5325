"""Plain torch modules of QSMRim-Net (no sklearn, no file I/O).

Of rimclf they use only the pure-Python base (:mod:`rimclf.errors`, :mod:`rimclf.defaults` and
the shared parameter checks), so they run in any torch code.

- :class:`ResNet3D`: width-configurable 3D ResNet trunk (depth 10/18/34) over lesion patches.
- :class:`TabularEncoder`: MLP on the standardised tabular features (rim-profile features, radiomics).
- :func:`deep_smote` / :class:`DeepSMOTE`: feature-space SMOTE of rim+ rows (training only).
- :class:`SurfaceMapEncoder`: shared depth-profile convolutions pooled over directions, on
  lesion surface maps (the image branch with ``QSMRimNet(image="surface_map")``).
- :class:`PatchAugment`: per-sample flips, 90° turns and small rotations of patches (training only).
- :class:`QSMRimNet`: the fused classifier returning one logit per lesion.

The paper's network is ``QSMRimNet(branches="both", depth=18, width=64, fusion="sum")``; the
defaults are those of :data:`rimclf.defaults.DEFAULT_MODEL` (the MLP branch alone, width 8; with
``branches="both"``, a ResNet-10 that trains in minutes on a CPU).
"""

from rimclf.nn.augment import PatchAugment
from rimclf.nn.deepsmote import DeepSMOTE, deep_smote
from rimclf.nn.encoder import TabularEncoder
from rimclf.nn.qsmrimnet import BRANCHES, FUSIONS, IMAGE_INPUTS, QSMRimNet
from rimclf.nn.resnet3d import BLOCKS_PER_STAGE, ResNet3D
from rimclf.nn.surface import SurfaceMapEncoder

__all__ = [
    "BLOCKS_PER_STAGE",
    "BRANCHES",
    "FUSIONS",
    "IMAGE_INPUTS",
    "DeepSMOTE",
    "PatchAugment",
    "QSMRimNet",
    "TabularEncoder",
    "ResNet3D",
    "SurfaceMapEncoder",
    "deep_smote",
]
