"""The generative model of the synthetic cohorts.

Expression
    Genes have a log-normal base level. Genes that real immune cells do not express
    (data/gene_detection_reference.tsv) are silent everywhere; most of the other genes
    outside the named markers and modules are restricted to a few lineages (T, NK, B,
    plasma, myeloid, pDC) and all but silent elsewhere, as in real 10x data; the rest are
    expressed everywhere. Markers are off outside the lineage whose states use them. Each named cell
    *state* (CD4 naive, CD4 effector memory, classical monocyte, ...) is its lineage's
    profile times a marker program. A cell *type* is a region of a continuum between two
    states: every cell has a position u ~ Beta(a, b) and its log expression is
    interpolated, so CD14 and CD16 monocytes meet in intermediate cells, Treg cells
    shade into memory CD4 T cells, GZMB+ CD8 T cells into NK cells.
Cell to cell
    Shared modules (interferon, stress, MHC class II) and random background modules vary
    per cell (co-expression); microglia-like cells switch into an *activated* sub-state
    (activation genes up, homeostatic markers down), whose share treatment moves.
Counts
    Negative binomial (gamma-Poisson) with gene-wise dispersion around
    ``library size x profile``. Each sample has its own depth, gene-wise batch effect and
    ambient fraction (drawn from a range); the soup is the sample's own mix of cells with
    plasma-cell transcripts over-represented, and carries CAR reads. Damaged cells (high
    mitochondrial fraction, few genes) and heterotypic doublets are added.
Composition
    CAR-T cells are added on top of the existing cells, so they dilute every other
    fraction; the number of cells per sample varies (and falls with treatment where a
    dataset says so: CSF pleocytosis).

Every sample is drawn from its own random stream (seeded by the cohort seed and the sample's
position), so samples can be generated one at a time, in any order, with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from csfcart.simulate.biology import (
    CAR_T_CD4,
    CAR_T_CD8,
    CAR_T_CD8_FRACTION,
    CELL_TYPES,
    IG_GENES,
    LINEAGE,
    MEDIAN_UMIS,
    MODULE_CELL_SD,
    MODULES,
    MT_GENES,
    RIBO_GENES,
    STATES,
    SUBSTATES,
    T_CELLS,
    UNLISTED_STATES,
    UNLISTED_TYPES,
    marker_genes,
)
from csfcart.simulate.cohort import Cohort

#: Share of UMIs from mitochondrial and ribosomal genes in a healthy cell.
MT_SHARE = 0.035
RIBO_SHARE = {"plasma": 0.08, "myeloid": 0.12, "pDC": 0.15}
RIBO_DEFAULT = 0.25
#: Cell-to-cell spread (log scale) of the MT share of healthy cells.
MT_CELL_SDLOG = 0.35
#: Library size and MT share of damaged cells.
DAMAGED_LIBRARY = 0.25
DAMAGED_MT = (0.25, 0.6)
#: Per-cell spread of the library size (log scale).
LIBRARY_SDLOG = 0.4
#: Gene-wise negative binomial dispersion (log-normal) and spread of gene base levels.
DISPERSION, DISPERSION_SDLOG = 0.8, 0.5
BASE_SDLOG = 1.1
#: Share of unlisted genes expressed in every lineage; the others are on in each lineage
#: with probability LINEAGE_ON and otherwise at OFF times their level. Unlisted genes that
#: real immune cells do not express (detected in fewer than SILENT_BELOW of the cells of
#: the real 10x sample, data/gene_detection_reference.tsv) are at OFF in every lineage.
HOUSEKEEPING = 0.4
SILENT_BELOW = 0.005
LINEAGE_ON = 0.25
OFF = 0.01
#: Level of a marker gene in the lineages none of whose states use it, relative to its
#: base level (immunoglobulins: outside B-lineage cells they come from the soup alone).
MARKER_LEAK = 0.03
IG_LEAK = 0.001
#: Random co-expressed background modules: how many, genes each, log2 SD per cell.
BACKGROUND_MODULES, BACKGROUND_MODULE_GENES, BACKGROUND_MODULE_SD = 12, 25, 0.45
#: Extra weight of plasma-cell transcripts in the ambient soup (they lyse readily).
SOUP_PLASMA_WEIGHT = 5.0
#: empty droplets per cell in a sample's raw matrix, and their UMIs (soup only; 10x
#: Genomics' empty droplets hold tens of UMIs)
EMPTY_PER_CELL = 3
EMPTY_MEDIAN_UMIS = 30.0
EMPTY_SDLOG = 0.8
#: Quadrature points over a type's continuum for expected profiles (soup, truth).
GRID = 24
CHUNK = 2048


def real_detection() -> dict[str, float]:
    """Share of cells of a real 10x sample that detect each gene of the shipped gene list."""
    text = resources.files("csfcart.data").joinpath("gene_detection_reference.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith(("#", "gene\t"))]
    return {gene: float(value) for gene, value in rows}


#: every cell type's continuum, listed or not (:data:`UNLISTED_TYPES`)
ALL_TYPES = {**CELL_TYPES, **UNLISTED_TYPES}


def gene_universe(n_genes: int, extra: list[str] | None = None) -> list[str]:
    """The gene symbols of the count matrix: every marker and module gene (and the ``extra``
    genes of unlisted types a cohort holds), then others."""
    text = resources.files("csfcart.data").joinpath("genes.txt").read_text()
    listed = [g for g in (line.strip() for line in text.splitlines()) if g and not g.startswith("#")]
    first = marker_genes()
    first += [g for g in dict.fromkeys(extra or []) if g not in set(first)]
    rest = [g for g in listed if g not in set(first)]
    if n_genes < len(first):
        raise ValueError(f"n_genes must be at least {len(first)} (the marker and module genes)")
    if n_genes > len(first) + len(rest):
        raise ValueError(f"n_genes must be at most {len(first) + len(rest)} (the shipped gene list)")
    return first + rest[: n_genes - len(first)]


@dataclass
class SampleDraw:
    """One simulated sample: counts (cells x features, CSR int32), per-cell truth and the
    sample's own parameters (ambient fraction, depth)."""

    counts: sp.csr_matrix
    barcodes: list[str]
    truth: pd.DataFrame
    params: dict
    #: empty droplets (ambient soup only), cells x features: with the cells, the raw matrix
    empty: sp.csr_matrix | None = None
    empty_barcodes: list[str] | None = None


