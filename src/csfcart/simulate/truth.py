"""The truth each claim is scored against, derived from a cohort's population parameters.

One row per claim that the dataset can test (``simulation.claims``): the metric, the true
effect size (population level, no patient noise) and the verdict a sound analysis should
reach. Only the scoring step reads this; the analysis never does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from csfcart.simulate.biology import B_LINEAGE, MYELOID, PROGRAMS, T_CELLS
from csfcart.simulate.cohort import Cohort

#: claim -> (statement, metric, direction, threshold): the effect counts as present when
#: direction * true_effect >= threshold.
CLAIMS: dict[str, tuple[str, str, int, float]] = {
    "C1": ("CAR-T cells reach the CSF", "CAR+ fraction of CSF T cells after infusion", +1, 0.01),
    "C2": (
        "CAR-T cells expand and persist in CSF",
        "CAR+ fraction of T cells at the last time point, CSF minus blood (CSF alone without blood)",
        +1,
        0.005,
    ),
    "C3": ("B-cell lineages are eliminated in CSF", "log2 fold change of the B-cell fraction in CSF", -1, 1.0),
    "C4": ("plasmablasts / plasma cells are depleted", "log2 fold change of the plasma-cell fraction in CSF", -1, 1.0),
    "C5": (
        "intrathecal immunoglobulin production halts",
        "log2 fold change of plasma-cell immunoglobulin UMIs per CSF cell",
        -1,
        1.0,
    ),
    "C6": (
        "microglial activation is attenuated",
        "log2 fold change of the activation program in microglia-like cells",
        -1,
        0.3,
    ),
    "C7": (
        "B cell / microglia-like cell interactions are reduced",
        "log2 fold change of B-axis ligand expression in microglia-like cells, with B cells lost",
        -1,
        0.3,
    ),
    "C8": (
        "inflammatory cytokines in CSF fall",
        "log2 fold change of the cytokine program in CSF myeloid and microglia-like cells",
        -1,
        0.3,
    ),
    "C9": (
        "CSF CAR-T cells are less exhausted",
        "log2 fold change of the exhaustion program, CSF CAR-T over blood CAR-T",
        -1,
        0.3,
    ),
    "D1": (
        "B cells are depleted in blood within about 2 weeks",
        "log2 fold change of the blood B-cell fraction at the first time point after infusion",
        -1,
        1.0,
    ),
    "D2": ("CAR-T cells persist", "CAR+ fraction of blood T cells at month 3 (or the last time point)", +1, 0.005),
    "D3": (
        "returning B cells are new, naive ones",
        "log2 fold change of the naive share of B cells at the last time point",
        +1,
        0.3,
    ),
}


def _mean_lfc(model, compartment: str, timepoint: str, genes: list[str], cell_types: list[str]) -> float:
    lfc = model.expression_log2fc(compartment, timepoint)
    rows = [model.row_index[r] for r in model.row_index if any(r == c or r.startswith(c + "_") for c in cell_types)]
    cols = [model.gene_index[g] for g in genes if g in model.gene_index]
    return float(lfc[np.ix_(rows, cols)].mean()) if rows and cols else 0.0


def claim_truth(cohort: Cohort, model) -> pd.DataFrame:
    """The per-claim truth table of ``cohort`` (``model`` is its :class:`CohortModel`)."""
    base = cohort.baseline

    def comp(compartment: str, tp: str) -> dict[str, float]:
        return model.expected_composition(compartment, tp)

    def post(compartment: str) -> list[str]:
        return cohort.compartments[compartment].timepoints[1:] if compartment in cohort.compartments else []

    def share(c: dict[str, float], types) -> float:
        return sum(c.get(t, 0.0) for t in types)

    def car_fraction(compartment: str, tp: str) -> float:
        c = comp(compartment, tp)
        t = share(c, T_CELLS)
        return cohort.car_detection * c.get("CAR_T", 0.0) / t if t else 0.0

    def log2fc(compartment: str, tp: str, types) -> float:
        before, after = share(comp(compartment, base), types), share(comp(compartment, tp), types)
        return float(np.log2(max(after, 1e-4) / max(before, 1e-4)))

    effects: dict[str, float] = {}
    if "CSF" in cohort.compartments and post("CSF"):
        csf = post("CSF")
        effects["C1"] = float(np.mean([car_fraction("CSF", tp) for tp in csf]))
        last = csf[-1]
        blood_last = post("blood")[-1] if post("blood") else None
        effects["C2"] = car_fraction("CSF", last) - (car_fraction("blood", blood_last) if blood_last else 0.0)
        effects["C3"] = float(np.mean([log2fc("CSF", tp, B_LINEAGE) for tp in csf]))
        effects["C4"] = float(np.mean([log2fc("CSF", tp, ["plasma"]) for tp in csf]))
        ig = PROGRAMS["immunoglobulin"]
        effects["C5"] = float(
            np.mean([log2fc("CSF", tp, ["plasma"]) + _mean_lfc(model, "CSF", tp, ig, ["plasma"]) for tp in csf])
        )
        act = PROGRAMS["microglia_activation"]
        effects["C6"] = float(np.mean([_mean_lfc(model, "CSF", tp, act, ["microglia_like"]) for tp in csf]))
        ligands = PROGRAMS["b_microglia_ligands"]
        effects["C7"] = float(np.mean([_mean_lfc(model, "CSF", tp, ligands, ["microglia_like"]) for tp in csf]))
        cyto = PROGRAMS["inflammatory_cytokines"]
        effects["C8"] = float(np.mean([_mean_lfc(model, "CSF", tp, cyto, MYELOID) for tp in csf]))
        shared = [
            tp for tp in csf if tp in post("blood") and car_fraction("CSF", tp) > 0 and car_fraction("blood", tp) > 0
        ]
        exh = PROGRAMS["t_exhaustion"]
        effects["C9"] = (
            float(
                np.mean(
                    [
                        _mean_lfc(model, "CSF", tp, exh, ["CAR_T"]) - _mean_lfc(model, "blood", tp, exh, ["CAR_T"])
                        for tp in shared
                    ]
                )
            )
            if shared
            else 0.0
        )
    if "blood" in cohort.compartments and post("blood"):
        blood = post("blood")
        effects["D1"] = log2fc("blood", blood[0], B_LINEAGE)
        effects["D2"] = car_fraction("blood", "m3" if "m3" in blood else blood[-1])

        def naive_share(tp: str) -> float:
            c = comp("blood", tp)
            return c.get("naive_B", 0.0) / max(share(c, B_LINEAGE), 1e-9)

        effects["D3"] = float(np.log2(max(naive_share(blood[-1]), 1e-4) / max(naive_share(base), 1e-4)))

    rows = []
    for claim in cohort.claims:
        statement, metric, direction, threshold = CLAIMS[claim]
        effect = effects.get(claim, 0.0)
        present = direction * effect >= threshold
        if claim == "C7":  # the interaction needs its B-cell side to fall as well
            present = present and effects.get("C3", 0.0) <= -1.0
        rows.append(
            {
                "claim_id": claim,
                "statement": statement,
                "metric": metric,
                "true_effect": round(effect, 6),
                "expected_verdict": "reproduced" if present else "not_reproduced",
            }
        )
    return pd.DataFrame(rows, columns=["claim_id", "statement", "metric", "true_effect", "expected_verdict"])
