"""The two commands of a fresh clone (README, first section): ``make demo`` and ``make test`` run
``scripts/dev.sh``, which is also the install of ``.ci/run``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "scripts" / "dev.sh"


def test_dev_script_parses_as_posix_shell():
    subprocess.run(["sh", "-n", str(DEV)], check=True)


def test_ci_and_make_share_the_install():
    ci = (ROOT / ".ci" / "run").read_text()
    step1 = ci[ci.index('step "1/4'):ci.index('step "lint"')]
    assert "sh scripts/dev.sh install .venv-ci" in step1
    assert "pip install" not in step1, "step 1 of .ci/run installs through scripts/dev.sh only"
    assert "UNIFOCAL_REQUIRE_KERAS=true" in step1
    make = (ROOT / "Makefile").read_text()
    assert "sh scripts/dev.sh" in make
    dev = DEV.read_text()
    for line in ("-c constraints/ci.txt torch", '-c constraints/ci.txt -e ".[all,dev]"', "-c constraints/ci.txt jax"):
        assert line in dev, line


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert readme.split("\n## ")[0].strip() == "# unifocal", "the two commands come before anything else"
    first = readme.split("\n## ", 2)[1]
    assert first.index("make demo") < first.index("make test")
    assert readme.index("make demo") < readme.index("pip install unifocal")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("make demo", "make test", "make venv", "make help"):
        assert target in out


def test_python_too_old_is_one_line(tmp_path):
    stub = tmp_path / "python3.9"  # answers the version question with 3.9, fails the >= 3.10 check
    stub.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.9 ;; *) exit 1 ;; esac\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    r = subprocess.run(["sh", str(DEV), "demo"], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": str(stub)})
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Python >= 3.10" in r.stderr and "3.9" in r.stderr
