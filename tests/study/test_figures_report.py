"""Figures (against the spec's formulas / the loss library) and the report page, on fake run folders."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unifocal.study.figures import (
    choose_overlay_case,
    fig2_components,
    find_sweeps,
    overlay_figure,
    rescaled_loss,
)
from unifocal.study.plan import tune_plan
from unifocal.study.report import make_report
from unifocal.study.results import collect_runs, group_arms

from .fakes import fake_metrics, write_run


def test_fig2_components_special_cases():
    p = np.linspace(0.01, 0.99, 50)
    d = 0.6
    c0 = fig2_components(p, 0.0, d)
    # γ = 0: background focal term is (1-δ)·CE, foreground FT term is the Tversky loss 1 - TI
    np.testing.assert_allclose(c0["focal_bg"], (1 - d) * -np.log(p))
    np.testing.assert_allclose(c0["ft_fg"], 1 - p / (p + d * (1 - p)))
    c = fig2_components(p, 0.5, d)
    # γ suppresses the background focal term and enhances the foreground FT term
    assert np.all(c["focal_bg"] <= c0["focal_bg"] + 1e-12)
    assert np.all(c["ft_fg"] >= c0["ft_fg"] - 1e-12)
    np.testing.assert_allclose(c["ft_fg"], (d * (1 - p) / (p + d * (1 - p))) ** 0.5)


def test_fig2_components_match_loss_library():
    """One position, probability input: the library's asymmetric losses give the plotted components."""
    from unifocal.losses import get_loss

    p = torch.tensor([0.05, 0.3, 0.7, 0.95], dtype=torch.float64)
    d, g = 0.6, 0.5
    comp = fig2_components(p.numpy(), g, d)
    loss = get_loss("asymmetric_focal", delta=d, gamma=g, input="probs", reduction="none")
    for k, target in (("focal_fg", 1), ("focal_bg", 0)):
        # p is the probability of the true class
        probs = torch.stack([1 - p, p], 1) if target == 1 else torch.stack([p, 1 - p], 1)
        out = loss(probs[..., None], torch.full((4, 1), target, dtype=torch.long)).reshape(4)
        np.testing.assert_allclose(out.double().numpy(), comp[k], rtol=1e-4)
    # focal Tversky: the absent class contributes 1 - TI = 1 (TI ~ smooth / ... ~ 0) and the loss is the
    # mean over the two classes, so 2·L - 1 is the plotted component of the present class
    ft = get_loss("asymmetric_focal_tversky", delta=d, gamma=g, input="probs", reduction="none")
    for k, target in (("ft_fg", 1), ("ft_bg", 0)):
        probs = torch.stack([1 - p, p], 1) if target == 1 else torch.stack([p, 1 - p], 1)
        out = ft(probs[..., None], torch.full((4, 1), target, dtype=torch.long)).reshape(4)
        np.testing.assert_allclose(2 * out.double().numpy() - 1, comp[k], atol=1e-3)


def _tune_study(root, with_logs=True):
    base = {"dataset": {"name": "phantom2d"}, "epochs": 1}
    specs = tune_plan(base, root, "delta=0.3,0.6,0.9;gamma=0.2", n_folds=2, validate=False)
    specs += tune_plan(base, root, "lambda=0,0.5,1;gamma=0.2;delta=0.6", n_folds=2, validate=False)
    for s in specs:
        logs = [{"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "val_dsc": 0.3 * e,
                 "lr": 0.01, "seconds": 1} for e in range(3)] if with_logs else None
        write_run(s.run_dir, s.config, fake_metrics(s.config), log_rows=logs)
    return specs


def test_find_sweeps(tmp_path):
    _tune_study(tmp_path)
    arms = group_arms(collect_runs(tmp_path))
    sw = find_sweeps(arms)
    assert set(sw) == {"delta", "lambda_"}
    assert [arms[n].params["delta"] for n in sw["delta"]] == [0.3, 0.6, 0.9]
    assert [arms[n].params["lambda_"] for n in sw["lambda_"]] == [0.0, 0.5, 1.0]


def test_report_page_and_figures(tmp_path):
    _tune_study(tmp_path)
    rep = make_report(tmp_path, overlays=False, formats=("png", "pdf"))
    out = tmp_path / "report"
    for f in ("table.md", "table.csv", "table.tex", "report.md", "report.html",
              "figures/fig2_loss_curves.png", "figures/fig2_loss_curves.pdf",
              "figures/sensitivity_1.png", "figures/sensitivity_1.pdf"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    # fig2, sensitivity, 5 arms' learning curves, every arm's curves on fold 0, the critical-difference diagram
    assert len(rep.figures) == 2 + 5 + 1 + 1 and "curves_fold0" in rep.figures and "cd_diagram" in rep.figures
    assert "Friedman test over the networks" in (out / "statistics.md").read_text()
    assert (out / "figures/fig2_loss_curves.pdf").read_bytes()[:4] == b"%PDF"
    assert Image.open(out / "figures/sensitivity_1.png").size[0] > 500
    page = (out / "report.md").read_text()
    # every linked image exists
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert len(links) == len(rep.figures)
    assert all((out / link).is_file() for link in links)
    assert "| Loss | DSC |" in page
    assert rep.n_runs == 10 and rep.wall_time_s == pytest.approx(0.1 * 10)  # fakes write 0.1 s each
    assert "wall time 1 s" in page
    html = (out / "report.html").read_text()
    assert html.count("<img") == len(links) and "<b>" in html
    # the report only reads: run folders unchanged, and a second report gives the same table
    assert (out / "table.md").read_text() == make_report(tmp_path, figures=False).table.to_markdown()


def test_report_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="no finished run"):
        make_report(tmp_path)



