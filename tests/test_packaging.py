"""Packaging contracts: light core, extras, version, command line without the pipeline, Python 3.10."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import unifocal

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ["monai", "scipy", "yaml", "nibabel", "SimpleITK", "PIL", "typer", "click", "rich", "tqdm",
            "matplotlib", "tensorboard"]

# run python with the pipeline packages made unimportable, as in a core-only install
BLOCK = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {PIPELINE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
for m in list(sys.modules):
    if m.split('.')[0] in {PIPELINE!r}:
        del sys.modules[m]
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=300)


def test_core_imports_without_pipeline_packages():
    r = _run("import unifocal.losses, unifocal.metrics, unifocal.integrations.metrics, unifocal.integrations.nnunet\n"
             "import torch\n"
             "from unifocal.losses import UnifiedFocalLoss\n"
             "print(float(UnifiedFocalLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))) >= 0)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


@pytest.mark.parametrize("argv", [["train"], ["losses"], []])
def test_cli_without_pipeline_says_in_one_line_what_to_install(argv):
    r = _run(f"from unifocal.__main__ import main\nsys.exit(main({argv!r}))")
    assert r.returncode == 2  # a configuration error (README: exit codes)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert 'pip install "unifocal[pipeline]"' in lines[0]


@pytest.mark.parametrize("entry", ["from unifocal.cli import main\nmain()",
                                   "from unifocal.__main__ import main\nsys.exit(main())"])
def test_one_handler_ends_a_command_the_same_way_from_either_entry_point(entry):
    """A file-system error is one line ``Error: ...`` naming the file, status 1; a warning is one line."""
    code = ("import errno, sys, warnings\n"
            "import unifocal.cli.data as stage\n"
            "def summarize(*args, **kwargs):\n"
            "    warnings.warn('a note for the user')\n"
            "    raise OSError(errno.ENOSPC, 'No space left on device', '/full/disk/summary.json')\n"
            "stage.summarize = summarize\n"
            "sys.argv = ['unifocal', 'data', 'summary', 'phantom2d', '-q']\n" + entry)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "warning: a note for the user"
    assert lines[1].startswith("Error: cannot write or read /full/disk/summary.json: No space left on device")
    assert len(lines) == 2, r.stderr


def test_version_everywhere():
    dist = importlib.metadata.version("unifocal")
    assert dist == unifocal.__version__
    for cmd in ([sys.executable, "-m", "unifocal", "--version"],):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
        assert out.strip() == f"unifocal {dist}"
    r = _run("from unifocal.__main__ import main\nsys.exit(main(['--version']))")  # no pipeline: still answers
    assert r.returncode == 0 and r.stdout.strip() == f"unifocal {dist}"


def test_metadata_frameworks_are_extras_with_lower_bounds_only():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.10"
    extras = meta["optional-dependencies"]
    assert [d.split(">=")[0] for d in meta["dependencies"]] == ["numpy"]  # no framework in the core
    assert extras["torch"] == ["torch>=2.13"] and extras["keras"] == ["keras>=3.6"]  # keras brings no torch
    for needs_torch in ("pipeline", "nnunet", "torchmetrics"):
        assert "unifocal[torch]" in extras[needs_torch], needs_torch
    every = list(meta["dependencies"]) + [d for ds in meta["optional-dependencies"].values() for d in ds]
    assert not [d for d in every if "==" in d or "<" in d], "metadata states lower bounds only"
    assert {"pipeline", "ray", "dev", "all", "nnunet", "torchmetrics"} <= set(meta["optional-dependencies"])
    # CI's core step installs constraints/oldest.txt: the lower bounds themselves
    pins = dict(line.split("==") for line in (ROOT / "constraints" / "oldest.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for dep in [*meta["dependencies"], *extras["torch"]]:
        name, low = dep.split(">=")
        assert pins[name].startswith(low), f"constraints/oldest.txt pins {name}=={pins[name]}, the bound is >={low}"
    assert (ROOT / "src" / "unifocal" / "py.typed").is_file()
    for f in ("LICENSE", "CITATION.cff", "CHANGELOG.md", "constraints/ci.txt", "constraints/ecosystem.txt",
              "constraints/oldest.txt"):
        assert (ROOT / f).is_file(), f


# names that typing / collections.abc gained after Python 3.10
NEWER_THAN_310 = {"Unpack", "Self", "Never", "LiteralString", "TypeVarTuple", "NotRequired", "Required",
                  "assert_never", "assert_type", "reveal_type", "dataclass_transform", "override", "TypeAliasType",
                  "get_overloads", "clear_overloads", "ReadOnly", "TypeIs", "Buffer"}
NEWER_MODULES = {"tomllib"}


def test_source_imports_nothing_newer_than_python_310_at_run_time():
    """Module-level imports (those run at import time) use only what Python 3.10 has."""
    bad = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # top level only: imports under `if TYPE_CHECKING:` are not run
            if isinstance(node, ast.ImportFrom) and node.module in ("typing", "collections.abc"):
                bad += [f"{path.name}: {a.name}" for a in node.names if a.name in NEWER_THAN_310]
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad += [f"{path.name}: {m}" for m in mods if m.split(".")[0] in NEWER_MODULES]
    assert not bad, bad


def test_without_torch_the_losses_say_what_to_install_and_the_description_imports():
    """The frameworks are extras: without torch, unifocal.spec imports and unifocal.losses / unifocal.metrics
    say in one line to install unifocal[torch] (CI checks the same in a real torch-free environment)."""
    code = ("import sys\n"
            "class _Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, _Block())\n"
            "import unifocal.spec\n"
            "assert unifocal.spec.loss_defaults('unified_focal') == {'delta': 0.6, 'gamma': 0.2, 'lambda_': 0.5}\n"
            "for module in ('unifocal.losses', 'unifocal.metrics'):\n"
            "    try:\n"
            "        __import__(module)\n"
            "    except ModuleNotFoundError as exc:\n"
            "        print(exc.name, '|', exc)\n"
            "    else:\n"
            "        raise SystemExit(module + ' imported without torch')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("torch | ") and 'pip install "unifocal[torch]"' in line
                                   for line in lines), lines
