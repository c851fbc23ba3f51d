"""Benchmark: featurize every 3d-TM structure of the OQMD-ICSD set (12,271 structures).

Prints structures/s, records/s, total wall time, peak memory, and the failures by reason.
Goal (issue A): ≤ 2 min on 2 cores. Oxidation-state assignment (BVAnalyzer) is most of the cold
cost; ``--shipped-oxidation`` measures the production path, where the states are computed once
and stored with the structure.

    .venv/bin/python benchmarks/featurize.py [--limit N] [--workers 2] [--shipped-oxidation]
"""

import argparse
import resource
import time
from collections import Counter

from tqdm import tqdm

from vtc_fw.science.batch import FeaturizeFailure, featurize_entries
from vtc_fw.sources import iter_oqmd_icsd


def peak_memory_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N structures only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--shipped-oxidation",
        action="store_true",
        help="reuse the precomputed oxidation states (as the FeatureBuilder does)",
    )
    arguments = parser.parse_args()

    start = time.perf_counter()
    entries = list(iter_oqmd_icsd(limit=arguments.limit))
    loaded = time.perf_counter()
    records, failures = 0, Counter()
    outcomes = featurize_entries(
        entries, workers=arguments.workers, shipped_oxidation=arguments.shipped_oxidation
    )
    for outcome in tqdm(outcomes, total=len(entries), unit="structure", mininterval=5):
        if isinstance(outcome, FeaturizeFailure):
            failures[outcome.reason] += 1
        else:
            records += len(outcome)
    done = time.perf_counter()
    own, child = peak_memory_mib()
    featurize_s = done - loaded
    print(f"structures            {len(entries)}")
    print(f"records               {records}")
    print(f"failed structures     {sum(failures.values())}  {dict(failures)}")
    print(f"load (ASE db → pymatgen)  {loaded - start:.1f} s")
    print(f"featurize             {featurize_s:.1f} s on {arguments.workers} worker(s)")
    print(f"total                 {done - start:.1f} s")
    print(
        f"rate                  {len(entries) / featurize_s:.1f} structures/s, "
        f"{records / featurize_s:.1f} records/s"
    )
    print(f"peak memory           {own:.0f} MiB main, {child:.0f} MiB largest worker")


if __name__ == "__main__":
    main()
