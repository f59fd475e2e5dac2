"""scVI training with the counts held on the training device.

scvi-tools' own trainer copies every mini-batch from an AnnData through a Python data
loader and a Lightning loop. On a GPU that leaves the device waiting on the host: about
10,000 cell-epochs per second at the default batch size of 128. Here the highly variable
genes' counts go to the device once, as CSR arrays, and a plain loop gathers each batch's
rows there, so a step is a handful of kernels and no host copy. The same loop runs on the
CPU, where it is what a workstation uses too.

The objective is scVI's own: the module's forward pass and loss, Adam with scVI's ``eps``
and weight decay, KL warm-up over ``n_epochs_kl_warmup`` epochs, a held-out validation
split and early stopping on its ELBO. What differs is the batch size, and with it the
learning rate: ``lr`` applies at 128 cells per batch and grows with the square root of the
batch size (Adam's usual scaling), after a warm-up over the first ``lr_warmup_epochs``.
Quality follows the number of optimiser steps more than the number of epochs, so a large
batch on few cells trains for more epochs, until at least ``min_steps`` steps
(``scripts/benchmark_scvi.py`` measured scib-metrics totals within 0.01 of scvi-tools'
default training at 92 steps or more, and 0.11 below it at 20).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

REFERENCE_BATCH = 128


class DeviceRows:
    """A count matrix on a torch device that hands out dense rows.

    On a GPU with room for it (under a third of its free memory) the matrix is held dense,
    so a batch is one gather; otherwise, and on the CPU, it is held as CSR arrays and a
    batch's rows are scattered into a dense block.
    """

    def __init__(self, matrix: Any, device: Any) -> None:
        import torch

        csr = sp.csr_matrix(matrix, dtype=np.float32)
        csr.sort_indices()
        self.n_obs, self.n_vars = csr.shape
        self.device = device
        self.full = None
        if device.type == "cuda" and 4 * self.n_obs * self.n_vars < torch.cuda.mem_get_info(device)[0] / 3:
            self.full = torch.empty(self.n_obs, self.n_vars, device=device)
            step = max(1, 2**28 // (4 * max(self.n_vars, 1)))  # 256 MB blocks through host memory
            for s in range(0, self.n_obs, step):
                self.full[s : s + step] = torch.as_tensor(csr[s : s + step].toarray()).to(device)
            return
        self.indptr = torch.as_tensor(csr.indptr.astype(np.int64), device=device)
        # int32 column indices (half of int64's memory; a batch's are widened when it is drawn)
        self.indices = torch.as_tensor(csr.indices.astype(np.int32, copy=False), device=device)
        self.data = torch.as_tensor(csr.data, device=device)

    def dense(self, rows: Any) -> Any:
        """Dense ``len(rows) x n_vars`` float32 tensor of the given rows (a device tensor)."""
        import torch

        if self.full is not None:
            return self.full.index_select(0, rows)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        owner = torch.repeat_interleave(torch.arange(len(rows), device=self.device), lengths)
        # position of each stored value: its row's start plus its rank within the row
        first = torch.cumsum(lengths, 0) - lengths
        rank = torch.arange(owner.numel(), device=self.device) - first[owner]
        pos = starts[owner] + rank
        out = torch.zeros(len(rows), self.n_vars, device=self.device)
        out[owner, self.indices[pos].long()] = self.data[pos]
        return out


def device_inputs(model: Any, counts: Any, device: Any) -> tuple[DeviceRows, Any, Any]:
    """The counts, batch codes and (empty) labels of ``model``'s cells on ``device``."""
    import torch
    from scvi import REGISTRY_KEYS

    rows = DeviceRows(counts, device)
    codes = model.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)
    batch_index = torch.as_tensor(np.asarray(codes, dtype=np.int64).reshape(rows.n_obs, 1), device=device)
    labels = torch.zeros(rows.n_obs, 1, dtype=torch.long, device=device)
    return rows, batch_index, labels


def pick_device(accelerator: str) -> Any:
    import torch

    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("integration.scvi.accelerator is 'gpu' but torch sees no CUDA device: use auto or cpu")
    return torch.device("cuda" if accelerator == "gpu" else "cpu")


def kl_weight(epoch: int, n_epochs_kl_warmup: int) -> float:
    """scVI's epoch-wise KL warm-up from 0 to 1."""
    return min(1.0, epoch / n_epochs_kl_warmup) if n_epochs_kl_warmup else 1.0


