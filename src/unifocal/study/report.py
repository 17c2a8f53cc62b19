"""``unifocal study report``: tables, statistics and figures from finished run folders only.

The report never trains and never changes a run folder: it reads every run folder under the given
folder whose ``summary.json`` says ``finished`` (whichever runner wrote it), and writes into
``<runs_dir>/report`` (or ``out_dir``):

* ``table.md``, ``table.csv``, ``table.tex``: loss | DSC | Precision | Recall, mean ± 95% CI,
  best in bold, per class, Wilcoxon p-values against the Unified Focal loss;
* ``figures/fig2_loss_curves.{png,pdf}``, ``figures/sensitivity_<class>.{png,pdf}`` (tuning grids),
  ``figures/learning_curves/<arm>.{png,pdf}``, ``figures/fig3_overlay.{png,pdf}`` (when the runs saved
  predictions and the dataset can be read);
* ``per_fold.md``: each loss's mean DSC per fold, its mean rank over the folds, and the median per-case
  difference to the reference with the number of cases above and below it
  (:func:`unifocal.study.tables.per_fold_markdown`);
* ``convergence.md``: every run's best and stopping epochs and the last-quarter gain of its best
  validation DSC (:mod:`unifocal.study.convergence`), and
  ``figures/learning_curves_fold<k>.{png,pdf}``: every arm's curves on the first fold all arms have,
  and ``figures/diagnostics_fold<k>`` from runs trained with ``diagnostics: true``;
* ``statistics.md``: the model-level statistics, the trained network as the unit
  (:mod:`unifocal.study.statistics`): the noise floor (seed-to-seed spread), each loss against the
  reference with a hierarchical bootstrap interval, Holm-corrected p and a verdict in a fixed
  vocabulary, the mean ranks over networks with the Friedman test and Nemenyi critical difference, and
  the power the study had; ``figures/cd_diagram.{png,pdf}``: the critical-difference diagram;
* ``paper.md`` (with ``paper``): the table beside one of the paper's published tables
  (:mod:`unifocal.study.paper`);
* ``report.md`` and ``report.html``: one page with the tables and figures.

Fig. 3 needs the dataset: a run's ``dataset.path`` that does not exist on this machine (a study
continued or reported elsewhere) is looked up as ``<data_root>/<folder name>``, ``data_root``
defaulting to the ``UNIFOCAL_DATA`` environment variable.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from unifocal._atomic import atomic_write_text
from unifocal.data.duplicates import load_duplicates
from unifocal.study.convergence import convergence_markdown, convergence_rows
from unifocal.study.figures import (
    cd_diagram,
    choose_overlay_case,
    diagnostics_figure,
    fig2_loss_curves,
    find_sweeps,
    fold_learning_curves_figure,
    learning_curves_figure,
    overlay_figure,
    sensitivity_figure,
)
from unifocal.study.paper import paper_comparison
from unifocal.study.results import Arm, RunResult, collect_runs, group_arms
from unifocal.study.statistics import model_level, model_level_markdown
from unifocal.study.tables import ResultTable, build_table, per_fold_markdown, write_tables
from unifocal.training.config import load_config_file, open_dataset

__all__ = ["REPORT_SETTINGS_FILE", "Report", "complete_fold_arms", "exclude_leaked", "make_report", "report_settings"]


@dataclass
class Report:
    """What :func:`make_report` wrote.

    Attributes:
        out_dir: the report folder.
        table: the numbers of the main table.
        tables: table files by format.
        figures: figure files (PNG and PDF) by name.
        page_md: the Markdown page.
        page_html: the HTML page.
        notes: what was skipped and why.
        n_runs: finished runs read.
        wall_time_s: the sum of the runs' ``wall_time_s`` (as written by training).
        extra: further Markdown sections by name (``per_fold``, ``convergence``, ``paper``).
    """

    out_dir: Path
    table: ResultTable
    tables: dict[str, Path]
    figures: dict[str, list[Path]] = field(default_factory=dict)
    page_md: Path | None = None
    page_html: Path | None = None
    notes: list[str] = field(default_factory=list)
    n_runs: int = 0
    wall_time_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def _dataset_of(config: dict[str, Any], data_root: str | Path | None = None) -> Any:
    """The runs' dataset, under ``data_root`` (default ``$UNIFOCAL_DATA``) when its recorded path is not here."""
    return open_dataset(config.get("dataset"), data_root if data_root is not None else os.environ.get("UNIFOCAL_DATA"))


