"""Cell-cell communication per sample (LIANA+) and its paired change from baseline.

Each sample is scored on its own with LIANA's SingleCellSignalR method (``lrscore``, a
magnitude between 0 and 1 that needs no permutations) over the liana consensus resource,
which ships in liana's wheel: nothing is downloaded. Every ligand-receptor pair is scored
for every sender and receiver with enough cells in the sample (``expressed`` marks those
passing LIANA's expression filter), so a score is missing only where a cell type is absent,
and then it is missing, never 0. The paired change of an interaction is taken where both
partners are present at baseline and after; an interaction lost only because its cell type
vanished is counted apart (``lost_in_patients``), as a consequence of that loss.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from csfcart import registry
from csfcart.keys import CELL_TYPE
from csfcart.logs import step
from csfcart.stats import grouped_paired_summary

if TYPE_CHECKING:  # only in annotations: the plot jobs import this module
    import anndata as ad

#: the lineages on each side of the B / microglia-like axis (claim C7): antibody-secreting cells too
B_SIDE = (*registry.B_LINEAGE, *registry.ASC)
MICROGLIA_SIDE = registry.MICROGLIA
INFLAMMATORY_LIGANDS = [
    "IL1B",
    "TNF",
    "IL6",
    "CXCL10",
    "CCL3",
    "CCL4",
    "CXCL13",
    "CCL2",
    "CXCL8",
    "IL1A",
    "SPP1",
    "TNFSF13B",
    "TNFSF13",
    "MIF",
]
KEY = ["source", "target", "ligand_complex", "receptor_complex"]


def lr_resource(genes: pd.Index) -> str:
    """liana's consensus resource for human symbols (CD74), its mouse one for mouse symbols
    (Cd74): most symbols carry lower-case letters."""
    names = pd.Index(genes).astype(str)
    return "mouseconsensus" if len(names) and float((names.str.upper() != names).mean()) > 0.5 else "consensus"


def resource_genes(genes: pd.Index) -> list[str]:
    """The genes of ``genes`` that take part in an interaction of the resource
    :func:`lr_resource` picks for them (every subunit of a complex): all that LIANA's
    ligand-receptor scoring reads, so a rule can read those columns alone."""
    import liana as li

    resource = li.rs.select_resource(lr_resource(genes))
    subunits = pd.concat([resource["ligand"], resource["receptor"]]).str.split("_").explode()
    return sorted(set(subunits) & set(pd.Index(genes).astype(str)))


def score_sample(adata: ad.AnnData, *, min_cells: int, expr_prop: float = 0.1, seed: int) -> pd.DataFrame:
    """LIANA SingleCellSignalR scores of one sample (log-normalised ``X``): every LR pair of
    the resource between cell types with at least ``min_cells`` cells, ``expressed`` where
    LIANA's filter (``expr_prop`` of both partners' cells) passes; pairs whose ligand or
    receptor is not detected at all score 0 and are left out of the table (their sender and
    receiver are present: see :func:`present_types`)."""
    import liana as li

    counts = adata.obs[CELL_TYPE].astype(str).value_counts()
    keep = counts.index[counts >= min_cells]
    sub = adata[adata.obs[CELL_TYPE].astype(str).isin(keep).to_numpy()].copy()
    columns = [*KEY, "lrscore", "expressed", "sample_id"]
    if len(keep) < 2:
        return pd.DataFrame(columns=columns)
    sub.obs[CELL_TYPE] = sub.obs[CELL_TYPE].astype(str).astype("category")
    res = li.mt.singlecellsignalr(
        sub,
        groupby=CELL_TYPE,
        resource_name=lr_resource(sub.var_names),
        expr_prop=expr_prop,
        min_cells=min_cells,
        use_raw=False,
        return_all_lrs=True,
        inplace=False,
        verbose=False,
        seed=seed,
    )
    expressed = res["lrs_to_keep"].astype(bool) if "lrs_to_keep" in res else pd.Series(True, index=res.index)
    # LIANA fills pairs that miss its filter with the sample's lowest score: score them as it
    # scores the others, lrscore = sqrt(L R) / (sqrt(L R) + mean expression of the sample)
    lr = np.sqrt(res["ligand_means"].to_numpy() * res["receptor_means"].to_numpy())
    own = lr / (lr + res["mat_mean"].to_numpy())
    res = res.assign(lrscore=np.where(expressed, res["lrscore"], own), expressed=expressed.to_numpy())
    res = res[res["lrscore"] > 0][[*KEY, "lrscore", "expressed"]].copy()
    res["sample_id"] = str(adata.obs["sample_id"].iloc[0])
    return res[columns]


def score_to_file(
    path: str, sample: str, out: str, rows: np.ndarray, obs: pd.DataFrame, *, min_cells: int, seed: int
) -> tuple[str, int, float]:
    """Score one sample of the merged ``path`` (its ``rows``, whose cell table is ``obs``) and
    write the table to ``out``."""
    import time

    from csfcart.io import read_rows

    start = time.perf_counter()
    table = score_sample(read_rows(path, rows, obs=obs), min_cells=min_cells, seed=seed)
    table.to_parquet(out, index=False)
    return sample, len(table), time.perf_counter() - start


def score_samples(path: str, outputs: dict[str, str], *, min_cells: int, seed: int, workers: int = 1) -> None:
    """Score every sample of ``outputs`` (sample id -> parquet path), each on its own cells.

    One process imports LIANA once and forks ``workers`` children that share the samples: the
    import costs more than scoring a sample of a few thousand cells, so one job per sample
    would spend half its time starting up. The cell table is read once, here: each child
    reads its sample's rows of ``X`` alone, so that a sample costs its own cells whatever the
    size of the cohort (read per sample, the cell table of a million cells would cost each
    of 357 samples a second).
    """
    import contextlib
    import logging
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    import liana  # noqa: F401  (imported before the fork, so that the children inherit it)

    from csfcart.io import read_obs

    log = logging.getLogger(__name__)
    obs = read_obs(path, columns=("sample_id", CELL_TYPE))
    where = obs.groupby(obs["sample_id"].astype(str), observed=True).indices  # positions per sample
    rows = [where.get(sample, np.zeros(0, dtype=np.int64)) for sample in outputs]
    work = partial(score_to_file, path, min_cells=min_cells, seed=seed)
    workers = max(1, min(workers, len(outputs)))
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=fork) if workers > 1 else contextlib.nullcontext() as pool:
        tasks = (list(outputs), list(outputs.values()), rows, [obs.iloc[r] for r in rows])
        for sample, n, seconds in (pool.map if pool else map)(work, *tasks):
            log.info("%s: %d interactions scored in %.1f s", sample, n, seconds)


def present_types(obs: pd.DataFrame, *, min_cells: int) -> pd.DataFrame:
    """Per sample, the cell types with at least ``min_cells`` cells (those scored)."""
    n = obs.groupby([obs["sample_id"].astype(str), obs[CELL_TYPE].astype(str)], observed=True).size()
    n = n[n >= min_cells]
    return n.rename("cells").reset_index().rename(columns={CELL_TYPE: "cell_type"})


def read_scores(paths: list[str]) -> pd.DataFrame:
    """The per-sample score tables of ``paths``, one table, its keys and ``sample_id``
    categorical with shared, sorted categories.

    A cohort of hundreds of CSF samples scores tens of millions of interactions: as strings
    their keys would cost about 70 bytes each, as category codes 1-4 bytes.
    """
    from pandas.api.types import union_categoricals

    columns = [*KEY, "sample_id"]
    frames = []
    for path in paths:
        f = pd.read_parquet(path)
        frames.append(f.astype(dict.fromkeys([c for c in columns if c in f], "category")))
    if not frames:
        return pd.DataFrame(columns=[*KEY, "lrscore", "expressed", "sample_id"])
    out = {}
    for c in frames[0].columns:
        if c in columns:
            out[c] = union_categoricals([f[c] for f in frames], sort_categories=True)
        else:
            out[c] = np.concatenate([f[c].to_numpy() for f in frames])
    return pd.DataFrame(out)


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of ``values`` (-1 where missing) and the labels they index (categories,
    or the sorted distinct strings)."""
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype(str).astype("category")
    return cat.cat.codes.to_numpy(), cat.cat.categories.astype(str)


