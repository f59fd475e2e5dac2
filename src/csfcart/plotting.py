"""Shared plotting conventions: one colour per cell type across every figure.

Colours come from Paul Tol's colour-blind-safe 'muted' and 'light' schemes.
"""

from __future__ import annotations

CELL_TYPE_COLOURS: dict[str, str] = {
    "CD4_T": "#88CCEE",
    "CD8_T": "#44AA99",
    "Treg": "#117733",
    "CAR_T": "#CC3311",
    "NK": "#999933",
    "naive_B": "#DDCC77",
    "memory_B": "#EE8866",
    "plasma": "#AA4499",
    "CD14_mono": "#332288",
    "CD16_mono": "#6699CC",
    "mDC": "#882255",
    "pDC": "#FFAABB",
    "border_macrophage": "#BBCC33",
    "microglia_like": "#000000",
    "doublet": "#DDDDDD",
    "low_confidence": "#BBBBBB",
    "unassigned": "#999933",
}


# verdicts in Paul Tol's 'bright' scheme (green / red / grey stay apart for colour-blind readers)
VERDICT_COLOURS: dict[str, str] = {"reproduced": "#228833", "contradicted": "#CC3311", "inconclusive": "#EE7733",
                                   "not_tested": "#777777", "not_testable": "#999999"}  # fmt: skip


def _colour(name: str, i: int) -> str:
    import matplotlib

    return CELL_TYPE_COLOURS.get(name, matplotlib.colormaps["tab20"](i % 20))


