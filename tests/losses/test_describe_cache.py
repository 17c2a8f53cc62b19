"""The description of a loss is made once per settings, and never reused for other settings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unifocal.losses import cross_entropy_loss


def _data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (2, 5, 4), generator=g)


def test_other_list_settings_give_their_own_loss():
    x, y = _data()
    for w in ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], (0.5, 0.5, 2.0)):
        ref = F.cross_entropy(x, y, weight=torch.tensor(w, dtype=torch.float64), reduction="none").mean((1, 2))
        # the library averages over positions per sample (docs/losses.md); F.cross_entropy's per-position
        # values are the same terms
        assert torch.allclose(cross_entropy_loss(x, y, weight=w, reduction="none"), ref)


def test_a_tensor_setting_changed_in_place_is_read_again():
    x, y = _data()
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    first = cross_entropy_loss(x, y, weight=w)
    w.copy_(torch.tensor([3.0, 2.0, 1.0]))  # the same object, other values: a key by identity would be stale
    again = cross_entropy_loss(x, y, weight=w)
    assert torch.allclose(again, cross_entropy_loss(x, y, weight=[3.0, 2.0, 1.0]))
    assert not torch.allclose(first, again)
