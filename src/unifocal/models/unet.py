"""The original 2D U-Net (Ronneberger et al. 2015) and 3D U-Net (Çiçek et al. 2016), with deep supervision.

No library ships these two networks exactly as published (MONAI's ``BasicUNet`` / ``UNet`` use
other widths, strided or residual blocks and no transposed-convolution decoder of this form), so
they are written here from the papers:

* **2D U-Net** (Ronneberger, Fischer, Brox, MICCAI 2015): ``base_filters`` (64 in the paper)
  doubling at each of 4 max-poolings to 1024 at the bottleneck; every level has two 3x3
  convolutions each followed by ReLU; up-sampling by 2x2 transposed convolutions that halve the
  channels, concatenation with the skip connection, two 3x3 convolutions + ReLU; a 1x1
  convolution head followed by a softmax over classes. **Deviation stated:** the paper uses
  unpadded ("valid") convolutions, so its output map is smaller than its input; here the 3x3
  convolutions use padding 1 ("same") so that the output has the size of the input, which needs
  input sizes divisible by ``2**depth`` (the inference code pads to that and crops back).
* **3D U-Net** (Çiçek, Abdulkadir, Lienkamp, Brox, Ronneberger, MICCAI 2016): 3 max-poolings;
  each analysis level has two 3x3x3 convolutions where the first keeps ``f`` and the second
  doubles to ``2f`` channels (32-64, 64-128, 128-256, bottleneck 256-512 for ``base_filters=32``),
  batch normalisation before each ReLU, 2x2x2 transposed convolutions (keeping the channel count),
  two 3x3x3 convolutions per synthesis level, 1x1x1 head with softmax. Same padding as above.

Both return **logits**: the softmax of the head is applied by the loss (``input="logits"``) and by
the inference code, which is numerically safer than a softmax layer inside the network.

Normalisation is optional (``norm=None | "batch" | "instance"``; the 2D paper has none, the 3D
paper uses batch normalisation).

Initialisation (``init``): ``None`` (default) keeps PyTorch's layer defaults (Kaiming-uniform with
``a = √5``, weight variance ``1 / (3·fan_in)``); ``"he"`` draws every convolution and transposed
convolution weight from a Gaussian with standard deviation ``√(2 / fan_in)`` and zeroes the biases,
which is the initialisation of the 2D U-Net paper ("a Gaussian distribution with a standard deviation
of √(2/N), where N denotes the number of incoming nodes of one neuron"; ``fan_in`` as PyTorch
computes it). Without normalisation layers the default shrinks the signal by about 6× in variance per
convolution + ReLU, so the deep levels of an un-normalised U-Net receive almost no gradient; the
measurements are in ``docs/results.md`` (the SGD recipe).

Deep supervision: with ``deep_supervision=True`` a 1x1 auxiliary head is attached to the output of
each of the ``ds_levels`` lowest-resolution-but-one decoder levels. In training mode ``forward``
returns a list ``[full_resolution, 1/2, 1/4, ...]`` (full resolution first, as
``unifocal.losses.DeepSupervisionLoss`` expects); in eval mode it returns the full-resolution
output only, so inference uses the full-resolution head only.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "count_parameters", "unet2d", "unet3d"]

_NORMS = (None, "batch", "instance")


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm_layer(dims: int, norm: str | None, ch: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(ch)
    return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(ch, affine=True)


class _DoubleConv(nn.Sequential):
    """Two ``3^d`` convolutions (padding 1), each followed by optional normalisation and ReLU."""

    def __init__(self, dims: int, cin: int, cmid: int, cout: int, norm: str | None) -> None:
        conv = _conv(dims)
        bias = norm is None
        super().__init__(
            conv(cin, cmid, 3, padding=1, bias=bias), _norm_layer(dims, norm, cmid), nn.ReLU(inplace=True),
            conv(cmid, cout, 3, padding=1, bias=bias), _norm_layer(dims, norm, cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net encoder-decoder with optional deep supervision (2D Ronneberger or 3D Çiçek layout).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input image channels.
        out_channels: number of classes (background included); the head outputs logits.
        base_filters: channels of the first level (Ronneberger: 64; Çiçek: 32; CPU configuration: 16).
        depth: number of max-poolings (Ronneberger: 4, Çiçek: 3).
        norm: ``None``, ``"batch"`` or ``"instance"`` normalisation after every convolution.
        deep_supervision: add auxiliary 1x1 heads; training-mode forward returns a list.
        ds_levels: number of auxiliary heads (default ``depth - 1``: every decoder level but the
            full-resolution one, which carries the main head, is supervised; at most ``depth - 1``).
        style: ``"ronneberger"`` (level ``i`` has ``f*2^i`` channels in both convolutions) or
            ``"cicek"`` (first convolution ``f*2^i``, second ``f*2^(i+1)``; up-convolutions keep
            channels).

    Shapes:
        input ``(B, in_channels, *spatial)`` with every spatial size divisible by ``2**depth``;
        output ``(B, out_channels, *spatial)`` (eval mode or no deep supervision), or in training
        mode with deep supervision a list of ``1 + ds_levels`` tensors, the ``k``-th of spatial size
        ``spatial / 2**k``.

    Example:
        >>> net = UNet(2, 1, 2, base_filters=4, deep_supervision=True).train()
        >>> [tuple(o.shape) for o in net(torch.zeros(1, 1, 32, 32))]
        [(1, 2, 32, 32), (1, 2, 16, 16), (1, 2, 8, 8), (1, 2, 4, 4)]
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 2,
                 base_filters: int = 64, depth: int = 4, norm: str | None = None,
                 deep_supervision: bool = False, ds_levels: int | None = None,
                 style: str = "ronneberger", init: str | None = None) -> None:
        super().__init__()
        if init not in (None, "he"):
            raise ValueError(f"init must be None (PyTorch's defaults) or 'he', got {init!r}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if style not in ("ronneberger", "cicek"):
            raise ValueError(f"style must be 'ronneberger' or 'cicek', got {style!r}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("base_filters", base_filters), ("depth", depth)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        max_ds = depth - 1
        if ds_levels is None:
            ds_levels = max_ds
        if not 0 <= ds_levels <= max_ds:
            raise ValueError(f"ds_levels must lie in [0, depth-1={max_ds}], got {ds_levels}")
        self.spatial_dims, self.depth = spatial_dims, depth
        self.deep_supervision, self.ds_levels = deep_supervision, ds_levels
        self.in_channels, self.out_channels = in_channels, out_channels
        d, f = spatial_dims, base_filters
        conv = _conv(d)
        convT = nn.ConvTranspose2d if d == 2 else nn.ConvTranspose3d
        self.pool = (nn.MaxPool2d if d == 2 else nn.MaxPool3d)(2)

        # encoder: levels 0..depth (level `depth` is the bottleneck)
        self.down = nn.ModuleList()
        enc_out: list[int] = []
        cin = in_channels
        for i in range(depth + 1):
            if style == "ronneberger":
                cmid = cout = f * 2**i
            else:
                cmid, cout = f * 2**i, f * 2 ** (i + 1)
            self.down.append(_DoubleConv(d, cin, cmid, cout, norm))
            enc_out.append(cout)
            cin = cout
        # decoder: from level depth-1 up to 0
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        dec_out: list[int] = []
        cprev = enc_out[depth]
        for i in range(depth - 1, -1, -1):
            cup = cprev // 2 if style == "ronneberger" else cprev
            self.up.append(convT(cprev, cup, 2, stride=2))
            cout = f * 2**i if style == "ronneberger" else enc_out[i]
            self.dec.append(_DoubleConv(d, cup + enc_out[i], cout, cout, norm))
            dec_out.append(cout)
            cprev = cout
        self.head = conv(dec_out[-1], out_channels, 1)
        # auxiliary heads for decoder levels 1..ds_levels (level k has resolution 1/2^k)
        self.aux_heads = nn.ModuleList(
            conv(dec_out[depth - 1 - k], out_channels, 1) for k in range(1, ds_levels + 1)
        ) if deep_supervision else nn.ModuleList()
        if init == "he":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    @property
    def divisor(self) -> int:
        """Every spatial input size must be a multiple of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(B, C, *spatial)``, or in training mode with deep supervision a list, full resolution first."""
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {self.divisor} "
                             f"(2**depth); pad the input (unifocal.training.inference pads automatically)")
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        level_out: dict[int, torch.Tensor] = {}
        for j, (up, dec) in enumerate(zip(self.up, self.dec)):
            level = self.depth - 1 - j
            x = dec(torch.cat([skips[level], up(x)], dim=1))
            level_out[level] = x
        main = self.head(x)
        if not (self.deep_supervision and self.training and self.ds_levels > 0):
            return main
        return [main] + [h(level_out[k]) for k, h in enumerate(self.aux_heads, start=1)]


def unet2d(in_channels: int = 1, out_channels: int = 2, base_filters: int = 64, depth: int = 4,
           norm: str | None = None, deep_supervision: bool = False, ds_levels: int | None = None,
           init: str | None = None) -> UNet:
    """The Ronneberger 2D U-Net (64 -> 1024 filters, 4 poolings by default; same padding)."""
    return UNet(2, in_channels, out_channels, base_filters, depth, norm, deep_supervision, ds_levels,
                style="ronneberger", init=init)


def unet3d(in_channels: int = 1, out_channels: int = 2, base_filters: int = 32, depth: int = 3,
           norm: str | None = "batch", deep_supervision: bool = False,
           ds_levels: int | None = None, init: str | None = None) -> UNet:
    """The Çiçek 3D U-Net (32-64 ... 256-512 filters, 3 poolings, batch norm by default; same padding)."""
    return UNet(3, in_channels, out_channels, base_filters, depth, norm, deep_supervision, ds_levels,
                style="cicek", init=init)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