class _Rows:
    """A score table as integer codes, worked through in chunks of rows.

    A cohort of hundreds of CSF samples scores tens of millions of interactions: arrays of
    8-byte keys over all of them at once would cost gigabytes, over a chunk some megabytes.
    """

    chunk = 2_000_000

    def __init__(self, scores: pd.DataFrame):
        self.n = len(scores)
        self.codes, self.labels = (list(x) for x in zip(*(_codes(scores[c]) for c in KEY), strict=True))
        self.sizes = [max(len(x), 1) for x in self.labels]
        if float(np.prod(np.array(self.sizes, dtype=float))) >= 2.0**62:
            raise ValueError("too many distinct cell types, ligands and receptors to index their interactions")
        self.sample, self.sample_names = _codes(scores["sample_id"])
        self.score = scores["lrscore"].to_numpy()
        self.expressed = scores["expressed"].to_numpy(dtype=bool) if "expressed" in scores else None

    def slices(self):
        for start in range(0, self.n, self.chunk):
            yield slice(start, min(start + self.chunk, self.n))

    def key(self, rows: slice, parts: tuple[int, ...] = (0, 1, 2, 3)) -> np.ndarray:
        """One int64 per row naming its interaction (or the combination of ``parts`` of KEY)."""
        out = self.codes[parts[0]][rows].astype(np.int64)
        for k in parts[1:]:
            out *= self.sizes[k]
            out += self.codes[k][rows]
        return out

    def column(self, rows: slice, order: pd.Index) -> np.ndarray:
        """Position of each row's sample in ``order``; -1 for samples not there."""
        where = np.append(order.get_indexer(self.sample_names), -1).astype(np.int32)
        return where[self.sample[rows]]  # a missing sample (code -1) reads the -1 appended

    def is_expressed(self, rows: slice) -> np.ndarray:
        return np.ones(rows.stop - rows.start, dtype=bool) if self.expressed is None else self.expressed[rows]

    def distinct(self, order: pd.Index, parts: tuple[int, ...] = (0, 1, 2, 3)) -> np.ndarray:
        """Sorted keys that LIANA's filter passes in at least one sample of ``order``."""
        found = [np.unique(self.key(r, parts)[(self.column(r, order) >= 0) & self.is_expressed(r)])
                 for r in self.slices()]  # fmt: skip
        return np.unique(np.concatenate(found)) if found else np.array([], dtype=np.int64)

    def locate(self, rows: slice, keys: np.ndarray, order: pd.Index, parts=(0, 1, 2, 3)):
        """For the rows in ``rows``: those whose key is in ``keys`` (sorted) and whose sample
        is in ``order`` (a mask), and for those their key's and sample's positions."""
        key, col = self.key(rows, parts), self.column(rows, order)
        at = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
        ok = (col >= 0) & (keys[at] == key) if len(keys) else np.zeros(len(key), dtype=bool)
        return ok, at[ok], col[ok]

    def names(self, keys: np.ndarray) -> pd.DataFrame:
        """The four names of each interaction key."""
        parts, rest = [], keys
        for size in reversed(self.sizes):
            parts.append(rest % size)
            rest = rest // size
        columns = zip(KEY, reversed(parts), self.labels, strict=True)
        return pd.DataFrame({c: pd.Categorical.from_codes(part, categories=lab) for c, part, lab in columns})


