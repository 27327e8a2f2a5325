"""QSMRim-Net: fusion of a 3D ResNet on lesion patches and an MLP on tabular lesion features, with DeepSMOTE."""

from __future__ import annotations

import torch
from torch import nn

from rimclf._validation import check_choice, check_int
from rimclf.defaults import AUGMENTATIONS, BRANCHES, DEFAULT_MODEL, FUSIONS, IMAGE_INPUTS
from rimclf.errors import CohortError, ParameterError
from rimclf.nn.augment import ROTATION_DEGREES, PatchAugment
from rimclf.nn.deepsmote import DeepSMOTE
from rimclf.nn.encoder import TabularEncoder, linear_bn_swish
from rimclf.nn.resnet3d import ResNet3D
from rimclf.nn.surface import SurfaceMapEncoder



class QSMRimNet(nn.Module):
    """The QSMRim-Net lesion classifier as a plain torch module.

    ``patches -> ResNet3D -> pooled vector`` and ``tabular -> TabularEncoder`` are fused
    (summed as in the seed code, or concatenated), passed through two ``Linear -> BatchNorm ->
    Swish`` layers, augmented by :class:`DeepSMOTE` in training mode, and mapped to one logit
    by a small head (``Linear -> Swish -> Dropout -> Linear``).

    Defaults marked (*) come from :data:`rimclf.defaults.DEFAULT_MODEL`.

    Parameters
    ----------
    in_channels : int or None, default=3
        Channels of the patches; unused (may be None) when ``branches="tabular"``.
    n_tabular : int or None, default=None
        Tabular features per lesion (rim-profile features, radiomics); required unless
        ``branches="patches"``.
    depth : {10, 18, 34}, default=10 (*)
        ResNet depth. The default is a CPU-size network; the paper's is ``depth=18``.
    width : int, default=8 (*)
        ResNet base width; every feature vector has ``8·width`` entries. The paper's network has
        ``width=64`` (512-long features).
    branches : {"both", "patches", "tabular"}, default="tabular" (*)
        Which inputs the network uses: the CNN on ``patches`` and the MLP on the ``tabular``
        features (rim-profile features and/or radiomics), or one of them. With one branch,
        ``fusion`` is ignored and the other input may be omitted (None).
    fusion : {"sum", "concat"}, default="concat" (*)
        How the two branch vectors are combined.
    smote_k : int, default=2 (*)
        Nearest rim+ neighbours per rim+ row in :class:`DeepSMOTE`.
    deepsmote : bool, default=True
        Whether the DeepSMOTE layer is present (False: the labels pass through unchanged).
    smote_seed : int or None, default=None
        Seed of DeepSMOTE's generator (None: torch's global generator).
    tabular_dropout : float, default=0.3
        Dropout inside the tabular encoder.
    head_dropout : float, default=0.5
        Dropout inside the classifier head.
    augment : {"none", "flips", "flips+rotations"}, default="flips+rotations" (*)
        Training-time augmentation of the patches by :class:`~rimclf.nn.PatchAugment`: the 48
        flips and 90° turns about the world axes, optionally followed by a random rotation of up
        to ``ROTATION_DEGREES``; inactive in eval mode (and unused for surface maps, whose
        encoder ignores the order of directions).
    image : {"patches", "surface_map"}, default="patches" (*)
        What the image branch reads (its ``patches`` input): cubic patches ``(N, C, D, H, W)``
        through :class:`ResNet3D`, or surface maps ``(N, C, depths, directions)`` through
        :class:`~rimclf.nn.SurfaceMapEncoder` (``depth`` is then unused).

    Attributes
    ----------
    feature_dim : int
        Length of the vector entering DeepSMOTE and the head, ``8 * width``.

    Notes
    -----
    Shapes:

    - ``patches``: ``(N, in_channels, D, H, W)``; ``tabular``: ``(N, n_tabular)``,
      standardised and free of NaN.
    - ``forward(patches, tabular)``: logits ``(N,)``.
    - ``forward(patches, tabular, y)`` with ``y`` of shape ``(N,)``: ``(logits, y_aug)``; in
      training mode both have ``N + n·min(smote_k, n - 1)`` rows where ``n`` rim+ rows are in
      the batch (the synthetic rows come last); in eval mode ``y_aug`` is ``y``.
    - :meth:`embed`: the fused features ``(N, feature_dim)`` before DeepSMOTE.

    Examples
    --------
    >>> net = QSMRimNet(in_channels=3, n_tabular=20, depth=10, width=4).eval()
    >>> net(torch.zeros(2, 3, 16, 16, 16), torch.zeros(2, 20)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        in_channels: int | None = 3,
        n_tabular: int | None = None,
        depth: int = DEFAULT_MODEL.depth,
        width: int = DEFAULT_MODEL.width,
        branches: str = DEFAULT_MODEL.branches,
        fusion: str = DEFAULT_MODEL.fusion,
        smote_k: int = DEFAULT_MODEL.smote_k,
        deepsmote: bool = True,
        smote_seed: int | None = None,
        tabular_dropout: float = 0.3,
        head_dropout: float = 0.5,
        augment: str = DEFAULT_MODEL.augment,
        image: str = DEFAULT_MODEL.image,
    ) -> None:
        super().__init__()
        check_choice(augment, "augment", AUGMENTATIONS, owner="QSMRimNet")
        check_choice(image, "image", IMAGE_INPUTS, owner="QSMRimNet")
        check_choice(branches, "branches", BRANCHES, owner="QSMRimNet")
        check_choice(fusion, "fusion", FUSIONS, owner="QSMRimNet")
        check_int(width, "width", min=1, owner="QSMRimNet")
        if branches != "patches" and n_tabular is None:
            raise ParameterError(f"QSMRimNet: n_tabular is required with branches={branches!r}")
        if branches != "tabular" and in_channels is None:
            raise ParameterError(f"QSMRimNet: in_channels is required with branches={branches!r}")
        self.branches = branches
        self.fusion = fusion
        self.feature_dim = 8 * width

        self.image = image
        self.augment = None
        if augment != "none" and branches != "tabular" and image == "patches":
            rotation = ROTATION_DEGREES if augment == "flips+rotations" else 0.0
            self.augment = PatchAugment(flips_and_turns=True, max_rotation_degrees=rotation)
        self.patch_encoder = None
        if branches != "tabular":
            self.patch_encoder = (
                ResNet3D(in_channels, depth=depth, width=width) if image == "patches"
                else SurfaceMapEncoder(in_channels, out_features=self.feature_dim)
            )
        self.tabular_encoder = (
            TabularEncoder(
                n_tabular,
                out_features=self.feature_dim,
                hidden_features=2 * self.feature_dim,
                dropout=tabular_dropout,
            )
            if branches != "patches"
            else None
        )
        fused_dim = self.feature_dim
        if branches == "both" and fusion == "concat":
            fused_dim = 2 * self.feature_dim
        self.transform = nn.Sequential(
            *linear_bn_swish(fused_dim, self.feature_dim),
            *linear_bn_swish(self.feature_dim, self.feature_dim),
        )
        self.smote = DeepSMOTE(smote_k, seed=smote_seed) if deepsmote else None
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, 2 * width),
            nn.SiLU(),
            nn.Dropout(head_dropout),
            nn.Linear(2 * width, 1),
        )

    def embed(
        self, patches: torch.Tensor | None = None, tabular: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fused and transformed features ``(N, feature_dim)`` (the input of DeepSMOTE)."""
        parts = []
        if self.patch_encoder is not None:
            if patches is None:
                raise CohortError(f"QSMRimNet: patches are required with branches={self.branches!r}")
            if self.augment is not None:
                patches = self.augment(patches)
            parts.append(self.patch_encoder(patches))
        if self.tabular_encoder is not None:
            if tabular is None:
                raise CohortError(f"QSMRimNet: tabular features are required with branches={self.branches!r}")
            parts.append(self.tabular_encoder(tabular))
        if len(parts) == 1:
            fused = parts[0]
        elif self.fusion == "sum":
            fused = parts[0] + parts[1]
        else:
            fused = torch.cat(parts, dim=1)
        return self.transform(fused)

    def forward(
        self,
        patches: torch.Tensor | None = None,
        tabular: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(patches, tabular)
        if y is not None and self.smote is not None:
            z, y = self.smote(z, y)
        logits = self.head(z).squeeze(1)
        if y is None:
            return logits
        return logits, y
