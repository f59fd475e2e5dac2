"""Command line: ``csfcart-simulate config/datasets/csf_bcma_cart.yaml -o results/sim``."""

from __future__ import annotations

import argparse
import sys
import time

from csfcart.errors import InputError
from csfcart.simulate.cohort import load_cohort
from csfcart.simulate.write import simulate_cohort


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csfcart-simulate", description=__doc__)
    parser.add_argument("dataset", help="dataset YAML with a simulation: block")
    parser.add_argument("-o", "--outdir", required=True, help="output directory (replaced)")
    parser.add_argument("--seed", type=int, help="override simulation.seed")
    parser.add_argument("--figures", help="also write the figure set of the simulated cohort here")
    args = parser.parse_args(argv)
    try:
        cohort = load_cohort(args.dataset)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cohort = cohort.with_changes(seed=args.seed)
    start = time.perf_counter()
    out = simulate_cohort(cohort, args.outdir)
    print(f"simulated {cohort.name} (seed {cohort.seed}) into {out} in {time.perf_counter() - start:.1f} s")
    if args.figures:
        from csfcart.simulate.qc import write_figures

        for path in write_figures(out, args.figures).values():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
