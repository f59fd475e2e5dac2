"""Per-sample measurements the claims are built on: composition, CAR-T, Ig, programs.

Each function returns one row per sample (or per sample and group) with the sample's
patient, time point and compartment, so that the paired statistics can pair them.
"""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd

from csfcart.keys import CAR_POSITIVE, CAR_T, CELL_TYPE, COUNTS
from csfcart.pseudobulk import META, program_scores, pseudobulk, summed_groups
from csfcart.registry import ASC, AXIS_PROGRAMS, POOLS, T_CELLS, types_of

IG_GENES = ["IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGHA1", "IGHA2", "IGHM", "IGKC", "IGLC1", "IGLC2", "IGLC3", "JCHAIN"]


def sample_meta(obs: pd.DataFrame) -> pd.DataFrame:
    """One row per sample: patient, time point, compartment."""
    return obs[META].astype(str).drop_duplicates("sample_id").set_index("sample_id")


def cell_counts(obs: pd.DataFrame) -> pd.DataFrame:
    """Cells per sample and cell type (wide; every annotated type a column, zeros kept)."""
    counts = pd.crosstab(obs["sample_id"].astype(str), obs[CELL_TYPE].astype(str))
    return sample_meta(obs).join(counts).fillna(0)


def car_fractions(obs: pd.DataFrame, lineage_of: Mapping[str, str]) -> pd.DataFrame:
    """Per sample: T cells, CAR+ T cells and their fraction (the CAR-T readout).

    CAR reads of the ambient soup make some droplets CAR+ whatever cell they hold, the more
    often the more UMIs the droplet has. Cells that cannot carry the CAR (every annotated
    type other than T cells) show that rate: CAR+ droplets per UMI among them, times the T
    cells' mean UMIs, is the T cells' expected background (``car_background``; without
    ``total_counts`` in ``obs``, the non-T cells' CAR+ share). ``car_fraction`` is the T
    cells' CAR+ fraction corrected for it, ``(raw - background) / (1 - background)`` (at
    least 0), and ``car_fraction_raw`` the uncorrected share. T cells are the types that
    ``lineage_of`` (type -> lineage, the marker table's) puts in the T lineage.
    """
    types = obs[CELL_TYPE].astype(str)
    is_t = types.isin(types_of(T_CELLS, lineage_of)).to_numpy()
    other = ~is_t & ~types.isin(["low_confidence", "doublet", "unassigned"]).to_numpy()
    table = sample_meta(obs)
    sample = obs["sample_id"].astype(str)
    car = obs[CAR_POSITIVE].astype(bool)
    umis = obs["total_counts"].astype(float) if "total_counts" in obs else pd.Series(1.0, index=obs.index)
    table["t_cells"] = sample[is_t].value_counts().reindex(table.index, fill_value=0)
    table["car_positive_t_cells"] = car[is_t].groupby(sample[is_t]).sum().reindex(table.index, fill_value=0)
    table["car_fraction_raw"] = table["car_positive_t_cells"] / table["t_cells"].replace(0, np.nan)
    car_other = car[other].groupby(sample[other]).sum().reindex(table.index, fill_value=0)
    umis_other = umis[other].groupby(sample[other]).sum().reindex(table.index, fill_value=0)
    umis_t = umis[is_t].groupby(sample[is_t]).mean().reindex(table.index)
    per_umi = car_other / umis_other.replace(0, np.nan)
    table["car_background"] = (per_umi * umis_t).clip(upper=0.5).fillna(0.0)
    corrected = (table["car_fraction_raw"] - table["car_background"]) / (1 - table["car_background"])
    table["car_fraction"] = corrected.clip(lower=0.0)
    return table


