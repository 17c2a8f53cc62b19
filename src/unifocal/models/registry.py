"""Build a network by name: the paper's U-Nets (``unet``, ``unet2d``, ``unet3d``) or any MONAI network.

``get_model(name, spatial_dims, in_channels, out_channels, **params)``:

* ``"unet"``: ``unet2d`` for 2D data, ``unet3d`` for 3D data (see :mod:`unifocal.models.unet`).
* ``"unet2d"`` / ``"unet3d"``: the Ronneberger / Çiçek U-Nets; parameters ``base_filters``,
  ``depth``, ``norm``, ``deep_supervision``, ``ds_levels``.
* any class of ``monai.networks.nets`` by its name (``"BasicUNet"``, ``"DynUNet"``, ``"SegResNet"``,
  ``"AttentionUnet"`` ...; case-insensitive): ``spatial_dims``, ``in_channels`` and ``out_channels``
  are passed for you, every other parameter is forwarded. Conveniences: ``base_filters`` gives
  ``BasicUNet`` features ``(f, f, 2f, 4f, 8f, f)`` and ``DynUNet`` filters ``f * 2**i``; ``DynUNet``
  gets nnU-Net-like defaults (``depth`` poolings, 3^d kernels) and its deep-supervision output
  (stacked, all at full resolution) is turned into the list form used everywhere here.

Every returned module has a ``divisor`` attribute: each spatial input size must be a multiple of it
(the inference code pads to it).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import torch
from torch import nn

from unifocal.models.unet import UNet, unet2d, unet3d

__all__ = ["MonaiNet", "available_models", "get_model"]

_OWN = {"unet": None, "unet2d": unet2d, "unet3d": unet3d}


class MonaiNet(nn.Module):
    """A MONAI network with a ``divisor`` and deep-supervision output as a list (full resolution first)."""

    def __init__(self, net: nn.Module, divisor: int, deep_supervision: bool = False) -> None:
        super().__init__()
        self.net, self.divisor, self.deep_supervision = net, divisor, deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = list(out)
            return out if self.training else out[0]
        if self.training and self.deep_supervision and out.ndim == x.ndim + 1:
            return list(out.unbind(dim=1))  # DynUNet: (B, 1+n, C, *spatial), all at full resolution
        return out


def _monai_networks() -> dict[str, type]:
    """MONAI's network classes by name. MONAI is imported here, on first use: it takes seconds to import,
    and only a MONAI network (not the paper's U-Nets) needs it."""
    import monai.networks.nets as nets

    return {k: getattr(nets, k) for k in dir(nets)
            if isinstance(getattr(nets, k), type) and issubclass(getattr(nets, k), nn.Module)}


def _monai_classes() -> dict[str, type]:
    return {k.lower(): cls for k, cls in _monai_networks().items()}


def available_models() -> list[str]:
    """The paper's U-Nets, then the MONAI network names accepted by :func:`get_model`."""
    monai_names = sorted({k for k in _monai_networks() if "unet" in k.lower()})
    return [*_OWN, *monai_names]


def _check_params(name: str, fn: Any, params: dict[str, Any], skip: set[str]) -> None:
    sig = inspect.signature(fn)
    accepted = [p for p in sig.parameters if p not in ("self", *skip)]
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"model {name!r} has no parameter {key!r}.{hint} "
                             f"Accepted: {', '.join(accepted)}")


def get_model(name: str, spatial_dims: int, in_channels: int, out_channels: int,
              **params: Any) -> nn.Module:
    """Build the network ``name`` for ``spatial_dims``-D data with the given channels.

    Args:
        name: ``"unet"``, ``"unet2d"``, ``"unet3d"`` or a MONAI network class name.
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes including background.
        **params: network parameters (see the module docstring).

    Raises:
        ValueError: unknown name or parameter (with close matches), or a 2D net for 3D data.
    """
    key = name.lower()
    if key in _OWN:
        if key == "unet":
            key = "unet2d" if spatial_dims == 2 else "unet3d"
        want = 2 if key == "unet2d" else 3
        if spatial_dims != want:
            raise ValueError(f"model {name!r} is {want}D but the data is {spatial_dims}D; use model 'unet' "
                             f"(chooses by the data) or 'unet{spatial_dims}d'")
        fn = _OWN[key]
        _check_params(name, fn, params, {"in_channels", "out_channels"})
        return fn(in_channels=in_channels, out_channels=out_channels, **params)
    classes = _monai_classes()
    if key not in classes:
        choices = [*_OWN, *sorted({c.__name__ for c in classes.values() if "unet" in c.__name__.lower()})]
        close = difflib.get_close_matches(name, [*_OWN, *[c.__name__ for c in classes.values()]], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Use one of {', '.join(choices)} "
                         f"(or any monai.networks.nets class)")
    cls = classes[key]
    params = dict(params)
    base = params.pop("base_filters", None)
    depth = params.pop("depth", 4)
    ds = bool(params.get("deep_supervision", False))
    divisor = 16
    if cls.__name__ == "BasicUNet":
        if base is not None:
            params.setdefault("features", (base, base, 2 * base, 4 * base, 8 * base, base))
        params.pop("deep_supervision", None)
        ds = False
    elif cls.__name__ == "DynUNet":
        params.setdefault("kernel_size", [3] * (depth + 1))
        params.setdefault("strides", [1] + [2] * depth)
        params.setdefault("upsample_kernel_size", list(params["strides"])[1:])
        if base is not None:
            params.setdefault("filters", [base * 2**i for i in range(len(params["strides"]))])
        if ds:
            params.setdefault("deep_supr_num", max(1, len(params["strides"]) - 2))
        divisor = 1
        for s in params["strides"]:
            divisor *= s if isinstance(s, int) else max(s)
    else:
        if base is not None:
            raise ValueError(f"base_filters is not understood for MONAI {cls.__name__}; pass its own width "
                             f"parameter (see monai.networks.nets.{cls.__name__})")
    _check_params(name, cls, params, {"spatial_dims", "in_channels", "out_channels"})
    try:
        net = cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **params)
    except TypeError as e:
        raise ValueError(f"cannot build MONAI {cls.__name__}: {e}; fix the model parameters") from e
    return MonaiNet(net, divisor, deep_supervision=ds)


def supports_deep_supervision(model: nn.Module) -> bool:
    """Whether the model returns a list of outputs in training mode."""
    if isinstance(model, UNet):
        return model.deep_supervision and model.ds_levels > 0
    return bool(getattr(model, "deep_supervision", False))
