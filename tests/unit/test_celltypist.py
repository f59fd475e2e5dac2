"""annotation.method celltypist: a CellTypist model the user gives labels the cells, offline."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from csfcart.annotate import log_normalised
from csfcart.config import validate_config
from csfcart.errors import InputError
from csfcart.pipeline import annotated, default_config
from csfcart.simulate.cohort import load_cohort
from csfcart.simulate.model import CohortModel
from tests.conftest import ROOT


def _labelled(model: CohortModel, indices: list[int]) -> ad.AnnData:
    """Singlets of some samples with their true types, log-normalised as CellTypist expects."""
    parts = []
    for i in indices:
        draw = model.draw_sample(i)
        keep = (~draw.truth["doublet"] & ~draw.truth["damaged"]).to_numpy()
        a = ad.AnnData(X=log_normalised(sp.csr_matrix(draw.counts[keep], dtype=np.float32)),
                       var=pd.DataFrame(index=model.features))  # fmt: skip
        a.obs["cell_type"] = draw.truth.loc[keep, "singlet_type"].to_numpy()
        parts.append(a)
    return ad.concat(parts)


def test_a_celltypist_model_trained_here_labels_the_cells_offline(tmp_path):
    import celltypist

    cohort = load_cohort(ROOT / "config" / "datasets" / "csf_bcma_cart_tiny.yaml")
    model = CohortModel(cohort)
    # a model trained on the first patient's samples (as a user trains one on a labelled atlas)
    first = [i for i, s in enumerate(model.samples) if s["patient_id"] == "P01"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = celltypist.train(_labelled(model, first), labels="cell_type", use_SGD=True, n_jobs=1)
    path = tmp_path / "csf.pkl"
    trained.write(str(path))
    config = default_config(ROOT)
    config["annotation"].update(method="celltypist", celltypist_model=str(path))
    adata = annotated(model, cohort, config)
    assert adata.uns["annotation_method"] == "celltypist"
    truth = pd.concat([model.draw_sample(i).truth for i in range(len(model.samples))])
    truth.index = truth["sample_id"] + ":" + truth["barcode"]
    true = truth["cell_type"].reindex(adata.obs_names)
    others = (adata.obs["patient_id"] != "P01").to_numpy() & (true != "doublet").to_numpy()
    label = adata.obs["cell_type"].astype(str)
    assert (label[others] == true[others]).mean() > 0.85
    # the marker labels stay beside the model's, and the cell types are the model's names
    assert "cell_type_markers" in adata.obs and set(label) <= set(trained.cell_types) | {"CAR_T"}
    # a cluster's stray calls are voted away: every cluster holds one label (CAR_T apart)
    per_cluster = adata.obs[label != "CAR_T"].groupby("cluster", observed=True)["cell_type"].nunique()
    assert (per_cluster <= 1).all()


def test_celltypist_needs_a_model_file(tmp_path):
    schema = ROOT / "config" / "schemas" / "config.schema.yaml"
    with pytest.raises(InputError, match=r"annotation\.celltypist_model.*Fix"):
        validate_config({"dataset": "x", "annotation": {"method": "celltypist"}}, schema)
    config = default_config(ROOT)
    config["annotation"].update(method="celltypist", celltypist_model=str(tmp_path / "missing.pkl"))
    adata = ad.AnnData(X=sp.csr_matrix(np.ones((3, 2), dtype=np.float32)))
    adata.obs["cluster"] = "0"
    from csfcart.annotate import celltypist_labels

    with pytest.raises(InputError, match=r"missing\.pkl: CellTypist model not found"):
        celltypist_labels(adata, config["annotation"]["celltypist_model"])