REPORT_SETTINGS_FILE = "report.yaml"
_SETTINGS = {"unit": "folds", "reference": None, "include_background": False, "case_id": None, "overlays": True,
             "lambda_axis": "table2", "formats": ("png", "pdf"), "paper": None, "complete_folds": False,
             "duplicates": None}


def report_settings(runs_dir: str | Path) -> dict[str, Any]:
    """The study's own report settings: ``<runs_dir>/report.yaml`` (keys of :func:`make_report`: ``unit``,
    ``reference``, ``include_background``, ``case_id``, ``overlays``, ``lambda_axis``, ``formats``,
    ``paper``, ``complete_folds``, ``duplicates``) over
    the defaults. A committed study folder carries it, so that ``unifocal study report <folder>``
    rebuilds its committed tables and figures with no further option.

    Raises:
        ValueError: for an unreadable file or an unknown key.
    """
    out = dict(_SETTINGS)
    f = Path(runs_dir) / REPORT_SETTINGS_FILE
    if f.is_file():
        data = load_config_file(f)  # a YAML mapping, or a ValueError naming the file
        bad = sorted(set(data) - set(_SETTINGS))
        if bad:
            raise ValueError(f"{f}: unknown report setting(s) {bad}; allowed: {', '.join(_SETTINGS)}")
        out.update(data)
    out["formats"] = tuple(out["formats"])
    return out


