"""The paper's published numbers (Tables 2-5), and tables that put a study's results beside them.

Numbers transcribed from Yeung, Sala, Schönlieb, Rundo, "Unified Focal loss: Generalising Dice and
cross entropy-based losses to handle class imbalanced medical image segmentation", Computerized
Medical Imaging and Graphics 95 (2022) 102026, Tables 2-5: mean ± 95% CI over the 5 cross-validation
folds (the paper does not say whether its CI is over folds or cases). Setups: BUS2017 with a 2D U-Net,
SGD, 100 epochs (Tables 2, 3); BraTS20 enhancing tumour (Table 4) and KiTS19 kidney / tumour (Table 5)
with a 3D U-Net and Adam. Table 2's λ column weights the Focal Tversky term (the authors' code):
Table 2's λ is ``1 - λ`` of Eq. 20, this library's ``lambda_`` (see ``docs/losses.md``).

A study's arm is matched to a paper row by its loss (Tables 3-5: the paper's seven losses at the
paper's settings) or by its swept parameter (Table 2: Unified Focal loss arms that differ from the
sweep's fixed settings in that parameter only). Classes are matched in order (our first foreground
class beside the paper's first), which is only meaningful when the study is the paper's task or a
stand-in for it; the table says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from unifocal.study.plan import PAPER_SETTINGS, arm_name
from unifocal.study.results import METRICS, Arm
from unifocal.study.tables import ResultTable

__all__ = ["PAPER_TABLES", "PaperTable", "paper_comparison", "paper_table"]

_Cell = tuple[float, float]  # mean, CI half-width


@dataclass(frozen=True)
class PaperTable:
    """One published table.

    Attributes:
        key: ``table2_delta``, ``table2_gamma``, ``table2_lambda``, ``table3``, ``table4``, ``table5``.
        title: what it is (dataset, classes).
        classes: the paper's class names, in order.
        rows: ``{row label: {(class index, metric): (mean, half-width)}}``.
        sweep: for Table 2: ``(parameter in this library's convention, fixed parameters)``.
    """

    key: str
    title: str
    classes: tuple[str, ...]
    rows: dict[str, dict[tuple[int, str], _Cell]]
    sweep: tuple[str, dict[str, float]] | None = None


def _rows(text: str, n_classes: int = 1) -> dict[str, dict[tuple[int, str], _Cell]]:
    out: dict[str, dict[tuple[int, str], _Cell]] = {}
    for line in text.strip().splitlines():
        label, *cells = [c.strip() for c in line.split("|")]
        if len(cells) != 3 * n_classes:
            raise ValueError(f"paper row {line!r} has {len(cells)} cells, expected {3 * n_classes}")
        row = {}
        for i, cell in enumerate(cells):
            mean, hw = (float(x) for x in cell.split("±"))
            row[(i // 3, METRICS[i % 3])] = (mean, hw)
        out[label] = row
    return out


_LOSSES_BUS2017 = _rows("""
focal | 0.653 ± 0.038 | 0.799 ± 0.037 | 0.621 ± 0.042
dice | 0.775 ± 0.042 | 0.841 ± 0.060 | 0.765 ± 0.048
tversky | 0.785 ± 0.024 | 0.815 ± 0.033 | 0.808 ± 0.026
focal_tversky | 0.781 ± 0.017 | 0.866 ± 0.024 | 0.750 ± 0.026
combo | 0.791 ± 0.022 | 0.833 ± 0.040 | 0.800 ± 0.048
hybrid_focal | 0.795 ± 0.026 | 0.866 ± 0.025 | 0.777 ± 0.028
unified_focal | 0.814 ± 0.027 | 0.829 ± 0.046 | 0.838 ± 0.038
""")
_LOSSES_BRATS20 = _rows("""
focal | 0.735 ± 0.027 | 0.847 ± 0.027 | 0.694 ± 0.023
dice | 0.725 ± 0.034 | 0.767 ± 0.050 | 0.739 ± 0.038
tversky | 0.719 ± 0.040 | 0.692 ± 0.047 | 0.811 ± 0.020
focal_tversky | 0.747 ± 0.050 | 0.776 ± 0.070 | 0.765 ± 0.029
combo | 0.748 ± 0.032 | 0.833 ± 0.039 | 0.716 ± 0.022
hybrid_focal | 0.775 ± 0.033 | 0.798 ± 0.032 | 0.795 ± 0.027
unified_focal | 0.778 ± 0.031 | 0.784 ± 0.041 | 0.815 ± 0.023
""")
_LOSSES_KITS19 = _rows("""
focal | 0.940 ± 0.020 | 0.952 ± 0.011 | 0.935 ± 0.021 | 0.576 ± 0.079 | 0.718 ± 0.036 | 0.549 ± 0.086
dice | 0.938 ± 0.018 | 0.948 ± 0.012 | 0.934 ± 0.019 | 0.695 ± 0.066 | 0.794 ± 0.034 | 0.684 ± 0.084
tversky | 0.936 ± 0.018 | 0.928 ± 0.010 | 0.949 ± 0.021 | 0.711 ± 0.081 | 0.754 ± 0.073 | 0.732 ± 0.084
focal_tversky | 0.943 ± 0.015 | 0.934 ± 0.011 | 0.955 ± 0.016 | 0.740 ± 0.061 | 0.772 ± 0.038 | 0.764 ± 0.068
combo | 0.943 ± 0.014 | 0.951 ± 0.013 | 0.938 ± 0.018 | 0.723 ± 0.047 | 0.794 ± 0.051 | 0.722 ± 0.051
hybrid_focal | 0.945 ± 0.017 | 0.936 ± 0.012 | 0.957 ± 0.017 | 0.751 ± 0.057 | 0.791 ± 0.026 | 0.778 ± 0.069
unified_focal | 0.942 ± 0.013 | 0.944 ± 0.013 | 0.941 ± 0.015 | 0.751 ± 0.058 | 0.774 ± 0.052 | 0.788 ± 0.054
""", n_classes=2)

_DELTA = _rows("""
0.1 | 0.707 ± 0.055 | 0.872 ± 0.032 | 0.639 ± 0.063
0.2 | 0.716 ± 0.034 | 0.852 ± 0.058 | 0.680 ± 0.046
0.3 | 0.716 ± 0.061 | 0.835 ± 0.049 | 0.689 ± 0.093
0.4 | 0.755 ± 0.057 | 0.803 ± 0.061 | 0.766 ± 0.064
0.5 | 0.776 ± 0.058 | 0.821 ± 0.056 | 0.786 ± 0.079
0.6 | 0.793 ± 0.035 | 0.835 ± 0.061 | 0.814 ± 0.040
0.7 | 0.788 ± 0.056 | 0.774 ± 0.088 | 0.857 ± 0.036
0.8 | 0.755 ± 0.039 | 0.740 ± 0.076 | 0.844 ± 0.040
0.9 | 0.739 ± 0.065 | 0.672 ± 0.092 | 0.902 ± 0.049
""")
_GAMMA = _rows("""
0.05 | 0.798 ± 0.020 | 0.802 ± 0.036 | 0.849 ± 0.016
0.1 | 0.795 ± 0.020 | 0.828 ± 0.060 | 0.821 ± 0.063
0.15 | 0.795 ± 0.025 | 0.809 ± 0.067 | 0.828 ± 0.034
0.2 | 0.814 ± 0.027 | 0.829 ± 0.046 | 0.838 ± 0.038
0.25 | 0.810 ± 0.011 | 0.824 ± 0.045 | 0.849 ± 0.035
0.3 | 0.770 ± 0.034 | 0.784 ± 0.054 | 0.810 ± 0.036
0.35 | 0.721 ± 0.106 | 0.771 ± 0.042 | 0.760 ± 0.165
0.4 | 0.740 ± 0.040 | 0.788 ± 0.073 | 0.763 ± 0.090
0.45 | 0.761 ± 0.027 | 0.771 ± 0.058 | 0.808 ± 0.047
0.5 | 0.745 ± 0.036 | 0.765 ± 0.062 | 0.787 ± 0.071
""")
# Table 2's λ column (weight of the Focal Tversky term); the run is lambda_ = 1 - λ.
_LAMBDA_T2 = _rows("""
0 | 0.555 ± 0.138 | 0.764 ± 0.056 | 0.523 ± 0.163
0.1 | 0.701 ± 0.061 | 0.761 ± 0.102 | 0.743 ± 0.081
0.2 | 0.704 ± 0.059 | 0.784 ± 0.067 | 0.712 ± 0.096
0.3 | 0.776 ± 0.043 | 0.775 ± 0.072 | 0.834 ± 0.030
0.4 | 0.778 ± 0.020 | 0.763 ± 0.040 | 0.850 ± 0.031
0.5 | 0.814 ± 0.027 | 0.829 ± 0.046 | 0.838 ± 0.038
0.6 | 0.777 ± 0.034 | 0.810 ± 0.035 | 0.806 ± 0.053
0.7 | 0.771 ± 0.027 | 0.810 ± 0.046 | 0.788 ± 0.034
0.8 | 0.758 ± 0.034 | 0.776 ± 0.036 | 0.813 ± 0.075
0.9 | 0.735 ± 0.036 | 0.743 ± 0.112 | 0.824 ± 0.091
1 | 0.744 ± 0.042 | 0.715 ± 0.071 | 0.843 ± 0.049
""")
_LAMBDA = {f"{1.0 - float(k):.10g}": v for k, v in _LAMBDA_T2.items()}  # keyed by this library's λ

#: Every published table, by key.
PAPER_TABLES: dict[str, PaperTable] = {
    "table3": PaperTable("table3", "Table 3: seven losses on BUS2017 (breast lesion)", ("lesion",),
                         _LOSSES_BUS2017),
    "table4": PaperTable("table4", "Table 4: seven losses on BraTS20 (enhancing tumour)", ("enhancing tumour",),
                         _LOSSES_BRATS20),
    "table5": PaperTable("table5", "Table 5: seven losses on KiTS19 (kidney, tumour)", ("kidney", "tumour"),
                         _LOSSES_KITS19),
    "table2_delta": PaperTable("table2_delta", "Table 2: δ sweep on BUS2017 (γ = 0, λ = 0.5)", ("lesion",),
                               _DELTA, ("delta", {"gamma": 0.0, "lambda_": 0.5})),
    "table2_gamma": PaperTable("table2_gamma", "Table 2: γ sweep on BUS2017 (δ = 0.6, λ = 0.5)", ("lesion",),
                               _GAMMA, ("gamma", {"delta": 0.6, "lambda_": 0.5})),
    "table2_lambda": PaperTable("table2_lambda", "Table 2: λ sweep on BUS2017 (δ = 0.6, γ = 0.2; rows by "
                                "Eq. 20's λ, Table 2's column is 1 − λ)", ("lesion",), _LAMBDA,
                                ("lambda_", {"delta": 0.6, "gamma": 0.2})),
}


def paper_table(key: str) -> PaperTable:
    """The published table ``key`` (see :data:`PAPER_TABLES`).

    Raises:
        ValueError: for an unknown key.
    """
    if key not in PAPER_TABLES:
        raise ValueError(f"unknown paper table {key!r}; use one of {', '.join(PAPER_TABLES)}")
    return PAPER_TABLES[key]


def _match(table: PaperTable, loss: str, params: dict) -> str | None:
    """The paper row of an arm, or ``None``."""
    if table.sweep is None:
        if loss in table.rows and loss in PAPER_SETTINGS and arm_name(loss, params) == arm_name(
                loss, PAPER_SETTINGS[loss]):
            return loss
        return None
    if loss != "unified_focal":
        return None
    name, fixed = table.sweep
    if name not in params or any(not math.isclose(float(params.get(k, math.nan)), v, abs_tol=1e-9)
                                 for k, v in fixed.items()):
        return None
    label = f"{float(params[name]):.10g}"
    return label if label in table.rows else None


def paper_comparison(result: ResultTable, arms: dict[str, Arm], key: str) -> tuple[str, dict[str, str | None]]:
    """A Markdown table of a study's :class:`~unifocal.study.tables.ResultTable` beside a published table.

    One row per arm of the study; per class and metric the study's mean ± CI and the paper's, and a
    last line with the Spearman rank correlation of the two DSC orderings over the matched rows
    (first class; ``scipy.stats.spearmanr``).

    Args:
        result: the study's table (:func:`unifocal.study.tables.build_table`).
        arms: the study's arms (their loss and parameters select the paper's row).
        key: a key of :data:`PAPER_TABLES`.

    Returns:
        ``(markdown, {arm: paper row or None})``.
    """
    table = paper_table(key)
    matched = {r: _match(table, arms[r].loss, arms[r].params) for r in result.rows}
    ncls = min(len(result.classes), len(table.classes))
    head = ["Loss"]
    for i in range(ncls):
        ours, theirs = result.classes[i], table.classes[i]
        tag = "" if ncls == 1 and ours == theirs else f" ({ours}; paper: {theirs})"
        for m in METRICS:
            t = {"dsc": "DSC", "precision": "Precision", "recall": "Recall"}[m]
            head += [f"{t}{tag}", f"{t} paper"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":-:"] * (len(head) - 1)) + "|"]
    ours_dsc, paper_dsc = [], []
    for r in result.rows:
        row = [result.titles[r]]
        p = matched[r]
        for i in range(ncls):
            for m in METRICS:
                row.append(result.cells[(r, result.classes[i], m)].format(result.digits))
                if p is None:
                    row.append("–")
                else:
                    mean, hw = table.rows[p][(i, m)]
                    row.append(f"{mean:.3f} ± {hw:.3f}")
        if p is not None:
            ours_dsc.append(result.cells[(r, result.classes[0], "dsc")].mean)
            paper_dsc.append(table.rows[p][(0, "dsc")][0])
        lines.append("| " + " | ".join(row) + " |")
    note = f"Paper: {table.title}; mean ± 95% CI as published (the paper does not say over what the interval is taken)."
    if len(ours_dsc) >= 3:
        rho, pval = stats.spearmanr(ours_dsc, paper_dsc)
        note += (f" Rank agreement of the DSC columns ({result.classes[0]} | {table.classes[0]}) over "
                 f"{len(ours_dsc)} matched rows: Spearman ρ = {rho:.2f} (p = {pval:.2g}).")
    return "\n".join(lines) + "\n\n" + note + "\n", matched
