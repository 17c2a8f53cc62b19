"""Result tables in the paper's form (loss | DSC | Precision | Recall), as Markdown, CSV and LaTeX.

Each cell is ``mean ± half-width`` of the 95% Student-t confidence interval over the chosen unit (see
:mod:`unifocal.study.results`); the best mean of each column is in bold (ties at the printed precision
all bold). Multi-class data get one column group per class (the paper's kidney / tumour columns).
Beyond the paper: p-values of the paired Wilcoxon signed-rank test per case against the reference arm
(the Unified Focal loss).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from unifocal._atomic import atomic_write_text
from unifocal.losses.constants import PAPER_LOSSES
from unifocal.metrics import MeanCI
from unifocal.study.plan import PAPER_SETTINGS, arm_name, table2_lambda
from unifocal.study.results import (
    METRICS,
    Arm,
    aggregate,
    foreground_classes,
    paired_values,
    paired_wilcoxon,
    pick_reference,
)

__all__ = ["LOSS_TITLES", "ResultTable", "arm_title", "build_table", "per_fold_markdown", "write_tables"]

LOSS_TITLES: dict[str, str] = {
    "cross_entropy": "Cross entropy", "focal": "Focal", "dice": "Dice", "tversky": "Tversky",
    "focal_tversky": "Focal Tversky", "combo": "Combo", "hybrid_focal": "Hybrid Focal",
    "asymmetric_focal": "Asymmetric Focal", "asymmetric_focal_tversky": "Asymmetric Focal Tversky",
    "unified_focal": "Unified Focal", "symmetric_focal": "Symmetric Focal",
    "symmetric_focal_tversky": "Symmetric Focal Tversky", "symmetric_unified_focal": "Symmetric Unified Focal",
}
METRIC_TITLES = {"dsc": "DSC", "precision": "Precision", "recall": "Recall"}
_SYM = {"delta": "δ", "gamma": "γ", "lambda_": "λ", "alpha": "α", "beta": "β"}


def arm_title(loss: str, params: dict[str, Any]) -> str:
    """Human title: the paper's name at the paper's settings, else the name with its parameters.

    For the Unified Focal loss a λ other than 0.5 also shows its Table 2 column value (``1 - λ``).
    """
    base = LOSS_TITLES.get(loss, loss)
    if loss in PAPER_SETTINGS and arm_name(loss, params) == arm_name(loss, PAPER_SETTINGS[loss]):
        return base
    if not params:
        return base
    parts = []
    for k in sorted(params):
        v = params[k]
        s = f"{v:.4g}" if isinstance(v, float) else str(v)
        parts.append(f"{_SYM.get(k, k)}={s}")
        if loss == "unified_focal" and k == "lambda_" and not math.isclose(float(v), 0.5):
            parts[-1] += f" [Table 2 λ={table2_lambda(float(v)):.4g}]"
    return f"{base} ({', '.join(parts)})"


def _arm_order(arms: dict[str, Arm]) -> list[str]:
    def key(name: str) -> tuple:
        a = arms[name]
        i = PAPER_LOSSES.index(a.loss) if a.loss in PAPER_LOSSES else len(PAPER_LOSSES)
        return (i, a.loss, sorted((k, float(v) if isinstance(v, (int, float)) else 0.0)
                                  for k, v in a.params.items()), name)

    return sorted(arms, key=key)


@dataclass
class ResultTable:
    """Numbers of one table.

    Attributes:
        rows: arm names, in display order.
        titles: ``{arm: title}``.
        classes: reported classes.
        cells: ``{(arm, class, metric): MeanCI}``.
        pvalues: ``{(arm, class, metric): (p, n_pairs)}`` (absent for the reference arm).
        reference: the reference arm of the tests (``None``: no test).
        unit: ``"folds"`` or ``"cases"``.
        confidence: the CI level.
        digits: printed decimals.
    """

    rows: list[str]
    titles: dict[str, str]
    classes: list[str]
    cells: dict[tuple[str, str, str], MeanCI]
    pvalues: dict[tuple[str, str, str], tuple[float, int]]
    reference: str | None
    unit: str
    confidence: float = 0.95
    digits: int = 3

    def best(self, cls: str, metric: str) -> set[str]:
        """Arms with the highest mean (at the printed precision) in a column."""
        vals = {r: round(self.cells[(r, cls, metric)].mean, self.digits) for r in self.rows
                if math.isfinite(self.cells[(r, cls, metric)].mean)}
        if not vals:
            return set()
        top = max(vals.values())
        return {r for r, v in vals.items() if v == top}

    def caption(self) -> str:
        """What the numbers are: unit, CI method, test."""
        ns = sorted({c.n for c in self.cells.values()})
        n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}..{ns[-1]}"
        unit = ("the per-fold means of the validation cases (CI over folds)" if self.unit == "folds"
                else "all validation cases pooled over folds (CI over cases)")
        s = (f"Mean ± half-width of the two-sided {self.confidence:.0%} Student-t confidence interval "
             f"over {unit}, {n}. Best mean per column in bold.")
        if self.reference is not None:
            s += (f" p: two-sided paired Wilcoxon signed-rank test per case against "
                  f"{self.titles[self.reference]} (scipy.stats.wilcoxon).")
        return s

    def _p(self, r: str, cls: str, m: str) -> str:
        if r == self.reference:
            return "ref."
        p = self.pvalues.get((r, cls, m))
        if p is None or not math.isfinite(p[0]):
            return "–"
        return f"{p[0]:.3f}" if p[0] >= 0.001 else f"{p[0]:.1e}"

    def _headers(self, latex: bool = False) -> list[str]:
        multi = len(self.classes) > 1
        h = ["Loss"]
        for c in self.classes:
            for m in METRICS:
                h.append(f"{METRIC_TITLES[m]} ({c})" if multi else METRIC_TITLES[m])
        if self.reference is not None:
            for c in self.classes:
                for m in METRICS:
                    h.append(f"p {METRIC_TITLES[m]} ({c})" if multi else f"p {METRIC_TITLES[m]}")
        return h

    def to_markdown(self) -> str:
        """GitHub Markdown table with the caption below."""
        h = self._headers()
        lines = ["| " + " | ".join(h) + " |", "|" + "|".join(["---"] + [":-:"] * (len(h) - 1)) + "|"]
        for r in self.rows:
            row = [self.titles[r]]
            for c in self.classes:
                best = None
                for m in METRICS:
                    best = self.best(c, m)
                    txt = self.cells[(r, c, m)].format(self.digits)
                    row.append(f"**{txt}**" if r in best else txt)
            if self.reference is not None:
                row += [self._p(r, c, m) for c in self.classes for m in METRICS]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n\n" + self.caption() + "\n"

    def to_html(self) -> str:
        """HTML ``<table>`` (best per column in ``<b>``) with the caption."""
        h = self._headers()
        out = ["<table>", "<caption>" + html.escape(self.caption()) + "</caption>",
               "<thead><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in h) + "</tr></thead>", "<tbody>"]
        for r in self.rows:
            cells = [f"<td>{html.escape(self.titles[r])}</td>"]
            for c in self.classes:
                for m in METRICS:
                    txt = html.escape(self.cells[(r, c, m)].format(self.digits))
                    cells.append(f"<td><b>{txt}</b></td>" if r in self.best(c, m) else f"<td>{txt}</td>")
            if self.reference is not None:
                cells += [f"<td>{html.escape(self._p(r, c, m))}</td>" for c in self.classes for m in METRICS]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out += ["</tbody>", "</table>"]
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        """Wide CSV: one row per arm; per class and metric its mean, CI half-width, n and p-value."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        head = ["loss", "arm", "title"]
        for c in self.classes:
            for m in METRICS:
                head += [f"{c}_{m}_mean", f"{c}_{m}_ci95", f"{c}_{m}_n", f"{c}_{m}_p", f"{c}_{m}_best"]
        head.append("ci_unit")
        w.writerow(head)
        for r in self.rows:
            row: list[Any] = [r.split("-")[0], r, self.titles[r]]
            for c in self.classes:
                for m in METRICS:
                    ci = self.cells[(r, c, m)]
                    p = self.pvalues.get((r, c, m), (float("nan"), 0))[0]
                    row += [repr(ci.mean), repr(ci.half_width), ci.n, repr(p), int(r in self.best(c, m))]
            row.append(self.unit)
            w.writerow(row)
        return buf.getvalue()

    def to_latex(self, label: str = "tab:losses") -> str:
        """LaTeX ``table`` with ``booktabs`` rules (``\\usepackage{booktabs}``)."""
        def esc(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                         ("#", r"\#"), ("δ", r"$\delta$"), ("γ", r"$\gamma$"), ("λ", r"$\lambda$"),
                         ("α", r"$\alpha$"), ("β", r"$\beta$"), ("±", r"$\pm$")):
                s = s.replace(a, b)
            return s

        ncols = len(self.classes) * len(METRICS) * (2 if self.reference is not None else 1)
        out = [r"\begin{table}[t]", r"\centering",
               r"\caption{" + esc(self.caption()) + "}", r"\label{" + label + "}",
               r"\begin{tabular}{l" + "c" * ncols + "}", r"\toprule"]
        if len(self.classes) > 1:
            groups = " & ".join(rf"\multicolumn{{3}}{{c}}{{{esc(c)}}}" for c in self.classes)
            if self.reference is not None:
                groups += " & " + " & ".join(rf"\multicolumn{{3}}{{c}}{{p ({esc(c)})}}" for c in self.classes)
            out.append(" & " + groups + r" \\")
        heads = ["Loss"] + [METRIC_TITLES[m] for _ in self.classes for m in METRICS]
        if self.reference is not None:
            heads += [("p " if len(self.classes) == 1 else "") + METRIC_TITLES[m]
                      for _ in self.classes for m in METRICS]
        out.append(" & ".join(heads) + r" \\")
        out.append(r"\midrule")
        for r in self.rows:
            row = [esc(self.titles[r])]
            for c in self.classes:
                for m in METRICS:
                    ci = self.cells[(r, c, m)]
                    txt = ci.format(self.digits).replace("±", r"$\pm$")
                    row.append(rf"\textbf{{{txt}}}" if r in self.best(c, m) else txt)
            if self.reference is not None:
                row += [esc(self._p(r, c, m)) for c in self.classes for m in METRICS]
            out.append(" & ".join(row) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(out) + "\n"


def build_table(arms: dict[str, Arm], unit: str = "folds", reference: str | None = None,
                classes: Sequence[str] | None = None, include_background: bool = False,
                confidence: float = 0.95, digits: int = 3, tests: bool = True) -> ResultTable:
    """Aggregate arms into a :class:`ResultTable`.

    Args:
        arms: from :func:`unifocal.study.results.group_arms`.
        unit: ``"folds"`` (default, the paper's) or ``"cases"``.
        reference: arm (or loss name) to test against; default the Unified Focal loss
            (see :func:`unifocal.study.results.pick_reference`).
        classes: the classes to report (default: all but the background).
        include_background: also report the background class.
        confidence: CI level.
        digits: printed decimals.
        tests: compute the Wilcoxon tests.

    Raises:
        ValueError: if there is no arm, for an unknown unit, or an unknown class.
    """
    if not arms:
        raise ValueError("no finished run to report")
    if unit not in ("folds", "cases"):
        raise ValueError(f"unknown CI unit {unit!r}; use 'folds' or 'cases'")
    all_cls = foreground_classes(list(arms.values()), include_background)
    cls = list(classes) if classes else all_cls
    bad = [c for c in cls if c not in foreground_classes(list(arms.values()), True)]
    if bad:
        raise ValueError(f"class(es) {bad} not in the per-case metrics (have {all_cls})")
    rows = _arm_order(arms)
    ref = pick_reference(arms, reference) if tests else None
    cells, pvals = {}, {}
    for r in rows:
        for c in cls:
            for m in METRICS:
                cells[(r, c, m)] = aggregate(arms[r], c, m, unit, confidence)
                if ref is not None and r != ref:
                    pvals[(r, c, m)] = paired_wilcoxon(arms[ref], arms[r], c, m)
    titles = {r: arm_title(arms[r].loss, arms[r].params) for r in rows}
    return ResultTable(rows, titles, cls, cells, pvals, ref, unit, confidence, digits)


def per_fold_markdown(arms: dict[str, Arm], table: ResultTable, metric: str = "dsc") -> str:
    """Each loss fold by fold, and the direction of its per-case difference to the reference.

    One Markdown table per reported class: the mean ``metric`` of the validation cases of every fold
    (the best of each fold in bold), the loss's mean rank over the folds (1 = highest mean in a fold;
    ties share the average rank), and, against the table's reference arm, the median over the paired
    cases of the per-case difference ``loss − reference`` with the number of cases where the loss is
    higher and lower. The p-values of the main table say whether two losses differ per case; this
    says in which direction, and whether the folds agree. With a small number of folds the CI over
    folds of the main table is wide (Student-t with n − 1 degrees of freedom); the per-fold columns
    show what it is made of.

    Args:
        arms: the arms of ``table`` (from :func:`unifocal.study.results.group_arms`).
        table: from :func:`build_table` (rows, titles, classes, reference).
        metric: one of ``dsc``, ``precision``, ``recall``.

    Raises:
        ValueError: for an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")

    folds = sorted(set().union(*(set(arms[r].runs) for r in table.rows)))
    ref = table.reference
    out = []
    for c in table.classes:
        means = {r: arms[r].fold_means(c, metric) for r in table.rows}
        ranks: dict[str, list[float]] = {r: [] for r in table.rows}
        best: dict[int, set[str]] = {}
        for k in folds:
            have = [r for r in table.rows if math.isfinite(means[r].get(k, float("nan")))]
            if not have:
                continue
            rk = rankdata([-means[r][k] for r in have])  # unrounded: a tie in print is not a tie
            for r, v in zip(have, rk):
                ranks[r].append(float(v))
            best[k] = {r for r, v in zip(have, rk) if v == rk.min()}
        head = ["Loss", *[f"Fold {k}" for k in folds], "Mean rank"]
        if ref is not None:
            head += [f"Median Δ vs {table.titles[ref]}", "Cases higher / lower"]
        lines = [f"{METRIC_TITLES[metric]} ({c}) per fold:" if len(table.classes) > 1 else
                 f"{METRIC_TITLES[metric]} per fold:", "",
                 "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":-:"] * (len(head) - 1)) + "|"]
        for r in table.rows:
            row = [table.titles[r]]
            for k in folds:
                v = means[r].get(k, float("nan"))
                txt = f"{v:.{table.digits}f}" if math.isfinite(v) else "–"
                row.append(f"**{txt}**" if r in best.get(k, ()) else txt)
            row.append(f"{sum(ranks[r]) / len(ranks[r]):.1f}" if ranks[r] else "–")
            if ref is not None:
                if r == ref:
                    row += ["ref.", "ref."]
                else:
                    x, y = paired_values(arms[ref], arms[r], c, metric)
                    d = y - x
                    row += [f"{float(np.median(d)):+.{table.digits}f}" if d.size else "–",
                            f"{int((d > 0).sum())} / {int((d < 0).sum())}"]
            lines.append("| " + " | ".join(row) + " |")
        cap = (f"Mean {METRIC_TITLES[metric]} of each fold's validation cases (the mean over its seeds where a "
               f"fold has several); best of each fold in bold; mean rank over the folds (1 = best; ranks of the "
               f"unrounded values).")
        if ref is not None:
            cap += (f" Δ: median over the paired validation cases (all folds) of the per-case "
                    f"{METRIC_TITLES[metric]} of the loss minus that of {table.titles[ref]}, and the number of "
                    f"cases where the loss is higher / lower (equal cases in neither): the direction of the "
                    f"Wilcoxon test of the main table.")
        out.append("\n".join(lines) + "\n\n" + cap + "\n")
    return "\n".join(out)


def write_tables(table: ResultTable, out_dir: str | Path, stem: str = "table") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` atomically; returns the paths by format."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "tex": out / f"{stem}.tex"}
    atomic_write_text(paths["md"], table.to_markdown())
    atomic_write_text(paths["csv"], table.to_csv())
    atomic_write_text(paths["tex"], table.to_latex(label=f"tab:{stem}"))
    return paths
