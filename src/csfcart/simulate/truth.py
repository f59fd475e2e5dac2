"""The truth each claim is scored against, computed from the simulator's own parameters.

One row per claim that the dataset can test (``simulation.claims``): the readout, the true
effect on that readout's scale and the verdict a sound analysis should reach. Every number
comes from the cohort's population parameters (expected composition and expected
expression, :meth:`CohortModel.expected_composition` and
:meth:`CohortModel.expected_profiles`), never from a draw and never from analysis code.
Only the scoring step reads this; the analysis never does.

Where the truth's definition differs from what the analysis estimates, it says so here:

* Count readouts (C3, C4, C5, D1) are the mean patient's fold change (the geometric mean
  over the population's patients of each patient's post-over-baseline ratio), as percent;
  depletion is of the types' share of cells other than CAR-T cells, so that CAR-T cells
  arriving on top of the cells already there change nothing. The analysis adds half a cell
  of continuity per patient and side, which pulls a fall to zero slightly towards no
  change.

* Program readouts (C6, C7's signalling, C8, C9) are ``log2(expected share of the readout
  genes together after / at baseline)`` in the cell type's pseudobulk; the analysis takes
  the log2 CPM of the program's summed pseudobulk counts, whose pseudocount of half a count
  is negligible beside hundreds of counts, so the two agree without a depth of sequencing
  entering the truth.
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

from csfcart.registry import CLAIMS, POOLS, types_of
from csfcart.simulate.biology import (
    B_AXIS,
    B_MICROGLIA_PAIRS,
    CLAIM_LINEAGE,
    MEDIAN_UMIS,
    READOUT_MIN_COUNTS,
    READOUTS,
    T_CELLS,
)
from csfcart.simulate.cohort import Cohort
from csfcart.timepoints import days_since_infusion

TRUTH_COLUMNS = ["claim_id", "readout", "scale", "true_effect", "expected_verdict"]

INTERACTION_COLUMNS = ["source", "target", "ligand_complex", "receptor_complex", "baseline_expression",
                       "post_expression", "true_change"]  # fmt: skip
#: A ligand or receptor counts as expressed by a cell type when at least this share of its
#: cells is expected to carry one of its transcripts (LIANA's usual expression filter).
EXPRESSED = 0.1


#: Patients integrated over for population means (their random effects drawn as the
#: simulator draws them, from a fixed stream: the truth does not depend on the cohort size).
POPULATION = 2000


class Expected:
    """Expected composition and per-type expression of a cohort, cached per time point.

    Compositions are population means: the expected composition of each of
    :data:`POPULATION` patients (their composition, effect-strength and CAR-T random
    effects), averaged. A claim about the ratio of mean fractions, or the mean of a
    per-patient quantity, is thereby the population's, not that of a patient without random
    effects (for strong falls the two differ: ``E[fold ** s] > fold ** E[s]``).
    """

    def __init__(self, model):
        self.model = model
        self._profiles: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._patients: dict[tuple[str, str], list[dict[str, float]]] = {}
        self._people = [model.patient_params(f"T{k}", stream=3) for k in range(POPULATION)]

    def per_patient(self, compartment: str, tp: str) -> list[dict[str, float]]:
        """The expected composition of each patient of the population."""
        if (compartment, tp) not in self._patients:
            self._patients[compartment, tp] = [
                self.model.expected_composition(compartment, tp, p) for p in self._people
            ]
        return self._patients[compartment, tp]

    def composition(self, compartment: str, tp: str) -> dict[str, float]:
        people = self.per_patient(compartment, tp)
        return {t: float(np.mean([p.get(t, 0.0) for p in people])) for t in people[0]}

    def mean_of(self, compartment: str, tp: str, f) -> float:
        """Population mean of a per-patient quantity ``f(composition)``."""
        return float(np.mean([f(p) for p in self.per_patient(compartment, tp)]))

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

    def readout_genes(self, types: list[str], readout: str) -> tuple[np.ndarray, np.ndarray]:
        """The readout's genes of which a pseudobulk of the cells of ``types`` holds
        :data:`READOUT_MIN_COUNTS` or more, expected per sample over every sample of the
        cohort that has such cells (median cells, expected composition and expression), and
        their shares pooled over those samples (each gene's reference level)."""
        idx = self.genes(READOUTS[readout])
        cohort = self.model.cohort
        counts, umis = [], []
        for name, comp in cohort.compartments.items():
            for tp in comp.timepoints:
                c, prof = self.composition(name, tp), self.profiles(name, tp)
                cells = comp.cells_median * cohort.cells.get(name, {}).get(tp, 1.0)
                present = [t for t in types if c.get(t, 0.0) > 0]
                if present:
                    counts.append(sum(cells * c[t] * MEDIAN_UMIS[t] * prof[t][idx] for t in present))
                    umis.append(sum(cells * c[t] * MEDIAN_UMIS[t] for t in present))
        if not counts:
            return idx[:0], np.zeros(0)
        mean = np.mean(counts, axis=0)
        kept = mean >= READOUT_MIN_COUNTS
        return idx[kept], np.sum(counts, axis=0)[kept] / np.sum(umis)

    def readout_change(self, compartment: str, tp: str, base: str, types: list[str], genes) -> float:
        """log2 of the mean over the genes ``genes`` (indices, reference shares) of their
        expression relative to their reference, ``tp`` over ``base``: the readout's change."""
        idx, ref = genes
        after, before = self.pooled(compartment, tp, types)[idx], self.pooled(compartment, base, types)[idx]
        return relative_change(after, before, ref)


def relative_change(after: np.ndarray, before: np.ndarray, ref: np.ndarray) -> float:
    """log2 of the genes' mean expression relative to ``ref``, ``after`` over ``before``."""
    return float(np.log2(np.mean(after / ref) / np.mean(before / ref)))


def _share(c: dict[str, float], types) -> float:
    return sum(c.get(t, 0.0) for t in types)


def claim_effects(cohort: Cohort, model) -> dict[tuple[str, str], float]:
    """True effect of every readout (claim id, readout name) of the registry that the
    cohort's compartments and visits allow, on the readout's scale and with the estimator's
    definition: one function per measure of the registry, as in the analysis."""
    e = Expected(model)
    base = cohort.baseline

    def post(compartment: str) -> list[str]:
        return cohort.compartments[compartment].timepoints[1:] if compartment in cohort.compartments else []

    def car(c: dict[str, float]) -> float:
        """Detected CAR+ fraction of T cells of one composition."""
        t = _share(c, T_CELLS)
        return cohort.car_detection * c.get("CAR_T", 0.0) / t if t else 0.0

    def log_car_ratio(a: tuple[str, str], b: tuple[str, str]) -> float:
        """Population mean of a patient's log2 CAR+ fraction at ``a`` over ``b``."""
        pa, pb = e.per_patient(*a), e.per_patient(*b)
        values = [np.log2(car(x) / car(y)) for x, y in zip(pa, pb, strict=True) if car(x) > 0 and car(y) > 0]
        return float(np.mean(values)) if values else 0.0

    def matched(r) -> list[str]:
        return [tp for tp in post("CSF") if tp in post("blood")]

    def car_change(r, tps):
        return float(np.mean([e.mean_of(r.compartment, tp, car) for tp in tps]) - e.mean_of(r.compartment, base, car))

    def car_persistence(r, tps):
        p = post(r.compartment)
        return log_car_ratio((r.compartment, p[-1]), (r.compartment, p[0])) if len(p) >= 2 else None

    def car_csf_over_blood(r, tps):
        m = matched(r)
        return float(np.mean([log_car_ratio(("CSF", tp), ("blood", tp)) for tp in m])) if m else None

    def mean_patient_fold(r, tps, share) -> float:
        """Percent change of the mean patient's (geometric mean) fold of ``share(composition,
        visit)`` from baseline to the post visits (their values averaged, visits weighted
        equally)."""
        before = e.per_patient(r.compartment, base)
        after = {tp: e.per_patient(r.compartment, tp) for tp in tps}
        logs = []
        for k, b in enumerate(before):
            b0, post = share(b, base), np.mean([share(after[tp][k], tp) for tp in tps])
            if b0 > 0 and post > 0:
                logs.append(np.log(post / b0))
        return float(100 * np.expm1(np.mean(logs))) if logs else 0.0

    def depletion(r, tps):
        """The types' share of cells other than CAR-T cells: the change in their numbers
        relative to the cells that were there, which CAR-T cells arriving cannot dilute."""
        types = r.types(CLAIM_LINEAGE)
        return mean_patient_fold(r, tps, lambda c, tp: _share(c, types) / max(1.0 - c.get("CAR_T", 0.0), 1e-12))

    def ig_depletion(r, tps):
        """Ig UMIs of antibody-secreting cells per UMI of non-CAR cells, with each visit's
        expected expression."""
        ig = e.genes(READOUTS["asc_immunoglobulin"])
        types = r.types(CLAIM_LINEAGE)
        per_cell = {tp: {t: MEDIAN_UMIS[t] * e.profiles(r.compartment, tp)[t][ig].sum() for t in types}
                    for tp in [base, *tps]}  # fmt: skip

        def per_umi(c: dict[str, float], tp: str) -> float:
            total = sum(c[t] * MEDIAN_UMIS[t] for t in c if t != "CAR_T")  # UMIs of non-CAR cells
            return sum(c.get(t, 0.0) * per_cell[tp][t] for t in types) / total

        return mean_patient_fold(r, tps, per_umi)

    def program_change(r, tps):
        group = types_of(POOLS[r.group], CLAIM_LINEAGE) if r.group in POOLS else [r.group]
        genes = e.readout_genes(group, r.program)
        return float(np.mean([e.readout_change(r.compartment, tp, base, group, genes) for tp in tps]))

    def exhaustion_did(r, tps):
        shared = [tp for tp in matched(r) if e.mean_of("CSF", tp, car) > 0 and e.mean_of("blood", tp, car) > 0]
        if not shared:
            return None
        car_genes = e.readout_genes([r.group], r.program)
        cd8_genes = e.readout_genes(["CD8_T"], r.program)

        def did(tp: str) -> float:
            csf, blood = e.profiles("CSF", tp), e.profiles("blood", tp)
            (car, car_ref), (cd8, cd8_ref) = car_genes, cd8_genes
            return relative_change(csf[r.group][car], blood[r.group][car], car_ref) - relative_change(
                csf["CD8_T"][cd8], blood["CD8_T"][cd8], cd8_ref
            )

        return float(np.mean([did(tp) for tp in shared]))

    def lr_strength(r, tps):
        return b_microglia_change(e, tps, base)

    def naive_odds(r, tps):
        def log_odds(c: dict[str, float]) -> float:
            memory = sum(c.get(t, 0.0) for t in r.types(CLAIM_LINEAGE) if t != "naive_B")
            return float(np.log2(max(c.get("naive_B", 0.0), 1e-9) / max(memory, 1e-9)))

        return float(np.mean([e.mean_of(r.compartment, tp, log_odds) for tp in tps])) - e.mean_of(
            r.compartment, base, log_odds
        )

    measures = {f.__name__: f for f in (car_change, car_persistence, car_csf_over_blood, depletion, ig_depletion,
                                        program_change, exhaustion_did, lr_strength, naive_odds)}  # fmt: skip
    effects: dict[tuple[str, str], float] = {}
    for claim in CLAIMS.values():
        if claim.design != "paired":
            continue
        for r in claim.readouts:
            if any(x not in cohort.compartments for x in (r.compartment, *r.needs)):
                continue
            tps = r.visits(post(r.compartment), days_since_infusion)
            if not tps:
                continue
            value = measures[r.measure](r, tps)
            if value is not None:
                effects[claim.id, r.name] = float(value)
    return effects


def _expressed(model, shares: np.ndarray, cell_type: str) -> np.ndarray:
    """Expected share of a type's cells carrying at least one UMI of each gene."""
    mu = shares * MEDIAN_UMIS[cell_type]
    phi = model.dispersion
    return 1.0 - (1.0 + mu * phi) ** (-1.0 / phi)


def b_microglia_change(e: Expected, post: list[str], base: str) -> float:
    """C7: mean over the B-lineage <-> microglia-like pairs of SCIENCE.md (both directions)
    that are expressed over the visits (detection averaged over baseline and ``post``) of half
    the summed log2 change of ligand (in the sender) and receptor (in the receiver), post time
    points weighted equally."""
    model = e.model
    before = e.profiles("CSF", base)
    visits = [before, *(e.profiles("CSF", tp) for tp in post)]
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
                    np.mean([_expressed(model, v[sender], sender)[li] for v in visits]) >= EXPRESSED
                    and np.mean([_expressed(model, v[receiver], receiver)[ri] for v in visits]) >= EXPRESSED
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

    def padded(column: str) -> tuple[np.ndarray, np.ndarray]:
        # subunit indices of each pair as a rectangle (padded with gene 0) and its mask
        width = max(len(i) for i in pairs[column])
        index = np.zeros((len(pairs), width), dtype=np.int64)
        mask = np.zeros((len(pairs), width), dtype=bool)
        for row, idx in enumerate(pairs[column]):
            index[row, : len(idx)], mask[row, : len(idx)] = idx, True
        return index, mask

    def per_pair(shares: np.ndarray, side: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        index, mask = side  # mean log2 share of the subunits
        return np.where(mask, np.log2(shares[index]), 0.0).sum(axis=1) / mask.sum(axis=1)

    def min_expressed(frac: np.ndarray, side: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        index, mask = side
        return np.where(mask, frac[index], np.inf).min(axis=1)

    # each type's ligand and receptor side, once: before, after (post visits averaged), expressed
    layout = {"l": padded("l_idx"), "r": padded("r_idx")}
    by_type = {
        (t, k): (
            per_pair(before[t], layout[k]),
            np.mean([per_pair(a[t], layout[k]) for a in afters], axis=0),
            min_expressed(_expressed(model, before[t], t), layout[k]) >= EXPRESSED,
        )
        for t in types
        for k in layout
    }
    rows = []
    for sender in types:
        l0, l1, lon = by_type[(sender, "l")]
        for receiver in types:
            r0, r1, ron = by_type[(receiver, "r")]
            keep = lon & ron
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
    """The per-claim truth table of ``cohort`` (``model`` is its :class:`CohortModel`): the
    primary readout's true effect, and the verdict a sound analysis should reach (every
    readout the cohort can measure strictly beyond its claimed size)."""
    effects = claim_effects(cohort, model)
    rows = []
    for claim_id in cohort.claims:
        claim = CLAIMS[claim_id]
        primary = claim.primary
        present = [r for r in claim.readouts if (claim_id, r.name) in effects]
        met = all(r.direction * (effects[claim_id, r.name] - r.size) > 0 for r in present)
        rows.append(
            {
                "claim_id": claim_id,
                "readout": primary.description,
                "scale": primary.truth_scale or primary.scale,
                "true_effect": round(effects.get((claim_id, primary.name), 0.0), 6),
                "expected_verdict": "reproduced" if present and met else "not_reproduced",
            }
        )
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)
