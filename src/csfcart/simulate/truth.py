"""The truth each claim is scored against, computed from the simulator's own parameters.

One row per claim that the dataset can test (``simulation.claims``): the readout, the true
effect on that readout's scale and the verdict a sound analysis should reach. Every number
comes from the cohort's population parameters (expected composition and expected
expression, :meth:`CohortModel.expected_composition` and
:meth:`CohortModel.expected_profiles`), never from a draw and never from analysis code.
Only the scoring step reads this; the analysis never does.

Where the truth's definition differs from what the analysis estimates, it says so here:

* Program readouts (C6, C8, C9) are ``mean over the readout genes of log2(expected share
  after / expected share at baseline)`` in the cell type's pseudobulk; the analysis takes
  the mean log2 CPM of pseudobulk counts with a pseudocount of half a count, which shrinks
  changes of barely expressed genes towards 0.
* C1 and C2 count CAR-T cells whose CAR transcript is detected; CAR reads that the
  ambient soup puts into other droplets are an artefact the truth leaves out.
* C7 is the change of B-lineage <-> microglia-like ligand and receptor expression in the
  cells that carry them (the interaction *strength*, defined whether or not the partners'
  numbers change); an interaction lost only because B cells vanish is a consequence of
  C3 / C4 and not counted. Its scale (log2 expression) is not the LR-score scale the
  analysis reports, so its confidence interval is not compared with it (``scale``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from csfcart.simulate.biology import (
    ASC,
    B_AXIS,
    B_LINEAGE,
    B_MICROGLIA_PAIRS,
    MEDIAN_UMIS,
    MYELOID,
    READOUTS,
    T_CELLS,
)
from csfcart.simulate.cohort import Cohort

#: claim -> (direction, claimed size, scale, readout): the effect counts as present when
#: direction * true_effect >= size.
CLAIMED: dict[str, tuple[int, float, str, str]] = {
    "C1": (+1, 0.01, "fraction", "CAR+ (detected) fraction of CSF T cells after infusion, change from baseline"),
    "C2": (+1, 0.005, "fraction", "CAR+ fraction of T cells at the last time point, CSF minus blood"),
    "C3": (-1, 50.0, "percent", "percent change of the B-cell fraction of CSF cells"),
    "C4": (-1, 50.0, "percent", "percent change of the plasma-cell fraction of CSF cells"),
    "C5": (-1, 50.0, "percent", "percent change of Ig UMIs of antibody-secreting cells per CSF UMI"),
    "C6": (-1, 0.3, "log2", "change of the activation readout of microglia-like cells (log2)"),
    "C7": (-1, 0.3, "log2_lr_expression", "change of B-lineage <-> microglia-like ligand and receptor expression"),
    "C8": (-1, 0.3, "log2", "change of the cytokine readout of CSF myeloid cells (log2)"),
    "C9": (-1, 0.3, "log2", "exhaustion readout of CAR-T cells, CSF minus blood (log2)"),
    "D1": (-1, 50.0, "percent", "percent change of the blood B-cell fraction at the first time point"),
    "D2": (+1, 0.005, "fraction", "CAR+ (detected) fraction of blood T cells at month 3 or the last time point"),
    "D3": (+1, 1.0, "log2", "log2 odds ratio of naive among blood B cells, last time point vs baseline"),
}
TRUTH_COLUMNS = ["claim_id", "readout", "scale", "true_effect", "expected_verdict"]
INTERACTION_COLUMNS = ["source", "target", "ligand_complex", "receptor_complex", "baseline_expression",
                       "post_expression", "true_change"]  # fmt: skip
#: A ligand or receptor counts as expressed by a cell type when at least this share of its
#: cells is expected to carry one of its transcripts (LIANA's usual expression filter).
EXPRESSED = 0.1


class Expected:
    """Expected composition and per-type expression of a cohort, cached per time point."""

    def __init__(self, model):
        self.model = model
        self._profiles: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def composition(self, compartment: str, tp: str) -> dict[str, float]:
        return self.model.expected_composition(compartment, tp)

    def profiles(self, compartment: str, tp: str) -> dict[str, np.ndarray]:
        if (compartment, tp) not in self._profiles:
            self._profiles[compartment, tp] = self.model.expected_profiles(compartment, tp)
        return self._profiles[compartment, tp]

    def genes(self, names: list[str]) -> np.ndarray:
        return np.array([self.model.gene_index[g] for g in names if g in self.model.gene_index])

    def pooled(self, compartment: str, tp: str, types: list[str]) -> np.ndarray:
        """Expected pseudobulk shares of the cells of ``types`` pooled (UMI-weighted)."""
        comp, prof = self.composition(compartment, tp), self.profiles(compartment, tp)
        w = {t: comp.get(t, 0.0) * MEDIAN_UMIS[t] for t in types if comp.get(t, 0.0) > 0}
        total = sum(w.values())
        return sum(w[t] * prof[t] for t in w) / total

    def readout_change(self, compartment: str, tp: str, base: str, types: list[str], readout: str) -> float:
        idx = self.genes(READOUTS[readout])
        after, before = self.pooled(compartment, tp, types)[idx], self.pooled(compartment, base, types)[idx]
        return float(np.mean(np.log2(after / before)))


def _share(c: dict[str, float], types) -> float:
    return sum(c.get(t, 0.0) for t in types)


def claim_effects(cohort: Cohort, model) -> dict[str, float]:
    """True effect of every claim the cohort's compartments allow, on the readout's scale."""
    e = Expected(model)
    base = cohort.baseline

    def post(compartment: str) -> list[str]:
        return cohort.compartments[compartment].timepoints[1:] if compartment in cohort.compartments else []

    def car_fraction(compartment: str, tp: str) -> float:
        c = e.composition(compartment, tp)
        t = _share(c, T_CELLS)
        return cohort.car_detection * c.get("CAR_T", 0.0) / t if t else 0.0

    def percent_change(compartment: str, tps: list[str], types) -> float:
        before = _share(e.composition(compartment, base), types)
        after = float(np.mean([_share(e.composition(compartment, tp), types) for tp in tps]))
        return 100 * (after / before - 1) if before else 0.0

    def asc_ig(tp: str) -> float:
        """Expected Ig UMIs of antibody-secreting cells per 1,000 UMIs of a CSF sample."""
        c = e.composition("CSF", tp)
        ig = e.genes(READOUTS["asc_immunoglobulin"])
        total = sum(c[t] * MEDIAN_UMIS[t] for t in c)
        asc = sum(c.get(t, 0.0) * MEDIAN_UMIS[t] * e.profiles("CSF", tp)[t][ig].sum() for t in ASC)
        return 1000 * asc / total

    effects: dict[str, float] = {}
    if post("CSF"):
        csf = post("CSF")
        effects["C1"] = float(np.mean([car_fraction("CSF", tp) for tp in csf]))
        blood_last = post("blood")[-1] if post("blood") else None
        effects["C2"] = car_fraction("CSF", csf[-1]) - (car_fraction("blood", blood_last) if blood_last else 0.0)
        effects["C3"] = percent_change("CSF", csf, B_LINEAGE)
        effects["C4"] = percent_change("CSF", csf, ASC)
        before = asc_ig(base)
        effects["C5"] = 100 * (float(np.mean([asc_ig(tp) for tp in csf])) / before - 1) if before else 0.0
        effects["C6"] = float(
            np.mean([e.readout_change("CSF", tp, base, ["microglia_like"], "microglia_activation") for tp in csf])
        )
        effects["C7"] = b_microglia_change(e, csf, base)
        effects["C8"] = float(
            np.mean([e.readout_change("CSF", tp, base, MYELOID, "inflammatory_cytokines") for tp in csf])
        )
        shared = [
            tp for tp in csf if tp in post("blood") and car_fraction("CSF", tp) > 0 and car_fraction("blood", tp) > 0
        ]
        idx = e.genes(READOUTS["t_exhaustion"])
        effects["C9"] = (
            float(
                np.mean(
                    [
                        np.mean(np.log2(e.profiles("CSF", tp)["CAR_T"][idx] / e.profiles("blood", tp)["CAR_T"][idx]))
                        for tp in shared
                    ]
                )
            )
            if shared
            else 0.0
        )
    if post("blood"):
        blood = post("blood")
        effects["D1"] = percent_change("blood", blood[:1], B_LINEAGE)
        effects["D2"] = car_fraction("blood", "m3" if "m3" in blood else blood[-1])

        def log_odds(tp: str) -> float:
            c = e.composition("blood", tp)
            return float(np.log2(max(c.get("naive_B", 0.0), 1e-9) / max(c.get("memory_B", 0.0), 1e-9)))

        effects["D3"] = log_odds(blood[-1]) - log_odds(base)
    return effects


def _expressed(model, shares: np.ndarray, cell_type: str) -> np.ndarray:
    """Expected share of a type's cells carrying at least one UMI of each gene."""
    mu = shares * MEDIAN_UMIS[cell_type]
    phi = model.dispersion
    return 1.0 - (1.0 + mu * phi) ** (-1.0 / phi)


