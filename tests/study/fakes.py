"""Fake run folders and a fake training function (module level, so spawn / Ray workers can import it)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def write_run(run_dir: Path, config: dict[str, Any], cases: dict[str, dict[str, dict[str, float]]],
              status: str = "finished", log_rows: list[dict[str, float]] | None = None) -> None:
    """Write a run folder following the contract: ``cases = {class: {case_id: {metric: value}}}``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with (run_dir / "metrics_per_case.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "class", "dsc", "precision", "recall", "tp", "fp", "fn"])
        for cls, per in cases.items():
            for cid, m in per.items():
                w.writerow([cid, cls, m["dsc"], m["precision"], m["recall"], m.get("tp", 1), m.get("fp", 1),
                            m.get("fn", 1)])
    if log_rows:
        with (run_dir / "log.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(log_rows[0]))
            w.writeheader()
            w.writerows(log_rows)
    (run_dir / "summary.json").write_text(json.dumps({"status": status, "best_epoch": 1, "epochs": 2,
                                                      "wall_time_s": 0.1, "metrics": {}}))


def seed_of(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)


def fake_metrics(config: dict[str, Any], n_cases: int = 4, classes: tuple[str, ...] = ("1",)
                 ) -> dict[str, dict[str, dict[str, float]]]:
    """Deterministic per-case metrics, a pure function of loss, parameters and fold."""
    fold = int(config["fold"])
    rng = np.random.default_rng(seed_of(config["loss"], fold))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for c in classes:
        out[c] = {f"case{fold}_{i}": {m: float(rng.uniform(0.3, 0.95)) for m in ("dsc", "precision", "recall")}
                  for i in range(n_cases)}
    return out


def fake_train(config: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Stand-in for ``train_and_evaluate``: records the call, fails once where asked, writes the folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    calls = run_dir / "calls.txt"
    calls.write_text(calls.read_text() + f"{os.getpid()}\n" if calls.exists() else f"{os.getpid()}\n")
    fail_flag = Path(config.get("splits_dir", "")) / f"fail-{run_dir.parent.name}-{run_dir.name}"
    if fail_flag.exists():
        fail_flag.unlink()
        (run_dir / "log.csv").write_text("epoch,train_loss\n0,1.0\n")  # interrupted: no summary
        raise RuntimeError("simulated interruption")
    write_run(run_dir, config, fake_metrics(config),
              log_rows=[{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.1 / (e + 1),
                         "val_dsc": 0.2 * e, "lr": 0.01, "seconds": 0.1} for e in range(3)])
    return json.loads((run_dir / "summary.json").read_text())


def sleepy_train(config: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Stand-in for a long training run: records this worker's pid in ``run_dir/pid`` and sleeps."""
    import time

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "pid").write_text(str(os.getpid()))
    time.sleep(float(config.get("sleep", 120)))
    return {}