def asc_immunoglobulin(pb: ad.AnnData, lineage_of: Mapping[str, str]) -> pd.DataFrame:
    """Per sample: immunoglobulin UMIs carried by antibody-secreting cells per 1,000 UMIs, and
    the sample's UMIs in cells other than CAR-T cells (``non_car_umis``, the claims' denominator).

    Ig transcripts of the ambient soup land in every droplet; counting only those inside
    cells annotated as antibody-secreting, relative to the sample's total UMIs, keeps the
    soup of other cells out of the readout. Antibody-secreting cells are the types that
    ``lineage_of`` puts in the plasma lineage. ``pb``: the counts summed per sample and cell
    type (:func:`csfcart.pseudobulk.pseudobulk`), whose rows hold every cell of a sample once.
    """
    genes = [g for g in IG_GENES if g in pb.var_names]
    x = pb.X
    total = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    ig = (
        np.asarray(x[:, pb.var_names.get_indexer(genes)].sum(axis=1, dtype=np.float64)).ravel()
        if genes
        else np.zeros(pb.n_obs)
    )
    is_asc = pb.obs[CELL_TYPE].astype(str).isin(types_of(ASC, lineage_of)).to_numpy()
    is_car = (pb.obs[CELL_TYPE].astype(str) == CAR_T).to_numpy()
    frame = pd.DataFrame(
        {
            "sample_id": pb.obs["sample_id"].astype(str).to_numpy(),
            "total": total,
            "non_car": np.where(is_car, 0.0, total),
            "asc_ig": np.where(is_asc, ig, 0.0),
            "asc_cells": np.where(is_asc, pb.obs["psbulk_cells"].to_numpy(dtype=float), 0.0),
        }
    )
    sums = frame.groupby("sample_id").sum()
    table = sample_meta(pb.obs)
    table["asc_cells"] = sums["asc_cells"].reindex(table.index).astype(int)
    table["asc_ig_umis"] = sums["asc_ig"].reindex(table.index)
    table["total_umis"] = sums["total"].reindex(table.index)
    table["non_car_umis"] = sums["non_car"].reindex(table.index)
    table["asc_ig_per_1000_umis"] = 1000 * table["asc_ig_umis"] / table["total_umis"]
    return table


def scored_programs(programs: dict[str, list[str]], axes: dict) -> dict[str, list[str]]:
    """The programs the claims score: config ``programs`` and the programs read from an
    interaction axis (:data:`csfcart.registry.AXIS_PROGRAMS`: the ligands and receptors of the
    axis's pairs, less the genes of the programs named there)."""
    out = dict(programs)
    for name, (axis, without) in AXIS_PROGRAMS.items():
        if axis not in axes:
            continue
        other = {g for p in without for g in programs.get(p, [])}
        out[name] = list(dict.fromkeys(g for pair in axes[axis]["pairs"] for g in pair if g not in other))
    return out


def programs_per_sample(
    pb: ad.AnnData,
    programs: dict[str, list[str]],
    *,
    lineage_of: Mapping[str, str],
    markers: Mapping[str, list[str]],
    min_cells: int,
    axes: dict | None = None,
) -> pd.DataFrame:
    """Program scores (log2 of the genes' mean expression relative to the group's pooled
    level, :func:`csfcart.pseudobulk.program_scores`) per sample and cell type, and per sample for the cells of each pooled group
    (:data:`csfcart.registry.POOLS`: ``myeloid``, all myeloid and microglia-like cells;
    ``microglia-like``), whose types ``lineage_of`` (type -> lineage) gives. ``pb``: the
    counts summed per sample and cell type (:func:`csfcart.pseudobulk.pseudobulk`); a pool's
    counts are the sums of its types' rows. Each group's identity markers (``markers``: type
    -> positive markers of the marker table; a pool's, those of its types) are left out of
    its programs. ``axes`` (config ``interactions``) adds the programs read from an axis
    (:func:`scored_programs`)."""
    programs = scored_programs(programs, axes or {})
    out = [program_scores(pb, programs, min_cells=min_cells, leave_out=dict(markers))]
    types = pb.obs[CELL_TYPE].astype(str)
    for pool, lineages in POOLS.items():
        members = types.isin(types_of(lineages, lineage_of)).to_numpy()
        identity = [g for t in types_of(lineages, lineage_of) for g in markers.get(t, [])]
        out.append(program_scores(summed_groups(pb, members, pool), programs, groups="pool", min_cells=min_cells,
                                  leave_out={pool: identity}))  # fmt: skip
    return pd.concat(out, ignore_index=True)