def make_report(runs_dir: str | Path, out_dir: str | Path | None = None, *, unit: str | None = None,
                reference: str | None = None, include_background: bool | None = None,
                figures: bool = True, overlays: bool | None = None, case_id: str | None = None,
                lambda_axis: str | None = None, formats: Sequence[str] | None = None,
                digits: int = 3, paper: str | None = None, data_root: str | Path | None = None,
                complete_folds: bool | None = None, duplicates: str | Path | None = None) -> Report:
    """Write the tables, figures and report page of the finished runs under ``runs_dir``.

    Settings left ``None`` come from the study's ``report.yaml`` (:func:`report_settings`), else from
    the defaults named below.

    Args:
        runs_dir: the study folder (searched recursively for finished run folders).
        out_dir: where to write (default ``runs_dir/report``).
        unit: CI unit, ``"folds"`` (default, the paper's: over the per-fold means) or ``"cases"``.
        reference: arm or loss the Wilcoxon tests compare against (default: Unified Focal).
        include_background: also report the background class.
        figures: draw the figures (tables only when false).
        overlays: draw Fig. 3 (needs saved predictions and the dataset).
        case_id: the case of Fig. 3 (default: the case whose DSC differs most across losses).
        lambda_axis: λ axis of the sensitivity plot, ``"table2"`` (paper's column) or ``"eq20"``.
        formats: figure formats.
        digits: printed decimals.
        paper: a key of :data:`unifocal.study.paper.PAPER_TABLES` (e.g. ``table3``) to put beside.
        data_root: where to look for a dataset whose recorded path is not on this machine
            (default: the ``UNIFOCAL_DATA`` environment variable).
        complete_folds: compare the arms on the folds that every arm has finished (default false): a
            study run in several sittings reports a balanced table while its last fold is under way;
            the finished runs of the other folds are named in the notes and still appear in the
            convergence table (:func:`complete_fold_arms`).
        duplicates: a ``duplicates.json`` (``unifocal data duplicates``; relative to ``runs_dir``): every
            validation case with a near-duplicate on its run's training side is left out of every table
            (:func:`exclude_leaked`), for the leak-free re-analysis of a study whose folds were not grouped.

    Returns:
        A :class:`Report`.

    Raises:
        ValueError: if there is no finished run, or for invalid options.
    """
    runs_dir = Path(runs_dir)
    st = report_settings(runs_dir)
    given = {"unit": unit, "reference": reference, "include_background": include_background, "case_id": case_id,
             "overlays": overlays,
             "lambda_axis": lambda_axis, "formats": formats, "paper": paper, "complete_folds": complete_folds,
             "duplicates": duplicates}
    st.update({k: v for k, v in given.items() if v is not None})
    unit, reference, include_background, case_id = st["unit"], st["reference"], st["include_background"], st["case_id"]
    lambda_axis, formats, paper, overlays = st["lambda_axis"], tuple(st["formats"]), st["paper"], st["overlays"]
    runs = collect_runs(runs_dir)
    if not runs:
        raise ValueError(f"no finished run folder (summary.json with status finished) under {runs_dir}")
    leak_note = None
    if st["duplicates"] is not None:
        dup = Path(st["duplicates"])
        dup = dup if dup.is_absolute() else runs_dir / dup
        if not dup.is_file():
            raise ValueError(f"duplicates file {dup} does not exist (write it with unifocal data duplicates)")
        n_left, n_cases = exclude_leaked(runs, load_duplicates(dup))
        leak_note = (f"Leak-free re-analysis: {n_left} of {n_cases} validation cases have a near-duplicate in "
                     f"their run's training set ({dup.name}) and are left out of every table.")
    all_arms = group_arms(runs)
    arms, left_out = complete_fold_arms(all_arms) if st["complete_folds"] else (all_arms, {})
    out = Path(out_dir) if out_dir is not None else runs_dir / "report"
    table = build_table(arms, unit=unit, reference=reference, include_background=include_background,
                        digits=digits)
    rep = Report(out, table, write_tables(table, out, "table"), n_runs=len(runs),
                 wall_time_s=float(sum(float(r.summary.get("wall_time_s") or 0.0) for r in runs)))
    if leak_note:
        rep.notes.append(leak_note)
    for d, why in getattr(runs, "skipped", []):  # nothing is left out without a word
        rep.notes.append(f"left out: {_rel(Path(d), runs_dir)}: {why}")
    if left_out:
        common = ", ".join(map(str, sorted(next(iter(arms.values())).runs)))
        rep.notes.append(
            f"Comparison on the folds every loss has finished ({common}); left out of it until their fold is "
            "complete: "
            + "; ".join(f"fold {k}: {', '.join(table.titles.get(a, a) for a in names)}"
                        for k, names in sorted(left_out.items()))
            + " (in the convergence table).")
    rep.extra["per_fold"] = per_fold_markdown(arms, table)
    atomic_write_text(out / "per_fold.md", rep.extra["per_fold"])
    levels = [model_level(arms, table.rows, table.reference, c) for c in table.classes]
    rep.extra["statistics"] = "\n".join(
        model_level_markdown(ml, table.titles, table.rows, class_title=ml.cls if len(levels) > 1 else None)
        for ml in levels)
    atomic_write_text(out / "statistics.md", rep.extra["statistics"])
    conv = convergence_rows(all_arms, table.rows)
    rep.extra["convergence"] = convergence_markdown(conv, table.titles)
    atomic_write_text(out / "convergence.md", rep.extra["convergence"])
    if paper is not None:
        rep.extra["paper"] = paper_comparison(table, arms, paper)[0]
        atomic_write_text(out / "paper.md", rep.extra["paper"])
    figs = out / "figures"
    if figures:
        folds = sorted(set.intersection(*(set(a.runs) for a in arms.values())))
        if folds:
            p = fold_learning_curves_figure(arms, table.rows, table.titles, folds[0],
                                            figs / f"learning_curves_fold{folds[0]}", formats)
            if p:
                rep.figures[f"curves_fold{folds[0]}"] = p
            p = diagnostics_figure(arms, table.rows, table.titles, folds[0], figs / f"diagnostics_fold{folds[0]}",
                                   formats)
            if p:
                rep.figures[f"diagnostics_fold{folds[0]}"] = p
        for ml in levels:
            if ml.cd is not None:
                stem = "cd_diagram" if len(levels) == 1 else f"cd_diagram_{ml.cls}"
                rep.figures[stem] = cd_diagram(ml.ranks, ml.cd, table.titles, figs / stem, formats,
                                               title=f"{len(ml.blocks)} networks" + (f", {ml.cls}" if len(levels) > 1
                                                                                     else ""))
        rep.figures["fig2"] = fig2_loss_curves(figs / "fig2_loss_curves", formats=formats)
        if find_sweeps(arms):
            for c in table.classes:
                rep.figures[f"sensitivity_{c}"] = sensitivity_figure(
                    arms, figs / f"sensitivity_{c}", c, unit, lambda_axis, formats)
        for name in table.rows:
            p = learning_curves_figure(arms[name], figs / "learning_curves" / name, table.titles[name], formats)
            if p:
                rep.figures[f"learning_curves/{name}"] = p
        if overlays:
            # the figure is left out, with a note, for what the runs' folders and data can lack: a dataset
            # not on this machine or not openable (ValueError), a case it does not hold (another copy or
            # selection of the data), a prediction that is missing, unreadable or of another geometry
            # (ValueError, OSError); a case chosen with case_id is an error instead
            try:
                dataset = _dataset_of(runs[0].config, data_root)
                shown = case_id if case_id is not None else choose_overlay_case(arms, table.rows)
                if shown is not None and shown not in dataset.ids:
                    raise ValueError(f"case {shown!r} is not a case of the dataset {dataset.name} opened here")
                p = (overlay_figure(arms, table.rows, table.titles, dataset, figs / "fig3_overlay",
                                    case_id=shown, formats=formats) if shown is not None else [])
                if p:
                    rep.figures["fig3"] = p
                else:
                    rep.notes.append("Fig. 3 skipped: no case has saved predictions from every loss "
                                     "(train with save_predictions: true).")
            except (ValueError, OSError) as e:
                if case_id is not None:
                    raise
                rep.notes.append(f"Fig. 3 skipped: {e}")
    _write_pages(rep, runs_dir)
    return rep


