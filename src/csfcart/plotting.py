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
    "pDC": "#EEDD88",
    "border_macrophage": "#BBCC33",
    "microglia_like": "#000000",
    "doublet": "#DDDDDD",
    "low_confidence": "#BBBBBB",
}
