"""csfcart: single-cell analysis of CSF and blood after B-cell-depleting CAR-T therapy."""

__version__ = "0.1.0"