def b_microglia_change(e: Expected, post: list[str], base: str) -> float:
    """C7: mean over the B-lineage <-> microglia-like pairs of SCIENCE.md (both directions)
    that are expressed at baseline of half the summed log2 change of ligand (in the sender)
    and receptor (in the receiver), post time points weighted equally."""
    model = e.model
    before = e.profiles("CSF", base)
    present = [t for t in B_AXIS if e.composition("CSF", base).get(t, 0.0) > 0]
    changes = []
    for tp in post:
        after = e.profiles("CSF", tp)
        per_tp = []
        for ligand, receptor in B_MICROGLIA_PAIRS:
            if ligand not in model.gene_index or receptor not in model.gene_index:
                continue
            li, ri = model.gene_index[ligand], model.gene_index[receptor]
            for sender, receiver in [
                *(("microglia_like", b) for b in present),
                *((b, "microglia_like") for b in present),
            ]:
                on = (
                    _expressed(model, before[sender], sender)[li] >= EXPRESSED
                    and _expressed(model, before[receiver], receiver)[ri] >= EXPRESSED
                )
                if on:
                    per_tp.append(
                        0.5 * np.log2(after[sender][li] / before[sender][li])
                        + 0.5 * np.log2(after[receiver][ri] / before[receiver][ri])
                    )
        if per_tp:
            changes.append(float(np.mean(per_tp)))
    return float(np.mean(changes)) if changes else 0.0


