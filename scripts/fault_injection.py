"""Fault injection: bad inputs and faults against the ``unifocal`` command line, one table row each.

Every fault is built from scratch in a temporary folder (``$W`` in the table), the command is run in
a fresh process (``python -m unifocal.cli``-equivalent entry point), and the row records the exit
status and the last line the command printed on stderr (or a check of the files it left). The
table of ``docs/reliability.md`` is this script's output.

Usage::

    python scripts/fault_injection.py [--out table.md] [--only N,M]
"""

from __future__ import annotations

import argparse
import errno  # noqa: F401 (used inside generated code)
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from PIL import Image

CLI = [sys.executable, "-c", "import sys; from unifocal.cli import main; sys.argv[0] = 'unifocal'; main()"]
TINY = ["--dataset", "phantom2d", "--dataset-option", "n_cases=12", "--dataset-option", "size=32",
        "--model-param", "depth=3", "--model-param", "norm=instance", "--base-filters", "4", "--scheme", "adam",
        "--batch-size", "4", "--device", "cpu", "-q"]


class Fault:
    def __init__(self, name: str, cmd: list[str] | Callable[[Path], list[str]], setup=None, check=None,
                 raw: bool = False, shown: str | None = None):
        self.name, self.cmd, self.setup, self.check, self.raw, self.shown = name, cmd, setup, check, raw, shown


