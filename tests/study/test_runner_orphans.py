"""A killed study driver does not leave its worker processes behind (issue 12, defect 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has exited


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    code = ("import sys; from pathlib import Path; from unifocal.study.plan import RunSpec; "
            "from unifocal.study.runners import run_local; "
            "specs = [RunSpec(f'a{i}', 0, {'sleep': 120}, Path(sys.argv[1]) / f'a{i}') for i in range(2)]; "
            "run_local(specs, workers=2, train_fn='tests.study.fakes:sleepy_train', threads_per_worker=1)")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    driver = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env)
    pids: list[int] = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and len(pids) < 2:
            pids = [int(p.read_text()) for p in tmp_path.glob("a*/pid") if p.read_text()]
            assert driver.poll() is None, "the driver ended early"
            time.sleep(0.1)
        assert len(pids) == 2, "the two workers did not start"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "worker processes outlived their killed driver"
    finally:
        if driver.poll() is None:
            driver.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
