"""The paper's U-Nets and the MONAI registry: shapes, deep supervision, parameter counts, errors."""

from __future__ import annotations

import pytest
import torch

from unifocal.models import UNet, count_parameters, get_model, supports_deep_supervision, unet2d, unet3d


def test_ronneberger_2d_published_size_and_same_padding():
    net = unet2d(in_channels=1, out_channels=2, base_filters=64)
    # Ronneberger et al. 2015: 64 -> 1024 filters; ~31.0 M parameters with a 2-class head
    assert net.down[-1][3].out_channels == 1024
    assert 30.9e6 < count_parameters(net) < 31.1e6
    small = unet2d(base_filters=4).eval()
    x = torch.randn(2, 1, 48, 32)
    assert small(x).shape == (2, 2, 48, 32)  # same padding: output size = input size


def test_cicek_3d_published_size():
    net = unet3d(in_channels=1, out_channels=3, base_filters=32)
    # Çiçek et al. 2016 report 19 069 955 parameters (3 output classes, batch norm)
    assert abs(count_parameters(net) - 19_069_955) < 5_000
    assert [b[3].out_channels for b in net.down] == [64, 128, 256, 512]
    assert isinstance(net.down[0][1], torch.nn.BatchNorm3d)


@pytest.mark.parametrize("dims", [2, 3])
def test_deep_supervision_shapes_full_resolution_first(dims):
    net = UNet(dims, 1, 3, base_filters=4, depth=3, deep_supervision=True, norm="instance")
    x = torch.randn(2, 1, *([16] * dims))
    outs = net.train()(x)
    assert isinstance(outs, list) and len(outs) == 3
    assert [tuple(o.shape) for o in outs] == [(2, 3, *([16 // 2**k] * dims)) for k in range(3)]
    # inference: the full-resolution head only, identical to the first training output for the same weights
    net.eval()
    y = net(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, *([16] * dims))
    assert torch.allclose(y, outs[0], atol=1e-5)  # instance norm: same statistics in train and eval
    assert supports_deep_supervision(net)


def test_ds_levels_and_gradients_reach_aux_heads():
    net = UNet(2, 1, 2, base_filters=4, depth=4, deep_supervision=True, ds_levels=2).train()
    outs = net(torch.randn(1, 1, 32, 32))
    assert len(outs) == 3
    sum(o.mean() for o in outs).backward()
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in net.aux_heads)


def test_errors_say_what_to_change():
    with pytest.raises(ValueError, match="divisible by 16"):
        unet2d(base_filters=4)(torch.zeros(1, 1, 40, 40))
    with pytest.raises(ValueError, match="norm must be one of"):
        UNet(2, norm="group")
    with pytest.raises(ValueError, match="ds_levels"):
        UNet(2, depth=2, deep_supervision=True, ds_levels=3)
    with pytest.raises(ValueError, match="Did you mean base_filters"):
        get_model("unet", 2, 1, 2, base_filter=8)
    with pytest.raises(ValueError, match="3D but the data is 2D"):
        get_model("unet3d", 2, 1, 2)
    with pytest.raises(ValueError, match="Did you mean BasicUNet"):
        get_model("BasicUnett", 2, 1, 2)


def test_get_model_by_name():
    net = get_model("unet", 3, 2, 3, base_filters=4)
    assert isinstance(net, UNet) and net.spatial_dims == 3 and net.in_channels == 2
    b = get_model("BasicUNet", 2, 1, 2, base_filters=4).eval()
    assert b(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32) and b.divisor == 16
    d = get_model("dynunet", 3, 1, 2, base_filters=4, depth=3, deep_supervision=True).train()
    outs = d(torch.zeros(1, 1, 16, 16, 16))
    assert isinstance(outs, list) and len(outs) == 3 and outs[0].shape == (1, 2, 16, 16, 16)
    assert d.eval()(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)


def test_he_init_is_the_papers_gaussian_and_keeps_the_signal_alive():
    """init='he': weights ~ N(0, 2/fan_in), zero biases (Ronneberger et al.); without normalisation the
    signal reaching the bottleneck keeps its scale, where PyTorch's default shrinks it by orders of magnitude."""
    import math

    from unifocal.models import get_model

    torch.manual_seed(0)
    he = get_model("unet", 2, 1, 2, base_filters=16, init="he")
    w = he.down[2][0].weight.detach()  # 3x3 conv of level 2: fan_in = 32 * 9
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert float(w.std()) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    assert float(w.mean()) == pytest.approx(0.0, abs=0.01 * math.sqrt(2.0 / fan_in))
    assert all(float(m.bias.abs().max()) == 0.0 for m in he.modules() if isinstance(m, torch.nn.Conv2d))
    torch.manual_seed(0)
    default = get_model("unet", 2, 1, 2, base_filters=16)
    x = torch.randn(2, 1, 64, 64)

    def bottleneck_rms(net):
        out = {}
        h = net.down[net.depth].register_forward_hook(lambda m, i, o: out.setdefault("o", o))
        with torch.no_grad():
            net(x)
        h.remove()
        return float(out["o"].pow(2).mean().sqrt())

    rms_he, rms_default = bottleneck_rms(he), bottleneck_rms(default)
    assert 0.1 < rms_he < 10.0
    assert rms_default < rms_he / 100
    with pytest.raises(ValueError, match="init must be None"):
        get_model("unet", 2, 1, 2, init="xavier")