def run(argv: list[str], timeout: float = 600) -> tuple[int, str, str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def last_line(text: str) -> str:
    """The ``Error: ...`` message (all its lines joined), else the last line printed."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("Error:"):
            return " ".join(lines[i:])
    return lines[-1] if lines else ""


# -- fixtures ---------------------------------------------------------------------------------------
def png(path: Path, size=(40, 48), mode: str = "L", value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    if mode == "RGB":
        arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    elif mode == "I;16":
        arr = rng.integers(0, 65535, size, dtype=np.uint16)
    else:
        arr = rng.integers(0, 256, size, dtype=np.uint8) if value is None else np.full(size, value, np.uint8)
    Image.fromarray(arr).save(path)
    return path


def nii(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))
    return path


def msd(root: Path, n: int = 3, channels: int = 1, labels=(0, 1, 2), djson: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    shape = (16, 16, 16)
    for i in range(n):
        img = rng.normal(size=(*shape, channels) if channels > 1 else shape).astype(np.float32)
        nii(root / "imagesTr" / f"case_{i:03d}.nii.gz", img)
        lab = np.zeros(shape, np.uint8)
        for j, v in enumerate(labels):
            lab[j + 2: j + 5, 4:9, 4:9] = v
        nii(root / "labelsTr" / f"case_{i:03d}.nii.gz", lab)
    if djson is not None:
        (root / "dataset.json").write_text(json.dumps(djson))
    return root


def edit_nii(path: Path, fn) -> None:
    arr = np.asarray(nib.load(str(path)).dataobj).copy()
    nib.save(nib.Nifti1Image(fn(arr), np.eye(4)), str(path))


class Crafted:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def crafted_run(w: Path, name: str, which: str = "best.pt", marker: str = "PWNED") -> Path:
    run = w / name
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"model": Crafted(f"touch {w / marker}"), "spec": {}}, run / "checkpoints" / which)
    return run


def copy_run(w: Path, name: str) -> Path:
    import shutil

    dst = w / name
    shutil.copytree(w / "run", dst)
    return dst


def faults(w: Path) -> list[Fault]:
    F = Fault
    marker = lambda: "code ran: PWNED created" if (w / "PWNED").exists() else "no code ran (no PWNED file)"  # noqa: E731

    def setup_trunc(w):
        r = copy_run(w, "trunc")
        p = r / "checkpoints" / "best.pt"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    def setup_empty(w):
        r = copy_run(w, "emptyck")
        (r / "checkpoints" / "best.pt").write_bytes(b"")

    def setup_text(w):
        r = copy_run(w, "textck")
        (r / "checkpoints" / "best.pt").write_text("not a checkpoint\n")

    def setup_shape(w):
        r = copy_run(w, "shapeck")
        st = torch.load(r / "checkpoints" / "best.pt", weights_only=True)
        k = next(iter(st["model"]))
        st["model"][k] = torch.zeros(3, 3)
        torch.save(st, r / "checkpoints" / "best.pt")

    def setup_list(w):
        r = copy_run(w, "listck")
        torch.save([1, 2, 3], r / "checkpoints" / "best.pt")

    def setup_pin(w):
        png(w / "pin" / "a.png")
        png(w / "pin" / "b.png")
        (w / "pin.sha").write_text(json.dumps({p.name: p.read_bytes().hex()[:64] for p in (w / "pin").iterdir()}))

    def check_pin():
        now = {p.name: p.read_bytes().hex()[:64] for p in (w / "pin").iterdir()}
        return "inputs unchanged" if now == json.loads((w / "pin.sha").read_text()) else "INPUTS CHANGED"

    def setup_dup(w):
        png(w / "a" / "x.png")
        png(w / "b" / "x.png")

    def setup_trunc_png(w):
        p = png(w / "tp" / "t.png", size=(200, 200))
        p.write_bytes(p.read_bytes()[:300])

    def setup_fake_png(w):
        (w / "fp").mkdir()
        (w / "fp" / "notes.png").write_text("hello")

    def setup_nan2d(w):
        a = np.random.default_rng(0).normal(size=(40, 48)).astype(np.float32)
        a[5, 7] = np.nan
        nii(w / "nan2d.nii.gz", a)

    def setup_stray(w):
        root = msd(w / "stray")
        edit_nii(root / "labelsTr/case_001.nii.gz", lambda a: (a.__setitem__((15, 15, 15), 200), a)[1])

    def setup_nanmsd(w):
        root = msd(w / "nanmsd")
        edit_nii(root / "imagesTr/case_002.nii.gz", lambda a: (a.__setitem__((3, 4, 5), np.nan), a)[1])

    def setup_infmsd(w):
        root = msd(w / "infmsd")
        edit_nii(root / "imagesTr/case_000.nii.gz", lambda a: (a.__setitem__((1, 1, 1), np.inf), a)[1])

    def setup_one4d(w):
        root = msd(w / "one4d")
        nii(root / "imagesTr/case_001.nii.gz", np.zeros((16, 16, 16, 2), np.float32))

    def setup_huge(w):
        root = msd(w / "huge")
        p = root / "imagesTr" / "case_000.nii.gz"
        p.unlink()
        p = root / "imagesTr" / "case_000.nii"
        nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(str(p))
        hdr = nib.Nifti1Header()
        hdr.set_data_shape((30000, 30000, 30000))
        hdr.set_data_dtype(np.float32)
        raw = bytearray(p.read_bytes())
        raw[:348] = hdr.binaryblock
        p.write_bytes(bytes(raw))

    def setup_trunc_nii(w):
        root = msd(w / "truncnii")
        p = root / "imagesTr/case_001.nii.gz"
        p.write_bytes(p.read_bytes()[:200])

    def setup_labshape(w):
        root = msd(w / "labshape")
        nii(root / "labelsTr/case_002.nii.gz", np.zeros((16, 16, 15), np.uint8))

    def setup_nolabel(w):
        root = msd(w / "nolabel")
        (root / "labelsTr/case_001.nii.gz").unlink()

    def setup_badjson(w):
        root = msd(w / "badjson")
        (root / "dataset.json").write_text("{labels: ")

    def setup_pairs_orphan(w):
        png(w / "porph" / "images" / "a.png")
        png(w / "porph" / "masks" / "a.png", value=0)
        png(w / "porph" / "masks" / "b.png", value=0)

    def setup_pairs_128(w):
        for i in range(6):
            png(w / "p128" / "images" / f"c{i}.png", size=(32, 32))
            m = np.zeros((32, 32), np.uint8)
            m[8:16, 8:16] = 255 if i != 3 else 128
            Image.fromarray(m).save(png(w / "p128" / "masks" / f"c{i}.png"))

    def setup_pairs_nan(w):
        for i in range(6):
            a = np.random.default_rng(i).normal(size=(32, 32)).astype(np.float32)
            if i == 2:
                a[3, 3] = np.nan
            (w / "pnan" / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(a, mode="F").save(w / "pnan" / "images" / f"c{i}.tif")
            m = np.zeros((32, 32), np.uint8)
            m[8:16, 8:16] = 255
            png(w / "pnan" / "masks" / f"c{i}.tif", value=0)
            Image.fromarray(m).save(w / "pnan" / "masks" / f"c{i}.tif")

    def setup_tmp(w):
        r = copy_run(w, "tmprun")
        (r / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"torn")
        (r / "summary.json").unlink()

    def check_tmp():
        left = list((w / "tmprun").rglob(".*.tmp"))
        return "orphaned .tmp removed" if not left else f"left: {left}"

    def setup_stale(w):
        r = copy_run(w, "stale")
        (r / "run.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "earlier"}))
        (r / "summary.json").unlink()

    def setup_cfgfirst(w):
        r = w / "cfgfirst"
        r.mkdir()
        import yaml

        from unifocal.cli.run import build_config
        from unifocal.training.config import resolve_config

        cfg = resolve_config(build_config(dataset="phantom2d", seed=5, epochs=1)).to_dict()
        (r / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def setup_diverge(w):
        (w / "diverge.yaml").write_text("lr: 1.0e+12\nscheme: sgd\n")

    def setup_file(w):
        (w / "afile").write_text("keep me")

    def setup_bigpng(w):
        png(w / "big" / "big.png", size=(1200, 1200))

    def setup_noisy(w):
        png(w / "rgb" / "c.png", mode="RGB")
        png(w / "u16" / "d.png", mode="I;16")

    def concurrent(w):
        first = subprocess.Popen([*CLI, "train", "-o", str(w / "conc"), *TINY, "--epochs", "8", "--seed", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while not (w / "conc" / "config.yaml").exists() and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        rc2, _, err2 = run([*CLI, "train", "-o", str(w / "conc"), *TINY, "--epochs", "8", "--seed", "2"])
        _, _ = first.communicate()
        import yaml

        seed = yaml.safe_load((w / "conc" / "config.yaml").read_text())["seed"]
        return rc2, (f"second: {last_line(err2)} / first: exit {first.returncode}, config.yaml seed {seed}, "
                     f"summary {'present' if (w / 'conc' / 'summary.json').exists() else 'missing'}")

    def kill_resume(w):
        ref = run([*CLI, "train", "-o", str(w / "ref"), *TINY, "--epochs", "4"])
        p = subprocess.Popen([*CLI, "train", "-o", str(w / "killed"), *TINY, "--epochs", "4"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = w / "killed" / "log.csv"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            if log.exists() and len(log.read_text().strip().splitlines()) >= 3:
                break
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        lock_left = (w / "killed" / "run.lock").exists()
        rc, _, err = run([*CLI, "train", "-o", str(w / "killed"), *TINY, "--epochs", "4"])

        def log_rows(d):
            return [",".join(r.split(",")[:5]) for r in (d / "log.csv").read_text().splitlines()]

        same = log_rows(w / "killed") == log_rows(w / "ref") and ref[0] == 0
        a = torch.load(w / "killed/checkpoints/best.pt", weights_only=True)["model"]
        b = torch.load(w / "ref/checkpoints/best.pt", weights_only=True)["model"]
        same_w = all(torch.equal(a[k], b[k]) for k in a)
        return rc, (f"killed after epoch 2 (stale run.lock left: {lock_left}); rerun resumed: log identical to an "
                    f"uninterrupted run: {same}, best.pt weights identical: {same_w}")

    def disk_full(w):
        code = ("import errno, os, sys; import unifocal._atomic as a; real = os.fsync; n = [0]\n"
                "def fs(fd):\n"
                "    if '.last.pt.' in os.readlink(f'/proc/self/fd/{fd}'):\n"
                "        n[0] += 1\n"
                "        if n[0] == 2: raise OSError(errno.ENOSPC, 'No space left on device')\n"
                "    return real(fd)\n"
                "a.os.fsync = fs\n"
                "from unifocal.cli import main; sys.argv = ['unifocal'] + sys.argv[1:]; main()")
        rc, _, err = run([sys.executable, "-c", code, "train", "-o", str(w / "full"), *TINY, "--epochs", "3"])
        ck = torch.load(w / "full/checkpoints/last.pt", weights_only=True)["epoch"]
        tmp = list((w / "full").rglob(".*.tmp"))
        rc2, _, _ = run([*CLI, "train", "-o", str(w / "full"), *TINY, "--epochs", "3"])
        return rc, (f"{last_line(err)[:160]}... / last.pt of epoch {ck} kept, {len(tmp)} .tmp left; rerun with space: "
                    f"exit {rc2}, finished")

    def orphan_workers(w):
        code = ("import sys; from pathlib import Path; from unifocal.study.plan import RunSpec; "
                "from unifocal.study.runners import run_local; "
                "specs = [RunSpec(f'a{i}', 0, {'sleep': 300}, Path(sys.argv[1]) / f'a{i}') for i in range(2)]; "
                "run_local(specs, workers=2, train_fn='tests.study.fakes:sleepy_train', threads_per_worker=1)")
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        d = subprocess.Popen([sys.executable, "-c", code, str(w / "orph")], cwd=repo, env=env)
        t0 = time.monotonic()
        pids: list[int] = []
        while time.monotonic() - t0 < 120 and len(pids) < 2:
            pids = [int(p.read_text()) for p in (w / "orph").glob("a*/pid") if p.read_text()]
            time.sleep(0.1)
        d.send_signal(signal.SIGKILL)
        d.wait()
        time.sleep(3)
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "State:\tZ" not in
                 Path(f"/proc/{p}/status").read_text()]
        for p in alive:
            os.kill(p, signal.SIGKILL)
        return 0, f"driver killed with 2 workers running; 3 s later {len(alive)} worker(s) alive"

    # -- issue 25 (reliability, round two) --------------------------------------------------------
    def pairs_ds(root: Path, n: int = 8, seed: int = 0, fg: bool = True) -> Path:
        rng = np.random.default_rng(seed)
        for i in range(n):
            m = np.zeros((32, 32), np.uint8)
            if fg:
                a, b = rng.integers(4, 16, 2)
                m[a:a + 10, b:b + 10] = 255
            img = (rng.normal(60, 20, (32, 32)) + (m > 0) * 120).clip(0, 255).astype(np.uint8)
            for sub, arr in (("images", img), ("masks", m)):
                (root / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / sub / f"c{i}.png")
        return root

    PAIRS = ["--layout", "pairs", "--dataset-option", "resize=[32,32]", "--model-param", "depth=3",
             "--base-filters", "4", "--scheme", "adam", "--batch-size", "4", "--device", "cpu", "--folds", "2", "-q"]

    def run_in(cwd: Path, argv: list[str]) -> tuple[int, str, str]:
        r = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=600, cwd=cwd)
        return r.returncode, r.stdout, r.stderr

    def relative_evaluate(w):
        pairs_ds(w / "rela" / "data" / "ds")
        rc, _, err = run_in(w / "rela", ["train", "-o", str(w / "relrun"), "--dataset", "data/ds", *PAIRS, "--epochs", "1"])
        assert rc == 0, err
        import yaml

        path = yaml.safe_load((w / "relrun" / "config.yaml").read_text())["dataset"]["path"]
        run_in(w / "rela", ["evaluate", str(w / "relrun"), "-o", str(w / "erel_a"), "--device", "cpu", "-q"])
        pairs_ds(w / "relb" / "data" / "ds", seed=7)
        rc, _, err = run_in(w / "relb", ["evaluate", str(w / "relrun"), "-o", str(w / "erel_b"), "--device", "cpu", "-q"])
        a, b = (json.loads((w / d / "summary.json").read_text())["metrics"] for d in ("erel_a", "erel_b"))
        return rc, (f"config.yaml records dataset.path {path}; evaluated from a directory holding another data/ds: "
                    f"metrics identical to the evaluation from the training directory: {a == b}")

    def relative_resume(w):
        rc, _, err = run_in(w / "relb", ["train", "-o", str(w / "relrun"), "--dataset", "data/ds", *PAIRS, "--epochs", "2"])
        return rc, last_line(err)

    def with_holder(w, name: str, argv: list[str]):
        r = copy_run(w, name)
        (r / "summary.json").unlink()  # a run still training
        code = ("import sys, time; from unifocal.training.lock import run_lock\n"
                "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(300)")
        holder = subprocess.Popen([sys.executable, "-c", code, str(r)], stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            rc, _, err = run([*CLI, *argv])
        finally:
            holder.kill()
            holder.wait()
        left = "summary.json absent, the run stays resumable" if not (r / "summary.json").exists() else "SUMMARY WRITTEN"
        return rc, f"{last_line(err)} [{left}]"

    def scaled_nii(path: Path, shape=(17, 17)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        img = nib.Nifti1Image(np.arange(1, int(np.prod(shape)) + 1, dtype=np.int16).reshape(shape), np.eye(4))
        img.header.set_slope_inter(3e38, 0)
        nib.save(img, str(path))
        return path

    def setup_scaled_msd(w):
        root = msd(w / "scaled")
        scaled_nii(root / "imagesTr" / "case_001.nii.gz", (16, 16, 16))

    def setup_rgba(w, name: str, inverted: bool):
        root = pairs_ds(w / name)
        rgba = np.zeros((32, 32, 4), np.uint8)
        if inverted:  # black lesion on a transparent background
            rgba[8:16, 8:16, 3] = 255
        else:  # lesion drawn in alpha on white
            rgba[..., :3] = 255
            rgba[8:16, 8:16, 3] = 255
        Image.fromarray(rgba, mode="RGBA").save(root / "masks" / "c3.png")

    def setup_notes(w):
        (w / "userdir" / "notes").mkdir(parents=True)
        (w / "userdir" / "notes" / ".draft.tmp").write_text("my notes")
        (w / "userdir" / ".todo.tmp").write_text("mine")

    def check_notes():
        kept = [p.name for p in ((w / "userdir" / "notes" / ".draft.tmp"), (w / "userdir" / ".todo.tmp")) if p.exists()]
        return f"kept: {', '.join(kept)}" if len(kept) == 2 else f"USER FILES DELETED (kept {kept})"

    def setup_edited(w):
        import yaml

        r = copy_run(w, "edited")
        (r / "summary.json").unlink()
        cfg = yaml.safe_load((r / "config.yaml").read_text())
        cfg["loss"] = {"name": "dice", "params": {}}
        (r / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def check_edited():
        return f"last.pt still epoch {torch.load(w / 'edited/checkpoints/last.pt', weights_only=True)['epoch']}"

    def setup_study(w, name: str, bad: str | None = None):
        import shutil

        for arm in ("a", "b"):
            d = w / name / arm / "fold0"
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(w / "run", d, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
            if arm == "b":  # a second loss: two arms
                import yaml

                cfg = yaml.safe_load((d / "config.yaml").read_text())
                cfg["loss"] = {"name": "dice", "params": {}}
                (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        if bad == "summary":
            (w / name / "b" / "fold0" / "summary.json").write_text('{"status": "finished", "best_ep')
        elif bad == "tag":
            (w / name / "b" / "fold0" / "config.yaml").write_text("seed: !!python/object/apply:os.system ['touch PWNED']\n")
        elif bad == "csv":
            f = w / name / "b" / "fold0" / "metrics_per_case.csv"
            f.write_text(f.read_text().replace(",0.", ",O.", 1))
        elif bad == "deep":
            (w / name / "b" / "fold0" / "summary.json").write_text("[" * 5000 + "]" * 5000)
        elif bad == "eval":
            rc, _, err = run([*CLI, "evaluate", str(w / "run"), "-o", str(w / name / "eval"), "--device", "cpu", "-q"])
            assert rc == 0, err

    def setup_splits(w, name: str, kind: str):
        import shutil

        (w / name).mkdir()
        for f in ("splits.json", "duplicates.json"):
            if (w / "run" / f).exists():
                shutil.copy(w / "run" / f, w / name / f)
        folds = json.loads((w / name / "splits.json").read_text())
        folds[0]["train"].append(folds[0]["val"][0] if kind == "leak" else "phantom2d_999")
        (w / name / "splits.json").write_text(json.dumps(folds))

    def setup_tagged_run(w):
        r = copy_run(w, "tagged")
        (r / "config.yaml").write_text("seed: !!python/object/apply:os.system ['touch " + str(w / "PWNED") + "']\n")

    def setup_formats(w):
        arr = np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)
        (w / "fmt").mkdir()
        Image.fromarray(arr).save(w / "fmt" / "a.tif")
        Image.fromarray(arr).save(w / "fmt" / "b.jpg")
        nib.save(nib.Nifti1Image(arr.astype(np.float32), np.eye(4)), str(w / "fmt" / "c.nii.gz"))
        os.replace(w / "fmt" / "c.nii.gz", w / "fmt" / "C.NII.GZ")
        (w / "fmt" / "readme.txt").write_text("not an image")

    def setup_stems(w):
        png(w / "stems" / "x.png")
        Image.open(png(w / "stems" / "x.png")).convert("RGB").save(w / "stems" / "x.jpg")

    def setup_pair_stems(w):
        root = pairs_ds(w / "pstems")
        Image.open(root / "images" / "c2.png").save(root / "images" / "c2.jpg")

    def umask_run(w):
        r = subprocess.run([*CLI, "train", "-o", str(w / "um"), *TINY, "--epochs", "1"], capture_output=True, text=True,
                           timeout=600, preexec_fn=lambda: os.umask(0o027))
        modes = {p: oct((w / "um" / p).stat().st_mode & 0o777) for p in ("config.yaml", "summary.json", "checkpoints/best.pt")}
        return r.returncode, f"umask 027: file modes {modes}"

    def read_only(w):
        code = ("import errno, sys, tempfile; import unifocal._atomic as a\n"
                "def denied(prefix, suffix, dir): raise PermissionError(errno.EACCES, 'Permission denied', f'{dir}/{prefix}xyz.tmp')\n"
                "a.tempfile.mkstemp = denied\n"
                "from unifocal.cli import main; sys.argv = ['unifocal'] + sys.argv[1:]; main()")
        rc, _, err = run([sys.executable, "-c", code, "train", "-o", str(w / "ro"), *TINY, "--epochs", "1"])
        return rc, last_line(err)

    def setup_relck(w):
        r = copy_run(w, "relck")
        st = torch.load(r / "checkpoints" / "best.pt", weights_only=True)
        st["config"]["dataset"] = {"path": "data/ds", "layout": "pairs", "options": {}}
        torch.save(st, r / "checkpoints" / "best.pt")

    def setup_nonutf8(w):
        (w / "latin1.yaml").write_bytes("dataset: phantom2d\n# r\xe9sum\xe9\n".encode("latin-1"))

    def setup_listyaml(w):
        r = copy_run(w, "listcfg")
        (r / "config.yaml").write_text("- a\n- b\n")

    deep = "[" * 5000

    run_ = str(w / "run")
    return [
        # checkpoints
        F("crafted best.pt whose pickle calls os.system", lambda w: ["predict", str(crafted_run(w, "evil")), str(png(w / "one" / "o.png")), "-o", str(w / "p0")], check=marker),
        F("crafted best.pt, evaluate", lambda w: ["evaluate", str(w / "evil"), "-o", str(w / "e0")], check=marker),
        F("crafted last.pt, resumed train", lambda w: ["train", "-o", str(crafted_run(w, "evil2", "last.pt")), *TINY, "--epochs", "1"], check=marker),
        F("truncated best.pt (half the bytes)", lambda w: ["predict", str(w / "trunc"), str(w / "one"), "-o", str(w / "p1")], setup=setup_trunc),
        F("empty best.pt", lambda w: ["predict", str(w / "emptyck"), str(w / "one"), "-o", str(w / "p2")], setup=setup_empty),
        F("text file as best.pt", lambda w: ["predict", str(w / "textck"), str(w / "one"), "-o", str(w / "p3")], setup=setup_text),
        F("best.pt with a weight of the wrong shape", lambda w: ["predict", str(w / "shapeck"), str(w / "one"), "-o", str(w / "p4")], setup=setup_shape),
        F("best.pt holding a list", lambda w: ["predict", str(w / "listck"), str(w / "one"), "-o", str(w / "p5")], setup=setup_list),
        F("run folder without checkpoints", lambda w: ["predict", str(w / "one"), str(w / "one"), "-o", str(w / "p6")]),
        # predict
        F("predict -o the input folder", lambda w: ["predict", run_, str(w / "pin"), "-o", str(w / "pin")], setup=setup_pin, check=check_pin),
        F("two inputs with the same name (a/x.png, b/x.png)", lambda w: ["predict", run_, str(w / "a"), str(w / "b"), "-o", str(w / "p7")], setup=setup_dup,
          check=lambda: f"{len(list((w / 'p7').glob('*'))) if (w / 'p7').exists() else 0} file(s) written"),
        F("predict -o an existing file", lambda w: ["predict", run_, str(w / "one"), "-o", str(w / "afile")], setup=setup_file,
          check=lambda: "file kept" if (w / "afile").read_text() == "keep me" else "FILE CHANGED"),
        F("input that does not exist", lambda w: ["predict", run_, str(w / "nope.png"), "-o", str(w / "p8")]),
        F("empty input folder", lambda w: ["predict", run_, str((w / "emptydir").mkdir() or w / "emptydir"), "-o", str(w / "p9")]),
        F("truncated PNG input", lambda w: ["predict", run_, str(w / "tp"), "-o", str(w / "p10")], setup=setup_trunc_png),
        F("text file named .png", lambda w: ["predict", run_, str(w / "fp"), "-o", str(w / "p11")], setup=setup_fake_png),
        F("3D NIfTI given to a 2D run", lambda w: ["predict", run_, str(nii(w / "vol3d.nii.gz", np.zeros((8, 8, 8), np.float32))), "-o", str(w / "p12")]),
        F("2D NIfTI input with one NaN pixel", lambda w: ["predict", run_, str(w / "nan2d.nii.gz"), "-o", str(w / "p13")], setup=setup_nan2d,
          check=lambda: f"{len(list((w / 'p13').glob('*'))) if (w / 'p13').exists() else 0} file(s) written"),
        F("RGB and 16-bit PNG inputs", lambda w: ["predict", run_, str(w / "rgb"), str(w / "u16"), "-o", str(w / "p14")], setup=setup_noisy),
        F("the same image given twice (file and its folder)", lambda w: ["predict", run_, str(w / "rgb"), str(w / "rgb" / "c.png"), "-o", str(w / "p15")]),
        F("1200x1200 PNG, run trained on 32x32 images (tiled; 4000x4000: docs/benchmarks.md)", lambda w: ["predict", run_, str(w / "big"), "-o", str(w / "p16")], setup=setup_bigpng),
        F("predict --device cuda on a machine without CUDA", lambda w: ["predict", run_, str(w / "one"), "-o", str(w / "p17"), "--device", "cuda"]),
        F("evaluate -o an existing file", lambda w: ["evaluate", run_, "-o", str(w / "afile")]),
        # data
        F("one label voxel of 200 in one MSD label file, no dataset.json", lambda w: ["train", "-o", str(w / "r1"), "--dataset", str(w / "stray"), "--epochs", "1", "-q"], setup=setup_stray),
        F("one NaN voxel in one MSD image", lambda w: ["train", "-o", str(w / "r2"), "--dataset", str(w / "nanmsd"), "--epochs", "1", "-q"], setup=setup_nanmsd),
        F("one +Inf voxel in one MSD image", lambda w: ["train", "-o", str(w / "r3"), "--dataset", str(w / "infmsd"), "--epochs", "1", "-q"], setup=setup_infmsd),
        F("one 4D (2-channel) image among 3D images", lambda w: ["data", "summary", str(w / "one4d")], setup=setup_one4d),
        F("4D 2-channel MSD without dataset.json", lambda w: ["data", "summary", str(msd(w / "multi4d", channels=2))]),
        F("dataset.json declaring 2 modalities, images with 1", lambda w: ["data", "summary", str(msd(w / "mods", djson={"labels": {"0": "bg", "1": "a", "2": "b"}, "modality": {"0": "T1", "1": "T2"}}))]),
        F("label value 2 outside dataset.json labels {0, 1}", lambda w: ["data", "summary", str(msd(w / "outjson", djson={"labels": {"0": "bg", "1": "a"}}))]),
        F("NIfTI header declaring 30000^3 voxels", lambda w: ["data", "summary", str(w / "huge")], setup=setup_huge),
        F("truncated .nii.gz image", lambda w: ["train", "-o", str(w / "r4"), "--dataset", str(w / "truncnii"), "--epochs", "1", "-q"], setup=setup_trunc_nii),
        F("label volume of another shape than its image", lambda w: ["train", "-o", str(w / "r5"), "--dataset", str(w / "labshape"), "--epochs", "1", "-q"], setup=setup_labshape),
        F("image without label", lambda w: ["data", "summary", str(w / "nolabel")], setup=setup_nolabel),
        F("unreadable dataset.json", lambda w: ["data", "summary", str(w / "badjson")], setup=setup_badjson),
        F("pairs layout: mask without image", lambda w: ["data", "summary", str(w / "porph")], setup=setup_pairs_orphan),
        F("pairs layout: one mask with value 128", lambda w: ["train", "-o", str(w / "r6"), "--dataset", str(w / "p128"), "--layout", "pairs", "--epochs", "1", "--base-filters", "4", "-q"], setup=setup_pairs_128),
        F("pairs layout: float TIFF image with a NaN pixel", lambda w: ["train", "-o", str(w / "r7"), "--dataset", str(w / "pnan"), "--layout", "pairs", "--epochs", "1", "--base-filters", "4", "-q"], setup=setup_pairs_nan),
        F("--dataset FOLDER --layout phantom2d", lambda w: ["train", "-o", str(w / "r8"), "--dataset", str(w / "stray"), "--layout", "phantom2d", "--epochs", "1", "-q"]),
        F("--dataset that does not exist", lambda w: ["train", "-o", str(w / "r9"), "--dataset", str(w / "missing"), "--epochs", "1", "-q"]),
        # run folder / processes
        F("two train processes, one folder, different seeds", concurrent, raw=True,
          shown="unifocal train -o $W/conc ... --seed 1 & unifocal train -o $W/conc ... --seed 2"),
        F("kill -9 during training, then the same command", kill_resume, raw=True,
          shown="unifocal train -o $W/killed ... --epochs 4; kill -9 after epoch 2; rerun"),
        F("stale run.lock of a dead pid", lambda w: ["train", "-o", str(w / "stale"), *TINY, "--epochs", "1"], setup=setup_stale),
        F("orphaned .tmp in checkpoints/", lambda w: ["train", "-o", str(w / "tmprun"), *TINY, "--epochs", "1"], setup=setup_tmp, check=check_tmp),
        F("config.yaml of another configuration, no checkpoint yet", lambda w: ["train", "-o", str(w / "cfgfirst"), "--dataset", "phantom2d", "--epochs", "1", "-q"], setup=setup_cfgfirst),
        F("train -o an existing file", lambda w: ["train", "-o", str(w / "afile"), *TINY, "--epochs", "1"]),
        F("diverging run (lr 1e12)", lambda w: ["train", "-o", str(w / "div"), "-c", str(w / "diverge.yaml"), *[a for a in TINY if a != "adam" and a != "--scheme"], "--epochs", "2"], setup=setup_diverge,
          check=lambda: f"checkpoints kept: {sorted(p.name for p in (w / 'div' / 'checkpoints').glob('*.pt')) if (w / 'div' / 'checkpoints').exists() else []}"),
        F("disk full while writing last.pt of epoch 2 (ENOSPC injected in fsync)", disk_full, raw=True,
          shown="unifocal train -o $W/full ... --epochs 3 (fsync of last.pt fails once with ENOSPC); rerun"),
        F("study driver killed with 2 worker processes", orphan_workers, raw=True,
          shown="run_local(2 runs, workers=2); kill -9 the driver"),
        F("unknown loss parameter", lambda w: ["train", "-o", str(w / "r10"), *TINY, "--loss-param", "detla=0.6"]),
        F("configuration file that is not YAML", lambda w: ["train", "-o", str(w / "r11"), "-c", str((w / "bad.yaml").write_text("a: [") and w / "bad.yaml")]),
        # issue 25: paths resolved once
        F("relative --dataset; evaluate from another directory holding another data/ds", relative_evaluate, raw=True,
          shown="cd $W/rela && unifocal train -o $W/relrun --dataset data/ds ...; cd $W/relb && unifocal evaluate $W/relrun -o $W/erel_b"),
        F("resume from that other directory with the same relative --dataset", relative_resume, raw=True,
          shown="cd $W/relb && unifocal train -o $W/relrun --dataset data/ds ... --epochs 2"),
        F("run whose checkpoint records a relative dataset path (older runs)", lambda w: ["evaluate", str(w / "relck"), "-o", str(w / "e_relck"), "--device", "cpu"], setup=setup_relck),
        # nothing but train writes into a run folder
        F("evaluate -o the run folder itself", lambda w: ["evaluate", run_, "-o", run_, "--device", "cpu"],
          check=lambda: "summary.json of the run unchanged" if json.loads((w / "run" / "summary.json").read_text()).get("best_epoch") is not None else "RUN SUMMARY REPLACED"),
        F("evaluate -o a folder inside the run folder", lambda w: ["evaluate", run_, "-o", str(w / "run" / "eval"), "--device", "cpu"],
          check=lambda: "nothing written" if not (w / "run" / "eval").exists() else "WRITTEN"),
        F("evaluate -o a run still training (locked by a live process)", lambda w: with_holder(w, "busy1", ["evaluate", str(w / "run"), "-o", str(w / "busy1"), "--device", "cpu"]), raw=True,
          shown="unifocal evaluate $W/run -o $W/busy1 (busy1: a run held by a live train process)"),
        F("predict -o a locked run folder", lambda w: with_holder(w, "busy2", ["predict", str(w / "run"), str(w / "one"), "-o", str(w / "busy2")]), raw=True,
          shown="unifocal predict $W/run $W/one -o $W/busy2 (busy2: a run held by a live train process)"),
        F("predict -o a subfolder of a run folder", lambda w: ["predict", run_, str(w / "one"), "-o", str(w / "run" / "preds")],
          check=lambda: "nothing written" if not (w / "run" / "preds").exists() else "WRITTEN"),
        # values checked in the precision they are used in
        F("NIfTI with scl_slope 3e38 (finite in float64, Inf in float32), predict", lambda w: ["predict", run_, str(scaled_nii(w / "scaled2d.nii.gz")), "-o", str(w / "p18")],
          check=lambda: f"{len(list((w / 'p18').glob('*'))) if (w / 'p18').exists() else 0} file(s) written"),
        F("NIfTI with scl_slope 3e38 in an MSD dataset, train", lambda w: ["train", "-o", str(w / "r12"), "--dataset", str(w / "scaled"), "--epochs", "1", "-q"], setup=setup_scaled_msd),
        F("RGBA mask: lesion drawn in alpha on white", lambda w: ["train", "-o", str(w / "r13"), "--dataset", str(w / "rgba1"), *PAIRS, "--epochs", "1"], setup=lambda w: setup_rgba(w, "rgba1", False)),
        F("RGBA mask: black lesion on transparent", lambda w: ["train", "-o", str(w / "r14"), "--dataset", str(w / "rgba2"), *PAIRS, "--epochs", "1"], setup=lambda w: setup_rgba(w, "rgba2", True)),
        F("--loss-param ignore_index=2**70", lambda w: ["train", "-o", str(w / "r15"), *TINY, "--loss-param", f"ignore_index={2**70}"]),
        F("--seed -1", lambda w: ["train", "-o", str(w / "r16"), *TINY, "--seed", "-1"]),
        F("--split-seed 2**70", lambda w: ["train", "-o", str(w / "r17"), *TINY, "--split-seed", str(2**70)]),
        # the project deletes only files it wrote
        F("train -o a user folder holding notes/.draft.tmp and .todo.tmp", lambda w: ["train", "-o", str(w / "userdir"), *TINY, "--epochs", "1"], setup=setup_notes, check=check_notes),
        # a resumed run uses its own configuration
        F("config.yaml edited (loss -> dice) and rerun with --loss dice", lambda w: ["train", "-o", str(w / "edited"), *TINY, "--epochs", "1", "--loss", "dice"], setup=setup_edited, check=check_edited),
        F("train -o RUN with no other option", lambda w: ["train", "-o", str(copy_run(w, "own")), "-q"]),
        F("config.yaml of a run holding a YAML list", lambda w: ["train", "-o", str(w / "listcfg"), *TINY, "--epochs", "1"], setup=setup_listyaml),
        # reports never drop a run silently
        F("study report: one run's summary.json torn", lambda w: ["study", "report", str(w / "st1"), "-o", str(w / "rep1"), "--no-figures"], setup=lambda w: setup_study(w, "st1", "summary")),
        F("study report: one run's summary.json nested 5000 deep", lambda w: ["study", "report", str(w / "st2"), "-o", str(w / "rep2"), "--no-figures"], setup=lambda w: setup_study(w, "st2", "deep")),
        F("study report: bad value in one metrics_per_case.csv", lambda w: ["study", "report", str(w / "st3"), "-o", str(w / "rep3"), "--no-figures"], setup=lambda w: setup_study(w, "st3", "csv")),
        F("study report: an evaluation folder inside the study folder", lambda w: ["study", "report", str(w / "st4"), "-o", str(w / "rep4"), "--no-figures"], setup=lambda w: setup_study(w, "st4", "eval")),
        # tracebacks that are now one line
        F("python-tagged config.yaml in a run folder, train", lambda w: ["train", "-o", str(w / "tagged"), *TINY, "--epochs", "1"], setup=setup_tagged_run, check=marker),
        F("python-tagged config.yaml in a study's run folder, report", lambda w: ["study", "report", str(w / "st5"), "-o", str(w / "rep5"), "--no-figures"], setup=lambda w: setup_study(w, "st5", "tag"), check=marker),
        F("python-tagged --config file", lambda w: ["train", "-o", str(w / "r18"), "-c", str((w / "tag.yaml").write_text("seed: !!python/object/apply:os.getpid []\n") and w / "tag.yaml")]),
        F("YAML configuration nested 5000 levels", lambda w: ["train", "-o", str(w / "r19"), "-c", str((w / "deep.yaml").write_text("a: " + deep + "]" * 5000) and w / "deep.yaml")]),
        F("--loss-param nested 5000 levels", lambda w: ["train", "-o", str(w / "r20"), *TINY, "--loss-param", "delta=" + deep],
          shown="unifocal train -o $W/r20 TINY --loss-param delta=[[[... (5000 levels)"),
        F("configuration file that is not UTF-8", lambda w: ["train", "-o", str(w / "r21"), "-c", str(w / "latin1.yaml")], setup=setup_nonutf8),
        F("splits.json whose fold 0 trains on one of its validation cases", lambda w: ["train", "-o", str(w / "leak"), *TINY, "--epochs", "1"], setup=lambda w: setup_splits(w, "leak", "leak")),
        F("splits.json naming a case the dataset does not have", lambda w: ["train", "-o", str(w / "unk"), *TINY, "--epochs", "1"], setup=lambda w: setup_splits(w, "unk", "unknown")),
        # messages and small things
        F("read-only output folder (EACCES injected at the first write)", read_only, raw=True,
          shown="unifocal train -o $W/ro TINY --epochs 1 (creating files in $W/ro fails with EACCES)"),
        F("MONAI network with pretrained=True", lambda w: ["train", "-o", str(w / "r22"), *TINY, "--model", "SwinUNETR", "--model-param", "pretrained=true"]),
        F("1x1 PNG input", lambda w: ["predict", run_, str(png(w / "dot" / "dot.png", size=(1, 1))), "-o", str(w / "p19")]),
        F("input folder with .tif, .jpg, .NII.GZ and a text file", lambda w: ["predict", run_, str(w / "fmt"), "-o", str(w / "p20"), "-q"], setup=setup_formats,
          check=lambda: "written: " + ", ".join(sorted(p.name for p in (w / "p20").iterdir()))),
        F("x.png beside x.jpg in a predict input folder", lambda w: ["predict", run_, str(w / "stems"), "-o", str(w / "p21")], setup=setup_stems),
        F("x.png beside x.jpg in a pairs dataset", lambda w: ["data", "summary", str(w / "pstems"), "--layout", "pairs"], setup=setup_pair_stems),
        F("files written under umask 027", umask_run, raw=True, shown="umask 027; unifocal train -o $W/um TINY --epochs 1"),
        F("every mask background", lambda w: ["train", "-o", str(w / "r23"), "--dataset", str(pairs_ds(w / "allbg", fg=False)), *PAIRS, "--epochs", "1"]),
        F("-o under an existing file (file/sub)", lambda w: ["train", "-o", str(w / "afile" / "sub"), *TINY, "--epochs", "1"], setup=setup_file,
          check=lambda: "file kept" if (w / "afile").read_text() == "keep me" else "FILE CHANGED"),
        F("dataset.json nested 5000 levels", lambda w: ["data", "summary", str(msd(w / "deepjson"))], setup=lambda w: (msd(w / "deepjson") / "dataset.json").write_text(deep + "]" * 5000)),
        F("--config naming a relative dataset path (read from another directory)", lambda w: ["train", "-o", str(w / "r24"), "-c", str(w / "cfgdir" / "c.yaml"), *PAIRS, "--epochs", "1"],
          setup=lambda w: (pairs_ds(w / "cfgdir" / "ds"), (w / "cfgdir" / "c.yaml").write_text("dataset: {path: ds}\n")),
          check=lambda: "recorded dataset.path: " + __import__("yaml").safe_load((w / "r24" / "config.yaml").read_text())["dataset"]["path"].replace(str(w), "$W")),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", type=str, default="", help="rows to run: 3,5,52-93")
    args = ap.parse_args()
    only: set[int] = set()
    for x in filter(None, args.only.split(",")):
        a, _, b = x.partition("-")
        only |= set(range(int(a), int(b or a) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        os.environ["UNIFOCAL_CACHE"] = str(w / "cache")
        rc, _, err = run([*CLI, "train", "-o", str(w / "run"), *TINY, "--epochs", "1"])
        assert rc == 0, err
        png(w / "one" / "o.png")
        rows = []
        for i, f in enumerate(faults(w), start=1):
            if only and i not in only:
                continue
            t0 = time.perf_counter()
            if f.setup:
                f.setup(w)
            if f.raw:
                rc, outcome = f.cmd(w)
                shown = f.shown
            else:
                argv = f.cmd(w)
                rc, out, err = run([*CLI, *argv])
                outcome = last_line(err) or last_line(out)
                shown = f.shown or "unifocal " + " ".join(argv)
            if f.check:
                outcome += f" [{f.check()}]"
            shown = shown.replace(str(w), "$W").replace(" -q", "").replace(" ".join(TINY[:-1]), "TINY")
            outcome = outcome.replace(str(w), "$W").replace(os.getcwd(), "$PWD").replace("|", "\\|")
            rows.append(f"| {i} | {f.name} | `{shown}` | {rc} | {outcome} |")
            print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = ("| # | fault | command | exit | outcome |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    if args.out:
        args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
