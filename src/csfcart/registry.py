"""The claim registry: every published finding the workflow tests, in one place.

Each :class:`Claim` says what is measured (its readouts), in which direction, how large the
published effect is claimed to be (``size``, on the readout's scale), the family it is
tested in, and which compartments and time points it needs. The analysis
(:mod:`csfcart.claims`), the simulator's truth (:mod:`csfcart.simulate.truth`), the
config schema's list of claim ids, the report and the workflow targets all read it; adding
a claim means adding an entry here and one measurement function in :mod:`csfcart.claims`.

This module is data only: it imports nothing from the analysis or the simulator, so that
both can read it without reading each other.

Decision rule (applied in :mod:`csfcart.claims`): each readout has an estimand (a
population quantity, stated in words on the readout) and a one-sided confidence bound at
the claim's level; the claim is **reproduced** when the deciding bound of every readout it
needs lies strictly beyond its claimed size, **contradicted** when the other bound of a
readout falls short of its size (the data exclude the claimed size), and **inconclusive**
otherwise. The level of each claim comes from a graphical multiple-testing procedure
(Bretz et al. 2009) over the claims of its family: ``weight`` is a claim's initial share of
``alpha`` and ``passes`` says where its share goes once it is reproduced. A claim whose share
is still 0 when the procedure stops is **not tested**, and the claim that gates it is
named. The family-wise error stays at ``alpha`` and a claim's verdict depends only on its
own family, never on which other claims a run includes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Readout:
    """One measured quantity of a claim, with the size the claim needs on its scale."""

    name: str
    measure: str  # the measurement function of csfcart.claims that computes it
    description: str  # what the estimate is, for tables and figures
    direction: int  # +1: the claim says it rises, -1: it falls
    size: float  # claimed minimum effect, signed: direction * estimate must exceed direction * size
    scale: str  # percent (change of a rate), fraction (difference), log2 (difference of log2 values)
    compartment: str = "CSF"
    window: str = "post"  # post (all post-infusion visits, equally weighted), first, last, matched
    cell_types: tuple[str, ...] = ()  # cells counted or scored, by type name ...
    lineages: tuple[str, ...] = ()  # ... and every type the run's marker table puts in these lineages
    quantity: str = ""  # axis label of the per-patient values
    labels: tuple[str, str] = ("baseline", "after")  # the two sides compared per patient
    needs: tuple[str, ...] = ()  # compartments this readout needs besides its own
    optional: bool = False  # a readout that is skipped (and said) when its data are missing
    program: str = ""  # expression readouts: the program of config/programs.yaml ...
    group: str = ""  # ... scored in this cell type (or ``myeloid``: all myeloid cells pooled)
    baseline_below: float | None = None  # the baseline value must stay below this (no signal before infusion)
    until_day: float | None = None  # only visits up to this many days after infusion count
    truth_scale: str = ""  # where the simulator's truth is on another scale than the estimate
    estimand: str = ""  # the population quantity the estimate targets, in words

    def types(self, lineage_of: Mapping[str, str]) -> list[str]:
        """The cell types this readout counts or scores, with ``lineage_of`` (type -> lineage,
        the marker table's ``lineage`` column) resolving its lineages."""
        return list(dict.fromkeys([*self.cell_types, *types_of(self.lineages, lineage_of)]))

    def visits(self, post: list[str], day_of) -> list[str]:
        """The post-infusion visits (in order) this readout uses; ``day_of(label)`` gives a
        visit's days since infusion, or None."""
        if self.until_day is not None:
            post = [t for t in post if (d := day_of(t)) is not None and d <= self.until_day]
        return {"first": post[:1], "last": post[-1:]}.get(self.window, post)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    study: str
    family: str  # claims of a family are tested in registry order (fixed sequence)
    readouts: tuple[Readout, ...]
    design: str = "paired"  # or unpaired: a condition against the reference condition, donors as the unit
    notes: str = ""
    weight: float = 1.0  # initial share of its family's alpha (graphical procedure)
    passes: tuple[tuple[str, float], ...] = ()  # once reproduced, its share goes to these claims (fractions)

    @property
    def primary(self) -> Readout:
        return self.readouts[0]

    @property
    def compartment(self) -> str:
        return self.primary.compartment

    @property
    def direction(self) -> int:
        return self.primary.direction

    @property
    def size(self) -> float:
        return self.primary.size

    @property
    def scale(self) -> str:
        return self.primary.scale

    @property
    def metric(self) -> str:
        return self.primary.description

    @property
    def compartments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.compartment for r in self.readouts if not r.optional))


