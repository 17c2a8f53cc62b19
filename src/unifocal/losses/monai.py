"""MONAI's ``AsymmetricUnifiedFocalLoss`` arguments, built on :class:`~unifocal.losses.UnifiedFocalLoss`.

A drop-in for code written against ``monai.losses.AsymmetricUnifiedFocalLoss``: the same constructor
(``to_onehot_y, num_classes, weight, gamma, delta, reduction, ignore_index``), the same defaults
(MONAI's, not the paper's) and the same value. It does not import MONAI.

MONAI's ``weight`` is not our ``lambda_``: MONAI's asymmetric focal half averages the two classes where
Eq. 17 (and :func:`~unifocal.losses.unified_focal_loss`) sums them, so MONAI's loss is
``(1 - w/2) · unified_focal_loss(p, y, delta=d, gamma=g, lambda_=w/(2 - w), input="probs", smooth=1e-7)``
(``docs/losses.md``, "Parameter mapping"). MONAI reads ``y_pred`` as probabilities (its forward applies
no activation), and so does this class.
"""

from __future__ import annotations

from torch import Tensor, nn

from unifocal.losses.compound import UnifiedFocalLoss
from unifocal.spec import check_range

#: MONAI's smoothing and clipping constant in its asymmetric losses.
MONAI_EPSILON = 1e-7


class AsymmetricUnifiedFocalLoss(nn.Module):
    """MONAI's ``AsymmetricUnifiedFocalLoss(weight, gamma, delta)`` as ``(1 - w/2)·UnifiedFocalLoss(λ = w/(2 - w))``.

    Args:
        to_onehot_y: the target holds labels ``(B, 1, *spatial)`` (MONAI's meaning); else one-hot.
        num_classes: MONAI's; binary only, as MONAI (2). The prediction must have 1 or 2 channels.
        weight: MONAI's weight of the focal half, in [0, 1] (default 0.5, MONAI's).
        gamma: in [0, 1) (default 0.5, MONAI's).
        delta: weight of false negatives in [0, 1] (default 0.7, MONAI's).
        reduction: ``"mean" | "sum" | "none"`` over samples (``"none"`` gives ``(B,)``).
        ignore_index: label value left out of every sum (with ``to_onehot_y=True``).

    Example:
        >>> import torch
        >>> loss = AsymmetricUnifiedFocalLoss(to_onehot_y=True)
        >>> p = torch.softmax(torch.randn(2, 2, 16, 16), 1); y = torch.randint(0, 2, (2, 1, 16, 16))
        >>> bool(torch.isfinite(loss(p, y)))
        True
    """

    def __init__(self, to_onehot_y: bool = False, num_classes: int = 2, weight: float = 0.5, gamma: float = 0.5,
                 delta: float = 0.7, reduction: str = "mean", ignore_index: int | None = None) -> None:
        super().__init__()
        check_range("weight", weight, 0.0, 1.0, high_open=False)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes != 2:
            raise ValueError(f"num_classes must be 2 (MONAI's AsymmetricUnifiedFocalLoss is binary only), "
                             f"got {num_classes!r}; for more classes use unifocal.losses.UnifiedFocalLoss")
        self.to_onehot_y, self.num_classes = to_onehot_y, num_classes
        self.weight, self.gamma, self.delta = weight, gamma, delta
        self.scale = 1.0 - weight / 2.0
        self.loss = UnifiedFocalLoss(delta=delta, gamma=gamma, lambda_=weight / (2.0 - weight), input="probs",
                                     smooth=MONAI_EPSILON, reduction=reduction, ignore_index=ignore_index,
                                     to_onehot_y=to_onehot_y)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if y_pred.ndim >= 2 and y_pred.shape[1] not in (1, self.num_classes):
            raise ValueError(f"y_pred has {y_pred.shape[1]} channels; MONAI's AsymmetricUnifiedFocalLoss takes "
                             f"1 or num_classes={self.num_classes}")
        return self.scale * self.loss(y_pred, y_true)

    def extra_repr(self) -> str:
        return (f"to_onehot_y={self.to_onehot_y}, num_classes={self.num_classes}, weight={self.weight}, "
                f"gamma={self.gamma}, delta={self.delta}")