LR_COLUMNS = [*META, "sender", "receiver", "ligand", "receptor", "sender_cells", "receiver_cells", "ligand_lcpm",
              "receptor_lcpm", "ligand_detected", "receptor_detected"]  # fmt: skip


def partner_types(partners, lineage_of: Mapping[str, str]) -> list[str]:
    """The cell types of one side of an interaction axis: each name a lineage of the marker
    table (``lineage_of``: type -> lineage; all its types) or a type."""
    lineages = set(lineage_of.values())
    types = [t for name in partners for t in (types_of((name,), lineage_of) if name in lineages else [name])]
    return list(dict.fromkeys(types))


def lr_expression(
    adata: ad.AnnData, axes: dict, *, lineage_of: Mapping[str, str], min_cells: int, pb: ad.AnnData | None = None
) -> pd.DataFrame:
    """Per sample, ligand-receptor pair and sender-receiver pair of each axis of ``axes``
    (config ``interactions``: ``partners`` [group A, group B] and ``pairs`` [ligand,
    receptor]; both directions): the ligand's log2 CPM in the sender's pseudobulk, the
    receptor's in the receiver's, and the share of their cells that detect each gene.

    A row exists only where both cell types have at least ``min_cells`` cells in the sample:
    an interaction whose partner is absent is missing, never 0. Each sample is computed
    from its own cells alone.
    """
    from csfcart.pseudobulk import log_cpm

    pb = pb if pb is not None else pseudobulk(adata)
    x = pb.X.toarray() if hasattr(pb.X, "toarray") else np.asarray(pb.X)
    lcpm = pd.DataFrame(log_cpm(x), index=pb.obs_names, columns=pb.var_names)
    counts = adata.layers[COUNTS]
    key = adata.obs["sample_id"].astype(str) + "|" + adata.obs[CELL_TYPE].astype(str)
    rows = []
    for name, axis in axes.items():
        group_a, group_b = (partner_types(g, lineage_of) for g in axis["partners"])
        pairs = [(lig, rec) for lig, rec in axis["pairs"] if lig in pb.var_names and rec in pb.var_names]
        genes = sorted({g for pair in pairs for g in pair})
        if not pairs:
            continue
        idx = adata.var_names.get_indexer(genes)
        detected = pd.DataFrame((counts[:, idx] > 0).astype(float).toarray() if hasattr(counts, "toarray")
                                else (np.asarray(counts)[:, idx] > 0).astype(float), columns=genes)  # fmt: skip
        share = detected.groupby(key.to_numpy()).mean()
        obs = pb.obs.assign(_key=pb.obs["sample_id"].astype(str) + "|" + pb.obs[CELL_TYPE].astype(str))
        for sample, g in obs.groupby("sample_id", observed=True):
            present = g[g["psbulk_cells"] >= min_cells]
            types = dict(zip(present[CELL_TYPE].astype(str), present.index, strict=True))
            cells = dict(zip(present[CELL_TYPE].astype(str), present["psbulk_cells"], strict=True))
            meta = g.iloc[0][META].to_dict()
            for senders, receivers in ((group_a, group_b), (group_b, group_a)):
                for s in (t for t in senders if t in types):
                    for r in (t for t in receivers if t in types):
                        for lig, rec in pairs:
                            rows.append({**meta, "sender": s, "receiver": r, "ligand": lig, "receptor": rec,
                                         "sender_cells": cells[s], "receiver_cells": cells[r],
                                         "ligand_lcpm": lcpm.at[types[s], lig], "receptor_lcpm": lcpm.at[types[r], rec],
                                         "ligand_detected": share.at[f"{sample}|{s}", lig],
                                         "receptor_detected": share.at[f"{sample}|{r}", rec], "axis": name})  # fmt: skip
    out = pd.DataFrame(rows, columns=[*LR_COLUMNS, "axis"])
    return out