#: the studies whose published findings the claims restate
STUDIES = {
    "bcma_ms_csf": "Anti-BCMA CAR-T (CT103A) in progressive multiple sclerosis, cerebrospinal fluid and blood "
    "(Cell 2025, NCT04561557)",
    "tyu19_blood": "Allogeneic CRISPR-edited CD19 CAR-T (TyU19) in autoimmune disease, blood (Cell 2024, NCT05859997)",
    "ms_vs_control": "Multiple sclerosis against control donors, cerebrospinal fluid (unpaired, donors as the unit)",
}

#: the cell-type groups the claims count and score, as lineages of the marker table
#: (``annotation.markers``, column ``lineage``): a run counts the types its own table puts in
#: them, so that a user's types and labels enter the claims through their lineage
T_CELLS = ("T",)
B_LINEAGE = ("B",)
ASC = ("plasma",)
MYELOID = ("myeloid", "microglia-like")
MICROGLIA = ("microglia-like",)
#: pooled groups whose programs are scored over all their cells (a readout's ``group``)
POOLS: dict[str, tuple[str, ...]] = {"myeloid": MYELOID, "microglia-like": MICROGLIA}
#: Programs read from an interaction axis of config ``interactions`` instead of config
#: ``programs``: name -> (axis, programs whose genes it leaves out). C7's microglia-side
#: readout holds the ligands and receptors of the B-lineage <-> microglia-like pairs, less
#: C8's cytokines, so that C7 and C8 share no gene.
AXIS_PROGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "b_microglia_partners": ("b_microglia", ("inflammatory_cytokines",)),
}


def types_of(lineages: tuple[str, ...], lineage_of: Mapping[str, str]) -> list[str]:
    """The types whose lineage (``lineage_of``: type -> lineage) is one of ``lineages``."""
    return [t for t, lineage in lineage_of.items() if lineage in lineages]


