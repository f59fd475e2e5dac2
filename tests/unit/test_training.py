"""The device-resident scVI trainer: rows come back exact, training learns, both trainers agree."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
pytest.importorskip("scvi")

from csfcart import training  # noqa: E402
from csfcart.config import default_config  # noqa: E402
from csfcart.integrate import run_scvi  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

DEFAULTS = default_config(ROOT / "config" / "schemas" / "config.schema.yaml", dataset="test")["integration"]["scvi"]


def _settings(**over):
    """scVI settings: the workflow's defaults with ``over`` changed."""
    return {**DEFAULTS, **over}


def _cells(n=400, genes=60, seed=0):
    """Two cell types x two batches; batch 1 has a doubled depth on half the genes."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n)
    batch = rng.integers(0, 2, n)
    mean = np.where(kind[:, None] == 0, np.r_[np.full(genes // 2, 4.0), np.full(genes - genes // 2, 0.3)],
                    np.r_[np.full(genes // 2, 0.3), np.full(genes - genes // 2, 4.0)])  # fmt: skip
    mean = mean * np.where(batch[:, None] == 1, np.r_[np.full(genes // 2, 2.0), np.ones(genes - genes // 2)], 1.0)
    x = sp.csr_matrix(rng.poisson(mean).astype(np.float32))
    adata = ad.AnnData(X=x, obs=pd.DataFrame({"sample_id": pd.Categorical(batch.astype(str))}))
    adata.obs_names = [f"c{i}" for i in range(n)]
    adata.var_names = [f"g{j}" for j in range(genes)]
    adata.layers["counts"] = x.copy()
    adata.var["highly_variable"] = True
    return adata, kind


def test_device_rows_are_the_matrix_rows():
    x = sp.random(50, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    x[7] = 0  # an empty row
    rows = training.DeviceRows(x, torch.device("cpu"))
    pick = torch.tensor([7, 3, 3, 49, 0])
    np.testing.assert_array_equal(rows.dense(pick).numpy(), x[pick.numpy()].toarray())


def test_kl_warmup_follows_scvi():
    assert training.kl_weight(0, 400) == 0 and training.kl_weight(200, 400) == 0.5 and training.kl_weight(900, 400) == 1
    assert training.kl_weight(3, 0) == 1


def test_resident_training_learns_and_separates_cell_types():
    adata, kind = _cells()
    info = run_scvi(adata, batch_key="sample_id", seed=0,
                    settings=_settings(max_epochs=30, batch_size=64, early_stopping=False, n_latent=4, min_steps=1))  # fmt: skip
    assert info["trainer"] == "resident" and info["device"] == "cpu" and info["epochs"] == 30
    assert info["elbo_validation"][-1] < info["elbo_validation"][0]
    assert info["elbo_train"][-1] < 0.8 * info["elbo_train"][0]
    z = adata.obsm["X_scVI"]
    assert z.shape == (adata.n_obs, 4) and np.isfinite(z).all()
    # the two types sit apart in the latent space: nearest neighbours share the type
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (kind[d.argmin(1)] == kind).mean() > 0.9


def test_large_batches_on_few_cells_train_for_more_epochs():
    adata, _ = _cells(n=300)
    settings = _settings(max_epochs=2, batch_size=100, early_stopping=False, min_steps=12)
    info = run_scvi(adata, batch_key="sample_id", seed=0, settings=settings)
    assert info["epochs"] == 6  # 270 training cells: 2 steps of 100 per epoch
    assert info["lr"] == pytest.approx(1e-3 * (100 / 128) ** 0.5)


def test_same_seed_same_latent_space():
    settings = _settings(max_epochs=3, batch_size=64, early_stopping=False)
    a, _ = _cells()
    b, _ = _cells()
    run_scvi(a, batch_key="sample_id", seed=3, settings=settings)
    run_scvi(b, batch_key="sample_id", seed=3, settings=settings)
    np.testing.assert_allclose(a.obsm["X_scVI"], b.obsm["X_scVI"], rtol=1e-5, atol=1e-5)


def test_both_trainers_reach_a_similar_elbo():
    """At the same batch size and epochs the resident loop optimises what scvi-tools does."""
    settings = _settings(max_epochs=20, batch_size=128, early_stopping=True, lr=1e-3, min_steps=1)
    a, _ = _cells(n=600)
    b, _ = _cells(n=600)
    resident = run_scvi(a, batch_key="sample_id", seed=0, settings={**settings, "trainer": "resident"})
    lightning = run_scvi(b, batch_key="sample_id", seed=0, settings={**settings, "trainer": "scvi"})
    assert resident["elbo_validation"] and lightning["elbo_validation"]
    assert resident["elbo_validation"][-1] == pytest.approx(lightning["elbo_validation"][-1], rel=0.05)


def test_gpu_asked_for_without_one_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="accelerator is 'gpu'"):
        training.pick_device("gpu")


def test_a_loss_still_falling_at_the_last_epoch_is_flagged():
    falling = [100 - 2 * i for i in range(20)]
    flat = [100 / (1 + i) ** 2 + 50 for i in range(40)]
    assert training.still_improving(falling)["still_improving"] is True
    assert training.still_improving(flat)["still_improving"] is False
    assert training.still_improving([3.0, 2.0])["still_improving"] is None


def test_training_logs_every_epoch_and_says_whether_it_converged(caplog):
    adata, _ = _cells(n=300)
    with caplog.at_level("INFO"):
        info = run_scvi(adata, batch_key="sample_id", seed=0, settings=_settings(max_epochs=5, batch_size=64,
                                                                                 early_stopping=False, min_steps=1))  # fmt: skip
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epochs) == 5 and "validation" in epochs[-1]
    assert info["still_improving"] is True  # 5 epochs of a fresh model: far from converged
    assert any("still falling" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
