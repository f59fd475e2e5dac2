"""Per-rule time and peak memory of a workflow run, from its benchmark files.

    python scripts/benchmark_workflow.py results/csf_bcma_cart [results/csf_bcma_cart_harmony ...]

For each run: wall seconds summed per rule (per-sample rules summed over samples, with the
slowest job), the largest peak RSS per rule, and the integration step's share of the summed
job time. Run the same dataset with `integration: {method: harmony}` and a different
`results:` to compare the two methods.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def rule_table(run: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((run / "benchmarks").rglob("*.tsv")):
        rule = path.parent.name if path.parent.name != "benchmarks" else path.stem
        bench = pd.read_csv(path, sep="\t")
        last = bench.iloc[-1]
        rows.append(
            {
                "rule": rule,
                "s": float(last["s"]),
                "cpu": float(last["cpu_time"]) if "cpu_time" in bench else float("nan"),
                "max_rss": float(last["max_rss"]),
            }
        )
    df = pd.DataFrame(rows)
    return (
        df.groupby("rule")
        .agg(
            jobs=("s", "size"),
            seconds=("s", "sum"),
            cpu_seconds=("cpu", "sum"),
            slowest_job_s=("s", "max"),
            peak_rss_mib=("max_rss", "max"),
        )
        .sort_values("seconds", ascending=False)
    )


def main(argv: list[str]) -> int:
    for arg in argv or ["results/csf_bcma_cart"]:
        run = Path(arg)
        table = rule_table(run)
        info = run / "integration.json"
        meta = json.loads(info.read_text()) if info.exists() else {}
        total = table["seconds"].sum()
        share = table.loc["integrate", "seconds"] / total if "integrate" in table.index else float("nan")
        print(f"\n{run}  ({meta.get('method', '?')}, {meta.get('cells', '?')} cells, epochs {meta.get('epochs', '-')})")
        print(table.round(1).to_string())
        print(f"summed job time {total:.0f} s; integration {share:.0%} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
