"""Gene families the workflow recognises by name, whatever the marker table says."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: immunoglobulin constant and variable genes and the J chain (human and mouse symbols)
IG_PATTERN = r"^(IG[HKL][VDJC]|IGH[AGMDE]|JCHAIN)"


def is_immunoglobulin(names) -> np.ndarray:
    """Whether each gene symbol is an immunoglobulin gene (:data:`IG_PATTERN`, any case).
    Antibody-secreting cells shed these into the ambient soup in such amounts that every
    droplet carries them: they are never evidence of a B-lineage cell on their own."""
    return np.asarray(pd.Index(names).astype(str).str.upper().str.match(IG_PATTERN), dtype=bool)
