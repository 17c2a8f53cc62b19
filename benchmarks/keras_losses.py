"""Speed of the Keras losses (issue #13) beside ``keras.losses.CategoricalCrossentropy``, per backend.

Forward + backward (the gradient with respect to the logits), compiled as ``model.fit`` compiles it
(``jax.jit`` on JAX, ``tf.function(jit_compile=True)`` on TensorFlow; eager on PyTorch), on
channels-last logits with one-hot targets (~90 % background), median of interleaved repetitions.
Each backend runs in its own process (``KERAS_BACKEND`` is read once, at ``import keras``).

    python benchmarks/keras_losses.py                       # JAX and TensorFlow, both shapes
    python benchmarks/keras_losses.py --backends jax torch --reps 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SHAPES = [(32, 128, 128, 2), (2, 96, 96, 96, 3)]
LOSSES = ["cross_entropy", "focal", "dice", "tversky", "focal_tversky", "combo", "hybrid_focal",
          "asymmetric_focal", "asymmetric_focal_tversky", "unified_focal", "symmetric_focal",
          "symmetric_focal_tversky", "symmetric_unified_focal"]


def _grad_fn(backend: str, loss, y):
    """A compiled ``z -> (loss, d loss / d z)`` for the backend, and a function that blocks on it."""
    if backend == "jax":
        import jax

        f = jax.jit(jax.value_and_grad(lambda z: loss(y, z)))
        return f, lambda out: jax.block_until_ready(out)
    if backend == "tensorflow":
        import tensorflow as tf

        yt = tf.constant(y)

        @tf.function(jit_compile=True)
        def f(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                v = loss(yt, z)
            return v, tape.gradient(v, z)

        return f, lambda out: [o.numpy() for o in out]
    if backend == "torch":
        import torch

        yt = torch.as_tensor(y)

        def f(z):
            z = z.detach().requires_grad_(True)
            v = loss(yt, z)
            v.backward()
            return v, z.grad

        return f, lambda out: out
    raise ValueError(f"unknown backend {backend!r}")


def run_backend(backend: str, reps: int, shapes: list[tuple[int, ...]]) -> dict:
    """Time every loss against CategoricalCrossentropy in this process (``KERAS_BACKEND=backend``)."""
    import keras
    import numpy as np

    import unifocal.keras as K

    if keras.backend.backend() != backend:
        raise ValueError(f"KERAS_BACKEND is {keras.backend.backend()!r}, expected {backend!r}")
    results = {"backend": backend, "keras": keras.__version__, "shapes": {}}
    for shape in shapes:
        rng = np.random.default_rng(0)
        c = shape[-1]
        z = rng.normal(size=shape).astype("float32")
        labels = np.where(rng.random(shape[:-1]) < 0.9, 0, rng.integers(1, c, size=shape[:-1]))
        y = np.eye(c, dtype="float32")[labels]
        zt = keras.ops.convert_to_tensor(z)
        cands = {"keras.CategoricalCrossentropy": keras.losses.CategoricalCrossentropy(from_logits=True)}
        cands.update({name: K.get_loss(name, from_logits=True) for name in LOSSES})
        fns = {}
        for name, loss in cands.items():
            f, block = _grad_fn(backend, loss, y)
            for _ in range(2):  # compile and warm up
                block(f(zt))
            fns[name] = (f, block)
        base = fns["keras.CategoricalCrossentropy"]
        rows = {}
        for name, (f, block) in fns.items():
            own, ref = [], []
            for _ in range(reps):  # interleaved with the baseline, so both see the same machine state
                t0 = time.perf_counter()
                block(base[0](zt))
                ref.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                block(f(zt))
                own.append(time.perf_counter() - t0)
            rows[name] = {"ms": 1e3 * statistics.median(own), "base_ms": 1e3 * statistics.median(ref)}
        results["shapes"][str(shape)] = rows
    return results


def _print(results: list[dict], reps: int) -> None:
    print(f"# python={platform.python_version()} cpu={platform.machine()} nproc={os.cpu_count()} "
          f"reps={reps}")
    for res in results:
        print(f"\n## backend {res['backend']} (keras {res['keras']})")
        for shape, rows in res["shapes"].items():
            print(f"\n### shape {shape} (channels-last logits, one-hot targets; median of {reps}, interleaved)")
            print("| loss | fwd+bwd ms | CategoricalCrossentropy ms (same alternation) | time x CCE |")
            print("|---|---:|---:|---:|")
            for name, r in rows.items():
                print(f"| {name} | {r['ms']:.1f} | {r['base_ms']:.1f} | {r['ms'] / r['base_ms']:.2f} |")
    for res in results:
        ratios = [rows["unified_focal"]["ms"] / rows["unified_focal"]["base_ms"] for rows in res["shapes"].values()]
        print(f"{res['backend']} unified_focal/CategoricalCrossentropy: "
              + " / ".join(f"{r:.2f}" for r in ratios))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--small", action="store_true", help="small shapes (a quick check of the script)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    shapes = [(4, 32, 32, 2), (1, 16, 16, 16, 3)] if args.small else SHAPES
    if args.worker:
        print(json.dumps(run_backend(args.worker, args.reps, shapes)))
        return
    results = []
    for backend in args.backends:
        cmd = [sys.executable, __file__, "--worker", backend, "--reps", str(args.reps)]
        if args.small:
            cmd.append("--small")
        out = subprocess.run(cmd, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            print(f"# backend {backend} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    _print(results, args.reps)


if __name__ == "__main__":
    main()
