"""Nested CV of the paper's forest on the paper's features and on the crystal sums.

    python scripts/nested_cv.py --db-file DB.json [--quick] [--seed 0] [--outer-folds 5]
        [--outer-repeats 2] [--n-iter 100] [--inner-cv 5] [--jobs 1] [--preset paper]
        [--variants paper rf_crystal] [--json OUT.json] [--markdown OUT.md]

Reads the labelled records as ``TrainBuilder`` does (``features`` and ``xes`` of a database
where ``vtc-fw run --n 0`` or ``vtc-fw import data/reference_paper.jsonl.gz`` + ``vtc-fw build``
ran) and runs :func:`vtc_fw.ml.nested_cv.nested_cv`: the exponent sweep and the randomized
search inside every outer training set, the refit scored on the outer test fold. The full
protocol (2 × 5 outer folds, 100 draws, 5 inner folds: 20 searches of 500 forest fits) takes
hours on 2 cores; ``--quick`` runs 1 × 5 outer folds with 10 draws and 3 inner folds.
Prints the Markdown table on stdout, each outer fold on stderr.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from vtc_fw.builders.train import training_documents, training_table
from vtc_fw.db.config import DbConfig
from vtc_fw.ml.comparison import VARIANTS
from vtc_fw.ml.nested_cv import NESTED_VARIANTS, nested_cv
from vtc_fw.settings import DEFAULT_PRESET

QUICK = {"outer_repeats": 1, "n_iter": 10, "inner_cv": 3}
"""What ``--quick`` sets (outer folds stay 5)."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-file", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help=f"override with {QUICK}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--outer-repeats", type=int, default=2)
    parser.add_argument("--n-iter", type=int, default=100)
    parser.add_argument("--inner-cv", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="FEFF preset of the labels")
    parser.add_argument(
        "--variants", nargs="+", default=list(NESTED_VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        for name, value in QUICK.items():
            setattr(arguments, name, value)
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("vtc_fw.ml.nested_cv").setLevel(logging.INFO)
    config = DbConfig.load(arguments.db_file)
    config.ensure_server()
    table, excluded, preset = training_table(*training_documents(config), preset=arguments.preset)
    print(f"{len(table)} labelled rows (preset {preset}), left out: {excluded}", file=sys.stderr)
    start = time.monotonic()
    result = nested_cv(
        table,
        seed=arguments.seed,
        variants=arguments.variants,
        outer_folds=arguments.outer_folds,
        outer_repeats=arguments.outer_repeats,
        n_iter=arguments.n_iter,
        inner_cv=arguments.inner_cv,
        n_jobs=arguments.jobs,
    )
    elapsed = time.monotonic() - start
    markdown = result.to_markdown()
    print(markdown)
    print(f"nested CV: {elapsed:.0f} s wall", file=sys.stderr)
    if arguments.markdown:
        arguments.markdown.write_text(markdown + "\n")
    if arguments.json:
        document = {"preset": preset, "table_excluded": excluded, "wall_s": elapsed}
        document.update(result.as_dict())
        arguments.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
