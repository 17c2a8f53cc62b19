"""Deep supervision: one loss applied to the outputs of several decoder levels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def default_weights(n: int) -> list[float]:
    """The paper's deep-supervision weights (Eq. 22), our reading: ``w_i ∝ 2^{-i}``, summing to 1.

    Eq. 22 sums the loss over the decoder outputs with weights that halve with each halving of the
    resolution (the nnU-Net scheme the paper follows, ``i = 0`` the full-resolution output). Unlike
    nnU-Net we keep the lowest-resolution output (its weight is the smallest, not zero).
    """
    if n < 1:
        raise ValueError(f"deep supervision needs at least one output, got {n}")
    w = [2.0 ** -i for i in range(n)]
    s = sum(w)
    return [x / s for x in w]


def downsample_target(target: Tensor, size: Sequence[int], pred_ndim: int) -> Tensor:
    """Resize a target to the spatial ``size`` of an output: nearest for labels, area for soft targets."""
    if tuple(target.shape[-len(size):]) == tuple(size):
        return target
    if target.ndim == pred_ndim - 1 or not target.is_floating_point():
        t = target if target.ndim == pred_ndim else target.unsqueeze(1)
        out = F.interpolate(t.float(), size=tuple(size), mode="nearest-exact")
        out = out.to(target.dtype)
        return out if target.ndim == pred_ndim else out.squeeze(1)
    return F.interpolate(target, size=tuple(size), mode="area")


def _reads_as(out: Tensor, target: Tensor, skip: int) -> bool:
    """Whether ``out`` with ``skip`` leading non-spatial dims (2: ``(B, C)``, 3: ``(B, S, C)``) fits ``target``."""
    spatial = tuple(out.shape[skip:])
    if not 1 <= len(spatial) <= 3 or target.shape[0] != out.shape[0]:
        return False
    if target.ndim == len(spatial) + 1:
        return tuple(target.shape[1:]) == spatial
    return target.ndim == len(spatial) + 2 and tuple(target.shape[2:]) == spatial \
        and target.shape[1] in (1, out.shape[skip - 1])


def is_stacked(outputs: Tensor, target: Tensor) -> bool:
    """Whether one tensor is MONAI DynUNet's stacked deep-supervision output ``(B, S, C, *spatial)``.

    It is when it does not read as one output ``(B, C, *spatial)`` for ``target`` but does read as
    stacked heads; pass ``stacked=True`` / ``False`` to :class:`DeepSupervisionLoss` to decide instead.
    """
    return not _reads_as(outputs, target, 2) and _reads_as(outputs, target, 3)


class DeepSupervisionLoss(nn.Module):
    """Wrap any loss for a list of outputs at decreasing resolution (full resolution first).

    ``L = Σ_i w_i · loss(outputs[i], downsample(target, outputs[i]))``. The target is resized to each
    output's spatial size (nearest neighbour for integer labels, area averaging for one-hot / soft
    targets). Default weights: :func:`default_weights` (Eq. 22, ``w_i ∝ 2^{-i}``); given weights are
    normalised to sum to one. A single tensor (not a list) is passed straight to the wrapped loss,
    so the same module serves training (list) and validation (full-resolution tensor).

    MONAI's DynUNet returns its deep-supervision heads stacked in one tensor ``(B, S, C, *spatial)``
    (all at full resolution, main output first): such a tensor is read as the list of its ``S`` heads.
    ``stacked=None`` (default) recognises it by its shape against the target (:func:`is_stacked`);
    ``True`` / ``False`` decide without looking.

    Example:
        >>> import torch
        >>> from unifocal.losses import DeepSupervisionLoss, UnifiedFocalLoss
        >>> ds = DeepSupervisionLoss(UnifiedFocalLoss())
        >>> outs = [torch.randn(2, 2, 32, 32), torch.randn(2, 2, 16, 16), torch.randn(2, 2, 8, 8)]
        >>> bool(torch.isfinite(ds(outs, torch.randint(0, 2, (2, 32, 32)))))
        True
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None,
                 stacked: bool | None = None) -> None:
        super().__init__()
        if stacked not in (None, True, False):
            raise ValueError(f"stacked must be None, True or False, got {stacked!r}")
        self.stacked = stacked
        if not callable(loss):
            raise ValueError(f"loss must be a callable loss module, got {loss!r}")
        self.loss = loss
        if weights is not None:
            w = [float(x) for x in weights]
            if not w or any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)!r}")
            s = sum(w)
            weights = [x / s for x in w]
        self.weights = weights

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        if isinstance(outputs, Tensor):
            stacked = self.stacked if self.stacked is not None else is_stacked(outputs, target)
            if not stacked:
                return self.loss(outputs, target)
            if outputs.ndim < 4:
                raise ValueError(f"a stacked deep-supervision output has shape (B, S, C, *spatial), got "
                                 f"{tuple(outputs.shape)}")
            outputs = outputs.unbind(1)
        outputs = list(outputs)
        w = self.weights if self.weights is not None else default_weights(len(outputs))
        if len(w) != len(outputs):
            raise ValueError(f"{len(w)} deep-supervision weights for {len(outputs)} outputs")
        total: Tensor | None = None
        for wi, out in zip(w, outputs, strict=True):
            if wi == 0:
                continue
            t = downsample_target(target, out.shape[2:], out.ndim)
            term = wi * self.loss(out, t)
            total = term if total is None else total + term
        return total if total is not None else torch.zeros((), device=outputs[0].device)
