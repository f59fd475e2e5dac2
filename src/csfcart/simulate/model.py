"""The generative model of the synthetic cohorts.

Counts are negative binomial (gamma-Poisson) with gene-wise dispersion around a mean that is
``library size x cell-type profile``; the profile carries marker programs, per-patient
program levels, time-dependent treatment effects and a per-sample gene-wise batch effect.
Each droplet also receives an ambient soup (rich in immunoglobulin transcripts, from lysed
plasma cells); some droplets are damaged cells (high mitochondrial fraction, few genes) and
some are heterotypic doublets.

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

from csfcart.simulate.biology import (
    CAR_T_CD8_FRACTION,
    CELL_TYPES,
    IG_GENES,
    MEDIAN_UMIS,
    MT_GENES,
    PROGRAMS,
    RIBO_GENES,
    T_CELLS,
    marker_genes,
)
from csfcart.simulate.cohort import Cohort

#: Share of UMIs from mitochondrial and ribosomal genes in a healthy cell.
MT_SHARE = 0.035
RIBO_SHARE = {"plasma": 0.08, "CD14_mono": 0.12, "CD16_mono": 0.12, "mDC": 0.12,
              "pDC": 0.15, "border_macrophage": 0.10, "microglia_like": 0.10}  # fmt: skip
RIBO_DEFAULT = 0.25
#: Cell-to-cell spread (log scale) of the MT share of healthy cells.
MT_CELL_SDLOG = 0.35
#: Library size and MT share of damaged cells.
DAMAGED_LIBRARY = 0.25
DAMAGED_MT = (0.25, 0.6)
#: Per-cell spread of the library size (log scale) and of microglia activation (log2).
LIBRARY_SDLOG = 0.35
ACTIVATION_CELL_SD = 0.5
#: Extra weight of plasma-cell transcripts in the ambient soup (they lyse readily).
SOUP_PLASMA_WEIGHT = 5.0
CHUNK = 2048

# internal profile rows: the public types, with CAR-T split by co-receptor
_PROFILE_ROWS = [t for t in CELL_TYPES if t != "CAR_T"] + ["CAR_T_CD8", "CAR_T_CD4"]


def gene_universe(n_genes: int) -> list[str]:
    """The gene symbols of the count matrix: every marker and program gene, then others."""
    text = resources.files("csfcart.data").joinpath("genes.txt").read_text()
    listed = [g for g in (line.strip() for line in text.splitlines()) if g and not g.startswith("#")]
    first = marker_genes()
    rest = [g for g in listed if g not in set(first)]
    if n_genes < len(first):
        raise ValueError(f"n_genes must be at least {len(first)} (the marker and program genes)")
    if n_genes > len(first) + len(rest):
        raise ValueError(f"n_genes must be at most {len(first) + len(rest)} (the shipped gene list)")
    return first + rest[: n_genes - len(first)]


@dataclass
class SampleDraw:
    """One simulated sample: counts (cells x features, CSR int32) and per-cell truth."""

    counts: sp.csr_matrix
    barcodes: list[str]
    truth: pd.DataFrame


class CohortModel:
    """Shared parameters of a cohort (gene profiles, dispersions) and per-sample draws."""

    def __init__(self, cohort: Cohort):
        self.cohort = cohort
        self.genes = gene_universe(cohort.n_genes)
        self.features = [*self.genes, cohort.car_feature]
        self.gene_index = {g: i for i, g in enumerate(self.genes)}
        rng = np.random.default_rng([cohort.seed, 0])
        n = len(self.genes)
        self.dispersion = np.exp(rng.normal(np.log(0.25), 0.5, n))
        base = np.exp(rng.normal(0.0, 1.7, n))
        is_mt = np.isin(self.genes, MT_GENES)
        is_ribo = np.isin(self.genes, RIBO_GENES)
        # Ig transcripts are absent outside B-lineage cells: their level comes from the
        # marker programs alone, applied to a typical gene's level
        is_ig = np.isin(self.genes, IG_GENES)
        typical = float(np.median(base))
        base[is_ig] = 1e-3
        self._is_mt, self._is_ribo = is_mt, is_ribo
        profiles = np.empty((len(_PROFILE_ROWS), n))
        for k, row in enumerate(_PROFILE_ROWS):
            ct = "CAR_T" if row.startswith("CAR_T") else row
            prof = base * np.exp(rng.normal(0.0, 0.3, n))
            markers = dict(CELL_TYPES[ct])
            if row == "CAR_T_CD8":
                markers.update({"CD8A": 60.0, "CD8B": 60.0, "CCL5": 20.0, "NKG7": 20.0})
            elif row == "CAR_T_CD4":
                markers.update({"CD4": 20.0, "IL7R": 6.0})
            for gene, fold in markers.items():
                i = self.gene_index[gene]
                prof[i] = (typical if is_ig[i] else prof[i]) * fold
            profiles[k] = self._shares(prof, RIBO_SHARE.get(ct, RIBO_DEFAULT))
        self.profiles = profiles
        self.row_index = {r: k for k, r in enumerate(_PROFILE_ROWS)}
        self.program_idx = {p: np.array([self.gene_index[g] for g in gs]) for p, gs in PROGRAMS.items()}

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

    def patient_params(self, patient_id: str) -> dict:
        """Per-patient random effects, the same for all of that patient's samples."""
        number = int(patient_id[1:])
        rng = np.random.default_rng([self.cohort.seed, 1, number])
        c = self.cohort
        types = list(CELL_TYPES)
        return {
            "composition": {
                comp: dict(zip(types, rng.normal(0.0, c.patient_sd, len(types)), strict=True))
                for comp in ("CSF", "blood")
            },
            "program": dict(zip(PROGRAMS, rng.normal(0.0, c.expression_sd, len(PROGRAMS)), strict=True)),
            # relative per-patient strength of each abundance, CAR-T and expression effect
            "abundance": dict(zip(types, _strength(rng, c.effect_sd, len(types)), strict=True)),
            "car_t": float(_strength(rng, c.effect_sd, 1)[0]),
            "expression": _strength(rng, c.effect_sd, len(c.expression)),
        }

    def expected_composition(self, compartment: str, timepoint: str, patient: dict | None = None) -> dict[str, float]:
        """Mean cell-type fractions of a compartment at a time point (CAR-T included)."""
        c = self.cohort
        comp = c.compartments[compartment]
        folds = c.abundance.get(compartment, {}).get(timepoint, {})
        mean = {}
        for ct, frac in comp.composition.items():
            fold = folds.get(ct, 1.0)
            if patient is not None:
                fold = fold ** patient["abundance"][ct]
                frac = frac * np.exp(patient["composition"][compartment][ct])
            mean[ct] = frac * fold
        total = sum(mean.values())
        mean = {k: v / total for k, v in mean.items()}
        car = c.car_t.get(compartment, {}).get(timepoint, 0.0)
        if patient is not None and car > 0:
            car = float(np.clip(car * patient["car_t"], 0.0, 0.95))
        t_total = sum(mean.get(t, 0.0) for t in T_CELLS)
        if car > 0 and t_total > 0:
            for t in T_CELLS:
                if t in mean:
                    mean[t] *= 1.0 - car
            mean["CAR_T"] = car * t_total
        return mean

    def expression_log2fc(self, compartment: str, timepoint: str, patient: dict | None = None) -> np.ndarray:
        """log2 fold changes (profile rows x genes) of the treatment at a time point."""
        lfc = np.zeros_like(self.profiles)
        for k, eff in enumerate(self.cohort.expression):
            if compartment not in eff.compartments or timepoint not in eff.log2fc:
                continue
            size = eff.log2fc[timepoint]
            if patient is not None:
                size *= patient["expression"][k]
            cols = np.array([self.gene_index[g] for g in eff.genes if g in self.gene_index])
            for ct in eff.cell_types:
                rows = [self.row_index[r] for r in _PROFILE_ROWS if r == ct or r.startswith(ct + "_")]
                for r in rows:
                    lfc[r, cols] += size
        return lfc

    # -- drawing one sample ----------------------------------------------------------------
    def draw_sample(self, index: int) -> SampleDraw:
        """Draw sample ``index`` of :meth:`Cohort.samples` from its own random stream."""
        c = self.cohort
        meta = self.samples[index]
        rng = np.random.default_rng([c.seed, 2, index])
        comp = c.compartments[meta["compartment"]]
        patient = self.patient_params(meta["patient_id"])

        # composition and cell numbers
        mean = self.expected_composition(meta["compartment"], meta["timepoint"], patient)
        types = list(mean)
        alpha = np.maximum(np.array([mean[t] for t in types]) * comp.concentration, 1e-3)
        fractions = rng.dirichlet(alpha)
        n_cells = int(
            np.clip(round(comp.cells_median * np.exp(rng.normal(0, comp.cells_sdlog))), comp.cells_min, comp.cells_max)
        )
        cell_type = np.array(types)[rng.choice(len(types), size=n_cells, p=fractions)]

        # profile row of each cell (CAR-T split by co-receptor)
        row_name = cell_type.astype(object)
        car = cell_type == "CAR_T"
        cd8 = rng.random(n_cells) < CAR_T_CD8_FRACTION
        row_name[car & cd8] = "CAR_T_CD8"
        row_name[car & ~cd8] = "CAR_T_CD4"
        rows = np.array([self.row_index[r] for r in row_name], dtype=np.int64)

        # sample-specific profiles: patient program levels, treatment, batch
        log2 = self.expression_log2fc(meta["compartment"], meta["timepoint"], patient)
        for prog, offset in patient["program"].items():
            log2[:, self.program_idx[prog]] += offset
        batch = np.exp(rng.normal(0.0, c.batch_sd, len(self.genes)))
        profiles = self.profiles * np.exp2(log2) * batch
        profiles /= profiles.sum(axis=1, keepdims=True)

        # library sizes, damaged cells, doublets
        size_factor = np.exp(rng.normal(0.0, 0.15))
        median = np.array([MEDIAN_UMIS[t] for t in cell_type])
        library = median * size_factor * np.exp(rng.normal(0.0, LIBRARY_SDLOG, n_cells))
        damaged = rng.random(n_cells) < c.damaged_fraction
        library[damaged] *= DAMAGED_LIBRARY
        mt_damaged = rng.uniform(*DAMAGED_MT, n_cells)
        mt_scale = np.exp(rng.normal(0.0, MT_CELL_SDLOG, n_cells))
        doublet_rate = min(c.doublet_rate_per_1000 * n_cells / 1000.0, 0.3)
        doublet = (rng.random(n_cells) < doublet_rate) & ~damaged
        partner = np.full(n_cells, -1)
        partner_type = np.full(n_cells, "", dtype=object)
        for i in np.flatnonzero(doublet):
            others = np.flatnonzero(cell_type != cell_type[i])
            if others.size == 0:
                doublet[i] = False
                continue
            j = others[rng.integers(others.size)]
            partner[i] = rows[j]
            partner_type[i] = cell_type[j]
        partner_library = np.zeros(n_cells)
        for i in np.flatnonzero(doublet):
            partner_library[i] = MEDIAN_UMIS[partner_type[i]] * size_factor * np.exp(rng.normal(0.0, LIBRARY_SDLOG))
        activation = rng.normal(0.0, ACTIVATION_CELL_SD, n_cells)

        # ambient soup from this sample's own cells, plasma transcripts over-represented
        weights = np.bincount(rows, weights=library, minlength=len(_PROFILE_ROWS))
        weights[self.row_index["plasma"]] *= SOUP_PLASMA_WEIGHT
        soup = weights @ profiles
        soup /= soup.sum()

        act_cols = self.program_idx["microglia_activation"]
        mg = cell_type == "microglia_like"
        mt, other = self._is_mt, ~self._is_mt
        dispersion = self.dispersion
        blocks = []
        for start in range(0, n_cells, CHUNK):
            sl = slice(start, min(start + CHUNK, n_cells))
            p = profiles[rows[sl]]
            # microglia-like activation varies from cell to cell
            m = mg[sl]
            if m.any():
                p[np.ix_(m, act_cols)] *= np.exp2(activation[sl][m])[:, None]
                p[m] /= p[m].sum(axis=1, keepdims=True)
            # healthy cells vary in their MT share; damaged cells are mostly MT
            p[:, mt] *= mt_scale[sl, None]
            p /= p.sum(axis=1, keepdims=True)
            d = damaged[sl]
            if d.any():
                share = mt_damaged[sl][d][:, None]
                pd_ = p[d]
                pd_[:, mt] *= share / pd_[:, mt].sum(axis=1, keepdims=True)
                pd_[:, other] *= (1 - share) / pd_[:, other].sum(axis=1, keepdims=True)
                p[d] = pd_
            mu = p * (library[sl] * (1.0 - c.ambient_fraction))[:, None]
            db = doublet[sl]
            if db.any():
                mu[db] += profiles[partner[sl][db]] * partner_library[sl][db, None]
            mu += np.outer((library[sl] + partner_library[sl]) * c.ambient_fraction, soup)
            lam = rng.gamma(1.0 / dispersion, mu * dispersion)
            blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.int32)))
        counts = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(self.genes)), dtype=np.int32)

        # CAR transcript: detected in part of the true CAR-T cells
        detected = car & (rng.random(n_cells) < c.car_detection)
        car_counts = np.where(detected, 1 + rng.poisson(1.5, n_cells), 0).astype(np.int32)
        counts = sp.hstack([counts, sp.csr_matrix(car_counts[:, None])], format="csr")

        barcodes = _barcodes(rng, n_cells)
        truth = pd.DataFrame(
            {
                "sample_id": meta["sample_id"],
                "barcode": barcodes,
                "cell_type": np.where(doublet, "doublet", cell_type),
                "singlet_type": cell_type,
                "doublet": doublet,
                "doublet_partner": np.where(doublet, partner_type, ""),
                "damaged": damaged,
                "car_t": car,
                "car_detected": detected,
                "microglia_activation": np.where(mg, activation, np.nan),
            }
        )
        return SampleDraw(counts=counts, barcodes=barcodes, truth=truth)


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
