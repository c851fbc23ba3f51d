"""Compare the paper's random forest with other models on the same split of the labelled data.

    python scripts/compare_models.py --db-file DB.json [--seed 0] [--n-iter 100] [--cv 5]
        [--cv-repeats 10] [--jobs 1] [--json OUT.json] [--markdown OUT.md]

Reads the ``features`` and ``xes`` collections (as ``TrainBuilder`` does), joins them with
``training_table`` and runs :func:`vtc_fw.ml.comparison.compare_models`; prints the
Markdown tables (the split, then the paired repeated CV; ``--cv-repeats 0`` skips it) on
stdout, progress on stderr.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from vtc_fw.builders.train import training_table
from vtc_fw.db.config import DbConfig
from vtc_fw.ml.comparison import compare_models

XES_PROPERTIES = ["record_key", "state", "sams", "preset", "error", "self_consistent"]


def load_documents(config: DbConfig) -> tuple[list[dict], list[dict]]:
    """All feature documents and the target fields of all xes documents."""
    features, xes = config.store("features"), config.store("xes")
    features.connect()
    xes.connect()
    try:
        return list(features.query()), list(xes.query(properties=XES_PROPERTIES))
    finally:
        features.close()
        xes.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-file", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-iter", type=int, default=100)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument(
        "--cv-repeats", type=int, default=10, help="repeats of the paired CV (0: skip it)"
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    arguments = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("vtc_fw.ml.comparison").setLevel(logging.INFO)
    config = DbConfig.load(arguments.db_file)
    config.ensure_server()
    table, excluded, preset = training_table(*load_documents(config))
    print(f"{len(table)} labelled rows (preset {preset}), left out: {excluded}", file=sys.stderr)
    result = compare_models(
        table,
        seed=arguments.seed,
        n_iter=arguments.n_iter,
        cv=arguments.cv,
        n_jobs=arguments.jobs,
        cv_repeats=arguments.cv_repeats,
    )
    markdown = result.to_markdown()
    print(markdown)
    if arguments.markdown:
        arguments.markdown.write_text(markdown + "\n")
    if arguments.json:
        document = {"preset": preset, "table_excluded": excluded, **result.as_dict()}
        arguments.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