def exclude_leaked(runs: Sequence[RunResult], groups: Sequence[Sequence[str]]) -> tuple[int, int]:
    """Leave out, in place, every validation case of a run that has a near-duplicate (a member of its
    group) in that run's training set (its ``split.json``).

    Returns:
        ``(cases left out, validation cases)``, distinct case ids over the runs.

    Raises:
        ValueError: a run without its ``split.json``.
    """
    group_of = {c: set(g) for g in groups for c in g}
    left: set[str] = set()
    total: set[str] = set()
    for r in runs:
        f = r.run_dir / "split.json"
        if not f.is_file():
            raise ValueError(f"run {r.run_dir} lacks split.json: cannot tell which cases leaked")
        train = set(json.loads(f.read_text()).get("train", []))
        ids = {cid for per in r.cases.values() for cid in per}
        leaked = {c for c in ids if (group_of.get(c, set()) - {c}) & train}
        for per in r.cases.values():
            for c in leaked:
                per.pop(c, None)
        left |= leaked
        total |= ids
    return len(left), len(total)


def complete_fold_arms(arms: dict[str, Arm]) -> tuple[dict[str, Arm], dict[int, list[str]]]:
    """The arms restricted to the folds that every arm has finished, and the arms whose runs were left
    out, by fold.

    Raises:
        ValueError: if no fold is finished by every arm.
    """
    common = set.intersection(*(set(a.runs) for a in arms.values())) if arms else set()
    if arms and not common:
        have = {n: sorted(a.runs) for n, a in arms.items()}
        raise ValueError(f"no fold is finished by every loss (finished folds: {have}); report without "
                         "complete_folds")
    kept = {n: replace(a, replicates={ks: r for ks, r in a.replicates.items() if ks[0] in common})
            for n, a in arms.items()}
    left: dict[int, list[str]] = {}
    for n, a in arms.items():
        for k in sorted(set(a.runs) - common):
            left.setdefault(k, []).append(n)
    return kept, left


