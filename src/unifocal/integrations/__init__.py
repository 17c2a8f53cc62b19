"""Bridges to other frameworks: nnU-Net v2 trainers, accumulating metrics (plain and torchmetrics).

Each sub-module needs only what its own framework brings; none is imported by ``import unifocal``.
See ``docs/integrations.md``.

* :mod:`unifocal.integrations.metrics` — :class:`~unifocal.integrations.metrics.CaseMetrics`, DSC /
  precision / recall accumulated batch by batch (torch and numpy only).
* :mod:`unifocal.integrations.torchmetrics` — the same as a ``torchmetrics.Metric`` (DDP-safe), for
  Lightning (extra ``torchmetrics``).
* :mod:`unifocal.integrations.nnunet` — nnU-Net v2 trainers (extra ``nnunet``).
"""
