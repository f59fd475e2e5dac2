"""R users read the annotated object: Debian's hdf5r (r-cran-hdf5r), with the script the
README points them to (scripts/read_annotated.R), recovers the cells, their types, the raw
counts and the integrated embedding that Python wrote.

Runs under `make test`, which installs r-cran-hdf5r and sets CSFCART_R_TESTS=1 so that a
missing R fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import h5py
import pytest
from anndata.io import read_elem

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_r_reads_the_annotated_object(tiny_run):
    rscript = shutil.which("Rscript")
    if rscript is None:
        message = "R is not installed (make r-deps installs Debian's r-cran-hdf5r)"
        if os.environ.get("CSFCART_R_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    h5ad = tiny_run / "annotated.h5ad"
    proc = subprocess.run([rscript, str(ROOT / "scripts" / "read_annotated.R"), str(h5ad)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {}
    types = {}
    for line in proc.stdout.splitlines():
        key, *values = line.split()
        if key == "type":
            types[values[0]] = int(values[1])
        else:
            seen[key] = [float(v) for v in values]
    with h5py.File(h5ad, "r") as f:
        obs = read_elem(f["obs"])
        counts = read_elem(f["layers/counts"])
        latent = read_elem(f["obsm/X_scVI"])
        n_genes = len(read_elem(f["var"]))
    assert seen["cells"] == [len(obs)] and seen["genes"] == [n_genes]
    assert seen["counts_total"] == [float(counts.data.sum(dtype="float64"))]  # R sums in double precision
    assert seen["latent"] == [float(n) for n in latent.shape]
    assert types == {k: int(v) for k, v in obs["cell_type"].value_counts().items() if v > 0}
