"""The fused path with a region function that is not a ``Tversky`` term (plain autograd on the statistics).

Every loss of the library describes its region terms as ``Tversky`` terms, which the fused path
differentiates in closed form; a custom ``RegionFn`` must still work, by autograd on the per-class
statistics the fused function returns. Both routes are checked against the autograd path.
"""

from __future__ import annotations

import pytest
import torch

from unifocal.losses._core import evaluate, prepare
from unifocal.losses._fused import fused_loss
from unifocal.spec import Tversky, check_common, distribution_terms, region_terms


def _custom(tp, fp, fn):
    return (tp + 1.0).log() - 0.5 * (fp + fn + 1.0).sqrt()  # any smooth function of the statistics


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("region", ["custom", "tversky", "both"])
def test_fused_region_routes_match_autograd(k, batch, region):
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(3, k, 7, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (3, 7, 5), generator=gen)
    prep = prepare(x, y, check_common({"batch": batch}))
    fns = {"custom": [_custom], "tversky": [Tversky(0.3, 0.7, (1.0,) + (0.75,) * (k - 1), 1e-6)]}
    fns["both"] = fns["custom"] + fns["tversky"]
    terms = distribution_terms((0.4,) * k, (0.5,) + (0.0,) * (k - 1), coef=0.5)
    for f in fns[region]:
        terms = terms + region_terms(f, scale=0.7)
    x0 = prep.x
    xs = []
    outs = []
    for fn in (fused_loss, evaluate):
        xi = x0.clone().requires_grad_(True)
        prep.x, prep._logp = xi, None
        out = fn(prep, terms)
        (out * torch.arange(1.0, 4.0, dtype=out.dtype)).sum().backward()
        xs.append(xi.grad)
        outs.append(out.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(xs[0], xs[1], rtol=1e-9, atol=1e-12)
