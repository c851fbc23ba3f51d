"""Nested CV of the paper's forest on the paper's features and on the crystal sums.

    python scripts/nested_cv.py --db-file DB.json [--quick] [--seed 0] [--outer-folds 5]
        [--outer-repeats 2] [--n-iter 100] [--inner-cv 5] [--jobs 1] [--preset paper]
        [--variants paper rf_crystal] [--baseline VARIANT] [--json OUT.json] [--markdown OUT.md]
        [--checkpoint RUN.jsonl [--folds 1 2 ...]]

Reads the labelled records as ``TrainBuilder`` does (``features`` and ``xes`` of a database
where ``vtc-fw run --n 0`` or ``vtc-fw import data/reference_paper.jsonl.gz`` + ``vtc-fw build``
ran) and runs :func:`vtc_fw.ml.nested_cv.nested_cv`: the exponent sweep and the randomized
search inside every outer training set, the refit scored on the outer test fold. The full
protocol (2 × 5 outer folds, 100 draws, 5 inner folds: 20 searches of 500 forest fits) takes
hours on 2 cores; ``--quick`` runs 1 × 5 outer folds with 10 draws and 3 inner folds.
Prints the Markdown table on stdout, each outer fold on stderr. ``--baseline`` adds a table of
every variant's paired outer difference to that variant (e.g. the default model's).

``--checkpoint`` spreads a run over many: every (outer fold, variant) result is appended to
the file as it is found, a rerun with the same file computes only what it lacks (a killed run
loses only the search in progress), and ``--folds`` limits a run to some outer folds. The file
starts with the run's identity (settings, search spaces, a digest of the usable rows in their
order); a checkpoint of another identity is refused. The table covers the complete folds so
far and says how many of the planned ones that is.
"""

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from vtc_fw.builders.train import training_documents, training_table
from vtc_fw.db.config import DbConfig
from vtc_fw.ml.comparison import VARIANTS, versus_document
from vtc_fw.ml.nested_cv import NESTED_VARIANTS, OuterFold, nested_cv, run_identity
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
    parser.add_argument(
        "--baseline", choices=list(VARIANTS), help="also tabulate the differences to this variant"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument(
        "--checkpoint", type=Path, help="JSON Lines file of the folds found so far (resumable)"
    )
    parser.add_argument(
        "--folds", type=int, nargs="+", help="outer fold numbers (from 1) to compute in this run"
    )
    arguments = parser.parse_args(argv)
    if arguments.quick:
        for name, value in QUICK.items():
            setattr(arguments, name, value)
    if arguments.baseline and arguments.baseline not in [*arguments.variants, "paper"]:
        parser.error(f"--baseline {arguments.baseline} is not among the --variants")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("vtc_fw.ml.nested_cv").setLevel(logging.INFO)
    config = DbConfig.load(arguments.db_file)
    config.ensure_server()
    table, excluded, preset = training_table(*training_documents(config), preset=arguments.preset)
    print(f"{len(table)} labelled rows (preset {preset}), left out: {excluded}", file=sys.stderr)
    if not table:
        sys.exit(f"nested_cv.py: no labelled rows of preset {arguments.preset}")
    settings = {
        "seed": arguments.seed,
        "outer_folds": arguments.outer_folds,
        "outer_repeats": arguments.outer_repeats,
        "n_iter": arguments.n_iter,
        "inner_cv": arguments.inner_cv,
    }
    checkpoint, done = arguments.checkpoint, []
    if checkpoint:
        identity = {"preset": preset, **run_identity(table, **settings)}
        try:
            done = read_checkpoint(checkpoint, identity)
        except ValueError as error:
            sys.exit(f"nested_cv.py: {error}")
        print(f"{checkpoint}: {len(done)} outer folds begun earlier", file=sys.stderr)
    start = time.monotonic()
    result = nested_cv(
        table,
        **settings,
        variants=arguments.variants,
        n_jobs=arguments.jobs,
        done=done,
        only_folds=arguments.folds,
        on_variant=partial(save_fold, checkpoint) if checkpoint else None,
    )
    elapsed = time.monotonic() - start
    markdown = result.to_markdown(baseline=arguments.baseline)
    print(markdown)
    print(f"nested CV: {elapsed:.0f} s wall", file=sys.stderr)
    if arguments.markdown:
        arguments.markdown.write_text(markdown + "\n")
    if arguments.json:
        document = {"preset": preset, "table_excluded": excluded, "wall_s": elapsed}
        document.update(result.as_dict())
        if arguments.baseline and result.scores:
            baseline = arguments.baseline
            document["versus"] = versus_document(result.versus(baseline), baseline)
        arguments.json.write_text(json.dumps(document, indent=2) + "\n")


def read_checkpoint(path: Path, identity: dict[str, Any]) -> list[OuterFold]:
    """The folds of a checkpoint file (its last line of each fold), after checking its identity.

    A missing or empty file is started with ``identity``. A line that does not parse (a run
    killed while writing) is skipped with a warning.

    Raises:
        ValueError: The file belongs to a run of another identity.
    """
    identity = json.loads(json.dumps(identity))
    if not path.exists() or path.stat().st_size == 0:
        append_line(path, {"identity": identity})
        return []
    folds: dict[int, OuterFold] = {}
    with path.open() as lines:
        try:
            header = dict(json.loads(next(lines))["identity"])
        except (ValueError, KeyError, TypeError, StopIteration) as error:
            raise ValueError(f"{path} does not start with a run's identity") from error
        if header != identity:
            differing = sorted(k for k in {*identity, *header} if header.get(k) != identity.get(k))
            raise ValueError(f"{path} is a run of another {', '.join(differing)}; use a new file")
        for number, line in enumerate(lines, start=2):
            try:
                fold = OuterFold.from_dict(json.loads(line)["fold"])
            except (ValueError, KeyError, TypeError):
                print(f"{path}:{number}: unreadable line skipped", file=sys.stderr)
                continue
            folds[fold.number] = fold
    return [folds[number] for number in sorted(folds)]


def save_fold(path: Path, fold: OuterFold) -> None:
    """Append the fold as it stands (its latest line wins when the file is read)."""
    append_line(path, {"fold": asdict(fold)})


def append_line(path: Path, document: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before the run goes on."""
    with path.open("a") as handle:
        handle.write(json.dumps(document) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


if __name__ == "__main__":
    main()
