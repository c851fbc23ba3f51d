"""Compare the paper's random forest with other models on the same split of the labelled data.

    python scripts/compare_models.py --db-file DB.json [--seed 0] [--n-iter 100] [--cv 5]
        [--cv-repeats 10] [--jobs 1] [--json OUT.json] [--markdown OUT.md]
        [--tasks FILE.jsonl.gz ...] [--target sams|sams_max|a_inv] [--variants paper,rf_crystal]
        [--site-fingerprints CACHE.json] [--cheap-labels PRESET [--calibration raw]]
        [--baseline VARIANT]

Reads the ``features`` and ``xes`` collections (as ``TrainBuilder`` does), joins them with
``training_table`` and runs :func:`vtc_fw.ml.comparison.compare_models`; prints the
Markdown tables (the split, then the paired repeated CV; ``--cv-repeats 0`` skips it) on
stdout, progress on stderr.

``--tasks`` takes the targets from exported task files instead of the ``xes`` collection
(the xes documents are made from them in memory, as ``XesBuilder`` would), e.g. the σ tasks of
data/paper_sigma or data/screen; ``--target`` then chooses what the forest learns: SAMS in the
quadrupole basis (the paper's), SAMS_max over all orientations or the invariant A_inv (records
without σ have no label for the last two and are left out).

``--site-fingerprints`` adds the field's standard local-environment descriptor (matminer's
CrystalNN site fingerprint of the absorber, averaged over its sites:
:mod:`vtc_fw.science.site_fingerprints`; needs the ``anchor`` extra) as ``sitefp_*`` columns, so
the ``rf_*site_fingerprint*`` variants run. The fingerprints of the labelled records are computed
from the ``structures`` collection (``--jobs`` processes) and kept in CACHE.json, which later
runs reuse.

``--cheap-labels`` reads the xes documents of a cheap FEFF preset (``xes_<PRESET>``, as
``vtc-fw build --cheap-labels PRESET`` builds them) so the ``*_cheap`` variants run: trained also
on those calibrated labels of records without a paper label, scored on paper labels only.
``--baseline`` adds a table of every variant's paired difference to that variant (e.g. the
default model's ``rf_crystal_wide``), on the same folds as the differences to ``paper``.
"""

import argparse
import json
import logging
import sys
from multiprocessing import Pool
from pathlib import Path

from vtc_fw.app.site_fingerprints import cached_fingerprints
from vtc_fw.app.transfer import read_transfer_file
from vtc_fw.builders import cheap_xes_store
from vtc_fw.builders.train import XES_PROPERTIES, cheap_table, training_documents, training_table
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.xes import XesDocument
from vtc_fw.errors import UsageError
from vtc_fw.ml.calibration import DEFAULT_METHOD, METHODS
from vtc_fw.ml.comparison import VARIANTS, compare_models, versus_document
from vtc_fw.settings import ModelTarget

TARGETS = tuple(target.value for target in ModelTarget)


def xes_from_files(paths: list[Path], target: str, processes: int) -> list[dict]:
    """XES documents of the task files' records, ``sams`` holding the chosen target."""
    by_record: dict[str, list[dict]] = {}
    for path in paths:
        for task in map(dict, (t.model_dump() for t in read_transfer_file(path).tasks)):
            by_record.setdefault(task["record_key"], []).append(task)
    with Pool(processes) as pool:
        documents = pool.map(xes_document, by_record.values(), chunksize=4)
    return [d | {"sams": d[target]} for d in documents if d.get(target) is not None]


def xes_document(tasks: list[dict]) -> dict:
    """The XES document of one record's tasks, as ``XesBuilder`` makes it."""
    meta = BuilderMeta(builder="compare_models")
    return XesDocument.from_tasks(tasks, builder_meta=meta).model_dump()


def with_site_fingerprints(
    rows: list[dict], config: DbConfig, cache_path: Path, processes: int
) -> list[dict]:
    """The rows with the ``sitefp_*`` columns of their record (none where it has none)."""
    fingerprints = cached_fingerprints([row["key"] for row in rows], config, cache_path, processes)
    lacking = len(rows) - len(fingerprints)
    print(f"site fingerprints of {len(fingerprints)} records, {lacking} without", file=sys.stderr)
    return [row | fingerprints.get(row["key"], {}) for row in rows]


def cheap_rows(config: DbConfig, features: list[dict], preset: str) -> list[dict]:
    """The cheap rows of a preset's xes documents (``xes_<preset>``), as TrainBuilder reads them."""
    store = cheap_xes_store(config, preset)
    store.connect()
    try:
        xes = list(store.query({"preset": preset}, properties=XES_PROPERTIES))
    finally:
        store.close()
    return cheap_table(features, xes)


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
    parser.add_argument("--tasks", type=Path, nargs="+", help="targets from these task files")
    parser.add_argument("--target", choices=TARGETS, default="sams")
    parser.add_argument("--variants", help="comma-separated variants (default: all)")
    parser.add_argument(
        "--site-fingerprints",
        type=Path,
        metavar="CACHE.json",
        help="add matminer's site fingerprints (needs the anchor extra), cached in this file",
    )
    parser.add_argument(
        "--cheap-labels", metavar="PRESET", help="cheap labels of the *_cheap variants"
    )
    parser.add_argument("--calibration", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument(
        "--baseline", choices=list(VARIANTS), help="also tabulate the differences to this variant"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    for name in ("vtc_fw.ml.comparison", "vtc_fw.app.site_fingerprints"):
        logging.getLogger(name).setLevel(logging.INFO)
    config = DbConfig.load(arguments.db_file)
    config.ensure_server()
    features, xes = training_documents(config)
    if arguments.tasks:
        xes = xes_from_files(arguments.tasks, arguments.target, arguments.jobs)
    elif arguments.target != "sams":
        parser.error("--target sams_max|a_inv needs --tasks (σ is read from task files)")
    table, excluded, preset = training_table(features, xes)
    print(f"{len(table)} labelled rows (preset {preset}), left out: {excluded}", file=sys.stderr)
    if arguments.site_fingerprints:
        try:
            table = with_site_fingerprints(
                table, config, arguments.site_fingerprints, arguments.jobs
            )
        except UsageError as error:
            parser.error(str(error))
    cheap = cheap_rows(config, features, arguments.cheap_labels) if arguments.cheap_labels else None
    if cheap is not None:
        print(f"{len(cheap)} {arguments.cheap_labels} rows", file=sys.stderr)
    result = compare_models(
        table,
        seed=arguments.seed,
        n_iter=arguments.n_iter,
        cv=arguments.cv,
        n_jobs=arguments.jobs,
        cv_repeats=arguments.cv_repeats,
        variants=arguments.variants.split(",") if arguments.variants else None,
        cheap=cheap,
        calibration=arguments.calibration,
    )
    markdown = result.to_markdown(baseline=arguments.baseline)
    print(markdown)
    if arguments.markdown:
        arguments.markdown.write_text(markdown + "\n")
    if arguments.json:
        document = {
            "preset": preset,
            "target": arguments.target,
            "table_excluded": excluded,
            "cheap_labels": arguments.cheap_labels,
            "calibration": arguments.calibration if cheap is not None else None,
            **result.as_dict(),
        }
        if arguments.baseline:
            baseline = arguments.baseline
            document["versus"] = versus_document(result.versus(baseline), baseline)
        arguments.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