def train_resident(
    model: Any,
    counts: Any,
    *,
    max_epochs: int,
    batch_size: int,
    seed: int,
    accelerator: str,
    lr: float,
    lr_warmup_epochs: int = 1,
    min_steps: int,
    train_size: float = 0.9,
    early_stopping: bool,
    patience: int = 45,
    n_epochs_kl_warmup: int = 400,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train ``model.module`` (an scVI model set up on ``counts``' cells) in place.

    ``counts`` is the cells x genes count matrix the model was set up with; it goes to the
    device once, for training and for the latent space. Returns every cell's latent
    posterior mean, and a summary: the per-epoch training and validation ELBO (per cell, as
    scvi-tools logs them), the device, the batch size and learning rate used, and the
    throughput in cell-epochs per second.
    """
    import torch
    from scvi import REGISTRY_KEYS

    device = pick_device(accelerator)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matrix products: scVI's layers lose nothing measurable
    generator = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    module = model.module.to(device)
    rows, batch_index, labels = device_inputs(model, counts, device)
    n = rows.n_obs

    order = torch.randperm(n, generator=generator)
    n_train = n if n < 20 else max(2, round(train_size * n))
    train_idx, val_idx = order[:n_train].to(device), order[n_train:].to(device)
    batch_size = int(max(2, min(batch_size, n_train)))
    peak_lr = lr * math.sqrt(batch_size / REFERENCE_BATCH)
    steps_per_epoch = max(1, n_train // batch_size)  # the last short batch joins the next epoch's draw
    if steps_per_epoch * max_epochs < min_steps:
        log.info(
            "%d steps per epoch: training %d epochs to reach %d steps",
            steps_per_epoch,
            -(-min_steps // steps_per_epoch),
            min_steps,
        )
        max_epochs = -(-min_steps // steps_per_epoch)
    warmup_steps = max(1, lr_warmup_epochs * steps_per_epoch)
    fused = {"fused": True} if device.type == "cuda" else {}
    optimiser = torch.optim.Adam(module.parameters(), lr=peak_lr, eps=0.01, weight_decay=1e-6, **fused)

    def tensors(idx: Any) -> dict[str, Any]:
        return {
            REGISTRY_KEYS.X_KEY: rows.dense(idx),
            REGISTRY_KEYS.BATCH_KEY: batch_index[idx],
            REGISTRY_KEYS.LABELS_KEY: labels[idx],
        }

    def elbo_sum(loss: Any) -> Any:
        return loss.reconstruction_loss_sum + loss.kl_local_sum

    history: dict[str, list[float]] = {"elbo_train": [], "elbo_validation": []}
    best, since_best, step = math.inf, 0, 0
    start = time.perf_counter()
    for epoch in range(max_epochs):
        module.train()
        klw = kl_weight(epoch, n_epochs_kl_warmup)
        perm = train_idx[torch.randperm(n_train, generator=generator).to(device)]
        total = torch.zeros((), device=device)
        for s in range(steps_per_epoch):
            for group in optimiser.param_groups:
                group["lr"] = peak_lr * min(1.0, (step + 1) / warmup_steps)
            idx = perm[s * batch_size : (s + 1) * batch_size]
            _, _, loss = module(tensors(idx), loss_kwargs={"kl_weight": klw})
            optimiser.zero_grad(set_to_none=True)
            loss.loss.backward()
            optimiser.step()
            total += elbo_sum(loss).detach()
            step += 1
        history["elbo_train"].append(float(total) / (steps_per_epoch * batch_size))
        if len(val_idx):
            module.eval()
            val = torch.zeros((), device=device)
            with torch.no_grad():
                for s in range(0, len(val_idx), max(batch_size, 1024)):
                    idx = val_idx[s : s + max(batch_size, 1024)]
                    _, _, loss = module(tensors(idx), loss_kwargs={"kl_weight": klw})
                    val += elbo_sum(loss)
            history["elbo_validation"].append(float(val) / len(val_idx))
        log.info(
            "epoch %d/%d: ELBO train %.2f, validation %s, %.1f s",
            epoch + 1,
            max_epochs,
            history["elbo_train"][-1],
            f"{history['elbo_validation'][-1]:.2f}" if history["elbo_validation"] else "-",
            time.perf_counter() - start,
        )
        if len(val_idx):
            if early_stopping:
                current = history["elbo_validation"][-1]
                best, since_best = (current, 0) if current < best else (best, since_best + 1)
                if since_best >= patience:
                    log.info("early stopping after epoch %d: validation ELBO flat for %d epochs", epoch + 1, patience)
                    break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    epochs = len(history["elbo_train"])
    module.eval()
    model.is_trained_ = True
    z = np.concatenate([_posterior_mean(module, tensors(idx)) for idx in torch.arange(n, device=device).split(4096)])
    return z, {
        "trainer": "resident",
        "device": str(device),
        "batch_size": batch_size,
        "lr": peak_lr,
        "epochs": epochs,
        "train_seconds": round(seconds, 2),
        "cell_epochs_per_s": round(epochs * steps_per_epoch * batch_size / max(seconds, 1e-9)),
        **history,
    }


def still_improving(validation: list[float], *, tolerance: float = 0.001) -> dict[str, Any]:
    """Whether the validation loss was still falling when training stopped.

    Compares the mean of the last ``w`` epochs with the ``w`` before them (``w``: a tenth of
    the epochs, at least 2): a fall by more than ``tolerance`` (relative) means more epochs
    would still have helped. Fewer than 4 epochs cannot tell (``None``).
    """
    n = len(validation)
    if n < 4:
        return {"still_improving": None, "validation_change": None, "window": 0}
    w = max(2, n // 10)
    w = min(w, n // 2)
    last, before = float(np.mean(validation[-w:])), float(np.mean(validation[-2 * w : -w]))
    change = (last - before) / abs(before) if before else 0.0
    return {"still_improving": bool(change < -tolerance), "validation_change": round(change, 5), "window": w}


def _posterior_mean(module: Any, tensors: dict[str, Any]) -> np.ndarray:
    """The latent posterior means of a batch (what scvi-tools' ``get_latent_representation`` gives)."""
    import torch

    with torch.no_grad():
        inference = module.inference(**module._get_inference_input(tensors))
    return inference["qz"].loc.float().cpu().numpy()