def _overlay_study(root, case: str) -> None:
    """Two finished runs on a small phantom, each with a saved prediction of ``case``."""
    lab = np.zeros((32, 32), np.uint8)
    lab[8:16, 8:16] = 1
    for loss in ("dice", "tversky"):
        d = root / loss / "fold0"
        write_run(d, {"dataset": {"name": "phantom2d", "options": {"n_cases": 3, "size": 32}},
                      "loss": {"name": loss, "params": {}}, "fold": 0},
                  {"1": {case: {"dsc": 0.5, "precision": 1, "recall": 1}}})
        (d / "predictions").mkdir()
        Image.fromarray(lab * 255).save(d / "predictions" / f"{case}.png")


def test_fig3_of_a_case_the_dataset_lacks_is_a_note_a_bug_is_not(tmp_path, monkeypatch):
    import unifocal.study.report as report

    _overlay_study(tmp_path / "lacks", "not_in_the_phantom")
    rep = make_report(tmp_path / "lacks", formats=("png",))
    assert "fig3" not in rep.figures
    assert any(n.startswith("Fig. 3 skipped: case 'not_in_the_phantom' is not a case of the dataset phantom2d")
               for n in rep.notes), rep.notes
    with pytest.raises(ValueError, match="not a case of the dataset"):  # a case asked for is an error
        make_report(tmp_path / "lacks", formats=("png",), case_id="not_in_the_phantom")

    _overlay_study(tmp_path / "held", "phantom2d_000")
    assert "fig3" in make_report(tmp_path / "held", formats=("png",)).figures

    def bug(*args, **kwargs):
        return {}["a key the code forgot"]

    monkeypatch.setattr(report, "overlay_figure", bug)
    with pytest.raises(KeyError, match="a key the code forgot"):  # not a note in the report
        make_report(tmp_path / "held", formats=("png",))


class _DS:
    """Minimal dataset: ``original(id)`` and ``num_classes``."""

    num_classes = 2

    def __init__(self, labels):
        self.labels = labels

    def original(self, cid):
        class C:
            pass

        c = C()
        c.label = self.labels[cid]
        c.image = np.random.default_rng(0).random((1, *c.label.shape)).astype(np.float32)
        return c


def test_overlay_from_png_predictions(tmp_path):
    lab = np.zeros((40, 40), np.uint8)
    lab[10:20, 12:25] = 1
    cfg = lambda loss, k: {"dataset": {"name": "phantom2d"}, "loss": {"name": loss, "params": {}}, "fold": k}  # noqa: E731
    for loss, shift in (("dice", 0), ("tversky", 3)):
        d = tmp_path / loss / "fold0"
        pred = np.roll(lab, shift, axis=1)
        dsc = 2 * (pred & lab).sum() / (pred.sum() + lab.sum())
        # "c" (empty ground truth, tp = fn = 0) has the largest DSC spread but shows no lesion
        write_run(d, cfg(loss, 0), {"1": {"a": {"dsc": dsc, "precision": 1, "recall": 1},
                                          "b": {"dsc": 1, "precision": 1, "recall": 1},
                                          "c": {"dsc": float(shift == 0), "precision": 1, "recall": 1,
                                                "tp": 0, "fn": 0, "fp": 3 * (shift > 0)}}})
        (d / "predictions").mkdir()
        Image.fromarray(pred * 255).save(d / "predictions" / "a.png")
        Image.fromarray(lab * 255).save(d / "predictions" / "b.png")
        Image.fromarray(np.zeros_like(lab)).save(d / "predictions" / "c.png")
        np.savez(d / "predictions" / "a_probs.npz", probs=np.zeros((2, 4)))
    arms = group_arms(collect_runs(tmp_path))
    assert choose_overlay_case(arms, ["dice", "tversky"]) == "a"
    assert choose_overlay_case(arms, ["dice"]) in ("a", "b")
    ds = _DS({"a": lab, "b": lab, "c": np.zeros_like(lab)})
    paths = overlay_figure(arms, ["dice", "tversky"], {"dice": "Dice", "tversky": "Tversky"}, ds, tmp_path / "fig3")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="no saved prediction"):
        overlay_figure(arms, ["dice", "tversky"], {}, ds, tmp_path / "x", case_id="zzz")


