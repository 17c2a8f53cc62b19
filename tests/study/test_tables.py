"""Report tables and statistics against independent references (hand t-intervals, scipy's Wilcoxon)."""

from __future__ import annotations

import csv
import io
import math
import shutil

import numpy as np
import pytest
from scipy import stats

from unifocal.study.results import Arm, aggregate, collect_runs, group_arms, paired_wilcoxon, pick_reference
from unifocal.study.tables import build_table, write_tables

from .fakes import write_run

RNG = np.random.default_rng(7)
N_FOLDS, N_CASES = 3, 5
PARAMS = {"unified_focal": {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5}, "dice": {}, "focal": {"alpha": 0.25, "gamma": 2.0}}
LEVEL = {"unified_focal": 0.8, "dice": 0.7, "focal": 0.5}


def _make(root, classes=("1",)):
    """Three arms, three folds, five cases per fold; returns the raw numbers."""
    raw = {}
    for loss, params in PARAMS.items():
        arm = "-".join([loss] + [f"{k.rstrip('_')}{v:.6g}" for k, v in sorted(params.items())])
        for k in range(N_FOLDS):
            cases = {}
            for c in classes:
                cases[c] = {}
                for i in range(N_CASES):
                    m = {q: float(np.clip(LEVEL[loss] + RNG.normal(0, 0.1), 0, 1)) for q in ("dsc", "precision", "recall")}
                    cases[c][f"c{k}_{i}"] = m
                    raw[(loss, c, k, f"c{k}_{i}")] = m
            cfg = {"dataset": {"name": "phantom2d"}, "loss": {"name": loss, "params": params}, "fold": k, "n_folds": N_FOLDS}
            write_run(root / arm / f"fold{k}", cfg, cases)
    return raw


def _t_interval(x):
    x = np.asarray(x, float)
    n = len(x)
    return x.mean(), stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)


def test_fold_and_case_aggregation_and_wilcoxon(tmp_path):
    raw = _make(tmp_path)
    # an unfinished run must be ignored
    write_run(tmp_path / "dice" / "fold9", {"loss": {"name": "dice"}, "fold": 9},
              {"1": {"x": {"dsc": 0, "precision": 0, "recall": 0}}}, status="running")
    arms = group_arms(collect_runs(tmp_path))
    assert set(arms) == {"unified_focal-delta0.6-gamma0.2-lambda0.5", "dice", "focal-alpha0.25-gamma2"}
    dice = arms["dice"]
    assert sorted(dice.runs) == [0, 1, 2]
    fold_means = [np.mean([raw[("dice", "1", k, f"c{k}_{i}")]["recall"] for i in range(N_CASES)]) for k in range(N_FOLDS)]
    m, h = _t_interval(fold_means)
    got = aggregate(dice, "1", "recall", "folds")
    assert got.n == N_FOLDS and got.mean == pytest.approx(m) and got.half_width == pytest.approx(h)
    cases = [raw[("dice", "1", k, f"c{k}_{i}")]["recall"] for k in range(N_FOLDS) for i in range(N_CASES)]
    m, h = _t_interval(cases)
    got = aggregate(dice, "1", "recall", "cases")
    assert got.n == 15 and got.mean == pytest.approx(m) and got.half_width == pytest.approx(h)
    # Wilcoxon on the same numbers, paired by case id
    ids = [f"c{k}_{i}" for k in range(N_FOLDS) for i in range(N_CASES)]
    uf = [raw[("unified_focal", "1", int(c[1]), c)]["dsc"] for c in ids]
    fo = [raw[("focal", "1", int(c[1]), c)]["dsc"] for c in ids]
    p, n = paired_wilcoxon(arms["unified_focal-delta0.6-gamma0.2-lambda0.5"], arms["focal-alpha0.25-gamma2"], "1", "dsc")
    assert n == 15 and p == pytest.approx(stats.wilcoxon(uf, fo).pvalue)
    assert p < 0.01  # 0.8 vs 0.5 with sd 0.1


