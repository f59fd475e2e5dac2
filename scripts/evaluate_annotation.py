"""Print how well a synthetic run's annotation and QC agree with the truth.

    python scripts/evaluate_annotation.py [results/csf_bcma_cart]

Reads evaluation/annotation.tsv and evaluation/qc.tsv written by rule evaluate_annotation
and checks the targets: ARI between 0.8 and 0.97 (a synthetic cohort on which annotation is
perfect is too easy to be evidence), label accuracy by name >= 0.9 and F1 >= 0.8 for every
true type with >= 50 cells.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str]) -> int:
    run = Path(argv[0] if argv else "results/csf_bcma_cart")
    ann = pd.read_csv(run / "evaluation" / "annotation.tsv", sep="\t")
    qc = pd.read_csv(run / "evaluation" / "qc.tsv", sep="\t")
    ari, accuracy = float(ann["ari"].iloc[0]), float(ann["accuracy"].iloc[0])
    print(
        f"{run}: adjusted Rand index {ari:.3f} (target 0.8-0.97), label accuracy by name {accuracy:.3f} (target >= 0.9)\n"
    )
    print(f"{'true type':<20}{'cells':>7}{'called':>8}{'precision':>11}{'recall':>8}{'F1':>7}  target")
    ok = 0.8 <= ari <= 0.97 and accuracy >= 0.9
    for row in ann.itertuples():
        mark = ("ok" if row.f1 >= 0.8 else "MISSED") if row.scored else "(< 50 cells)"
        ok &= (row.f1 >= 0.8) or not row.scored
        print(
            f"{row.cell_type:<20}{row.n_true:>7}{row.n_predicted:>8}{row.precision:>11.3f}{row.recall:>8.3f}{row.f1:>7.3f}  {mark}"
        )
    print(f"\n{'QC filter':<34}{'true':>6}{'removed':>9}{'recall':>8}{'precision':>11}")
    for row in qc.itertuples():
        print(f"{row.filter:<34}{row.n_true:>6}{row.n_removed:>9}{row.recall:>8.3f}{row.precision:>11.3f}")
    print("\nall annotation targets met" if ok else "\nsome annotation targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