def plot_umaps(adata, keys=("cell_type", "timepoint", "patient_id", "compartment", "car_positive")):
    """UMAP coloured by each of ``keys``; cell types in the shared colours."""
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [k for k in keys if k in adata.obs]
    ncol = min(3, len(keys))
    nrow = int(np.ceil(len(keys) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 5.2 * nrow), layout="constrained", squeeze=False)
    xy = adata.obsm["X_umap"]
    order = np.random.default_rng(0).permutation(adata.n_obs)
    size = max(0.5, min(8.0, 30000 / max(adata.n_obs, 1)))
    for ax, key in zip(axes.ravel(), keys, strict=False):
        values = adata.obs[key].astype(str).to_numpy()
        cats = sorted(set(values))
        lookup = {
            c: (_colour(c, i) if key == "cell_type" else plt.colormaps["tab10"](i % 10)) for i, c in enumerate(cats)
        }
        if key == "car_positive":
            lookup = {"False": "#DDDDDD", "True": "#CC3311"}
        ax.scatter(
            xy[order, 0], xy[order, 1], s=size, c=[lookup[v] for v in values[order]], linewidths=0, rasterized=True
        )
        for c in cats:
            ax.scatter([], [], s=30, color=lookup[c], label=f"{c} ({(values == c).sum()})")
        ax.legend(fontsize=8, markerscale=1, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        ax.set_title(key.replace("_", " "))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    return fig


def plot_marker_dotplot(adata, markers: dict[str, list[str]], *, groupby: str = "cell_type"):
    """Dot plot: fraction of cells expressing each marker (size) and mean expression (colour)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import scipy.sparse as sp

    genes = list(dict.fromkeys(g for gs in markers.values() for g in gs[:4] if g in adata.var_names))
    groups = [g for g in markers if g in set(adata.obs[groupby].astype(str))]
    groups += sorted(set(adata.obs[groupby].astype(str)) - set(groups))
    x = adata[:, genes].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    labels = adata.obs[groupby].astype(str).to_numpy()
    frac = np.array([(x[labels == g] > 0).mean(axis=0) for g in groups])
    mean = np.array([x[labels == g].mean(axis=0) for g in groups])
    scaled = mean / np.maximum(mean.max(axis=0, keepdims=True), 1e-9)
    fig, ax = plt.subplots(figsize=(0.28 * len(genes) + 3, 0.38 * len(groups) + 2), layout="constrained")
    yy, xx = np.meshgrid(range(len(groups)), range(len(genes)), indexing="ij")
    sc = ax.scatter(xx.ravel(), yy.ravel(), s=frac.ravel() * 120, c=scaled.ravel(), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(genes)), genes, rotation=90, fontsize=8)
    ax.set_yticks(range(len(groups)), groups, fontsize=9)
    ax.invert_yaxis()
    fig.colorbar(sc, ax=ax, label="mean expression (scaled per gene)", shrink=0.5)
    for f in (0.25, 0.5, 1.0):
        ax.scatter([], [], s=f * 120, c="grey", label=f"{int(f * 100)} % expressing")
    ax.legend(loc="upper left", bbox_to_anchor=(1.15, 1.0), frameon=False, fontsize=8)
    ax.set_title("Marker genes by annotated cell type")
    return fig


def plot_car_fraction(table):
    """CAR+ fraction of T cells over time, one line per patient, CSF beside blood."""
    import matplotlib.pyplot as plt

    from csfcart.timepoints import order_timepoints

    order = order_timepoints(table["timepoint"].unique())
    comps = [c for c in ("CSF", "blood") if c in set(table["compartment"])]
    fig, axes = plt.subplots(
        1, len(comps), figsize=(5 * len(comps), 4), sharey=True, layout="constrained", squeeze=False
    )
    for ax, comp in zip(axes.ravel(), comps, strict=True):
        sub = table[table["compartment"] == comp]
        for i, (patient, g) in enumerate(sub.groupby("patient_id")):
            g = g.set_index("timepoint").reindex(order).dropna(subset=["car_fraction"])
            ax.plot(
                [order.index(t) for t in g.index],
                100 * g["car_fraction"],
                "-o",
                ms=4,
                color=plt.colormaps["tab10"](i % 10),
                label=patient,
            )
        ax.set_xticks(range(len(order)), order)
        ax.set_title(f"{comp}: CAR transcript+ T cells")
        ax.set_ylabel("% of T cells with CAR UMIs")
        ax.legend(fontsize=8)
    return fig


def plot_claims(claims):
    """Forest plot: each claim's estimate with its 95% CI, coloured by verdict."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    colours = VERDICT_COLOURS
    n = len(claims)
    fig, axes = plt.subplots(n, 1, figsize=(9, 0.9 * n + 1), layout="constrained", squeeze=False)
    for ax, row in zip(axes.ravel(), claims.to_dict("records"), strict=True):
        colour = colours.get(row["verdict"], "black")
        values = [row.get(k) for k in ("ci_low", "ci_high", "estimate", "size", "bound")]
        finite = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
        span = max([*finite, 1e-3])
        if np.isfinite(row["estimate"]):
            lo, hi = row["ci_low"], row["ci_high"]
            if pd.notna(lo) and pd.notna(hi):
                # an interval open on one side (a rate that may rise without bound) runs to the edge
                ax.plot(np.clip([lo, hi], -1.1 * span, 1.1 * span), [0, 0], color=colour, lw=2)
            ax.plot(row["estimate"], 0, "o", color=colour, ms=7)
            bound = row.get("bound", np.nan)
            if bound is not None and np.isfinite(bound):  # the one-sided bound that decided the claim
                ax.plot([bound, bound], [-0.5, 0.5], color=colour, lw=2.5)
            ax.axvline(0, color="black", lw=0.6, ls="--")
            size = row.get("size", np.nan)
            if size is not None and np.isfinite(size) and size != 0:
                ax.axvline(size, color="black", lw=0.8, ls=":")
        else:
            ax.text(
                0.5,
                0.0,
                str(row.get("reason", ""))[:120],
                ha="center",
                va="center",
                fontsize=7,
                transform=ax.get_yaxis_transform(),
                color="grey",
            )
            ax.set_xticks([])  # no estimate: an axis would suggest a scale that was never measured
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        ax.set_xlim(-1.15 * span, 1.15 * span)
        ax.set_title(
            f"{row['claim_id']}: {row['statement']} - {row['verdict'].replace('_', ' ')}",
            fontsize=9,
            loc="left",
            color=colour,
        )
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(row["metric"], fontsize=7)
    fig.suptitle("Claims: estimates with two-sided 95% CIs and the deciding one-sided bound (bar); "
                 "dashed: no change; dotted: the claimed size", fontsize=10)  # fmt: skip
    return fig


def plot_claim_patients(patients, claims):
    """One panel per claim: each patient's value before and after (or the patient's value
    when the claim is a difference at one time), with the cohort estimate and its 95% CI."""
    import matplotlib.pyplot as plt
    import numpy as np

    if "timepoint" in patients:  # the value over each claim's window, primary readout only
        patients = patients[patients["timepoint"] == "window"]
        primary = patients.groupby("claim_id")["readout"].transform("first")
        patients = patients[patients["readout"] == primary]
    ids = [c for c in claims["claim_id"] if c in set(patients["claim_id"])]
    if not ids:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no claim had per-patient values", ha="center", va="center")
        ax.axis("off")
        return fig
    ncol = min(4, len(ids))
    nrow = int(np.ceil(len(ids) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.4 * nrow), layout="constrained", squeeze=False)
    rows = claims.set_index("claim_id")
    patient_ids = sorted(patients["patient_id"].astype(str).unique())
    colour = {p: plt.colormaps["tab10"](i % 10) for i, p in enumerate(patient_ids)}
    for ax, cid in zip(axes.ravel(), ids, strict=False):
        sub = patients[patients["claim_id"] == cid]
        row = rows.loc[cid]
        paired = sub[["base", "post"]].notna().all(axis=1).all()
        if sub["condition"].notna().any():  # unpaired: donors of each condition side by side
            for x, cond in enumerate([sub["base_label"].iloc[0], sub["post_label"].iloc[0]]):
                v = sub.loc[sub["condition"] == cond, "value"]
                ax.plot(
                    x + np.linspace(-0.1, 0.1, len(v)) if len(v) > 1 else [x] * len(v), v, "o", ms=5, color="#4477AA"
                )
            ax.set_xticks([0, 1], [sub["base_label"].iloc[0], sub["post_label"].iloc[0]])
            ax.set_xlim(-0.5, 1.5)
            ax.set_ylabel(sub["quantity"].iloc[0], fontsize=8)
        elif paired:
            for r in sub.itertuples():
                ax.plot([0, 1], [r.base, r.post], "-o", ms=4, color=colour[str(r.patient_id)], lw=1.2)
            ax.set_xticks([0, 1], [sub["base_label"].iloc[0], sub["post_label"].iloc[0]])
            ax.set_xlim(-0.3, 1.3)
            ax.set_ylabel(sub["quantity"].iloc[0], fontsize=8)
        else:
            jitter = np.linspace(-0.12, 0.12, len(sub)) if len(sub) > 1 else [0.0]
            for x, r in zip(jitter, sub.itertuples(), strict=True):
                ax.plot(x, r.value, "o", ms=5, color=colour[str(r.patient_id)])
            if np.isfinite(row["estimate"]):
                ax.errorbar(0.4, row["estimate"], yerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
                            fmt="s", color="black", capsize=3)  # fmt: skip
            ax.axhline(0, color="black", lw=0.6, ls="--")
            ax.set_xticks([0, 0.4], ["patients", "cohort"])
            ax.set_xlim(-0.4, 0.8)
            ax.set_ylabel(sub["quantity"].iloc[0], fontsize=8)
        ax.set_title(
            f"{cid} - {str(row['verdict']).replace('_', ' ')}\n{row['statement']}",
            fontsize=8.5,
            loc="left",
            color=VERDICT_COLOURS.get(row["verdict"], "black"),
        )
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(ids) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", color=colour[p], label=p) for p in patient_ids]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="patient", title_fontsize=8)
    fig.suptitle("Per-patient values behind each claim (one colour per patient)", fontsize=10)
    return fig


def plot_stacked_composition(wide, title: str):
    """Stacked bars: one bar per row of ``wide`` (samples x cell types, percent)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(8, 0.3 * len(wide) + 3), 5), layout="constrained")
    bottom = np.zeros(len(wide))
    for t in wide.columns:
        ax.bar(range(len(wide)), wide[t], bottom=bottom, color=CELL_TYPE_COLOURS.get(t, "#bbbbbb"), label=t, width=0.85)
        bottom += wide[t].to_numpy()
    ax.set_xticks(range(len(wide)), wide.index, rotation=90, fontsize=7)
    ax.set_ylabel("% of cells")
    ax.set_ylim(0, 100)
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    ax.set_title(title)
    return fig


def plot_integration(metrics, info: dict):
    """Training curve (scVI) and, per cell type, batch mixing and label purity before and
    after integration (see :func:`csfcart.integrate.mixing_metrics`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained", gridspec_kw={"width_ratios": [1, 1.6, 1.6]})
    ax = axes[0]
    train = info.get("elbo_train") or []
    if train:
        ax.plot(range(1, len(train) + 1), train, "-o", ms=3, label="training")
        valid = info.get("elbo_validation") or []
        if valid:
            ax.plot(range(1, len(valid) + 1), valid, "-s", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("ELBO loss (lower is better)")
        ax.legend(fontsize=8, frameon=False)
        speed = f", {info['cell_epochs_per_s']:,} cell-epochs/s" if info.get("cell_epochs_per_s") else ""
        ax.set_title(f"scVI training ({info.get('accelerator', '?')}, {len(train)} epochs, "
                     f"{info.get('batch_size', '?')} cells per step{speed})", fontsize=9)  # fmt: skip
        if info.get("still_improving"):
            ax.text(0.5, 0.97, f"not converged: validation loss still falling\n"
                    f"({-100 * info['validation_change']:.2f}% over the last {info['window']} epochs);\n"
                    "raise integration.scvi.max_epochs", transform=ax.transAxes, ha="center", va="top",
                    fontsize=8, color="#B2182B", fontweight="bold")  # fmt: skip
    else:
        ax.text(0.5, 0.5, f"{info.get('method', '?')}: no training curve", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(f"integration: {info.get('method', '?')}", fontsize=10)
    embeddings = list(dict.fromkeys(metrics["embedding"]))
    types = sorted(
        set(metrics["cell_type"]), key=lambda t: (list(CELL_TYPE_COLOURS).index(t) if t in CELL_TYPE_COLOURS else 99, t)
    )
    width = 0.8 / max(len(embeddings), 1)
    shades = ["#BBBBBB", "#4477AA", "#66CCEE"]
    for ax, col, title in (
        (axes[1], "batch_mixing", "batch mixing within cell type (1 = batches fully mixed)"),
        (axes[2], "label_purity", "cell-type purity of neighbourhoods (1 = types kept apart)"),
    ):
        for i, emb in enumerate(embeddings):
            sub = metrics[metrics["embedding"] == emb].set_index("cell_type").reindex(types)
            ax.bar(np.arange(len(types)) + (i - (len(embeddings) - 1) / 2) * width, sub[col], width=width,
                   color=shades[i % len(shades)], label=emb)  # fmt: skip
        ax.set_xticks(range(len(types)), types, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle("Integration: does the embedding mix samples while keeping cell types apart?", fontsize=11)
    return fig