_REGISTRY: tuple[Claim, ...] = (
    Claim(
        "C1",
        "CAR-T cells reach the CSF",
        "bcma_ms_csf",
        "car_t_csf",
        (
            Readout(
                "car_fraction",
                "car_change",
                "change from baseline of the CAR+ fraction of CSF T cells, post-infusion visits weighted equally",
                +1,
                0.01,
                "fraction",
                quantity="CAR+ fraction of CSF T cells",
                estimand="the mean patient's change of the CAR+ fraction of CSF T cells from baseline to the post-infusion visits (visits weighted equally)",
                baseline_below=0.005,
            ),
        ),
        notes="the baseline CAR+ fraction must stay below 0.005 (no CAR signal before infusion)",
        passes=(("C2", 2 / 3), ("C9", 1 / 3)),
    ),
    Claim(
        "C2",
        "CAR-T cells expand and persist in CSF",
        "bcma_ms_csf",
        "car_t_csf",
        (
            Readout(
                "persistence",
                "car_persistence",
                "log2 ratio of the CAR+ fraction of CSF T cells at the last "
                "visit over the first post-infusion visit (at least half kept: above -1)",
                +1,
                -1.0,
                "log2",
                window="last",
                quantity="CAR+ fraction of CSF T cells",
                labels=("first after", "last"),
                estimand="the mean patient's log2 fold change of the CAR+ fraction of CSF T cells from the first to the last post-infusion visit",
            ),
            Readout(
                "csf_over_blood",
                "car_csf_over_blood",
                "log2 ratio of the CAR+ fraction of T cells, CSF over blood, matched post-infusion visits",
                +1,
                0.0,
                "log2",
                window="matched",
                quantity="CAR+ fraction of T cells",
                labels=("blood", "CSF"),
                estimand="the mean patient's log2 ratio of the CAR+ fraction of T cells, CSF over blood, over matched post-infusion visits",
                needs=("blood",),
                optional=True,
            ),
        ),
        notes="tested on persistence alone where blood was not sampled",
        weight=0.0,
        passes=(("C9", 1.0),),
    ),
    Claim(
        "C3",
        "B-cell lineages are eliminated in CSF",
        "bcma_ms_csf",
        "b_cells_csf",
        (
            Readout(
                "b_fraction",
                "depletion",
                "percent change from baseline of the B-cell share of non-CAR CSF cells "
                "(per-patient rate ratios, post-infusion visits weighted equally)",
                -1,
                -50.0,
                "percent",
                lineages=B_LINEAGE,
                quantity="B-lineage share of non-CAR CSF cells",
                estimand="the mean patient's fold change (geometric mean, as percent) of the B-lineage share of CSF cells other than CAR-T cells, baseline to the post-infusion visits",
            ),
        ),
    ),
    Claim(
        "C4",
        "plasmablasts / plasma cells are depleted",
        "bcma_ms_csf",
        "asc_csf",
        (
            Readout(
                "asc_fraction",
                "depletion",
                "percent change from baseline of the plasma-cell share of non-CAR CSF cells "
                "(per-patient rate ratios, post-infusion visits weighted equally)",
                -1,
                -50.0,
                "percent",
                lineages=ASC,
                quantity="plasma-cell share of non-CAR CSF cells",
                estimand="the mean patient's fold change (geometric mean, as percent) of the plasma-cell share of CSF cells other than CAR-T cells, baseline to the post-infusion visits",
            ),
        ),
        notes="falls to about zero: the upper confidence bound of the post-infusion fraction is reported",
        passes=(("C5", 1.0),),
    ),
    Claim(
        "C5",
        "intrathecal immunoglobulin production halts",
        "bcma_ms_csf",
        "asc_csf",
        (
            Readout(
                "asc_ig",
                "ig_depletion",
                "percent change from baseline of Ig UMIs of antibody-secreting cells per "
                "UMI of non-CAR CSF cells (per-patient rate ratios)",
                -1,
                -50.0,
                "percent",
                lineages=ASC,
                quantity="ASC Ig UMIs per non-CAR CSF UMI",
                estimand="the mean patient's fold change (geometric mean, as percent) of immunoglobulin UMIs of antibody-secreting cells per UMI of the CSF sample's non-CAR cells",
            ),
        ),
        weight=0.0,
    ),
    Claim(
        "C6",
        "microglial activation is attenuated",
        "bcma_ms_csf",
        "microglia_csf",
        (
            Readout(
                "activation",
                "program_change",
                "change in the activation readout of microglia-like cells (genes weighted equally, "
                "identity markers left out)",
                -1,
                -0.3,
                "log2",
                lineages=MICROGLIA,
                quantity="microglia activation (log2, relative to pooled)",
                estimand="the mean patient's log2 change of the genes' mean relative expression of the activation genes other than microglia-like identity markers in CSF microglia-like cells, baseline to the post-infusion visits",
                program="microglia_activation",
                group="microglia-like",
            ),
        ),
    ),
    Claim(
        "C7",
        "B cell / microglia-like cell interactions are reduced",
        "bcma_ms_csf",
        "b_microglia_csf",
        (
            Readout(
                "signalling",
                "program_change",
                "change in microglia-like expression of the B-lineage <-> microglia-like ligands and receptors "
                "(genes weighted equally; C8's cytokines left out)",
                -1,
                -0.3,
                "log2",
                lineages=MICROGLIA,
                quantity="microglia-like B-axis ligands and receptors (log2, relative to pooled)",
                estimand="the mean patient's log2 change of the genes' mean relative expression of the B-lineage <-> microglia-like ligands and receptors (no cytokine of C8) in CSF microglia-like cells",
                program="b_microglia_partners",
                group="microglia-like",
            ),
            Readout(
                "strength",
                "lr_strength",
                "change in B-lineage <-> microglia-like interaction strength: half the summed log2 CPM change of "
                "ligand (sender) and receptor (receiver), pairs expressed pooled over patients and visits, visits with "
                "both partners",
                -1,
                0.0,
                "log2",
                quantity="B / microglia-like ligand and receptor expression (log2 CPM)",
                estimand="the mean patient's log2 fold change of B-lineage <-> microglia-like ligand and receptor expression at visits with both partners",
                program="b_microglia",
                optional=True,
            ),
        ),
        notes="interactions lost only because B cells vanished are a consequence of C3/C4, not evidence for C7: "
        "the strength readout is measured only where both partners are present, and the claim is tested on the "
        "microglia-like cells' own signalling where they are not",
    ),
    Claim(
        "C8",
        "inflammatory cytokines in CSF fall",
        "bcma_ms_csf",
        "cytokines_csf",
        (
            Readout(
                "cytokines",
                "program_change",
                "change in the cytokine readout of CSF myeloid and microglia-like cells (genes weighted equally)",
                -1,
                -0.3,
                "log2",
                lineages=MYELOID,
                quantity="cytokine program (log2, relative to pooled)",
                estimand="the mean patient's log2 change of the genes' mean relative expression of the cytokine genes in CSF myeloid and microglia-like cells",
                program="inflammatory_cytokines",
                group="myeloid",
            ),
        ),
    ),
    Claim(
        "C9",
        "CSF CAR-T cells are less exhausted",
        "bcma_ms_csf",
        "car_t_csf",
        (
            Readout(
                "exhaustion",
                "exhaustion_did",
                "exhaustion readout (log2 CPM) of CAR-T minus non-CAR CD8 T cells, "
                "CSF minus blood, matched post-infusion visits",
                -1,
                -0.3,
                "log2",
                window="matched",
                cell_types=("CAR_T", "CD8_T"),
                quantity="exhaustion, CAR-T minus CD8 T",
                estimand="the mean patient's CSF-minus-blood difference of the exhaustion readout of CAR-T minus CD8 T cells (log2), over matched post-infusion visits",
                labels=("blood", "CSF"),
                needs=("blood",),
                program="t_exhaustion",
                group="CAR_T",
            ),
        ),
        weight=0.0,
        passes=(("C2", 1.0),),
    ),
    Claim(
        "D1",
        "B cells are depleted in blood within about 2 weeks",
        "tyu19_blood",
        "b_cells_blood",
        (
            Readout(
                "b_fraction",
                "depletion",
                "percent change from baseline of the B-cell share of non-CAR blood cells at the first "
                "post-infusion visit (per-patient rate ratios)",
                -1,
                -50.0,
                "percent",
                compartment="blood",
                window="first",
                lineages=B_LINEAGE,
                quantity="B-cell share of non-CAR blood cells",
                estimand="the mean patient's fold change (geometric mean, as percent) of the B-cell share of blood cells other than CAR-T cells, baseline to the first post-infusion visit",
                labels=("baseline", "first after"),
            ),
        ),
        notes="falls to about zero: the upper confidence bound of the post-infusion fraction is reported",
    ),
    Claim(
        "D2",
        "CAR-T cells persist",
        "tyu19_blood",
        "car_t_blood",
        (
            Readout(
                "car_fraction",
                "car_change",
                "change from baseline of the CAR+ fraction of blood T cells at the last visit up to month 3 (day 100)",
                +1,
                0.005,
                "fraction",
                compartment="blood",
                window="last",
                until_day=100,
                quantity="CAR+ fraction of blood T cells",
                estimand="the mean patient's change of the CAR+ fraction of blood T cells from baseline to the last visit up to day 100",
                labels=("baseline", "month 3"),
            ),
        ),
    ),
    Claim(
        "D3",
        "returning B cells are new, naive ones",
        "tyu19_blood",
        "b_return_blood",
        (
            Readout(
                "naive_odds",
                "naive_odds",
                "log2 odds ratio of naive among blood B cells, last visit vs baseline",
                +1,
                1.0,
                "log2",
                compartment="blood",
                window="last",
                lineages=B_LINEAGE,
                quantity="log2 odds naive among blood B",
                estimand="the mean patient's log2 odds ratio of naive among blood B cells, last visit against baseline",
                labels=("baseline", "last"),
            ),
        ),
    ),
    Claim(
        "M1",
        "B cells are enriched in MS CSF",
        "ms_vs_control",
        "ms_b",
        (
            Readout(
                "b_fraction",
                "condition_fraction",
                "log2 ratio of the B-cell fraction of CSF cells, MS over control "
                "donors (difference of mean log2 fractions)",
                +1,
                0.0,
                "log2",
                lineages=B_LINEAGE,
                quantity="log2 B-cell fraction of CSF cells",
                estimand="the difference of mean log2 B-cell fractions of CSF cells, MS donors minus control donors",
                labels=("control", "MS"),
            ),
        ),
        design="unpaired",
    ),
    Claim(
        "M2",
        "plasma cells are enriched in MS CSF",
        "ms_vs_control",
        "ms_asc",
        (
            Readout(
                "asc_fraction",
                "condition_fraction",
                "log2 ratio of the plasma-cell fraction of CSF cells, MS over "
                "control donors (difference of mean log2 fractions)",
                +1,
                0.0,
                "log2",
                lineages=ASC,
                quantity="log2 plasma fraction of CSF cells",
                estimand="the difference of mean log2 plasma-cell fractions of CSF cells, MS donors minus control donors",
                labels=("control", "MS"),
            ),
        ),
        design="unpaired",
    ),
)