def _resource_pairs() -> pd.DataFrame:
    """Ligand-receptor pairs of liana's consensus resource, read as data from its wheel."""
    spec = importlib.util.find_spec("liana")
    if spec is None or not spec.submodule_search_locations:
        return pd.DataFrame(columns=["ligand", "receptor"])
    path = Path(next(iter(spec.submodule_search_locations))) / "resource" / "omni_resource.csv"
    table = pd.read_csv(path, usecols=["source_genesymbol", "target_genesymbol", "resource"])
    table = table[table["resource"] == "consensus"]
    return table.rename(columns={"source_genesymbol": "ligand", "target_genesymbol": "receptor"})[
        ["ligand", "receptor"]
    ].drop_duplicates()


def interaction_truth(model, timepoints: list[str], *, compartment: str = "CSF") -> pd.DataFrame:
    """True change of every interaction of liana's consensus resource between cell types
    that express its ligand (sender) and receptor (receiver) at baseline or after:
    half the summed log2 change of ligand and receptor expression (subunits of a complex
    averaged), post time points weighted equally. Abundance plays no part."""
    e = Expected(model)
    base, post = timepoints[0], timepoints[1:]
    pairs = _resource_pairs()
    genes = model.gene_index

    def subunits(name: str) -> list[int] | None:
        idx = [genes.get(g) for g in str(name).split("_")]
        return None if any(i is None for i in idx) else idx

    pairs["l_idx"] = pairs["ligand"].map(subunits)
    pairs["r_idx"] = pairs["receptor"].map(subunits)
    pairs = pairs.dropna(subset=["l_idx", "r_idx"]).reset_index(drop=True)
    if pairs.empty or not post:
        return pd.DataFrame(columns=INTERACTION_COLUMNS)
    comp = e.composition(compartment, base)
    types = [t for t in comp if comp[t] > 0]
    before = e.profiles(compartment, base)
    afters = [e.profiles(compartment, tp) for tp in post]

    def per_pair(shares: np.ndarray, column: str) -> np.ndarray:
        return np.array([np.mean(np.log2(shares[i])) for i in pairs[column]])

    def min_expressed(frac: np.ndarray, column: str) -> np.ndarray:
        return np.array([frac[i].min() for i in pairs[column]])

    rows = []
    for sender in types:
        l0 = per_pair(before[sender], "l_idx")
        l1 = np.mean([per_pair(a[sender], "l_idx") for a in afters], axis=0)
        lon = min_expressed(_expressed(model, before[sender], sender), "l_idx")
        for receiver in types:
            r0 = per_pair(before[receiver], "r_idx")
            r1 = np.mean([per_pair(a[receiver], "r_idx") for a in afters], axis=0)
            ron = min_expressed(_expressed(model, before[receiver], receiver), "r_idx")
            keep = (lon >= EXPRESSED) & (ron >= EXPRESSED)
            if keep.any():
                rows.append(
                    pd.DataFrame(
                        {
                            "source": sender,
                            "target": receiver,
                            "ligand_complex": pairs.loc[keep, "ligand"].to_numpy(),
                            "receptor_complex": pairs.loc[keep, "receptor"].to_numpy(),
                            "baseline_expression": (0.5 * (l0 + r0))[keep],
                            "post_expression": (0.5 * (l1 + r1))[keep],
                        }
                    )
                )
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=INTERACTION_COLUMNS)
    out["true_change"] = (out["post_expression"] - out["baseline_expression"]).round(6)
    out[["baseline_expression", "post_expression"]] = out[["baseline_expression", "post_expression"]].round(4)
    return out.sort_values(["true_change", *INTERACTION_COLUMNS[:4]]).reset_index(drop=True)[INTERACTION_COLUMNS]


def claim_truth(cohort: Cohort, model) -> pd.DataFrame:
    """The per-claim truth table of ``cohort`` (``model`` is its :class:`CohortModel`)."""
    effects = claim_effects(cohort, model)
    rows = []
    for claim in cohort.claims:
        direction, size, scale, readout = CLAIMED[claim]
        effect = effects.get(claim, 0.0)
        rows.append(
            {
                "claim_id": claim,
                "readout": readout,
                "scale": scale,
                "true_effect": round(effect, 6),
                "expected_verdict": "reproduced" if direction * effect >= size else "not_reproduced",
            }
        )
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)
