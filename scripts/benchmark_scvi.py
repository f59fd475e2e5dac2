"""Throughput and integration quality of the scVI trainers on the same cells.

Step 1, ``export``: the highly variable genes' counts, samples and labels of a workflow
run's ``annotated.h5ad`` into a compact ``.npz`` (about 20 MB for the default cohort), so
the benchmark can run on a machine without the workflow's outputs (a GPU node).

Step 2, ``train``: each trainer in ``--trainers`` (``scvi:128`` is scvi-tools' own trainer at
batch size 128, its default; ``resident:4096`` is the workflow's device-resident loop at
4,096 cells per step; ``resident:4096:40`` the same for 40 epochs) on the exported cells, optionally tiled to ``--cells`` by drawing
cells with replacement and thinning their counts (a throughput test at sizes the export
does not reach). Writes ``trainers.tsv`` (seconds, cell-epochs per second, final ELBO)
and ``latent_<trainer>.npy`` for each.

Step 3, ``score``: scib-metrics (the workflow's ``compare_methods`` metrics) of each saved
latent space against the labels, on up to ``--score-cells`` cells, into ``scores.tsv``.

    python scripts/benchmark_scvi.py export results/csf_bcma_cart/annotated.h5ad bench/cells.npz
    python scripts/benchmark_scvi.py train bench/cells.npz bench/ --trainers scvi:128 resident:4096
    python scripts/benchmark_scvi.py score bench/cells.npz bench/
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]


def export(h5ad: str, out: str) -> None:
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    hvg = adata.var["highly_variable"].to_numpy()
    x = sp.csr_matrix(adata.layers["counts"][:, hvg])
    dtype = np.uint16 if x.data.max() < 2**16 else np.uint32
    np.savez_compressed(
        out,
        data=x.data.astype(dtype),
        indices=x.indices.astype(np.uint16 if x.shape[1] < 2**16 else np.uint32),
        indptr=x.indptr.astype(np.int64),
        shape=np.array(x.shape),
        batch=adata.obs["sample_id"].astype(str).to_numpy(),
        label=adata.obs["cell_type"].astype(str).to_numpy(),
    )
    print(f"{out}: {x.shape[0]} cells x {x.shape[1]} genes, {x.nnz} non-zero counts")


def load(path: str) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    z = np.load(path, allow_pickle=True)
    x = sp.csr_matrix(
        (z["data"].astype(np.float32), z["indices"].astype(np.int32), z["indptr"]), shape=tuple(z["shape"])
    )
    return x, z["batch"], z["label"]


def tile(x: sp.csr_matrix, n_cells: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """``n_cells`` cells drawn with replacement, counts binomially thinned to 80 % (no exact copies).

    Returns the counts and which exported cell each one was drawn from.
    """
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, x.shape[0], n_cells)
    out = x[pick].tocsr()
    out.data = rng.binomial(out.data.astype(np.int64), 0.8).astype(np.float32)
    out.eliminate_zeros()
    return out, pick


def train(
    cells: str,
    outdir: str,
    trainers: list[str],
    *,
    n_cells: int | None,
    epochs: int,
    seed: int,
    save: int | None = None,
) -> None:
    import anndata as ad
    import torch

    from csfcart.config import default_config
    from csfcart.integrate import run_scvi

    defaults = default_config(ROOT / "config" / "schemas" / "config.schema.yaml", dataset="bench")["integration"][
        "scvi"
    ]

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    x, batch, _ = load(cells)
    pick = np.arange(x.shape[0])
    if n_cells and n_cells != x.shape[0]:
        x, pick = tile(x, n_cells, seed)
        batch = batch[pick]
    keep = x.shape[0] if save is None else min(save, x.shape[0])
    if keep:
        np.save(out / "cells.npy", pick[:keep])
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"
    rows = []
    for spec in trainers:
        name, size, *rest = spec.split(":")
        n_epochs = int(rest[0]) if rest else epochs
        adata = ad.AnnData(X=x, obs=pd.DataFrame({"sample_id": pd.Categorical(batch)}))
        adata.layers["counts"] = x
        adata.var["highly_variable"] = True
        settings = {**defaults, "trainer": name, "batch_size": int(size), "gpu_batch_size": int(size),
                    "max_epochs": n_epochs, "min_steps": 1, "early_stopping": False}  # fmt: skip
        start = time.perf_counter()
        info = run_scvi(adata, batch_key="sample_id", seed=seed, settings=settings)
        total = time.perf_counter() - start
        if keep:
            np.save(out / f"latent_{spec.replace(':', '_')}.npy", adata.obsm["X_scVI"][:keep].astype(np.float16))
        row = {
            "trainer": spec,
            "device": device,
            "cells": x.shape[0],
            "genes": x.shape[1],
            "epochs": info["epochs"],
            "lr": info.get("lr", 1e-3),
            "train_seconds": info["train_seconds"],
            "total_seconds": round(total, 1),
            "cell_epochs_per_s": info["cell_epochs_per_s"],
            "elbo_train": info["elbo_train"][-1] if info["elbo_train"] else np.nan,
            "elbo_validation": info["elbo_validation"][-1] if info["elbo_validation"] else np.nan,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    path = out / "trainers.tsv"
    if path.exists():
        table = pd.concat([pd.read_csv(path, sep="\t"), table])
    table.to_csv(path, sep="\t", index=False)


def score(cells: str, outdir: str, *, score_cells: int, seed: int) -> None:
    import anndata as ad
    from scib_metrics.benchmark import Benchmarker

    x, batch, label = load(cells)
    picked = Path(outdir) / "cells.npy"
    if picked.exists():  # tiled cells: the labels of the cells they were drawn from
        pick = np.load(picked)
        x, batch, label = x[pick], batch[pick], label[pick]
    latents = {
        p.stem.removeprefix("latent_"): np.load(p).astype(np.float32) for p in sorted(Path(outdir).glob("latent_*.npy"))
    }
    latents = {k: v for k, v in latents.items() if len(v) == x.shape[0]}
    keep = ~pd.Series(label).isin(["low_confidence", "doublet"]).to_numpy()
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(keep)
    idx = np.sort(rng.choice(idx, min(score_cells, len(idx)), replace=False))
    adata = ad.AnnData(X=sp.csr_matrix((len(idx), 1), dtype=np.float32))
    adata.obs["batch"] = pd.Categorical(batch[idx])
    adata.obs["label"] = pd.Categorical(label[idx])
    for name, z in latents.items():
        adata.obsm[name] = z[idx]
    first = next(iter(latents))
    bm = Benchmarker(adata, batch_key="batch", label_key="label", embedding_obsm_keys=list(latents),
                     pre_integrated_embedding_obsm_key=first, n_jobs=2, progress_bar=False)  # fmt: skip
    bm.benchmark()
    table = bm.get_results(min_max_scale=False).drop(index="Metric Type").astype(float)
    table.index.name = "trainer"
    table.to_csv(Path(outdir) / "scores.tsv", sep="\t")
    print(table[["Batch correction", "Bio conservation", "Total"]].round(4).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("export")
    p.add_argument("h5ad")
    p.add_argument("out")
    p = sub.add_parser("train")
    p.add_argument("cells")
    p.add_argument("outdir")
    p.add_argument("--trainers", nargs="+", default=["scvi:128", "resident:4096"])
    p.add_argument("--cells", type=int, default=None, dest="n_cells")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=int, default=None, help="keep the latent space of the first SAVE cells (0: none)")
    p = sub.add_parser("score")
    p.add_argument("cells")
    p.add_argument("outdir")
    p.add_argument("--score-cells", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.step == "export":
        export(args.h5ad, args.out)
    elif args.step == "train":
        train(args.cells, args.outdir, args.trainers, n_cells=args.n_cells, epochs=args.epochs, seed=args.seed,
              save=args.save)  # fmt: skip
    else:
        score(args.cells, args.outdir, score_cells=args.score_cells, seed=args.seed)


if __name__ == "__main__":
    main()
