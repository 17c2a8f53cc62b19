"""The committed results store (``results/<study>/``): the report rebuilds the committed tables.

Every study folder under ``results/`` that carries a ``report.yaml`` is reported again from its run
folders into a temporary folder, and the tables must be the committed ones, character for character;
the tables of ``docs/results.md`` must be those committed tables. This needs no data set: the report's
tables read only the small files of each run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from unifocal.study.report import REPORT_SETTINGS_FILE, make_report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
STUDIES = sorted(p.parent for p in RESULTS.glob(f"*/{REPORT_SETTINGS_FILE}"))
RUN_FILES = ("config.yaml", "split.json", "log.csv", "metrics_per_case.csv", "summary.json")


def test_the_store_holds_studies():
    assert STUDIES, f"no study folder with a {REPORT_SETTINGS_FILE} under {RESULTS}"


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_report_rebuilds_the_committed_tables(study, tmp_path):
    rep = make_report(study, tmp_path / "report", figures=False)
    committed = study / "report"
    names = (["table.md", "table.csv", "per_fold.md", "statistics.md", "convergence.md"]
             + (["paper.md"] if "paper" in rep.extra else []))
    for name in names:
        assert (tmp_path / "report" / name).read_text() == (committed / name).read_text(), f"{study.name}/{name}"
    # every table of the study appears in docs/results.md as committed
    page = (ROOT / "docs" / "results.md").read_text()
    for name in ("table.md", "paper.md"):
        if (committed / name).is_file():
            lines = _table_lines((committed / name).read_text())
            assert "\n".join(lines) in page, f"docs/results.md lacks {study.name}/report/{name}"


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_run_folders_hold_the_small_files_and_no_checkpoint(study):
    summaries = list(study.glob("**/summary.json"))
    assert summaries
    for s in summaries:
        for f in RUN_FILES:
            assert (s.parent / f).is_file(), f"{s.parent} lacks {f}"
    try:
        tracked = subprocess.run(["git", "ls-files", str(study)], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert tracked, f"{study} is not committed"
    assert not [t for t in tracked if t.endswith(".pt") or "/checkpoints/" in t or "/tensorboard/" in t]


def test_the_leak_free_reanalysis_of_the_old_busi_store_rebuilds(tmp_path):
    """``results/busi/report_twin_excluded``: the first BUSI study without its validation cases that have a
    near-duplicate on the training side of their fold (``docs/results.md``)."""
    committed = RESULTS / "busi" / "report_twin_excluded"
    if not committed.is_dir():
        pytest.skip("no leak-free re-analysis in the store")
    rep = make_report(RESULTS / "busi", tmp_path / "r", figures=False, duplicates="../busi_grouped/duplicates.json")
    assert any("161 of 550 validation cases" in n for n in rep.notes), rep.notes
    for name in ("table.md", "statistics.md", "per_fold.md"):
        assert (tmp_path / "r" / name).read_text() == (committed / name).read_text(), name
