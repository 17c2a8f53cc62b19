"""The paper's published tables beside a study, and the convergence table of its runs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from scipy import stats

from unifocal.study.convergence import convergence_markdown, convergence_rows, last_quarter_gain
from unifocal.study.paper import PAPER_TABLES, paper_comparison, paper_table
from unifocal.study.plan import PAPER_SETTINGS, TABLE2_GRIDS, arm_name, table2_lambda
from unifocal.study.report import make_report
from unifocal.study.results import collect_runs, group_arms
from unifocal.study.tables import build_table

from .fakes import write_run

# A few published cells, copied by hand from the paper's Tables 2-5, against the module's transcription.
SPOT = [
    ("table3", "unified_focal", 0, "dsc", (0.814, 0.027)),
    ("table3", "focal", 0, "recall", (0.621, 0.042)),
    ("table4", "hybrid_focal", 0, "precision", (0.798, 0.032)),
    ("table5", "tversky", 1, "dsc", (0.711, 0.081)),
    ("table5", "focal", 0, "precision", (0.952, 0.011)),
    ("table2_delta", "0.9", 0, "recall", (0.902, 0.049)),
    ("table2_gamma", "0.35", 0, "dsc", (0.721, 0.106)),
    ("table2_lambda", "1", 0, "dsc", (0.555, 0.138)),  # Table 2's λ = 0 is Eq. 20's λ = 1
    ("table2_lambda", "0", 0, "recall", (0.843, 0.049)),  # Table 2's λ = 1
]


@pytest.mark.parametrize(("key", "row", "cls", "metric", "cell"), SPOT)
def test_transcribed_cells(key, row, cls, metric, cell):
    assert PAPER_TABLES[key].rows[row][(cls, metric)] == cell


def test_tables_are_complete():
    for key in ("table3", "table4", "table5"):
        assert set(PAPER_TABLES[key].rows) == set(PAPER_SETTINGS)
    assert len(PAPER_TABLES["table2_delta"].rows) == len(TABLE2_GRIDS["delta"][1]) == 9
    assert len(PAPER_TABLES["table2_lambda"].rows) == 11
    # the optimum of every Table 2 sweep is the paper's tuned setting (Table 3's Unified Focal row)
    uf = PAPER_TABLES["table3"].rows["unified_focal"]
    assert PAPER_TABLES["table2_gamma"].rows["0.2"] == uf
    assert PAPER_TABLES["table2_lambda"].rows["0.5"] == uf
    assert table2_lambda(0.3) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="unknown paper table 'table9'"):
        paper_table("table9")


def _study(tmp_path, arms_params, n_folds=2, log=None):
    rng = np.random.default_rng(0)
    for loss, params in arms_params:
        for k in range(n_folds):
            cfg = {"loss": {"name": loss, "params": params}, "fold": k, "dataset": {"name": "phantom2d"}}
            cases = {"lesion": {f"c{k}_{i}": {m: float(rng.uniform(0.3, 0.9)) for m in ("dsc", "precision", "recall")}
                                for i in range(6)}}
            write_run(tmp_path / arm_name(loss, params) / f"fold{k}", cfg, cases,
                      log_rows=log(loss, k) if log else None)
    return group_arms(collect_runs(tmp_path))


def test_paper_comparison_matches_rows_and_ranks(tmp_path):
    arms = _study(tmp_path, [(n, PAPER_SETTINGS[n]) for n in ("focal", "dice", "combo", "unified_focal")]
                  + [("dice", {"smooth": 1.0})])
    table = build_table(arms)
    md, matched = paper_comparison(table, arms, "table3")
    assert matched[arm_name("dice", {})] == "dice"
    assert matched[arm_name("dice", {"smooth": 1.0})] is None  # not the paper's setting: no paper cells
    assert matched[arm_name("unified_focal", PAPER_SETTINGS["unified_focal"])] == "unified_focal"
    uf_line = next(line for line in md.splitlines() if line.startswith("| Unified Focal |"))
    assert "0.814 ± 0.027" in uf_line and "0.838 ± 0.038" in uf_line
    ours = [table.cells[(r, "lesion", "dsc")].mean for r in table.rows if matched[r]]
    paper = [PAPER_TABLES["table3"].rows[matched[r]][(0, "dsc")][0] for r in table.rows if matched[r]]
    rho = stats.spearmanr(ours, paper)[0]
    assert f"Spearman ρ = {rho:.2f}" in md


def test_paper_comparison_of_a_delta_sweep(tmp_path):
    arms = _study(tmp_path, [("unified_focal", {"delta": d, "gamma": 0.0, "lambda_": 0.5}) for d in (0.3, 0.6)]
                  + [("unified_focal", {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5})])
    table = build_table(arms)
    md, matched = paper_comparison(table, arms, "table2_delta")
    assert sorted(v for v in matched.values() if v) == ["0.3", "0.6"]
    assert matched[arm_name("unified_focal", {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5})] is None
    assert "0.716 ± 0.061" in md  # δ = 0.3, DSC


def test_last_quarter_gain():
    assert last_quarter_gain([0.1, 0.5, 0.6, 0.7]) == pytest.approx(0.1)  # first 3 epochs: best 0.6
    assert last_quarter_gain([0.1, 0.8, 0.6, 0.7]) == 0.0
    assert last_quarter_gain([0.2] * 7 + [0.25]) == pytest.approx(0.05)  # 8 epochs: head is the first 6
    assert last_quarter_gain([0.4]) == pytest.approx(0.4)
    assert last_quarter_gain([0.1, float("nan"), 0.3, 0.2]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="empty"):
        last_quarter_gain([])


def test_convergence_table_and_report(tmp_path):
    def log(loss, k):
        n = 8 if loss == "dice" else 12
        dsc = [min(0.5, 0.1 * e) for e in range(1, n + 1)] if loss == "dice" else [0.05 * e for e in range(1, n + 1)]
        return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 / e, "val_dsc": dsc[e - 1], "lr": 1e-3,
                 "seconds": 1.0} for e in range(1, n + 1)]

    study = tmp_path / "study"
    arms = _study(study, [("dice", {}), ("focal", PAPER_SETTINGS["focal"])], log=log)
    rows = convergence_rows(arms)
    by = {(r.arm, r.fold): r for r in rows}
    d = by[(arm_name("dice", {}), 0)]
    assert (d.stop_epoch, d.last_quarter_gain) == (8, pytest.approx(0.0))  # 0.5 from epoch 5 on
    f = by[(arm_name("focal", PAPER_SETTINGS["focal"]), 1)]
    assert f.last_quarter_gain == pytest.approx(0.6 - 0.45)
    md = convergence_markdown(rows, {})
    assert "Converged (last-quarter gain of the best validation DSC ≤ 0.02): 2 of 4 runs (50%)." in md
    assert "never learned" not in md
    # a run with validation DSC 0 at every epoch has a flat curve because it has not learned
    flat = dataclasses.replace(d, best_val_dsc=0.0, last_quarter_gain=0.0)
    assert not flat.converged() and d.converged()
    md = convergence_markdown([flat, *rows[1:]], {})
    assert "| 0.000 | 0.000 (never learned) |" in md
    assert ("1 of 4 runs (25%); 1 never learned (validation DSC 0 at every epoch), not counted as converged."
            in md)
    rep = make_report(study, tmp_path / "rep", paper="table3", formats=("png",), overlays=False)
    assert (tmp_path / "rep" / "convergence.md").read_text() == rep.extra["convergence"]
    page = (tmp_path / "rep" / "report.md").read_text()
    assert "## Beside the paper" in page and "## Convergence of every run" in page
    assert (tmp_path / "rep" / "figures" / "learning_curves_fold0.png").is_file()
    assert re.search(r"Learning curves of every loss, fold 0", page)


def test_report_settings_file(tmp_path):
    from unifocal.study.report import report_settings

    assert report_settings(tmp_path)["unit"] == "folds"
    (tmp_path / "report.yaml").write_text("unit: cases\npaper: table3\n")
    st = report_settings(tmp_path)
    assert (st["unit"], st["paper"], st["formats"]) == ("cases", "table3", ("png", "pdf"))
    (tmp_path / "report.yaml").write_text("units: cases\n")
    with pytest.raises(ValueError, match=r"unknown report setting\(s\) \['units'\]"):
        report_settings(tmp_path)
    (tmp_path / "report.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"report\.yaml"):
        report_settings(tmp_path)


def test_report_on_the_folds_every_loss_has_finished(tmp_path):
    """A study run in several sittings: Dice has folds 0-2, the Unified Focal loss folds 0-1. With
    complete_folds the comparison uses folds 0-1 for both (the per-fold means recomputed here from the
    per-case files), the left-out run is named, and it still counts in the convergence table."""
    import csv

    from unifocal.study.report import complete_fold_arms

    def log(loss, k):
        return [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0 / e, "val_dsc": 0.1 * e, "lr": 1e-3, "seconds": 1.0}
                for e in range(1, 5)]

    study = tmp_path / "study"
    uf = ("unified_focal", PAPER_SETTINGS["unified_focal"])
    _study(study, [("dice", {})], n_folds=3, log=log)
    arms = _study(study, [uf], n_folds=2, log=log)
    kept, left = complete_fold_arms(arms)
    assert {n: sorted(a.runs) for n, a in kept.items()} == {arm_name("dice", {}): [0, 1], arm_name(*uf): [0, 1]}
    assert left == {2: [arm_name("dice", {})]}
    assert sorted(arms[arm_name("dice", {})].runs) == [0, 1, 2]  # the input is not changed

    def fold_mean(fold):
        with (study / "dice" / f"fold{fold}" / "metrics_per_case.csv").open() as f:
            return np.mean([float(r["dsc"]) for r in csv.DictReader(f)])

    rep = make_report(study, tmp_path / "rep", figures=False, complete_folds=True)
    cell = rep.table.cells[(arm_name("dice", {}), "lesion", "dsc")]
    assert cell.n == 2 and cell.mean == pytest.approx((fold_mean(0) + fold_mean(1)) / 2)
    assert any("fold 2: Dice" in n for n in rep.notes)
    assert "| Dice | 2 |" in (tmp_path / "rep" / "convergence.md").read_text()
    full = make_report(study, tmp_path / "all", figures=False)  # default: every finished fold
    cell = full.table.cells[(arm_name("dice", {}), "lesion", "dsc")]
    assert cell.n == 3 and cell.mean == pytest.approx(np.mean([fold_mean(k) for k in range(3)]))
    (study / "report.yaml").write_text("complete_folds: true\n")
    assert make_report(study, tmp_path / "set", figures=False).table.cells[
        (arm_name("dice", {}), "lesion", "dsc")].n == 2
    _study(tmp_path / "disjoint", [("dice", {})], n_folds=1)
    (tmp_path / "disjoint" / arm_name(*uf) / "fold1").mkdir(parents=True)
    write_run(tmp_path / "disjoint" / arm_name(*uf) / "fold1",
              {"loss": {"name": uf[0], "params": uf[1]}, "fold": 1, "dataset": {"name": "phantom2d"}},
              {"lesion": {"x": {"dsc": 0.5, "precision": 0.5, "recall": 0.5}}})
    with pytest.raises(ValueError, match="no fold is finished by every loss"):
        make_report(tmp_path / "disjoint", tmp_path / "d", figures=False, complete_folds=True)
