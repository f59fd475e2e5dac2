"""The truth each claim is scored against, derived from a cohort's population parameters.

One row per claim that the dataset can test (``simulation.claims``): the metric, the true
effect size (population level, no patient noise) and the verdict a sound analysis should
reach. Only the scoring step reads this; the analysis never does.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.claims import CLAIMS
from csfcart.simulate.biology import B_LINEAGE, MEDIAN_UMIS, MYELOID, PROGRAMS, T_CELLS
from csfcart.simulate.cohort import Cohort

#: claim -> (direction, threshold): the effect counts as present when
#: direction * true_effect >= threshold. Metrics (and their wording) are those of
#: csfcart.claims, so that a confidence interval can be checked against the true effect.
THRESHOLDS: dict[str, tuple[int, float]] = {
    "C1": (+1, 0.01),  # CAR+ fraction of CSF T cells
    "C2": (+1, 0.005),  # CSF minus blood CAR+ fraction
    "C3": (-1, 50.0),  # percent fall of B cells
    "C4": (-1, 50.0),  # percent fall of plasma cells
    "C5": (-1, 50.0),  # percent fall of ASC immunoglobulin
    "C6": (-1, 0.3),  # log2 fall of the activation program
    "C7": (-1, 0.02),  # fall of the mean B / microglia-like LR score (0-1 scale)
    "C8": (-1, 0.3),  # log2 fall of the cytokine program
    "C9": (-1, 0.3),  # log2 CSF-blood difference of exhaustion
    "D1": (-1, 50.0),  # percent fall of blood B cells
    "D2": (+1, 0.005),  # CAR+ fraction of blood T cells
    "D3": (+1, 1.0),  # log2 odds ratio of naive among B cells
}


#: immunoglobulin genes counted in antibody-secreting cells (as csfcart.measure.IG_GENES)
ASC_IG_GENES = [
    "IGHG1",
    "IGHG2",
    "IGHG3",
    "IGHG4",
    "IGHA1",
    "IGHA2",
    "IGHM",
    "IGKC",
    "IGLC1",
    "IGLC2",
    "IGLC3",
    "JCHAIN",
]


def _mean_lfc(model, compartment: str, timepoint: str, genes: list[str], cell_types: list[str]) -> float:
    lfc = model.expression_log2fc(compartment, timepoint)
    rows = [model.row_index[r] for r in model.row_index if any(r == c or r.startswith(c + "_") for c in cell_types)]
    cols = [model.gene_index[g] for g in genes if g in model.gene_index]
    return float(lfc[np.ix_(rows, cols)].mean()) if rows and cols else 0.0


INTERACTION_COLUMNS = ["source", "target", "ligand_complex", "receptor_complex", "baseline_score", "post_score",
                       "true_change"]  # fmt: skip


def population_sample(model, compartment: str, timepoint: str, *, n_cells: int = 4000) -> ad.AnnData:
    """The population-average sample of a time point: expected composition and expression,
    no patient, batch, ambient, damage or doublet effects, median library sizes.

    Every time point is drawn from the same random stream (common random numbers), so that
    time points the treatment leaves alone give identical samples.
    """
    rng = np.random.default_rng([model.cohort.seed, 3])
    comp = model.expected_composition(compartment, timepoint)
    lfc = model.expression_log2fc(compartment, timepoint)
    profiles = model.profiles * np.exp2(lfc)
    profiles /= profiles.sum(axis=1, keepdims=True)
    types, rows, libs = [], [], []
    for ct, frac in comp.items():
        n = round(frac * n_cells)
        if n == 0:
            continue
        row = model.row_index["CAR_T_CD8" if ct == "CAR_T" else ct]
        types += [ct] * n
        rows += [row] * n
        libs += [MEDIAN_UMIS[ct]] * n
    mu = profiles[np.array(rows)] * np.array(libs)[:, None]
    counts = rng.poisson(rng.gamma(1.0 / model.dispersion, mu * model.dispersion)).astype(np.float32)
    x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    obs = pd.DataFrame(
        {"cell_type": types, "sample_id": f"{compartment}_{timepoint}"}, index=[f"c{i}" for i in range(len(types))]
    )
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=model.genes))


def communication_truth(model, timepoints: list[str]) -> dict:
    """C7 on the population-average CSF samples, scored as the workflow scores a sample:
    the change from baseline of the mean B-lineage / microglia-like LIANA score (post time
    points averaged), and the per-interaction changes behind it."""
    from csfcart.communication import KEY, axis_scores, score_sample

    scores = pd.concat([score_sample(population_sample(model, "CSF", tp)) for tp in timepoints], ignore_index=True)
    samples = [f"CSF_{tp}" for tp in timepoints]
    meta = pd.DataFrame({"timepoint": timepoints}, index=samples)
    axis = axis_scores(scores, meta.assign(compartment="CSF", patient_id="population"))["b_microglia"]
    base, post = axis.iloc[0], axis.iloc[1:]
    # per interaction (those scored at baseline), absent after = 0, as the workflow counts it
    wide = scores.pivot_table(index=KEY, columns="sample_id", values="lrscore").reindex(columns=samples)
    wide = wide[wide[samples[0]].notna()].fillna(0.0)
    interactions = pd.DataFrame(
        {
            "baseline_score": wide[samples[0]],
            "post_score": wide[samples[1:]].mean(axis=1),
        }
    )
    interactions["true_change"] = interactions["post_score"] - interactions["baseline_score"]
    interactions = interactions.reset_index().sort_values("true_change")
    return {"C7": float(post.mean() - base) if np.isfinite(base) else float("nan"), "interactions": interactions}


def claim_truth(cohort: Cohort, model, communication: dict | None = None) -> pd.DataFrame:
    """The per-claim truth table of ``cohort`` (``model`` is its :class:`CohortModel`;
    ``communication``: :func:`communication_truth`, computed here when C7 needs it)."""
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

    def percent_change(compartment: str, tps: list[str], types) -> float:
        """Percent change of the share of ``types`` (post time points averaged) from baseline."""
        before = share(comp(compartment, base), types)
        after = float(np.mean([share(comp(compartment, tp), types) for tp in tps]))
        return 100 * (after / before - 1) if before else 0.0

    def asc_ig(compartment: str, tp: str) -> float:
        """Ig UMIs of plasma cells per 1,000 UMIs of the sample (expected)."""
        c = comp(compartment, tp)
        lfc = model.expression_log2fc(compartment, tp)
        row = model.row_index["plasma"]
        prof = model.profiles[row] * np.exp2(lfc[row])
        prof = prof / prof.sum()
        ig = [model.gene_index[g] for g in ASC_IG_GENES if g in model.gene_index]
        umis = {t: MEDIAN_UMIS[t] for t in c}
        total = sum(c[t] * umis[t] for t in c)
        return 1000 * (1 - cohort.ambient_fraction) * c.get("plasma", 0.0) * umis["plasma"] * prof[ig].sum() / total

    effects: dict[str, float] = {}
    if "CSF" in cohort.compartments and post("CSF"):
        csf = post("CSF")
        effects["C1"] = float(np.mean([car_fraction("CSF", tp) for tp in csf]))
        last = csf[-1]
        blood_last = post("blood")[-1] if post("blood") else None
        effects["C2"] = car_fraction("CSF", last) - (car_fraction("blood", blood_last) if blood_last else 0.0)
        effects["C3"] = percent_change("CSF", csf, B_LINEAGE)
        effects["C4"] = percent_change("CSF", csf, ["plasma"])
        before, after = asc_ig("CSF", base), float(np.mean([asc_ig("CSF", tp) for tp in csf]))
        effects["C5"] = 100 * (after / before - 1) if before else 0.0
        act = PROGRAMS["microglia_activation"]
        effects["C6"] = float(np.mean([_mean_lfc(model, "CSF", tp, act, ["microglia_like"]) for tp in csf]))
        if "C7" in cohort.claims:
            effects["C7"] = (communication or communication_truth(model, [base, *csf]))["C7"]
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
        effects["D1"] = percent_change("blood", blood[:1], B_LINEAGE)
        effects["D2"] = car_fraction("blood", "m3" if "m3" in blood else blood[-1])

        def log_odds(tp: str) -> float:
            c = comp("blood", tp)
            return float(np.log2(max(c.get("naive_B", 0.0), 1e-9) / max(c.get("memory_B", 0.0), 1e-9)))

        effects["D3"] = log_odds(blood[-1]) - log_odds(base)

    rows = []
    for claim in cohort.claims:
        direction, threshold = THRESHOLDS[claim]
        effect = effects.get(claim, 0.0)
        present = direction * effect >= threshold
        rows.append(
            {
                "claim_id": claim,
                "statement": CLAIMS[claim].statement,
                "metric": CLAIMS[claim].metric,
                "true_effect": round(effect, 6),
                "expected_verdict": "reproduced" if present else "not_reproduced",
            }
        )
    return pd.DataFrame(rows, columns=["claim_id", "statement", "metric", "true_effect", "expected_verdict"])