#: claim id -> claim, in registry order (the order of the claims table and of each family).
CLAIMS: dict[str, Claim] = {c.id: c for c in _REGISTRY}
#: the ids a dataset may list under ``claims:``
CLAIM_IDS: tuple[str, ...] = tuple(CLAIMS)


def measured_by(measure: str) -> set[str]:
    """The claims with a readout of ``measure`` (e.g. ``lr_strength``: the claims about
    cell-cell communication)."""
    return {c.id for c in _REGISTRY for r in c.readouts if r.measure == measure}


def family(claim_id: str) -> list[str]:
    """The claims of ``claim_id``'s family, in testing order."""
    name = CLAIMS[claim_id].family
    return [c.id for c in _REGISTRY if c.family == name]


def graph(claim_ids: list[str]) -> tuple[list[float], list[list[float]]]:
    """The graphical procedure's initial weights and transitions among ``claim_ids`` (one
    family, in order): ``transitions[i][j]`` is the share of claim i's level that goes to
    claim j once i is reproduced."""
    weights = [CLAIMS[c].weight for c in claim_ids]
    transitions = [[dict(CLAIMS[a].passes).get(b, 0.0) for b in claim_ids] for a in claim_ids]
    return weights, transitions


def gates(claim_id: str) -> list[str]:
    """The claims that pass a share of their level to ``claim_id``."""
    return [c.id for c in _REGISTRY if dict(c.passes).get(claim_id, 0.0) > 0]


def families(claim_ids) -> list[str]:
    """``claim_ids`` with the other members of their families, in registry order."""
    wanted = {f for c in claim_ids if c in CLAIMS for f in family(c)}
    return [c for c in CLAIMS if c in wanted]


__all__ = [
    "ASC",
    "B_LINEAGE",
    "CLAIMS",
    "CLAIM_IDS",
    "MICROGLIA",
    "MYELOID",
    "POOLS",
    "STUDIES",
    "T_CELLS",
    "Claim",
    "Readout",
    "families",
    "family",
    "gates",
    "graph",
    "measured_by",
    "types_of",
]
