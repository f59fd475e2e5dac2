"""The cohort description of a synthetic dataset: parsing and strict validation.

A cohort is the ``simulation`` block of a dataset YAML under ``config/datasets/``. Every
error names the key and says how to fix it, before a single cell is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csfcart.datasets import read_dataset
from csfcart.errors import InputError
from csfcart.registry import CLAIMS
from csfcart.simulate.biology import CELL_TYPES, MODULES, SUBSTATES, UNLISTED_TYPES

#: types a composition may hold: the listed ones (CAR-T cells come from effects) and those
#: the marker table does not list
KNOWN_TYPES = [t for t in CELL_TYPES if t != "CAR_T"] + list(UNLISTED_TYPES)
COMPARTMENTS = ("CSF", "blood")
CLAIM_IDS = tuple(c for c, claim in CLAIMS.items() if claim.design == "paired")

_TOP_KEYS = {
    "seed": "an integer seed, for example `seed: 1`",
    "n_patients": "the number of patients, for example `n_patients: 5`",
    "timepoints": "the ordered time points, baseline first, e.g. `[baseline, d14, m3]`",
    "compartments": "a mapping CSF/blood -> cells, composition",
    "n_genes": "the number of genes in the count matrix, e.g. `n_genes: 3000`",
    "car_feature": "the name of the CAR transcript feature, e.g. `car_feature: CAR`",
    "car_detection": "the fraction of true CAR-T cells whose CAR transcript is detected",
    "ambient_fraction": "the fraction of each droplet's UMIs from the soup: a number, or [low, high] to draw"
    " each sample's fraction log-uniformly",
    "depth_sdlog": "per-sample spread (SD, log scale) of the sequencing depth",
    "damaged_fraction": "the fraction of damaged cells (high MT, few genes)",
    "doublet_rate_per_1000": "heterotypic doublet rate per 1,000 cells loaded",
    "batch_sd": "per-sample gene-wise batch effect, SD on the log scale",
    "patient_sd": "per-patient deviation of the composition, SD on the log scale",
    "expression_sd": "per-patient deviation of program levels, SD on the log2 scale",
    "effect_sd": "per-patient relative variation of every effect size",
    "effect_heterogeneity": "between-patient SD of every effect on the log scale (natural log of abundance"
    " folds and the CAR-T share, log2 fold of expression divided by ln 2, log odds of states), added to each"
    " patient's effect: patients who respond differently",
    "identity_strength": "how distinct the cell types are: every marker program's fold over its lineage is raised to"
    " this power (1: the shipped atlas-like identities; 0.6: weaker, as real 10x data often are; immunoglobulins"
    " of antibody-secreting cells keep their level)",
    "raw_matrices": "whether each sample also gets Cell Ranger's raw matrix with its empty droplets (false:"
    " filtered matrices only, as most deposited data are)",
    "effects": "treatment effects (abundance, car_t, expression, states, cells)",
    "profiles": "changes of cell types' expression at every visit (not treatment effects), e.g."
    " `[{genes: [FCGR3A], cell_types: [NK], log2fc: 3}]`",
    "claims": "the claims this dataset can test, e.g. `[C1, C3, C4]`",
}
_REQUIRED = {"seed", "n_patients", "timepoints", "compartments"}
_COMPARTMENT_KEYS = {"cells", "composition", "concentration", "timepoints"}
_CELLS_KEYS = {"median", "sdlog", "min", "max"}
_EXPRESSION_KEYS = {"name", "module", "genes", "cell_types", "compartments", "log2fc"}
_STATE_KEYS = {"state", "compartments", "log_odds"}


@dataclass(frozen=True)
class Compartment:
    """Sampling design of one compartment (CSF or blood)."""

    name: str
    timepoints: list[str]
    cells_median: float
    cells_sdlog: float
    cells_min: int
    cells_max: int
    composition: dict[str, float]
    concentration: float


@dataclass(frozen=True)
class ExpressionEffect:
    """A log2 fold change of some genes in some cell types at some time points."""

    name: str
    genes: list[str]
    cell_types: list[str]
    compartments: list[str]
    log2fc: dict[str, float]


@dataclass(frozen=True)
class StateEffect:
    """A shift (log odds) of the share of cells in a sub-state at some time points."""

    state: str
    compartments: list[str]
    log_odds: dict[str, float]


@dataclass(frozen=True)
class Cohort:
    """A validated synthetic cohort."""

    name: str
    seed: int
    n_patients: int
    timepoints: list[str]
    compartments: dict[str, Compartment]
    n_genes: int = 3000
    car_feature: str = "CAR"
    car_detection: float = 0.5
    ambient_fraction: tuple[float, float] = (0.03, 0.03)
    depth_sdlog: float = 0.15
    damaged_fraction: float = 0.04
    doublet_rate_per_1000: float = 0.008
    batch_sd: float = 0.1
    patient_sd: float = 0.25
    expression_sd: float = 0.2
    effect_sd: float = 0.15
    effect_heterogeneity: float = 0.0
    identity_strength: float = 1.0
    raw_matrices: bool = True
    abundance: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    car_t: dict[str, dict[str, float]] = field(default_factory=dict)
    expression: list[ExpressionEffect] = field(default_factory=list)
    states: list[StateEffect] = field(default_factory=list)
    cells: dict[str, dict[str, float]] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    #: cell types' expression changed at every visit and in every compartment (log2 fold
    #: change of some genes): what a cell type looks like, not what treatment does
    profiles: list[ExpressionEffect] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        return self.timepoints[0]

    def samples(self) -> list[dict[str, Any]]:
        """One record per sample, in a fixed order (patient, compartment, time point)."""
        out = []
        for p in range(1, self.n_patients + 1):
            for comp in self.compartments.values():
                for tp in comp.timepoints:
                    pid = f"P{p:02d}"
                    out.append(
                        {
                            "sample_id": f"{pid}_{comp.name}_{tp}",
                            "patient_id": pid,
                            "timepoint": tp,
                            "compartment": comp.name,
                        }
                    )
        return out

    def with_changes(self, **changes: Any) -> Cohort:
        """A copy with some fields replaced (used by tests and the benchmark)."""
        from dataclasses import replace

        return replace(self, **changes)


def _fail(where: str, key: str, problem: str, fix: str) -> InputError:
    return InputError(f"{where}: key '{key}': {problem}. Fix: {fix}")


def _number(where, key, value, *, lo=None, hi=None, integer=False, positive=False):
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or (isinstance(value, float) and math.isnan(value)):
        kind = "an integer" if integer else "a number"
        raise _fail(where, key, f"{value!r} is not {kind}", f"give {kind}")
    if positive and value <= 0:
        raise _fail(where, key, f"{value} is not positive", "give a value above 0")
    if lo is not None and value < lo:
        raise _fail(where, key, f"{value} is below {lo}", f"give a value >= {lo}")
    if hi is not None and value > hi:
        raise _fail(where, key, f"{value} is above {hi}", f"give a value <= {hi}")
    return int(value) if integer else float(value)


def _unknown(where: str, prefix: str, got: dict, allowed) -> None:
    extra = sorted(set(got) - set(allowed))
    if extra:
        raise _fail(
            where,
            f"{prefix}{extra[0]}",
            "unknown key",
            f"remove it or use one of: {', '.join(sorted(allowed))}",
        )


def _cell_type(where: str, key: str, name: str, allowed=KNOWN_TYPES) -> str:
    if name not in allowed:
        raise _fail(
            where,
            key,
            f"unknown cell type '{name}'",
            f"use one of: {', '.join(allowed)}",
        )
    return name


def parse_cohort(raw: dict[str, Any], *, name: str, where: str) -> Cohort:
    """Validate a ``simulation`` mapping and build a :class:`Cohort`.

    Parameters
    ----------
    raw
        The mapping under ``simulation:`` in a dataset YAML.
    name
        Dataset name (used in sample ids and file names).
    where
        The file the mapping came from, for error messages.
    """
    if not isinstance(raw, dict):
        raise _fail(where, "simulation", "is not a mapping", "see config/datasets/*.yaml")
    _unknown(where, "simulation.", raw, _TOP_KEYS)
    for key in sorted(_REQUIRED - set(raw)):
        raise _fail(where, f"simulation.{key}", "missing", f"add {_TOP_KEYS[key]}")

    timepoints = raw["timepoints"]
    if not (isinstance(timepoints, list) and timepoints and all(isinstance(t, str) for t in timepoints)):
        raise _fail(where, "simulation.timepoints", "is not a list of names", _TOP_KEYS["timepoints"])
    if len(set(timepoints)) != len(timepoints):
        raise _fail(where, "simulation.timepoints", "has duplicates", "list each time point once")

    comps_raw = raw["compartments"]
    if not isinstance(comps_raw, dict) or not comps_raw:
        raise _fail(where, "simulation.compartments", "is empty", "add CSF and/or blood")
    compartments: dict[str, Compartment] = {}
    for cname, craw in comps_raw.items():
        key = f"simulation.compartments.{cname}"
        if cname not in COMPARTMENTS:
            raise _fail(where, key, "unknown compartment", f"use {' or '.join(COMPARTMENTS)}")
        if not isinstance(craw, dict):
            raise _fail(where, key, "is not a mapping", "give cells: and composition:")
        _unknown(where, key + ".", craw, _COMPARTMENT_KEYS)
        for req in ("cells", "composition"):
            if req not in craw:
                raise _fail(where, f"{key}.{req}", "missing", f"add {req}: to {cname}")
        cells = craw["cells"]
        if not isinstance(cells, dict):
            raise _fail(where, f"{key}.cells", "is not a mapping", "give median, sdlog, min, max")
        _unknown(where, f"{key}.cells.", cells, _CELLS_KEYS)
        median = _number(where, f"{key}.cells.median", cells.get("median"), positive=True)
        sdlog = _number(where, f"{key}.cells.sdlog", cells.get("sdlog", 0.4), lo=0)
        cmin = _number(where, f"{key}.cells.min", cells.get("min", 50), integer=True, positive=True)
        cmax = _number(where, f"{key}.cells.max", cells.get("max", 100000), integer=True, positive=True)
        if cmin > cmax:
            raise _fail(where, f"{key}.cells.min", f"{cmin} is above max {cmax}", "make min <= max")
        comp = craw["composition"]
        if not isinstance(comp, dict) or not comp:
            raise _fail(where, f"{key}.composition", "is empty", "give cell type: fraction")
        fractions = {}
        for ct, frac in comp.items():
            _cell_type(where, f"{key}.composition.{ct}", ct)
            fractions[ct] = _number(where, f"{key}.composition.{ct}", frac, lo=0)
        total = sum(fractions.values())
        if abs(total - 1.0) > 1e-3:
            raise _fail(
                where,
                f"{key}.composition",
                f"fractions sum to {total:.4f}, not 1",
                "rescale the fractions so that they sum to 1",
            )
        tps = craw.get("timepoints", timepoints)
        if not isinstance(tps, list) or not tps:
            raise _fail(where, f"{key}.timepoints", "is not a list", "give a list of time points")
        for tp in tps:
            if tp not in timepoints:
                raise _fail(
                    where,
                    f"{key}.timepoints",
                    f"'{tp}' is not in simulation.timepoints",
                    "add it there or remove it here",
                )
        if tps[0] != timepoints[0]:
            raise _fail(where, f"{key}.timepoints", "does not start at the baseline", f"start with {timepoints[0]}")
        compartments[cname] = Compartment(
            name=cname,
            timepoints=list(tps),
            cells_median=median,
            cells_sdlog=sdlog,
            cells_min=cmin,
            cells_max=cmax,
            composition=fractions,
            concentration=_number(where, f"{key}.concentration", craw.get("concentration", 300.0), positive=True),
        )

    kwargs: dict[str, Any] = {}
    for key, lo, hi, integer in (
        ("n_genes", 500, 40000, True),
        ("car_detection", 0, 1, False),
        ("depth_sdlog", 0, 2, False),
        ("damaged_fraction", 0, 0.5, False),
        ("doublet_rate_per_1000", 0, 0.05, False),
        ("batch_sd", 0, 2, False),
        ("patient_sd", 0, 2, False),
        ("expression_sd", 0, 2, False),
        ("effect_sd", 0, 1, False),
        ("effect_heterogeneity", 0, 2, False),
        ("identity_strength", 0.2, 1, False),
    ):
        if key in raw:
            kwargs[key] = _number(where, f"simulation.{key}", raw[key], lo=lo, hi=hi, integer=integer)
    if "ambient_fraction" in raw:
        amb = raw["ambient_fraction"]
        key = "simulation.ambient_fraction"
        if isinstance(amb, list):
            if len(amb) != 2:
                raise _fail(where, key, f"{amb!r} is not [low, high]", "give one number or two, e.g. [0.01, 0.15]")
            lo, hi = (_number(where, key, v, lo=0.0001, hi=0.5) for v in amb)
            if lo > hi:
                raise _fail(where, key, f"low {lo} is above high {hi}", "give [low, high] with low <= high")
            kwargs["ambient_fraction"] = (lo, hi)
        else:
            v = _number(where, key, amb, lo=0, hi=0.5)
            kwargs["ambient_fraction"] = (v, v)
    if "raw_matrices" in raw:
        if not isinstance(raw["raw_matrices"], bool):
            raise _fail(where, "simulation.raw_matrices", f"{raw['raw_matrices']!r} is not true or false",
                        _TOP_KEYS["raw_matrices"])  # fmt: skip
        kwargs["raw_matrices"] = raw["raw_matrices"]
    if "car_feature" in raw:
        if not isinstance(raw["car_feature"], str) or not raw["car_feature"]:
            raise _fail(where, "simulation.car_feature", "is not a name", _TOP_KEYS["car_feature"])
        kwargs["car_feature"] = raw["car_feature"]
    claims = raw.get("claims", [])
    for c in claims:
        if c not in CLAIM_IDS:
            raise _fail(where, "simulation.claims", f"unknown claim '{c}'", f"use some of {', '.join(CLAIM_IDS)}")

    effects = raw.get("effects") or {}
    if not isinstance(effects, dict):
        raise _fail(where, "simulation.effects", "is not a mapping", "give abundance, car_t, expression")
    _unknown(where, "simulation.effects.", effects, {"abundance", "car_t", "expression", "states", "cells"})

    def _timepoint(key: str, tp: str, comp: str | None) -> None:
        allowed = compartments[comp].timepoints if comp else timepoints
        if tp not in allowed:
            raise _fail(where, key, f"time point '{tp}' is not sampled", f"use one of {', '.join(allowed)}")
        if tp == timepoints[0]:
            raise _fail(where, key, "an effect at the baseline", "effects apply after baseline only")

    def _compartment(key: str, comp: str) -> None:
        if comp not in compartments:
            raise _fail(where, key, f"compartment '{comp}' is not simulated", f"use one of {', '.join(compartments)}")

    def _effect_compartments(key: str, eff: dict) -> list[str]:
        comps = list(eff.get("compartments", list(compartments)))
        for comp in comps:
            _compartment(f"{key}.compartments", comp)
        return comps

    def _time_course(key: str, raw, fix: str) -> dict[str, float]:
        """{time point: value} of an effect, each time point sampled and after baseline."""
        if not isinstance(raw, dict) or not raw:
            raise _fail(where, key, "missing", fix)
        out = {}
        for tp, v in raw.items():
            _timepoint(f"{key}.{tp}", tp, None)
            out[tp] = _number(where, f"{key}.{tp}", v, lo=-10, hi=10)
        return out

    abundance: dict[str, dict[str, dict[str, float]]] = {}
    for comp, per_tp in (effects.get("abundance") or {}).items():
        key = f"simulation.effects.abundance.{comp}"
        _compartment(key, comp)
        abundance[comp] = {}
        for tp, per_type in (per_tp or {}).items():
            _timepoint(f"{key}.{tp}", tp, comp)
            abundance[comp][tp] = {}
            for ct, fold in (per_type or {}).items():
                _cell_type(where, f"{key}.{tp}.{ct}", ct)
                abundance[comp][tp][ct] = _number(where, f"{key}.{tp}.{ct}", fold, lo=0)

    car_t: dict[str, dict[str, float]] = {}
    for comp, per_tp in (effects.get("car_t") or {}).items():
        key = f"simulation.effects.car_t.{comp}"
        _compartment(key, comp)
        car_t[comp] = {}
        for tp, frac in (per_tp or {}).items():
            _timepoint(f"{key}.{tp}", tp, comp)
            car_t[comp][tp] = _number(where, f"{key}.{tp}", frac, lo=0, hi=0.95)

    expression: list[ExpressionEffect] = []
    for i, eff in enumerate(effects.get("expression") or []):
        key = f"simulation.effects.expression[{i}]"
        if not isinstance(eff, dict):
            raise _fail(where, key, "is not a mapping", "give module or genes, cell_types, log2fc")
        _unknown(where, key + ".", eff, _EXPRESSION_KEYS)
        if ("module" in eff) == ("genes" in eff):
            raise _fail(where, key, "needs exactly one of module / genes", "give a module name or a gene list")
        if "module" in eff:
            if eff["module"] not in MODULES:
                raise _fail(
                    where, f"{key}.module", f"unknown module '{eff['module']}'", f"use one of {', '.join(MODULES)}"
                )
            genes = list(MODULES[eff["module"]])
        else:
            genes = list(eff["genes"])
        cts = eff.get("cell_types")
        if not cts:
            raise _fail(where, f"{key}.cell_types", "missing", "list the cell types the effect acts in")
        for ct in cts:
            _cell_type(where, f"{key}.cell_types", ct, allowed=list(CELL_TYPES))
        comps = _effect_compartments(key, eff)
        lfc = _time_course(f"{key}.log2fc", eff.get("log2fc"), "give time point: log2 fold change")
        expression.append(
            ExpressionEffect(
                name=str(eff.get("name", eff.get("module", f"effect{i}"))),
                genes=genes,
                cell_types=list(cts),
                compartments=list(comps),
                log2fc=lfc,
            )
        )

    states: list[StateEffect] = []
    for i, eff in enumerate(effects.get("states") or []):
        key = f"simulation.effects.states[{i}]"
        if not isinstance(eff, dict):
            raise _fail(where, key, "is not a mapping", "give state, log_odds (and compartments)")
        _unknown(where, key + ".", eff, _STATE_KEYS)
        if eff.get("state") not in SUBSTATES:
            raise _fail(
                where, f"{key}.state", f"unknown state {eff.get('state')!r}", f"use one of {', '.join(SUBSTATES)}"
            )
        comps = _effect_compartments(key, eff)
        odds = _time_course(f"{key}.log_odds", eff.get("log_odds"), "give time point: change in log odds")
        states.append(StateEffect(state=eff["state"], compartments=comps, log_odds=odds))

    cells: dict[str, dict[str, float]] = {}
    for comp, per_tp in (effects.get("cells") or {}).items():
        key = f"simulation.effects.cells.{comp}"
        _compartment(key, comp)
        cells[comp] = {}
        for tp, fold in (per_tp or {}).items():
            _timepoint(f"{key}.{tp}", tp, comp)
            cells[comp][tp] = _number(where, f"{key}.{tp}", fold, positive=True)

    profiles: list[ExpressionEffect] = []
    for i, eff in enumerate(raw.get("profiles") or []):
        key = f"simulation.profiles[{i}]"
        if not isinstance(eff, dict) or not eff.get("genes") or not eff.get("cell_types"):
            raise _fail(
                where, key, "needs genes, cell_types and log2fc", "e.g. {genes: [FCGR3A], cell_types: [NK], log2fc: 3}"
            )
        _unknown(where, key + ".", eff, {"genes", "cell_types", "log2fc"})
        for ct in eff["cell_types"]:
            _cell_type(where, f"{key}.cell_types", ct, allowed=list(CELL_TYPES))
        size = _number(where, f"{key}.log2fc", eff.get("log2fc"), lo=-10, hi=10)
        profiles.append(ExpressionEffect(name=f"profile{i}", genes=[str(g) for g in eff["genes"]],
                                         cell_types=list(eff["cell_types"]), compartments=list(COMPARTMENTS),
                                         log2fc={tp: size for tp in timepoints}))  # fmt: skip

    return Cohort(
        name=name,
        seed=_number(where, "simulation.seed", raw["seed"], integer=True, lo=0),
        n_patients=_number(where, "simulation.n_patients", raw["n_patients"], integer=True, lo=1, hi=1000),
        timepoints=list(timepoints),
        compartments=compartments,
        abundance=abundance,
        car_t=car_t,
        expression=expression,
        states=states,
        cells=cells,
        claims=list(claims),
        profiles=profiles,
        **kwargs,
    )


def load_cohort(path: str | Path) -> Cohort:
    """Read and validate the ``simulation`` block of a dataset YAML file."""
    path = Path(path)
    doc = read_dataset(path)
    if "simulation" not in doc:
        raise InputError(f"{path}: key 'simulation' missing. Fix: a synthetic dataset needs a simulation: block")
    name = doc.get("dataset", path.stem)
    return parse_cohort(doc["simulation"], name=str(name), where=str(path))