def paired_interactions(
    scores: pd.DataFrame, meta: pd.DataFrame, *, baseline: str, present: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per interaction and compartment: per-patient change (mean over post-infusion visits
    minus baseline) and the cohort summary (mean, 95% CI, p, BH over interactions).

    The interactions are those LIANA's filter passes in at least one sample of the
    compartment, whatever the time point (a set chosen at baseline alone would fall after
    it by regression to the mean). In a sample where both partners are present an
    interaction missing from ``scores`` scores 0 (not detected); where a partner is absent
    it is missing. A patient contributes a change where both partners are present at
    baseline and at a later visit; ``lost_in_patients`` counts the patients in whom it was
    present at baseline and gone after only because a partner vanished (a consequence of
    that cell type's loss, not part of the estimate). ``present`` (sample_id, cell_type) says
    which types were scored per sample; without it, the types seen in ``scores``.

    Each compartment's scores are held as an interactions x samples matrix, so memory grows
    with the interactions and samples, not with their product as a table of strings.
    """
    from csfcart.stats import summary_from_moments
    from csfcart.timepoints import is_pre_infusion

    by = [*KEY, "compartment"]
    if present is None:
        present = pd.concat(
            [scores[["sample_id", "source"]].set_axis(["sample_id", "cell_type"], axis=1).astype(str),
             scores[["sample_id", "target"]].set_axis(["sample_id", "cell_type"], axis=1).astype(str)]
        ).drop_duplicates()  # fmt: skip
    present = present[["sample_id", "cell_type"]].astype(str)
    samples = meta.reset_index()[["sample_id", "patient_id", "timepoint", "compartment"]].astype(str)
    rows = _Rows(scores)
    per_patient, moments = [], []
    for compartment, here in samples.groupby("compartment", sort=True):
        order = pd.Index(here["sample_id"].to_numpy())
        kept = rows.distinct(order)
        if not len(kept):
            continue
        # the scores' own precision (LIANA writes float32): no rounding, no doubled memory
        score = np.full((len(kept), len(order)), np.nan, dtype=np.result_type(rows.score.dtype, np.float32))
        for r in rows.slices():
            ok, at, col = rows.locate(r, kept, order)
            score[at, col] = rows.score[r][ok]
        names = rows.names(kept)
        # both partners present in a sample: scored, or 0 where not detected; else missing
        types = pd.Index(sorted(set(names["source"].astype(str)) | set(names["target"].astype(str))))
        has = np.zeros((len(types), len(order)), dtype=bool)
        p = present[present["sample_id"].isin(order) & present["cell_type"].isin(types)]
        has[types.get_indexer(p["cell_type"]), order.get_indexer(p["sample_id"])] = True
        both = has[types.get_indexer(names["source"].astype(str))] & has[types.get_indexer(names["target"].astype(str))]
        score = np.where(both, np.where(np.isnan(score), 0.0, score), np.nan)
        is_base = (here["timepoint"] == baseline).to_numpy()
        is_post = ~is_base & ~here["timepoint"].map(is_pre_infusion).to_numpy(dtype=bool)
        patients = sorted(set(here.loc[is_base, "patient_id"]) & set(here.loc[is_post, "patient_id"]))
        if not patients:
            continue
        base = np.empty((len(kept), len(patients)))
        post = np.empty_like(base)
        any_present = np.empty(base.shape, dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing rows: NaN
            for k, patient in enumerate(patients):
                mine = (here["patient_id"] == patient).to_numpy()
                base[:, k] = np.nanmean(score[:, mine & is_base], axis=1, dtype=np.float64)
                post[:, k] = np.nanmean(score[:, mine & is_post], axis=1, dtype=np.float64)
                any_present[:, k] = both[:, mine & is_post].any(axis=1)
        del score, both
        change = post - base
        lost = ~np.isnan(base) & ~any_present
        measured = ~np.isnan(change)
        n = measured.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # fewer than two patients: no sd
            mean = np.nanmean(change, axis=1)
            sd = np.nanstd(change, axis=1, ddof=1)
            keys = names.assign(compartment=pd.Categorical([compartment] * len(names)))
            moments.append(keys.assign(
                n=n, mean=mean, sd=sd, consistent=(np.sign(change) == -1).sum(axis=1),
                baseline_score=np.nanmean(base, axis=1), post_score=np.nanmean(post, axis=1),
                lost_in_patients=lost.sum(axis=1),
            ))  # fmt: skip
        long = keys.iloc[np.repeat(np.arange(len(names)), len(patients))].reset_index(drop=True)
        per_patient.append(long.assign(
            patient_id=pd.Categorical(np.tile(patients, len(names))), post=post.ravel(), base=base.ravel(),
            lost=lost.ravel(), change=change.ravel(),
        ))  # fmt: skip
    columns = [*by, "n_patients", "estimate", "patients_consistent", "ci_low", "ci_high", "p_value", "p_adjusted",
               "baseline_score", "post_score", "lost_in_patients"]  # fmt: skip
    if not moments:
        empty = pd.DataFrame(columns=[*by, "patient_id", "post", "base", "lost", "change"])
        return empty, pd.DataFrame(columns=columns)
    m = pd.concat(moments, ignore_index=True)
    summary = pd.concat([m[by].astype(str), summary_from_moments(m["n"], m["mean"], m["sd"], m["consistent"])], axis=1)
    summary = summary.join(m[["baseline_score", "post_score", "lost_in_patients"]])
    summary.loc[summary["n_patients"] == 0, "patients_consistent"] = 0
    summary = summary.sort_values(["p_value", *by], kind="stable").reset_index(drop=True)
    return pd.concat(per_patient, ignore_index=True), summary[columns]


def b_microglia_axis(table: pd.DataFrame, lineage_of: Mapping[str, str]) -> pd.Series:
    """Rows between B-lineage and microglia-like cells, either direction (claim C7); the types
    of each side are those ``lineage_of`` (type -> lineage) puts there."""
    b, mg = registry.types_of(B_SIDE, lineage_of), registry.types_of(MICROGLIA_SIDE, lineage_of)
    return (table["source"].isin(b) & table["target"].isin(mg)) | (table["source"].isin(mg) & table["target"].isin(b))


AXES = {
    "b_microglia": "B lineage <-> microglia-like",
    "microglia_inflammatory": "microglia-like inflammatory signalling",
}


def axis_scores(
    scores: pd.DataFrame,
    meta: pd.DataFrame,
    present: pd.DataFrame | None = None,
    *,
    lineage_of: Mapping[str, str],
) -> pd.DataFrame:
    """Per sample, from that sample's own scores alone: mean lrscore of the B-lineage <->
    microglia-like interactions LIANA's filter passes there (both directions) and of the
    microglia-like cells' inflammatory signalling, with a 95% t-interval over the
    interactions averaged (``*_low``, ``*_high``, ``*_n``).

    ``b_microglia`` is 0 when the B-lineage side is absent (a measure of B-cell loss as much
    as of signalling); ``b_microglia_absent`` marks those samples, where ``present`` (see
    :func:`present_types`) says no B-lineage type passed the minimum cell count. Both
    readouts are NaN in a sample without scored microglia-like cells. ``lineage_of`` (type ->
    lineage, the marker table's) says which types are B-lineage and microglia-like.
    """
    from scipy import stats

    mg = registry.types_of(MICROGLIA_SIDE, lineage_of)

    s = scores
    if "expressed" in s:
        s = s[s["expressed"].astype(bool)]
    out = meta.copy()
    for name, mask in (
        ("b_microglia", b_microglia_axis(s, lineage_of)),
        ("microglia_inflammatory", s["source"].isin(mg) & s["ligand_complex"].isin(INFLAMMATORY_LIGANDS)),
    ):
        g = s[mask].groupby(s.loc[mask, "sample_id"].astype(str))["lrscore"].agg(["mean", "std", "count"])
        g = g.reindex(meta.index)
        n = g["count"].fillna(0).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * g["std"].to_numpy() / np.sqrt(n)
        mean = g["mean"].fillna(0.0).to_numpy()
        out[name] = mean
        out[f"{name}_low"] = np.where(n >= 2, mean - half, np.nan)
        out[f"{name}_high"] = np.where(n >= 2, mean + half, np.nan)
        out[f"{name}_n"] = n.astype(int)
    # without microglia-like cells both readouts are undefined (not zero): their B-cell
    # partners may vanish, the microglia-like side must be there to be measured
    has_mg = s.loc[s["source"].isin(mg) | s["target"].isin(mg), "sample_id"].astype(str).unique()
    cols = [c for c in out.columns if c.startswith(tuple(AXES))]
    out.loc[~out.index.isin(has_mg), cols] = np.nan
    if present is not None:
        b = registry.types_of(B_SIDE, lineage_of)
        with_b = set(present.loc[present["cell_type"].isin(b), "sample_id"].astype(str))
        out["b_microglia_absent"] = ~out.index.astype(str).isin(with_b)
    return out


def plot_axis_lines(axis: pd.DataFrame, order: list[str]) -> plt.Figure:
    """Per patient over time, each CSF axis score with its 95% CI over the interactions
    averaged; the cohort mean with a 95% t-interval over patients in black. Visits where
    the B lineage is absent are open circles at 0 (loss by absence, not a measured score)
    and stay out of the cohort mean."""
    from scipy import stats

    csf = axis[axis["compartment"] == "CSF"]
    patients = sorted(csf["patient_id"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, (col, title) in zip(axes, AXES.items(), strict=True):
        absent = csf.get(f"{col}_absent", pd.Series(False, index=csf.index)).eq(True)
        for i, patient in enumerate(patients):
            mine = csf["patient_id"] == patient
            g = csf[mine].set_index("timepoint").reindex(order)
            gone = absent[mine].set_axis(csf.loc[mine, "timepoint"]).reindex(order, fill_value=False).to_numpy(bool)
            x = np.arange(len(order)) + (i - (len(patients) - 1) / 2) * 0.04
            y = g[col].to_numpy(dtype=float)
            shown = np.isfinite(y) & ~gone
            colour = plt.colormaps["tab10"](i % 10)
            ax.errorbar(x[shown], y[shown], yerr=[y[shown] - g[f"{col}_low"].to_numpy()[shown],
                        g[f"{col}_high"].to_numpy()[shown] - y[shown]], fmt="-o", ms=4, lw=1, capsize=2,
                        color=colour, label=patient)  # fmt: skip
            if gone.any():
                ax.plot(x[gone], np.zeros(gone.sum()), "o", mfc="none", color=colour, ms=6)
        kept = csf[~absent.to_numpy()].dropna(subset=[col])
        by = kept.groupby("timepoint")[col].agg(["mean", "std", "count"]).reindex(order)
        half = stats.t.ppf(0.975, np.maximum(by["count"] - 1, 1)) * by["std"] / np.sqrt(by["count"])
        ok = by["count"].to_numpy() >= 2
        ax.errorbar(np.arange(len(order))[ok] + 0.25, by["mean"][ok], yerr=half[ok], fmt="s", color="black", ms=5,
                    capsize=3, label="cohort mean (95% CI)")  # fmt: skip
        ax.set_xticks(range(len(order)), order)
        ax.set_ylabel("mean LR score (SingleCellSignalR)")
        ax.set_title(f"CSF: {title}", fontsize=10)
    if "b_microglia_absent" in csf and csf["b_microglia_absent"].any():
        axes[0].plot([], [], "o", mfc="none", color="grey", label="B lineage absent (0: loss by absence)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Per patient: mean over the axis's interactions with 95% CI over those interactions", fontsize=9)
    return fig


def plot_top_changes(
    summary: pd.DataFrame, *, n: int = 20, legend: tuple[str, str] = ("baseline", "after infusion")
) -> plt.Figure:
    """Left: the most changed interactions among those whose partners are present on both
    sides (by p-value): score before and after, with the change's 95% CI and the patients
    moving the same way. Right: the interactions lost in most patients only because a
    partner cell type vanished (a consequence of that loss, kept out of the estimates)."""
    csf = summary[summary["compartment"] == "CSF"] if len(summary) else summary
    tested = csf.dropna(subset=["estimate"]) if "estimate" in csf else csf
    top = tested.nsmallest(n, "p_value") if len(tested) else tested
    # an empty table (one visit per donor: nothing paired) reads back with untyped columns
    lost = (
        csf[csf["lost_in_patients"] > 0].nlargest(n, "lost_in_patients")
        if "lost_in_patients" in csf and len(csf)
        else csf[:0]
    )
    ncols = 2 if len(lost) else 1
    height = 0.32 * max(len(top), len(lost), 1) + 1.8
    fig, axes = plt.subplots(1, ncols, figsize=(8 * ncols, height), layout="constrained", squeeze=False)
    ax = axes[0, 0]

    def label(t: pd.DataFrame) -> list[str]:
        return (
            t["ligand_complex"] + " > " + t["receptor_complex"] + "  (" + t["source"] + " > " + t["target"] + ")"
        ).tolist()

    y = np.arange(len(top))
    ax.scatter(top["baseline_score"], y, color="#4477AA", label=legend[0], zorder=3)
    ax.scatter(top["post_score"], y, color="#EE7733", label=legend[1], zorder=3)
    for yi, row in enumerate(top.itertuples()):
        ax.plot([row.baseline_score, row.post_score], [yi, yi], color="grey", lw=0.8)
        if np.isfinite(row.ci_low):
            falling = getattr(row, "patients_consistent", None)  # paired designs only
            who = f"{falling}/{row.n_patients} falling" if falling is not None else f"{row.n_patients} donors"
            ax.annotate(f"{row.estimate:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}]  {who}", (1.01, yi),
                        xycoords=("axes fraction", "data"), fontsize=6.5, va="center")  # fmt: skip
    ax.set_yticks(y, label(top), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("LR score (mean over patients)")
    ax.legend(fontsize=8)
    ax.set_title(f"Top {len(top)} changed CSF interactions, partners present on both sides\n"
                 "(by p-value; change with 95% CI, patients falling)", fontsize=9)  # fmt: skip
    if len(lost):
        ax = axes[0, 1]
        ax.barh(np.arange(len(lost)), lost["lost_in_patients"], color="#999999")
        ax.set_yticks(np.arange(len(lost)), label(lost), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("patients in whom a partner vanished")
        ax.set_title("Lost by absence: a consequence of a cell type's loss,\nnot a change of signalling", fontsize=9)
    return fig


def plot_pair_heatmap(pairs: pd.DataFrame, cell_types: list[str] | None = None) -> plt.Figure:
    """Sender x receiver heat map of the paired change per pair of cell types (CSF; the
    patients' mean change over the pair's interactions, from :func:`paired_pairs`).

    A dot marks a BH-adjusted p below 0.05; hatched cells were not tested: fewer than two
    patients had both partners present at baseline and after infusion.
    """
    csf = pairs[pairs["compartment"] == "CSF"] if len(pairs) else pairs
    if "n_patients" in csf:
        csf = csf[csf["n_patients"] >= 2]
    types = sorted(set(cell_types or []) | set(csf.get("source", [])) | set(csf.get("target", [])))
    wide = csf.pivot_table(index="source", columns="target", values="estimate").reindex(index=types, columns=types)
    padj = csf.pivot_table(index="source", columns="target", values="p_adjusted").reindex(index=types, columns=types)
    fig, ax = plt.subplots(
        figsize=(0.45 * max(len(types), 2) + 3.5, 0.4 * max(len(types), 2) + 2.4), layout="constrained"
    )
    values = wide.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    ax.add_patch(
        plt.Rectangle((-0.5, -0.5), len(types), len(types), fill=False, hatch="///", color="#BBBBBB", lw=0, zorder=0)
    )
    im = ax.imshow(values, cmap="RdBu_r", vmin=-lim, vmax=lim, zorder=1)
    sig = np.argwhere(padj.to_numpy(dtype=float) < 0.05)
    if len(sig):
        ax.scatter(sig[:, 1], sig[:, 0], s=10, color="black", label="BH p < 0.05", zorder=2)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.12), fontsize=7, frameon=False)
    ax.set_xlim(-0.5, len(types) - 0.5)
    ax.set_ylim(len(types) - 0.5, -0.5)
    ax.set_xticks(range(len(types)), types, rotation=90, fontsize=8)
    ax.set_yticks(range(len(types)), types, fontsize=8)
    ax.set_xlabel("receiver")
    ax.set_ylabel("sender")
    fig.colorbar(im, ax=ax, label="paired change of LR score\n(mean over patients)", shrink=0.6)
    ax.set_title("CSF: change in communication, sender x receiver\n"
                 "hatched: not tested (both partners present before and after in fewer than 2 patients)", fontsize=9)  # fmt: skip
    return fig


def pseudobulk_interactions(adata: ad.AnnData, de: pd.DataFrame, *, compartment: str = "CSF") -> pd.DataFrame:
    """The pseudobulk route (LIANA's multi-sample ``df_to_lr``): per contrast, each
    interaction's ligand statistics in the sender and receptor statistics in the receiver,
    taken from the paired pseudobulk DE (PyDESeq2), and their mean (``interaction_stat``).

    Only cell types with DE results in the contrast take part: a type that vanished after
    infusion has none (the per-sample route reports its interactions as lost).
    """
    import liana as li

    de = de[(de["compartment"] == compartment) & de["gene"].isin(adata.var_names)]
    frames = []
    for contrast, table in de.groupby("contrast", sort=True):
        types = sorted(set(table["cell_type"]))
        cells = adata[adata.obs[CELL_TYPE].astype(str).isin(types).to_numpy()].copy()
        if len(types) < 2 or cells.n_obs == 0:
            continue
        cells.obs[CELL_TYPE] = cells.obs[CELL_TYPE].astype(str).astype("category")
        dea = table.set_index("gene")[[CELL_TYPE, "stat", "log2FoldChange", "padj"]]
        res = li.multi.df_to_lr(
            cells,
            dea_df=dea,
            groupby=CELL_TYPE,
            stat_keys=["stat", "log2FoldChange", "padj"],
            resource_name=lr_resource(cells.var_names),
            expr_prop=0.1,
            min_cells=5,
            use_raw=False,
            return_all_lrs=False,
            verbose=False,
        )
        frames.append(res.assign(compartment=compartment, contrast=contrast))
    if not frames:
        return pd.DataFrame(columns=[*KEY, "compartment", "contrast", "interaction_stat"])
    out = pd.concat(frames, ignore_index=True).drop(columns=["interaction_padj", "interaction"], errors="ignore")
    first = [*KEY, "compartment", "contrast", "interaction_stat", "interaction_log2FoldChange"]
    return out[first + [c for c in out.columns if c not in first]].sort_values("interaction_stat")


def condition_interactions(
    scores: pd.DataFrame, meta: pd.DataFrame, conditions: dict[str, str], *, reference: str
) -> pd.DataFrame:
    """Unpaired designs (one visit per donor): per interaction and compartment, the
    difference of mean scores between each condition and ``reference`` (donors as the unit;
    an interaction absent from a donor's sample scores 0), Welch 95% CI and p, BH.

    Columns follow :func:`paired_interactions`: ``baseline_score`` is the reference mean and
    ``post_score`` the condition's, so the same figures read both designs.
    """
    from csfcart.stats import bh, welch

    s = scores.merge(meta.reset_index(), on="sample_id")
    keys = s[[*KEY, "compartment"]].drop_duplicates()
    full = keys.merge(meta.reset_index(), on="compartment")
    full = full.merge(s[[*KEY, "sample_id", "lrscore"]], on=[*KEY, "sample_id"], how="left")
    full["lrscore"] = full["lrscore"].fillna(0.0)
    full["condition"] = full["sample_id"].map(conditions)
    donors = (
        full.dropna(subset=["condition"])
        .groupby([*KEY, "compartment", "condition", "patient_id"], observed=True)["lrscore"]
        .mean()
    )
    g = (
        donors.groupby(level=[*KEY, "compartment", "condition"], observed=True)
        .agg(["mean", "var", "count"])
        .unstack("condition")
    )
    frames = []
    for cond in sorted(set(full["condition"].dropna()) - {reference}):
        if (cond not in g["mean"].columns) or (reference not in g["mean"].columns):
            continue
        m1, m0 = g["mean"][cond], g["mean"][reference]
        diff, low, high, p = welch(m1, g["var"][cond], g["count"][cond], m0, g["var"][reference], g["count"][reference])
        out = pd.DataFrame({"contrast": f"{cond}_vs_{reference}", "estimate": diff, "ci_low": low, "ci_high": high,
                            "p_value": p, "n_patients": g["count"][cond] + g["count"][reference],
                            "baseline_score": m0, "post_score": m1}).reset_index()  # fmt: skip
        frames.append(out)
    if not frames:
        return pd.DataFrame(columns=[*KEY, "compartment", "contrast", "estimate", "p_value", "p_adjusted"])
    out = pd.concat(frames, ignore_index=True)
    out["p_adjusted"] = bh(out["p_value"])
    out["lost_in_patients"] = 0
    return out.sort_values("p_value")


def paired_pairs(per_patient: pd.DataFrame) -> pd.DataFrame:
    """Per sender-receiver pair of cell types and compartment: each patient's mean change
    over the pair's interactions, summarised over patients (mean, 95% CI, p, BH)."""
    from csfcart.stats import grouped_paired_summary

    by = ["source", "target", "compartment"]
    per_patient = per_patient.dropna(subset=["change"])
    if per_patient.empty:
        return pd.DataFrame(columns=[*by, "n_interactions", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted"])
    pp = per_patient.groupby([*by, "patient_id"], as_index=False, observed=True).agg(
        change=("change", "mean"), n_interactions=("change", "size")
    )
    summary = grouped_paired_summary(pp, "change", by, direction=-1)
    n = pp.groupby(by, as_index=False, observed=True)["n_interactions"].max()
    return summary.merge(n, on=by).sort_values("p_value")


def interaction_tensor(
    scores: pd.DataFrame, samples: list[str], present: pd.DataFrame, *, n_interactions: int
) -> tuple[np.ndarray, list[list[str]]]:
    """Samples x ligand-receptor pairs x senders x receivers tensor of LIANA scores.

    An entry is the sample's score where both cell types were present there, 0 where both
    were present and the interaction was not scored, and NaN (missing, masked in the
    decomposition) where a partner was absent. The ligand-receptor pairs are the
    ``n_interactions`` whose per-sample mean score varies most across samples, among those
    LIANA's expression filter passes in at least one sample (chosen without the visits'
    labels). Returns the tensor and the names along each of its four modes.
    """
    rows = _Rows(scores)
    order = pd.Index(samples)
    lr = (2, 3)  # ligand and receptor: the tensor's interaction mode
    pairs = rows.distinct(order, lr)
    sums = np.zeros(len(pairs) * len(order))
    counts = np.zeros(len(pairs) * len(order))
    for r in rows.slices():
        ok, at, col = rows.locate(r, pairs, order, lr)
        flat = at.astype(np.int64) * len(order) + col
        sums += np.bincount(flat, weights=rows.score[r][ok], minlength=len(sums))
        counts += np.bincount(flat, minlength=len(counts))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, 0.0).reshape(len(pairs), len(order))
    rec = rows.sizes[3]
    pair_names = rows.labels[2][pairs // rec] + "^" + rows.labels[3][pairs % rec]
    per_sample = pd.DataFrame(mean, index=pair_names, columns=order).sort_index()
    chosen = pd.Index(sorted(per_sample.var(axis=1).nlargest(n_interactions).index))
    types = pd.Index(sorted(present.loc[present["sample_id"].isin(samples), "cell_type"].unique()))
    tensor = np.full((len(order), len(chosen), len(types), len(types)), np.nan, dtype=np.float32)
    for i, sample in enumerate(order):
        here = types.get_indexer(present.loc[present["sample_id"] == sample, "cell_type"])
        here = here[here >= 0]
        tensor[i][np.ix_(np.arange(len(chosen)), here, here)] = 0.0
    chosen_keys = pairs[pair_names.get_indexer(chosen)]
    by_key = np.argsort(chosen_keys)
    sender, receiver = types.get_indexer(rows.labels[0]), types.get_indexer(rows.labels[1])
    for r in rows.slices():
        ok, at, i = rows.locate(r, chosen_keys[by_key], order, lr)
        j = by_key[at]
        a, b = sender[rows.codes[0][r][ok]], receiver[rows.codes[1][r][ok]]
        keep = (a >= 0) & (b >= 0)
        keep[keep] = ~np.isnan(tensor[i[keep], j[keep], a[keep], b[keep]])
        tensor[i[keep], j[keep], a[keep], b[keep]] = rows.score[r][ok][keep]
    return tensor, [list(order), list(chosen), list(types), list(types)]


TENSOR_MODES = ["sample", "interaction", "sender", "receiver"]


def decompose_tensor(
    tensor: np.ndarray, names: list[list[str]], *, rank: int, seed: int, n_iter_max: int = 100
) -> pd.DataFrame:
    """Non-negative CP decomposition as Tensor-cell2cell computes it (LIANA+'s multi-sample
    route), missing entries masked. Returns the loadings, long: ``mode``, ``element``,
    ``factor``, ``loading`` (each factor's loadings have unit norm within a mode; factors
    ordered by their weight, largest first).

    Tensor-cell2cell's ``compute_tensor_factorization(tf_type="non_negative_cp",
    init="random")`` calls tensorly's masked ``non_negative_parafac`` and normalises the
    loadings; :func:`masked_non_negative_cp` runs the same iterations without its
    tensor-sized temporaries (a test holds the two to the same loadings), and this function
    applies the same normalisation and ordering."""
    missing = np.isnan(tensor)
    rank = int(max(1, min(rank, tensor.shape[0])))
    with step(f"non-negative CP decomposition, rank {rank}, of a tensor of shape {tensor.shape}"):
        weights, factors = masked_non_negative_cp(np.nan_to_num(tensor), ~missing, rank=rank,
                                                  seed=seed, n_iter_max=n_iter_max, tol=1e-7)  # fmt: skip
    from tensorly.cp_tensor import cp_normalize

    weights, factors = cp_normalize((weights, factors))  # unit-norm loadings, as cell2cell keeps them
    order = np.asarray(weights).argsort()[::-1]
    frames = []
    for mode, f, elements in zip(TENSOR_MODES, factors, names, strict=True):
        unit = np.asarray(f)[:, order]
        frame = pd.DataFrame(unit, index=pd.Index(elements, name="element"), columns=[f"F{k + 1}" for k in range(rank)])
        frames.append(frame.reset_index().melt("element", var_name="factor", value_name="loading").assign(mode=mode))
    return pd.concat(frames, ignore_index=True)[["mode", "element", "factor", "loading"]]


def masked_non_negative_cp(
    tensor: np.ndarray, mask: np.ndarray, *, rank: int, seed: int, n_iter_max: int = 100, tol: float = 1e-7
) -> tuple[np.ndarray, list[np.ndarray]]:
    """tensorly's ``non_negative_parafac`` (multiplicative updates; entries where ``mask`` is
    0 imputed from the current model before each update; stops when the reconstruction
    error changes by less than ``tol``), step for step, with tensorly's random
    initialisation. Returns (weights, factors).

    The updates are tensorly's; the memory traffic is not. tensorly imputes with
    ``tensor * mask + model * (1 - mask)`` and unfolds the tensor along each mode before
    multiplying it by the Khatri-Rao product of the other factors: a dozen tensor-sized
    temporaries per mode update. Here the model is written into one reused buffer and copied
    into the missing entries only, and the product (MTTKRP) contracts the first mode by one
    matrix product and the rest on the small result (:func:`_mttkrp`), without an unfolded
    copy. The values agree with tensorly's to rounding (a test holds the loadings to
    Tensor-cell2cell's); at 357 samples x 600 pairs x 14 x 14 cell types (a 336 MB float64
    tensor) an iteration takes about a sixth of the time and half the memory."""
    from tensorly.decomposition._cp import initialize_cp

    eps = np.finfo(tensor.dtype).eps
    missing = ~np.asarray(mask, dtype=bool)
    weights, factors = initialize_cp(tensor, rank, init="random", non_negative=True, random_state=seed)
    ndim = tensor.ndim
    # tensorly's first imputation, ``tensor * mask`` with an integer mask, promotes to float64;
    # the model is computed in that dtype from the start
    work = np.array(tensor, dtype=np.result_type(tensor.dtype, np.int64))
    weights, factors = np.asarray(weights, dtype=work.dtype), [np.asarray(f, dtype=work.dtype) for f in factors]
    model = np.empty_like(work)
    errors = []
    for iteration in range(n_iter_max):
        for mode in range(ndim):
            accum = np.ones((rank, rank))
            for e in range(ndim):
                if e != mode:
                    accum = accum * (factors[e].T @ factors[e])
            accum = weights[:, None] * accum * weights[None, :]
            if mode or not (tol and iteration):  # else imputed by the error step, from the same model
                np.copyto(work, _cp_full(weights, factors, out=model), where=missing)
            numerator = np.clip(_mttkrp(work, factors, weights, mode), eps, None)
            denominator = np.clip(factors[mode] @ accum, eps, None)
            factors[mode] = factors[mode] * numerator / denominator
        if tol:
            low_rank = _cp_full(weights, factors, out=model)
            np.copyto(work, low_rank, where=missing)
            residual = np.subtract(work, low_rank, out=model).ravel()
            errors.append(np.sqrt(residual @ residual) / np.sqrt(work.ravel() @ work.ravel()))
            if iteration >= 1 and abs(errors[-2] - errors[-1]) < tol:
                break
    return weights, factors


def _mttkrp(tensor: np.ndarray, factors: list[np.ndarray], weights: np.ndarray, mode: int) -> np.ndarray:
    """tensorly's ``unfold(tensor, mode) @ (khatri_rao(other factors) * weights)`` (the
    matricised tensor times the Khatri-Rao product), without the unfolded copy: the first
    mode is contracted by one matrix product over the tensor as it lies in memory, and the
    others on that product, which has ``rank`` rows in place of the first mode's length."""
    if mode == 0:
        return tensor.reshape(tensor.shape[0], -1) @ (_khatri_rao(factors[1:]) * weights)
    rest = tensor.shape[1:]
    first = ((factors[0] * weights).T @ tensor.reshape(tensor.shape[0], -1)).reshape(-1, *rest)
    axes = "abcdefghijklmnopqstuvwxy"[: len(rest)]  # z is the rank's
    operands, subscripts = [first], ["z" + axes]
    for e in range(1, tensor.ndim):
        if e != mode:
            operands.append(factors[e])
            subscripts.append(axes[e - 1] + "z")
    return np.einsum(",".join(subscripts) + "->" + axes[mode - 1] + "z", *operands, optimize=True)


def _khatri_rao(factors: list[np.ndarray]) -> np.ndarray:
    """Column-wise Kronecker product, rows in C order of the factors' indices (the first
    factor's index varies slowest), as tensorly's ``unfold`` orders a tensor's columns."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, None, :] * f[None, :, :]).reshape(-1, out.shape[1])
    return out


def _cp_full(weights: np.ndarray, factors: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    """The CP model as a full tensor, written into ``out`` (of the factors' dtype)."""
    np.matmul(factors[0] * weights, _khatri_rao(factors[1:]).T, out=out.reshape(len(factors[0]), -1))
    return out


def factor_changes(loadings: pd.DataFrame, meta: pd.DataFrame, *, baseline: str, top: int = 3) -> pd.DataFrame:
    """Per factor, the within-patient change of its sample loading (post-infusion visits'
    mean minus baseline), summarised over patients (mean, 95% CI, p, BH; the patient is the
    unit), beside the factor's top senders, receivers and interactions."""
    sample = loadings[loadings["mode"] == "sample"].merge(meta[["patient_id", "timepoint"]], left_on="element",
                                                          right_index=True)  # fmt: skip
    base = sample[sample["timepoint"] == baseline].set_index(["factor", "patient_id"])["loading"]
    post = sample[sample["timepoint"] != baseline].groupby(["factor", "patient_id"])["loading"].mean()
    change = (post - base.reindex(post.index)).rename("change").dropna().reset_index()
    out = grouped_paired_summary(change, "change", ["factor"], direction=-1)
    for mode in ("sender", "receiver", "interaction"):
        part = loadings[loadings["mode"] == mode]
        best = (
            part.sort_values("loading", ascending=False)
            .groupby("factor")["element"]
            .apply(lambda e: ", ".join(e[:top]))
        )
        out[f"top_{mode}s"] = out["factor"].map(best)
    return out.sort_values("factor").reset_index(drop=True)


def plot_tensor(loadings: pd.DataFrame, changes: pd.DataFrame, meta: pd.DataFrame, order: list[str]) -> plt.Figure:
    """One row per factor: its sample loadings per patient over time (with the paired change
    and its 95% CI), and its top senders, receivers and interactions."""
    factors = sorted(loadings["factor"].unique(), key=lambda f: int(f[1:]))
    fig, axes = plt.subplots(len(factors), 4, figsize=(15, 2.1 * len(factors) + 0.6), layout="constrained",
                             squeeze=False, gridspec_kw={"width_ratios": [1.3, 1, 1, 1.4]})  # fmt: skip
    change = changes.set_index("factor")
    for row, factor in zip(axes, factors, strict=True):
        f = loadings[loadings["factor"] == factor]
        samples = f[f["mode"] == "sample"].merge(meta[["patient_id", "timepoint"]], left_on="element", right_index=True)
        for i, (patient, g) in enumerate(samples.groupby("patient_id")):
            g = g.set_index("timepoint").reindex(order).dropna(subset=["loading"])
            row[0].plot([order.index(t) for t in g.index], g["loading"], "-o", ms=3, lw=1,
                        color=plt.colormaps["tab10"](i % 10), label=patient)  # fmt: skip
        row[0].set_xticks(range(len(order)), order, fontsize=7)
        c = change.loc[factor] if factor in change.index else None
        what = (f"{c['estimate']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], BH p {c['p_adjusted']:.2g}"
                if c is not None and np.isfinite(c["ci_low"]) else "change not estimable")  # fmt: skip
        row[0].set_title(f"{factor}: sample loading; change {what}", fontsize=8)
        for ax, mode in zip(row[1:], ("sender", "receiver", "interaction"), strict=True):
            top = f[f["mode"] == mode].nlargest(6 if mode == "interaction" else 5, "loading")[::-1]
            ax.barh(range(len(top)), top["loading"], color="#4477AA")
            ax.set_yticks(range(len(top)), top["element"], fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_title(f"top {mode}s", fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=2)
    fig.suptitle("CSF communication: non-negative tensor decomposition across samples (Tensor-cell2cell); "
                 "one line per patient", fontsize=10)  # fmt: skip
    return fig
