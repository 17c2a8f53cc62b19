"""Accumulating DSC / precision / recall against unifocal.metrics.case_metrics averaged over cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unifocal.integrations.metrics import CaseMetrics, batch_confusion
from unifocal.metrics import case_metrics, hard_prediction


def _reference(preds: list[np.ndarray], targets: list[np.ndarray], classes: list[int],
               zero_division: float = 1.0) -> dict[str, float]:
    """Mean over cases of case_metrics (NaN ignored), then the mean over classes."""
    per = [case_metrics(p, t, classes, zero_division=zero_division) for p, t in zip(preds, targets)]
    out: dict[str, float] = {}
    for name in ("dsc", "precision", "recall"):
        for c in classes:
            out[f"{name}_{c}"] = float(np.nanmean([m[c][name] for m in per]))
    for name in ("dsc", "precision", "recall"):
        out[name] = float(np.nanmean([out[f"{name}_{c}"] for c in classes]))
    return out


def _batches(seed: int, n_batches: int, b: int, k: int, shape: tuple[int, ...]):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        logits = torch.randn(b, k, *shape, generator=g) * 2
        target = torch.randint(0, k, (b, *shape), generator=g)
        target[0] = 0  # a case without foreground: exercises zero_division
        yield logits, target


@pytest.mark.parametrize("zero_division", [1.0, float("nan")])
def test_case_metrics_accumulator_matches_case_metrics(zero_division):
    m = CaseMetrics(classes=[1, 2], zero_division=zero_division)
    preds, targets = [], []
    for logits, target in _batches(0, 3, 4, 3, (9, 11)):
        m.update(logits, target)
        hp = hard_prediction(logits)
        preds += list(hp.numpy())
        targets += list(target.numpy())
    got = m.compute()
    ref = _reference(preds, targets, [1, 2], zero_division)
    assert m.n_cases == 12
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    m.reset()
    with pytest.raises(ValueError, match="before any update"):
        m.compute()


def test_binary_sigmoid_output_and_3d():
    m = CaseMetrics(classes=[1])
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 5, 6, 7, generator=g)
    target = (torch.rand(3, 1, 5, 6, 7, generator=g) > 0.6).long()
    m.update(logits, target)
    ref = _reference(list((logits[:, 0] > 0).long().numpy()), list(target[:, 0].numpy()), [1])
    assert m.compute() == pytest.approx(ref)


def test_batch_confusion_counts_by_hand():
    pred = torch.tensor([[[0, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [0, 1]]])
    assert batch_confusion(pred, target, [0, 1]).tolist() == [[[1, 0, 1], [2, 1, 0]]]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="classes"):
        CaseMetrics(classes=[])
    with pytest.raises(ValueError, match="integer labels"):
        batch_confusion(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), [1])
    with pytest.raises(ValueError, match="differs"):
        batch_confusion(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long), [1])


def test_torchmetrics_metric_matches_and_merges():
    pytest.importorskip("torchmetrics")
    from unifocal.integrations.torchmetrics import SegmentationMetrics

    whole, half_a, half_b = (SegmentationMetrics(classes=[1, 2]) for _ in range(3))
    plain = CaseMetrics(classes=[1, 2])
    for i, (logits, target) in enumerate(_batches(2, 4, 3, 3, (8, 8))):
        whole.update(logits, target)
        plain.update(logits, target)
        (half_a if i % 2 else half_b).update(logits, target)
    ref = plain.compute()
    got = {k: float(v) for k, v in whole.compute().items()}
    assert got == pytest.approx(ref, abs=1e-12)
    # what a DDP sync does with a "cat" list state: the union of every process's cases
    half_a.merge_state(half_b)
    assert {k: float(v) for k, v in half_a.compute().items()} == pytest.approx(ref, abs=1e-12)
    whole.reset()
    assert len(whole.counts) == 0


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    """One process of a real (gloo, CPU) DDP group: updates its share of the batches, then computes."""
    import torch.distributed as dist

    from unifocal.integrations.torchmetrics import SegmentationMetrics

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        m = SegmentationMetrics(classes=[1, 2])
        for i, (logits, target) in enumerate(_batches(3, 5, 3, 3, (8, 8))):  # 5 batches: uneven shares
            if i % world == rank:
                m.update(logits, target)
        queue.put((rank, {k: float(v) for k, v in m.compute().items()}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_torchmetrics_metric_under_real_ddp():
    """Two CPU processes (gloo on the loopback): each rank's compute() equals the whole data's."""
    pytest.importorskip("torchmetrics")
    import multiprocessing
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    plain = CaseMetrics(classes=[1, 2])
    for logits, target in _batches(3, 5, 3, 3, (8, 8)):
        plain.update(logits, target)
    ref = plain.compute()
    for rank in (0, 1):
        assert results[rank] == pytest.approx(ref, abs=1e-12), rank


def test_one_implementation_of_the_formulas(monkeypatch):
    """The accumulating metric and case_metrics both score counts with unifocal.metrics.scores_from_counts."""
    import unifocal.integrations.metrics as acc
    import unifocal.metrics as core

    assert acc.scores_from_counts is core.scores_from_counts and acc.METRICS is core.METRICS
    calls = []
    real = core.scores_from_counts

    def spy(counts, zero_division=1.0):
        calls.append(tuple(counts.shape))
        return real(counts, zero_division)

    monkeypatch.setattr(core, "scores_from_counts", spy)
    monkeypatch.setattr(acc, "scores_from_counts", spy)
    pred, target = torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 1]]])
    m = CaseMetrics(classes=[1])
    m.update(pred, target)
    assert m.compute()["dsc"] == pytest.approx(0.8)
    assert case_metrics(pred[0], target[0], [1])[1]["dsc"] == pytest.approx(0.8)
    assert calls == [(1, 1, 3), (1, 3)]
