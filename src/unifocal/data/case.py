"""The :class:`Case` record shared by every dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Case:
    """One segmentation case.

    Attributes:
        id: Case identifier, unique within its dataset.
        image: ``float32`` array ``(C_in, *spatial)``.
        label: ``uint8`` array ``(*spatial)`` with values in ``0..K-1``.
        meta: At least ``spacing``, ``affine`` (4x4), ``original_shape``, ``image_path``,
            ``label_path``; preprocessed cases add ``original_spacing``, ``original_affine`` and
            ``preprocessing``.
    """

    id: str
    image: np.ndarray
    label: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Spatial shape (without the channel axis)."""
        return tuple(int(s) for s in self.image.shape[1:])