class CohortModel:
    """Shared parameters of a cohort (state profiles, dispersions) and per-sample draws."""

    def __init__(self, cohort: Cohort):
        self.cohort = cohort
        present = {t for comp in cohort.compartments.values() for t, f in comp.composition.items() if f > 0}
        self.unlisted = [t for t in UNLISTED_TYPES if t in present]
        extra = [
            g for t in self.unlisted for s in dict.fromkeys(UNLISTED_TYPES[t]["states"]) for g in UNLISTED_STATES[s]
        ]
        self.genes = gene_universe(cohort.n_genes, extra)
        self.features = [*self.genes, cohort.car_feature]
        self.gene_index = {g: i for i, g in enumerate(self.genes)}
        self.types = list(CELL_TYPES) + self.unlisted
        rng = np.random.default_rng([cohort.seed, 0])
        n = len(self.genes)
        self.dispersion = np.exp(rng.normal(np.log(DISPERSION), DISPERSION_SDLOG, n))
        base = np.exp(rng.normal(0.0, BASE_SDLOG, n))
        is_mt = np.isin(self.genes, MT_GENES)
        is_ribo = np.isin(self.genes, RIBO_GENES)
        is_ig = np.isin(self.genes, IG_GENES)
        self._is_mt, self._is_ribo = is_mt, is_ribo
        listed = np.zeros(n, bool)
        listed[[self.gene_index[g] for g in [*marker_genes(), *extra]]] = True
        shared_modules = {g for m in MODULE_CELL_SD for g in MODULES[m]}
        detection = real_detection()
        silent = np.array([detection.get(g, 0.0) < SILENT_BELOW for g in self.genes]) & ~listed
        everywhere = ((rng.random(n) < HOUSEKEEPING) & ~listed & ~silent) | is_mt | is_ribo
        everywhere[[self.gene_index[g] for g in shared_modules]] = True

        # lineage profiles: unlisted genes restricted to some lineages, markers leak
        lineages = sorted(set(LINEAGE.values()))
        states = dict(STATES)
        states["CAR_T_CD8"] = {**STATES["CAR_T"], **CAR_T_CD8}
        states["CAR_T_CD4"] = {**STATES["CAR_T"], **CAR_T_CD4}
        state_lineage = {s: LINEAGE[t] for t, spec in CELL_TYPES.items() for s in spec["states"]}
        state_lineage.update(CAR_T_CD8="T", CAR_T_CD4="T")
        typical = float(np.median(base))
        marker_base = typical * np.exp(rng.normal(0.0, 0.6, n))
        lineage_log = {}
        for lin in lineages:
            on = everywhere | ((rng.random(n) < LINEAGE_ON) & ~silent)
            prof = base * np.where(on, 1.0, OFF) * np.exp(rng.normal(0.0, 0.4, n))
            used = {g for s, lin_s in state_lineage.items() if lin_s == lin for g in states[s]}
            for i in np.flatnonzero(listed & ~everywhere):
                g = self.genes[i]
                prof[i] = marker_base[i] * (1.0 if g in used else (IG_LEAK if is_ig[i] else MARKER_LEAK))
            lineage_log[lin] = np.log(prof)

        self.states = list(states)
        log_states = np.empty((len(self.states), n))
        for k, s in enumerate(self.states):
            lin = state_lineage[s]
            prof = np.exp(lineage_log[lin] + rng.normal(0.0, 0.15, n))
            for gene, fold in states[s].items():
                weak = fold if gene in IG_GENES else fold**cohort.identity_strength
                prof[self.gene_index[gene]] = marker_base[self.gene_index[gene]] * weak
            ribo = RIBO_SHARE.get(lin, RIBO_DEFAULT)
            log_states[k] = np.log(self._shares(prof, ribo))
        if self.unlisted:  # their lineages and states on a stream of their own
            extra_rng = np.random.default_rng([cohort.seed, 8])
            extra_states = []
            for t in self.unlisted:
                lin = UNLISTED_TYPES[t]["lineage"]
                on = everywhere | ((extra_rng.random(n) < LINEAGE_ON) & ~silent)
                base_prof = base * np.where(on, 1.0, OFF) * np.exp(extra_rng.normal(0.0, 0.4, n))
                for i in np.flatnonzero(listed & ~everywhere):
                    base_prof[i] = marker_base[i] * (IG_LEAK if is_ig[i] else MARKER_LEAK)
                for s in dict.fromkeys(UNLISTED_TYPES[t]["states"]):
                    prof = base_prof * np.exp(extra_rng.normal(0.0, 0.15, n))
                    for gene, fold in UNLISTED_STATES[s].items():
                        prof[self.gene_index[gene]] = (
                            marker_base[self.gene_index[gene]] * fold**cohort.identity_strength
                        )
                    extra_states.append(np.log(self._shares(prof, RIBO_DEFAULT)))
                    self.states.append(s)
            log_states = np.vstack([log_states, *extra_states])
        self.state_index = {s: k for k, s in enumerate(self.states)}
        self.log_states = log_states

        # cell-to-cell modules: shared named ones and random background ones
        unlisted_on = np.flatnonzero(~listed & everywhere)
        weights, sds = [], []
        for name, sd in MODULE_CELL_SD.items():
            w = np.zeros(n)
            w[[self.gene_index[g] for g in MODULES[name]]] = 1.0
            weights.append(w)
            sds.append(sd)
        for _ in range(BACKGROUND_MODULES):
            w = np.zeros(n)
            w[rng.choice(unlisted_on, size=min(BACKGROUND_MODULE_GENES, unlisted_on.size), replace=False)] = 1.0
            weights.append(w)
            sds.append(BACKGROUND_MODULE_SD)
        self.module_weights = np.array(weights) * np.log(2)
        self.module_sd = np.array(sds)

        # sub-states: their log2 shifts as one vector per sub-state
        self.substate_shift = {}
        for name, spec in SUBSTATES.items():
            shift = np.zeros(n)
            for module, lfc in spec["log2fc"].items():
                shift[[self.gene_index[g] for g in MODULES[module]]] += lfc
            self.substate_shift[name] = shift * np.log(2)

        self.module_idx = {m: np.array([self.gene_index[g] for g in gs]) for m, gs in MODULES.items()}

    def _shares(self, prof: np.ndarray, ribo: float, mt: float = MT_SHARE) -> np.ndarray:
        """Rescale a profile so that MT and ribosomal genes hold the given UMI shares."""
        out = prof.copy()
        other = ~(self._is_mt | self._is_ribo)
        out[other] *= (1.0 - mt - ribo) / out[other].sum()
        out[self._is_mt] *= mt / out[self._is_mt].sum()
        out[self._is_ribo] *= ribo / out[self._is_ribo].sum()
        return out

    # -- patient and sample level parameters ---------------------------------------------
    @cached_property
    def samples(self) -> list[dict]:
        return self.cohort.samples()

    def patient_params(self, patient_id: str, stream: int = 1) -> dict:
        """Per-patient random effects, the same for all of that patient's samples (``stream``
        other than 1: patients of the population the truth integrates over)."""
        number = int(patient_id[1:])
        rng = np.random.default_rng([self.cohort.seed, stream, number])
        c = self.cohort
        return {
            "composition": {
                comp: dict(zip(self.types, rng.normal(0.0, c.patient_sd, len(self.types)), strict=True))
                for comp in ("CSF", "blood")
            },
            "module": dict(zip(MODULES, rng.normal(0.0, c.expression_sd, len(MODULES)), strict=True)),
            # relative per-patient strength of each abundance, CAR-T and expression effect
            "abundance": dict(zip(self.types, _strength(rng, c.effect_sd, len(self.types)), strict=True)),
            "car_t": float(_strength(rng, c.effect_sd, 1)[0]),
            "expression": _strength(rng, c.effect_sd, len(c.expression)),
            "states": _strength(rng, c.effect_sd, max(len(c.states), 1)),
            # each patient's own shift of every effect on the log scale (drawn last: the draws
            # above stay those of cohorts without it)
            "shift": {
                "abundance": dict(
                    zip(self.types, rng.normal(0.0, c.effect_heterogeneity, len(self.types)), strict=True)
                ),
                "car_t": float(rng.normal(0.0, c.effect_heterogeneity)),
                "expression": rng.normal(0.0, c.effect_heterogeneity, len(c.expression)) / np.log(2),
                "states": rng.normal(0.0, c.effect_heterogeneity, max(len(c.states), 1)),
            },
        }

    def expected_composition(self, compartment: str, timepoint: str, patient: dict | None = None) -> dict[str, float]:
        """Mean cell-type fractions of a compartment at a time point, CAR-T included.

        CAR-T cells come on top of the existing cells: with a CAR+ share ``c`` of T cells,
        ``c / (1 - c)`` times the endogenous T cells are added and every other fraction is
        diluted by the same factor.
        """
        c = self.cohort
        comp = c.compartments[compartment]
        folds = c.abundance.get(compartment, {}).get(timepoint, {})
        mean = {}
        for ct, frac in comp.composition.items():
            fold = folds.get(ct, 1.0)
            if patient is not None:
                fold = fold ** patient["abundance"][ct]
                if ct in folds:
                    fold *= np.exp(patient["shift"]["abundance"][ct])
                frac = frac * np.exp(patient["composition"][compartment][ct])
            mean[ct] = frac * fold
        total = sum(mean.values())
        mean = {k: v / total for k, v in mean.items()}
        car = c.car_t.get(compartment, {}).get(timepoint, 0.0)
        if patient is not None and car > 0:
            car = float(np.clip(car * patient["car_t"] * np.exp(patient["shift"]["car_t"]), 0.0, 0.95))
        t_total = sum(mean.get(t, 0.0) for t in T_CELLS)
        if car > 0 and t_total > 0:
            mean["CAR_T"] = car / (1.0 - car) * t_total
            total = sum(mean.values())
            mean = {k: v / total for k, v in mean.items()}
        return mean

    def expression_log2fc(self, compartment: str, timepoint: str, patient: dict | None = None) -> np.ndarray:
        """log2 fold changes (cell types x genes) of the treatment at a time point."""
        lfc = np.zeros((len(self.types), len(self.genes)))
        for k, eff in enumerate(self.cohort.expression):
            if compartment not in eff.compartments or timepoint not in eff.log2fc:
                continue
            size = eff.log2fc[timepoint]
            if patient is not None:
                size = size * patient["expression"][k] + patient["shift"]["expression"][k]
            cols = np.array([self.gene_index[g] for g in eff.genes if g in self.gene_index])
            for ct in eff.cell_types:
                lfc[self.types.index(ct), cols] += size
        for eff in self.cohort.profiles:  # the same at every visit: no patient variation
            cols = np.array([self.gene_index[g] for g in eff.genes if g in self.gene_index], dtype=int)
            for ct in eff.cell_types:
                if ct in self.types and timepoint in eff.log2fc:
                    lfc[self.types.index(ct), cols] += eff.log2fc[timepoint]
        return lfc

    def substate_probability(self, state: str, compartment: str, timepoint: str, patient: dict | None = None) -> float:
        """Share of a sub-state's cell type that is in the sub-state at a time point."""
        logit = float(np.log(SUBSTATES[state]["p_baseline"] / (1.0 - SUBSTATES[state]["p_baseline"])))
        for k, eff in enumerate(self.cohort.states):
            if eff.state == state and compartment in eff.compartments and timepoint in eff.log_odds:
                if patient is None:
                    logit += eff.log_odds[timepoint]
                else:
                    logit += eff.log_odds[timepoint] * patient["states"][k] + patient["shift"]["states"][k]
        return float(1.0 / (1.0 + np.exp(-logit)))

    def expected_profiles(self, compartment: str, timepoint: str) -> dict[str, np.ndarray]:
        """Expected UMI shares (genes) of a cell of each type at a time point, population level.

        The continuum position is integrated by quadrature over its Beta distribution and
        sub-states are mixed by their probability; cell-to-cell module noise, patient and
        batch effects are left out (they do not change with time).
        """
        lfc = self.expression_log2fc(compartment, timepoint) * np.log(2)
        out = {}
        for k, ct in enumerate(self.types):
            spec = ALL_TYPES[ct]
            q = (np.arange(GRID) + 0.5) / GRID
            u = stats.beta.ppf(q, *spec["beta"])
            mixes = (
                [("CAR_T_CD8", CAR_T_CD8_FRACTION), ("CAR_T_CD4", 1 - CAR_T_CD8_FRACTION)]
                if ct == "CAR_T"
                else [(spec["states"][0], 1.0)]
            )
            mean = np.zeros(len(self.genes))
            for first, weight in mixes:
                a = self.log_states[self.state_index[first]]
                b = self.log_states[self.state_index[self._second_state(ct, first)]]
                logp = (1 - u)[:, None] * a + u[:, None] * b + lfc[k]
                for state, spec_s in SUBSTATES.items():
                    if spec_s["cell_type"] != ct:
                        continue
                    p = self.substate_probability(state, compartment, timepoint)
                    on = _normalise(np.exp(logp + self.substate_shift[state]))
                    off = _normalise(np.exp(logp))
                    mean += weight * (p * on + (1 - p) * off).mean(axis=0)
                    break
                else:
                    mean += weight * _normalise(np.exp(logp)).mean(axis=0)
            out[ct] = mean
        return out

    @staticmethod
    def _second_state(cell_type: str, first: str) -> str:
        if cell_type == "CAR_T":
            return "CD8_GZMB" if first == "CAR_T_CD8" else "CD4_effector_memory"
        return ALL_TYPES[cell_type]["states"][1]

    def sample_cells(self, compartment: str, timepoint: str, rng: np.random.Generator, patient: dict) -> int:
        """Number of cells of a sample (CSF pleocytosis moves its median with time)."""
        comp = self.cohort.compartments[compartment]
        fold = self.cohort.cells.get(compartment, {}).get(timepoint, 1.0)
        n = round(comp.cells_median * fold * np.exp(rng.normal(0, comp.cells_sdlog)))
        return int(np.clip(n, comp.cells_min, comp.cells_max))

    # -- drawing one sample ----------------------------------------------------------------
    def draw_sample(self, index: int) -> SampleDraw:
        """Draw sample ``index`` of :meth:`Cohort.samples` from its own random stream."""
        c = self.cohort
        meta = self.samples[index]
        compartment, timepoint = meta["compartment"], meta["timepoint"]
        rng = np.random.default_rng([c.seed, 2, index])
        comp = c.compartments[compartment]
        patient = self.patient_params(meta["patient_id"])

        # composition and cell numbers
        mean = self.expected_composition(compartment, timepoint, patient)
        types = list(mean)
        alpha = np.maximum(np.array([mean[t] for t in types]) * comp.concentration, 1e-3)
        fractions = rng.dirichlet(alpha)
        n_cells = self.sample_cells(compartment, timepoint, rng, patient)
        cell_type = np.array(types)[rng.choice(len(types), size=n_cells, p=fractions)]
        type_idx = np.array([self.types.index(t) for t in cell_type], dtype=np.int64)

        # each cell's place on its type's continuum, and its two end states
        position = np.empty(n_cells)
        first = np.empty(n_cells, dtype=np.int64)
        second = np.empty(n_cells, dtype=np.int64)
        car = cell_type == "CAR_T"
        cd8 = rng.random(n_cells) < CAR_T_CD8_FRACTION
        for ct in np.unique(cell_type):
            m = cell_type == ct
            spec = ALL_TYPES[ct]
            position[m] = rng.beta(*spec["beta"], m.sum())
            first[m] = self.state_index[spec["states"][0]]
            second[m] = self.state_index[spec["states"][1]]
        for state, m in (("CAR_T_CD8", car & cd8), ("CAR_T_CD4", car & ~cd8)):
            first[m] = self.state_index[state]
            second[m] = self.state_index[self._second_state("CAR_T", state)]

        # sub-states (activated microglia-like cells)
        substate = np.full(n_cells, "", dtype=object)
        for state, spec in SUBSTATES.items():
            m = cell_type == spec["cell_type"]
            p = self.substate_probability(state, compartment, timepoint, patient)
            substate[m & (rng.random(n_cells) < p)] = state

        # sample-specific shifts: patient module levels, treatment, batch
        lfc = self.expression_log2fc(compartment, timepoint, patient)
        for module, offset in patient["module"].items():
            lfc[:, self.module_idx[module]] += offset
        lfc = lfc * np.log(2) + rng.normal(0.0, c.batch_sd, len(self.genes))[None, :]
        activity = rng.normal(0.0, 1.0, (n_cells, len(self.module_sd))) * self.module_sd

        # library sizes, depth, ambient fraction, damaged cells, doublets
        lo, hi = c.ambient_fraction
        ambient = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > 0 else 0.0
        depth = float(np.exp(rng.normal(0.0, c.depth_sdlog)))
        median = np.array([MEDIAN_UMIS[t] for t in cell_type])
        library = median * depth * np.exp(rng.normal(0.0, LIBRARY_SDLOG, n_cells))
        damaged = rng.random(n_cells) < c.damaged_fraction
        library[damaged] *= DAMAGED_LIBRARY
        mt_damaged = rng.uniform(*DAMAGED_MT, n_cells)
        mt_scale = np.exp(rng.normal(0.0, MT_CELL_SDLOG, n_cells))
        doublet_rate = min(c.doublet_rate_per_1000 * n_cells / 1000.0, 0.3)
        doublet = (rng.random(n_cells) < doublet_rate) & ~damaged
        partner = np.full(n_cells, -1)
        for i in np.flatnonzero(doublet):
            others = np.flatnonzero(cell_type != cell_type[i])
            if others.size == 0:
                doublet[i] = False
                continue
            partner[i] = others[rng.integers(others.size)]
        partner_library = np.where(doublet, library[np.maximum(partner, 0)], 0.0)
        partner_library[damaged[np.maximum(partner, 0)] & doublet] /= DAMAGED_LIBRARY

        def profiles(idx: np.ndarray) -> np.ndarray:
            """Expression shares of the cells ``idx`` (rows sum to 1)."""
            u = position[idx][:, None]
            logp = (1 - u) * self.log_states[first[idx]] + u * self.log_states[second[idx]]
            logp += lfc[type_idx[idx]] + activity[idx] @ self.module_weights
            for state, shift in self.substate_shift.items():
                m = substate[idx] == state
                if m.any():
                    logp[m] += shift
            logp -= logp.max(axis=1, keepdims=True)
            return _normalise(np.exp(logp))

        # ambient soup: this sample's expected mix of cells, plasma transcripts
        # over-represented, CAR reads included
        expected = self.expected_profiles(compartment, timepoint)
        weights = pd.Series(library).groupby(cell_type).sum()
        soup = np.zeros(len(self.features))
        for ct, w in weights.items():
            soup[: len(self.genes)] += w * (SOUP_PLASMA_WEIGHT if ct == "plasma" else 1.0) * expected[ct]
        detected = car & (rng.random(n_cells) < c.car_detection)
        car_umis = np.where(detected, 1 + rng.poisson(1.5, n_cells), 0)
        soup[-1] = car_umis.sum()
        soup /= soup.sum()

        mt, other = self._is_mt, ~self._is_mt
        dispersion = np.append(self.dispersion, 1e-6)
        blocks = []
        for start in range(0, n_cells, CHUNK):
            idx = np.arange(start, min(start + CHUNK, n_cells))
            p = profiles(idx)
            # healthy cells vary in their MT share; damaged cells are mostly MT
            p[:, mt] *= mt_scale[idx, None]
            p /= p.sum(axis=1, keepdims=True)
            d = damaged[idx]
            if d.any():
                share = mt_damaged[idx][d][:, None]
                pd_ = p[d]
                pd_[:, mt] *= share / pd_[:, mt].sum(axis=1, keepdims=True)
                pd_[:, other] *= (1 - share) / pd_[:, other].sum(axis=1, keepdims=True)
                p[d] = pd_
            mu = np.zeros((idx.size, len(self.features)))
            mu[:, : len(self.genes)] = p * (library[idx] * (1.0 - ambient))[:, None]
            db = doublet[idx]
            if db.any():
                mu[db, : len(self.genes)] += profiles(partner[idx][db]) * partner_library[idx][db, None]
            mu += np.outer((library[idx] + partner_library[idx]) * ambient, soup)
            lam = rng.gamma(1.0 / dispersion, mu * dispersion)
            x = rng.poisson(lam)
            x[:, -1] += car_umis[idx]
            blocks.append(sp.csr_matrix(x.astype(np.int32)))
        counts = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(self.features)), dtype=np.int32)

        barcodes = _barcodes(rng, n_cells)
        if c.raw_matrices:
            empty, empty_barcodes = self._empty_droplets(index, n_cells, depth, soup, set(barcodes))
        else:
            empty, empty_barcodes = sp.csr_matrix((0, len(self.features)), dtype=np.int32), []
        truth = pd.DataFrame(
            {
                "sample_id": meta["sample_id"],
                "barcode": barcodes,
                "cell_type": np.where(doublet, "doublet", cell_type),
                "singlet_type": cell_type,
                "state_position": position.round(4),
                "substate": substate,
                "doublet": doublet,
                "doublet_partner": np.where(doublet, cell_type[np.maximum(partner, 0)], ""),
                "damaged": damaged,
                "car_t": car,
                "car_detected": detected,
            }
        )
        params = {
            "sample_id": meta["sample_id"],
            "n_cells": n_cells,
            "ambient_fraction": round(ambient, 6),
            "depth_factor": round(depth, 6),
        }
        return SampleDraw(counts=counts, barcodes=barcodes, truth=truth, params=params, empty=empty,
                          empty_barcodes=empty_barcodes)  # fmt: skip

    def _empty_droplets(
        self, index: int, n_cells: int, depth: float, soup: np.ndarray, taken: set[str]
    ) -> tuple[sp.csr_matrix, list[str]]:
        """Droplets that caught no cell, only ambient soup, as a raw matrix holds them
        (their own random stream: the cells of a sample do not depend on them)."""
        rng = np.random.default_rng([self.cohort.seed, 5, index])
        n = EMPTY_PER_CELL * n_cells
        library = EMPTY_MEDIAN_UMIS * depth * np.exp(rng.normal(0.0, EMPTY_SDLOG, n))
        # independent Poisson counts per gene, drawn as a Poisson total per droplet split
        # over the genes by the soup (the same distribution; no dense droplets x genes draw)
        totals = rng.poisson(library)
        genes = rng.choice(len(soup), size=int(totals.sum()), p=soup)
        droplets = np.repeat(np.arange(n), totals)
        x = sp.csr_matrix((np.ones(genes.size, dtype=np.int32), (droplets, genes)), shape=(n, len(soup)))
        barcodes = _barcodes(rng, n)
        keep = (totals > 0) & np.array([b not in taken for b in barcodes], dtype=bool)
        return x[keep], [b for b, k in zip(barcodes, keep, strict=True) if k]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def _strength(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    """Relative effect strengths around 1, bounded so that no effect flips its sign."""
    return 1.0 + rng.normal(0.0, sd, n).clip(-0.6, 0.6)


def _barcodes(rng: np.random.Generator, n: int) -> list[str]:
    """Unique 16-nt 10x-style barcodes with the ``-1`` suffix."""
    out: list[str] = []
    seen: set[str] = set()
    letters = np.array(list("ACGT"))
    while len(out) < n:
        draw = letters[rng.integers(0, 4, size=(n - len(out), 16))]
        for row in draw:
            bc = "".join(row) + "-1"
            if bc not in seen:
                seen.add(bc)
                out.append(bc)
    return out