def test_table_formats(tmp_path):
    _make(tmp_path)
    arms = group_arms(collect_runs(tmp_path))
    t = build_table(arms)
    assert t.reference == "unified_focal-delta0.6-gamma0.2-lambda0.5"
    assert t.rows == ["focal-alpha0.25-gamma2", "dice", "unified_focal-delta0.6-gamma0.2-lambda0.5"]  # paper order
    assert [t.titles[r] for r in t.rows] == ["Focal", "Dice", "Unified Focal"]
    paths = write_tables(t, tmp_path / "out")
    md = paths["md"].read_text()
    header = md.splitlines()[0]
    assert header.startswith("| Loss | DSC | Precision | Recall | p DSC")
    uf_line = next(line for line in md.splitlines() if line.startswith("| Unified Focal"))
    # bold exactly where the column's best mean is
    for j, m in enumerate(("dsc", "precision", "recall")):
        best = max(t.rows, key=lambda r: t.cells[(r, "1", m)].mean)
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {t.titles[best]} |"))
        assert line.split(" | ")[1 + j].startswith("**")
    assert "ref." in uf_line
    assert "over folds" in md.lower() or "ci over folds" in md.lower()
    # CSV re-read equals the independent aggregation
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert [r["arm"] for r in rows] == t.rows
    for r in rows:
        ci = aggregate(arms[r["arm"]], "1", "dsc", "folds")
        assert float(r["1_dsc_mean"]) == pytest.approx(ci.mean)
        assert float(r["1_dsc_ci95"]) == pytest.approx(ci.half_width)
        assert r["ci_unit"] == "folds"
    assert float(rows[0]["1_dsc_p"]) == pytest.approx(
        paired_wilcoxon(arms[t.reference], arms[rows[0]["arm"]], "1", "dsc")[0])
    tex = paths["tex"].read_text()
    assert r"\textbf{" in tex and r"\toprule" in tex and r"$\pm$" in tex and "unified_focal" not in tex
    # the other unit
    tc = build_table(arms, unit="cases")
    assert tc.cells[("dice", "1", "dsc")].n == 15 and "cases" in tc.caption()
    with pytest.raises(ValueError, match="unit"):
        build_table(arms, unit="patients")
    with pytest.raises(ValueError, match="reference"):
        build_table(arms, reference="tversky")
    with pytest.raises(ValueError, match="no finished run"):
        build_table({})


def test_multiclass_columns(tmp_path):
    _make(tmp_path, classes=("0", "1", "2"))
    t = build_table(group_arms(collect_runs(tmp_path)))
    assert t.classes == ["1", "2"]  # background left out
    h = t.to_markdown().splitlines()[0]
    assert "DSC (1)" in h and "Recall (2)" in h and "p DSC (2)" in h
    assert len(h.split("|")) - 2 == 1 + 2 * 3 * 2
    t0 = build_table(group_arms(collect_runs(tmp_path)), include_background=True)
    assert t0.classes == ["0", "1", "2"]


def test_report_independent_of_folder_layout(tmp_path):
    """The same run folders, wherever a runner put them, give the same tables."""
    _make(tmp_path / "a")
    b = tmp_path / "b"
    for i, d in enumerate(sorted((tmp_path / "a").rglob("summary.json"))):
        shutil.copytree(d.parent, b / f"trial_{(i * 7) % 9:03d}")
    ta = build_table(group_arms(collect_runs(tmp_path / "a")))
    tb = build_table(group_arms(collect_runs(b)))
    assert ta.to_markdown() == tb.to_markdown() and ta.to_csv() == tb.to_csv()


def test_duplicate_fold_rejected(tmp_path):
    _make(tmp_path / "a")
    shutil.copytree(tmp_path / "a" / "dice" / "fold0", tmp_path / "a" / "copy")
    with pytest.raises(ValueError, match="two finished runs"):
        group_arms(collect_runs(tmp_path / "a"))


