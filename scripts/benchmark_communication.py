"""Peak memory and time of the cohort-wide communication steps as CSF samples grow.

    python scripts/benchmark_communication.py results/csf_bcma_cart [--samples 36 108 336]
        [--out benchmarks/communication]

The per-sample LIANA tables grow with the cohort by samples, not by cells: a million-cell
cohort grown by patients has about 336 CSF samples of 150k-250k scored interactions each.
This script takes the score tables of a finished run (``<results>/communication/*.parquet``
and ``samples.tsv``), copies its patients until the cohort has the asked number of CSF
samples (each copy a new patient with the same tables), and runs, each in a fresh process,
what rule communication_diff does (read the tables, paired change per interaction, per
sender-receiver pair, axis scores) and what rule communication_tensor builds (the tensor;
the decomposition's size does not grow with samples beyond the tensor's). It reports the
wall time and peak memory (max RSS) of each, and their growth exponent with samples, and
writes ``<out>/communication.tsv``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def copy_cohort(results: Path, n_samples: int, out: Path) -> Path:
    """Score tables and sample table of ``results`` with patients copied up to ``n_samples``
    CSF samples (copy ``k`` of patient P01 is P01_k); returns the folder holding them."""
    samples = pd.read_csv(results / "communication" / "samples.tsv", sep="\t", index_col=0)
    samples = samples[samples["compartment"] == "CSF"]
    folder = out / f"samples_{n_samples}"
    if (folder / "samples.tsv").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    per_patient = samples.groupby("patient_id").size()
    rows, k = [], 0
    while sum(len(r) for r in rows) < n_samples:
        for patient in per_patient.index:
            mine = samples[samples["patient_id"] == patient]
            new = f"{patient}_{k}"
            copy = mine.assign(patient_id=new).rename(index=lambda s, p=patient, n=new: s.replace(p, n, 1))
            for old, sample in zip(mine.index, copy.index, strict=True):
                table = pd.read_parquet(results / "communication" / f"{old}.parquet")
                table.assign(sample_id=sample).to_parquet(folder / f"{sample}.parquet", index=False)
            rows.append(copy)
            if sum(len(r) for r in rows) >= n_samples:
                break
        k += 1
    pd.concat(rows).rename_axis("sample_id").to_csv(folder / "samples.tsv", sep="\t")
    return folder


def measure(folder: Path, step: str) -> dict[str, float]:
    """Run ``step`` (diff or tensor) on the copied cohort in a fresh process."""
    code = f"""
import json, resource, sys, time
import pandas as pd
from csfcart import communication as c
start = time.perf_counter()
meta = pd.read_csv({str(folder / "samples.tsv")!r}, sep="\\t", index_col=0)
present = meta["cell_types_present"].str.split(",").explode().rename("cell_type").reset_index()
paths = [{str(folder)!r} + "/" + s + ".parquet" for s in meta.index]
scores = c.read_scores(paths)
rows = len(scores)
if {step!r} == "diff":
    per_patient, summary = c.paired_interactions(scores, meta, baseline="baseline", present=present)
    c.paired_pairs(per_patient)
    c.axis_scores(scores, meta, present, lineage_of=json.loads(sys.argv[1]))
    interactions = len(summary)
else:
    tensor, names = c.interaction_tensor(scores, sorted(meta.index), present, n_interactions=200)
    interactions = tensor.shape[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rows": rows, "interactions": interactions, "seconds": time.perf_counter() - start,
                  "peak_mb": peak}}))
"""
    from csfcart.annotate import lineage_of

    lineages = json.dumps(lineage_of(Path(__file__).parents[1] / "config" / "markers.tsv"))
    done = subprocess.run([sys.executable, "-c", code, lineages], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a finished run's results folder")
    parser.add_argument("--samples", type=int, nargs="+", default=[36, 108, 336])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/communication"))
    args = parser.parse_args()
    records = []
    for n in args.samples:
        folder = copy_cohort(args.results, n, args.out)
        for step in ("diff", "tensor"):
            r = measure(folder, step)
            records.append({"csf_samples": n, "step": step, **r})
            print(json.dumps(records[-1]), flush=True)
    table = pd.DataFrame(records)
    for step, t in table.groupby("step"):
        if len(t) > 1:
            x = np.log(t["csf_samples"].to_numpy(float))
            for col in ("seconds", "peak_mb"):
                slope = np.polyfit(x, np.log(t[col].to_numpy(float)), 1)[0]
                print(f"{step}: {col} grows as samples^{slope:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "communication.tsv", sep="\t", index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