def test_cli_dry_run_and_report(tmp_path):
    from unifocal.cli import app

    r = CliRunner().invoke(app, ["study", "compare", "--dataset", "phantom2d", "--losses", "dice,unified_focal",
                                 "--folds", "2", "--output", str(tmp_path / "s"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "4 runs" in r.output and "unified_focal-delta0.6-gamma0.2-lambda0.5/fold1" in r.output
    r = CliRunner().invoke(app, ["study", "tune", "--dataset", "phantom2d", "--folds", "2", "--output",
                                 str(tmp_path / "t"), "--dry-run"])
    assert r.exit_code == 0 and "50 runs" in r.output
    r = CliRunner().invoke(app, ["study", "compare", "--dataset", "phantom2d", "--losses", "dize",
                                 "--output", str(tmp_path / "s"), "--dry-run"])
    assert r.exit_code == 2 and "dize" in r.output
    _tune_study(tmp_path / "u", with_logs=False)
    r = CliRunner().invoke(app, ["study", "report", str(tmp_path / "u"), "--no-figures", "--unit", "cases"])
    assert r.exit_code == 0, r.output
    assert "CI over cases" in r.output and (tmp_path / "u" / "report" / "table.tex").is_file()
    r = CliRunner().invoke(app, ["study", "report", str(tmp_path / "u"), "--no-figures", "--unit", "x"])
    assert r.exit_code == 2 and "unit" in r.output


def test_overlay_from_nifti_predictions_3d(tmp_path):
    import nibabel as nib

    lab = np.zeros((20, 24, 10), np.uint8)
    lab[5:12, 6:14, 3:7] = 1
    lab[8:10, 8:10, 4:6] = 2  # second rare class
    for loss in ("dice", "unified_focal"):
        d = tmp_path / loss / "fold0"
        write_run(d, {"dataset": {"name": "phantom3d"}, "loss": {"name": loss, "params": {}}, "fold": 0},
                  {"1": {"v": {"dsc": 0.5, "precision": 1, "recall": 1}}})
        (d / "predictions").mkdir()
        nib.save(nib.Nifti1Image(np.roll(lab, 1, axis=0), np.eye(4)), str(d / "predictions" / "v.nii.gz"))
    arms = group_arms(collect_runs(tmp_path))
    ds = _DS({"v": lab})
    ds.num_classes = 3
    paths = overlay_figure(arms, ["dice", "unified_focal"], {}, ds, tmp_path / "fig3", formats=("png",))
    assert paths and Image.open(paths[0]).size[0] > 300
    # a prediction whose geometry differs from the label is an error, not a silent misalignment
    nib.save(nib.Nifti1Image(lab[:-1], np.eye(4)), str(tmp_path / "dice" / "fold0" / "predictions" / "v.nii.gz"))
    with pytest.raises(ValueError, match="shape"):
        overlay_figure(arms, ["dice", "unified_focal"], {}, ds, tmp_path / "fig3b", formats=("png",))


@pytest.mark.parametrize("curve", [[0.8, 0.5, 0.3, 0.35], [-0.1, -0.25, -0.36, -0.3]])
def test_rescaled_loss_starts_at_one_and_is_zero_at_the_best_epoch(curve):
    # Combo's loss is negative: dividing by the first value would turn its fall into a rise
    r = rescaled_loss(curve)
    v = np.asarray(curve)
    assert r[0] == pytest.approx(1.0) and r[int(np.argmin(v))] == pytest.approx(0.0)
    assert np.all(np.diff(r) * np.diff(v) > 0)  # same direction as the loss
    assert rescaled_loss([0.2, 0.3]) == pytest.approx([0.0, 0.1])  # first value lowest: shifted only


def test_deepest_block():
    from unifocal.study.figures import deepest_block

    blocks = ["down.0", "down.1", "down.10", "down.2", "up.0", "head"]
    assert deepest_block(blocks) == "down.10"  # by index, not by name
    assert deepest_block(["enc", "mid", "dec"]) == "mid"
    with pytest.raises(ValueError, match="no gradient block"):
        deepest_block([])


def test_diagnostics_figure_from_run_folders(tmp_path):
    import csv

    from unifocal.study.figures import diagnostics_figure

    _tune_study(tmp_path)
    arms = group_arms(collect_runs(tmp_path))
    name = next(iter(arms))
    fields = ["epoch", "grad/down.0", "grad/down.1", "grad/head", "val_fg_pred", "val_fg_true", "val_fg_prob"]
    run_dir = arms[name].runs[0].run_dir
    with (run_dir / "diagnostics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for e in range(1, 4):
            w.writerow([e, 1e-3, 1e-9 * e, 0.1, 0.0, 0.09, 0.05 * e])
    assert diagnostics_figure(arms, list(arms), {}, 1, tmp_path / "none", formats=("png",)) == []  # no file
    out = diagnostics_figure(arms, list(arms), {}, 0, tmp_path / "diag", formats=("png",))
    assert out == [tmp_path / "diag.png"] and Image.open(out[0]).size[0] > 1000