def test_reference_is_the_unified_focal_arm_closest_to_the_optimum():
    def arms(*settings):
        out = {"dice": Arm("dice", "dice", {})}
        for d, g, lam in settings:
            name = f"unified_focal-delta{d}-gamma{g}-lambda{lam}"
            out[name] = Arm(name, "unified_focal", {"delta": d, "gamma": g, "lambda_": lam})
        return out

    # the delta grid of Table 2 (gamma 0): delta 0.6, not the first arm; 0.5 and 0.7 are equally far
    delta_grid = arms(*[(d / 10, 0.0, 0.5) for d in range(1, 10)])
    assert pick_reference(delta_grid) == "unified_focal-delta0.6-gamma0.0-lambda0.5"
    assert pick_reference(arms((0.5, 0.0, 0.5), (0.7, 0.0, 0.5))) == "unified_focal-delta0.5-gamma0.0-lambda0.5"
    assert pick_reference(arms((0.6, 0.2, 0.0), (0.6, 0.2, 0.5), (0.6, 0.2, 1.0))).endswith("lambda0.5")
    assert pick_reference({"dice": Arm("dice", "dice", {})}) is None
    assert pick_reference(delta_grid, reference="dice") == "dice"


def _cells(md: str) -> dict[str, list[str]]:
    """``{row title: cells}`` of the Markdown table rows (header and rule left out)."""
    rows = [line.strip("|").split("|") for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    return {r[0].strip(): [c.strip().strip("*") for c in r[1:]] for r in rows[1:]}


def test_per_fold_table_against_the_raw_numbers(tmp_path):
    from unifocal.study.tables import per_fold_markdown

    raw = _make(tmp_path)
    arms = group_arms(collect_runs(tmp_path))
    table = build_table(arms)
    got = _cells(per_fold_markdown(arms, table, "precision"))
    fold_mean = {loss: [np.mean([raw[(loss, "1", k, f"c{k}_{i}")]["precision"] for i in range(N_CASES)])
                        for k in range(N_FOLDS)] for loss in PARAMS}
    titles = {arms[r].loss: table.titles[r] for r in table.rows}
    assert set(got) == set(titles.values())
    for loss in PARAMS:
        cells = got[titles[loss]]
        assert [float(c) for c in cells[:N_FOLDS]] == pytest.approx(fold_mean[loss], abs=5e-4)
        # rank by hand: 1 + number of losses with a higher fold mean
        ranks = [1 + sum(fold_mean[o][k] > fold_mean[loss][k] for o in PARAMS) for k in range(N_FOLDS)]
        assert float(cells[N_FOLDS]) == pytest.approx(np.mean(ranks), abs=0.05)
    for loss in ("dice", "focal"):
        d = [raw[(loss, "1", k, f"c{k}_{i}")]["precision"] - raw[("unified_focal", "1", k, f"c{k}_{i}")]["precision"]
             for k in range(N_FOLDS) for i in range(N_CASES)]
        cells = got[titles[loss]]
        assert float(cells[N_FOLDS + 1]) == pytest.approx(float(np.median(d)), abs=5e-4)
        assert cells[N_FOLDS + 2] == f"{sum(x > 0 for x in d)} / {sum(x < 0 for x in d)}"
    assert got[titles["unified_focal"]][N_FOLDS + 1:] == ["ref.", "ref."]
    with pytest.raises(ValueError, match="hausdorff"):
        per_fold_markdown(arms, table, "hausdorff")


def test_per_fold_table_in_the_report(tmp_path):
    from unifocal.study.report import make_report

    _make(tmp_path / "runs")
    rep = make_report(tmp_path / "runs", figures=False)
    text = (rep.out_dir / "per_fold.md").read_text()
    assert text == rep.extra["per_fold"] and "Fold 2" in text
    assert text.split("\n\n")[1] in rep.page_md.read_text()
