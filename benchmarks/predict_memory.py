"""Peak memory of ``unifocal predict`` on one large 2D image (issue 12: must stay under 1 GB).

Builds a run folder holding a 2D U-Net checkpoint (``--base-filters`` 8, depth 4, instance norm,
random weights: memory does not depend on the weight values), preprocessing z-score without a
resize (so the image is predicted at full resolution), writes one ``--size`` x ``--size`` 8-bit PNG,
and runs ``unifocal predict RUN image.png -o out`` in a fresh process under ``/usr/bin/time -v``,
whose "Maximum resident set size" is the peak RSS of the whole command (Python, torch, reading,
preprocessing, the network, mapping back and writing). The same is measured for
``python -c "import unifocal.cli, torch, monai"`` (the floor of any command) and, with ``--whole``,
for the untiled prediction (a tile as large as the image, the behaviour before tiling).

Usage::

    python benchmarks/predict_memory.py [--size 4000] [--base-filters 8] [--whole]
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_run(folder: Path, base_filters: int, patch_size: list[int] | None) -> Path:
    import torch

    from unifocal.data import make_preprocessing
    from unifocal.models import get_model
    from unifocal.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model_cfg = {"name": "unet", "base_filters": base_filters, "depth": 4, "norm": "instance"}
    net = get_model("unet", 2, 1, 2, base_filters=base_filters, depth=4, norm="instance")
    spec = {"model": model_cfg, "spatial_dims": 2, "in_channels": 1, "num_classes": 2,
            "class_names": ["background", "lesion"], "preprocessing": make_preprocessing(),
            "patch_size": patch_size, "overlap": 0.5}
    save_checkpoint(folder / "checkpoints" / "best.pt", {"model": net.state_dict(), "spec": spec, "epoch": 1})
    return folder


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """``(peak RSS in MB, wall seconds)`` of ``cmd`` under ``/usr/bin/time -v``."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return kb / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--base-filters", type=int, default=8)
    ap.add_argument("--whole", action="store_true", help="also measure the untiled prediction")
    args = ap.parse_args()
    if not shutil.which("/usr/bin/time"):
        raise SystemExit("needs GNU time at /usr/bin/time (apt-get install time)")
    from PIL import Image

    exe = [sys.executable, "-c", "from unifocal.cli import main; main()"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        img = tmp / "in" / "big.png"
        img.parent.mkdir()
        yy, xx = np.mgrid[: args.size, : args.size]
        arr = (127 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
               + np.random.default_rng(0).normal(0, 20, (args.size, args.size)))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(img)
        floor, _ = peak_rss_mb([sys.executable, "-c", "import unifocal.cli, torch, monai"])
        rows = [("import unifocal.cli, torch, monai (floor)", floor, None)]
        tiled = make_run(tmp / "run_tiled", args.base_filters, None)
        mb, wall = peak_rss_mb([*exe, "predict", str(tiled), str(img), "-o", str(tmp / "out1"), "--device", "cpu"])
        assert np.array(Image.open(tmp / "out1" / "big.png")).shape == (args.size, args.size)
        rows.append(("predict, tiled (512x512 windows, overlap 0.5)", mb, wall))
        if args.whole:
            whole = make_run(tmp / "run_whole", args.base_filters, [args.size, args.size])
            mb, wall = peak_rss_mb([*exe, "predict", str(whole), str(img), "-o", str(tmp / "out2"),
                                    "--device", "cpu"])
            rows.append(("predict, whole image (untiled)", mb, wall))
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    print(f"image {args.size}x{args.size} PNG, 2D U-Net {args.base_filters} base filters, depth 4, instance norm, "
          f"2 classes, CPU\n")
    print("| command | peak RSS (MB) | wall (s) |\n|---|---:|---:|")
    for name, mb, wall in rows:
        print(f"| {name} | {mb:.0f} | {'' if wall is None else f'{wall:.1f}'} |")


if __name__ == "__main__":
    main()