def _rel(p: Path, base: Path) -> str:
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()


def _write_pages(rep: Report, runs_dir: Path) -> None:
    out = rep.out_dir
    t = rep.table
    hours = rep.wall_time_s / 3600.0
    compute = (f"{rep.n_runs} finished runs, {len(t.rows)} losses / settings; training + evaluation wall "
               f"time {rep.wall_time_s:.0f} s ({hours:.2f} h, sum of the runs' summary.json wall_time_s).")
    md = [f"# Study report: {runs_dir}", "", compute, "",
          "## Results", "", t.to_markdown()]
    body = [f"<h1>Study report: {html.escape(str(runs_dir))}</h1>",
            f"<p>{html.escape(compute)}</p>", "<h2>Results</h2>",
            t.to_html()]
    md += ["Files: " + ", ".join(f"[{k}]({_rel(v, out)})" for k, v in rep.tables.items()), ""]
    for key, title in (("per_fold", "Per fold, and per case against the reference"),
                       ("statistics", "Model-level statistics: noise floor, verdicts, ranks, power"),
                       ("paper", "Beside the paper"),
                       ("convergence", "Convergence of every run")):
        if key in rep.extra:
            md += [f"## {title}", "", rep.extra[key]]
            body += [f"<h2>{html.escape(title)}</h2>", f"<pre>{html.escape(rep.extra[key])}</pre>"]
    sections = [*[(k, "Critical-difference diagram (Friedman / Nemenyi, Demšar 2006)"
                   + (f", class {k[len('cd_diagram_'):]}" if k != "cd_diagram" else ""))
                  for k in rep.figures if k.startswith("cd_diagram")],
                ("fig2", "Fig. 2: loss components against the probability of the true class"),
                *[(k, f"Sensitivity ({k.split('_', 1)[1]})") for k in rep.figures if k.startswith("sensitivity_")],
                ("fig3", "Fig. 3: segmentations per loss"),
                *[(k, f"Learning curves of every loss, fold {k[len('curves_fold'):]}")
                  for k in rep.figures if k.startswith("curves_fold")],
                *[(k, f"Training diagnostics, fold {k[len('diagnostics_fold'):]}")
                  for k in rep.figures if k.startswith("diagnostics_fold")],
                *[(k, f"Learning curves: {t.titles.get(k.split('/', 1)[1], k)}")
                  for k in rep.figures if k.startswith("learning_curves/")]]
    for key, title in sections:
        paths = rep.figures.get(key)
        if not paths:
            continue
        png = next((p for p in paths if p.suffix == ".png"), paths[0])
        alt = title.replace("[", "(").replace("]", ")")
        md += [f"## {title}", "", f"![{alt}]({_rel(png, out)})", ""]
        body += [f"<h2>{html.escape(title)}</h2>", f'<img src="{html.escape(_rel(png, out))}" '
                 f'alt="{html.escape(title)}" style="max-width:100%">']
    if rep.notes:
        md += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
        body += ["<h2>Notes</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in rep.notes], "</ul>"]
    rep.page_md = out / "report.md"
    atomic_write_text(rep.page_md, "\n".join(md))
    rep.page_html = out / "report.html"
    atomic_write_text(rep.page_html, "<!doctype html><html><head><meta charset='utf-8'><title>unifocal study report"
                             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
                             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
                             "caption{caption-side:bottom;font-size:90%;text-align:left}</style></head><body>"
                             + "\n".join(body) + "</body></html>\n")
