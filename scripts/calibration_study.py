"""How well can cheap ("screen") labels be calibrated to "paper" SAMS? Repeated-CV table.

    python scripts/calibration_study.py --db-file DB.json [--exponent 9] [--repeats 10]
        [--json OUT.json]

Features come from the database's ``features`` collection (``vtc-fw run --n 0`` on the
committed data builds them); the paper labels from data/reference_paper.jsonl.gz (records whose
SCF failed on every rung are left out, as in training), the cheap labels from
data/screen/batch_*.jsonl.gz. Prints every method of :mod:`vtc_fw.ml.calibration` with its
repeated K-fold error on the records computed at both fidelities.
"""

import argparse
from pathlib import Path

import pandas as pd

from vtc_fw.app.transfer import read_tasks
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.xes import NO_SCF_RUNG
from vtc_fw.ml.calibration import paired_table, score_calibrations
from vtc_fw.ml.table import at_exponent

DATA = Path(__file__).resolve().parents[1] / "data"


def labels(paths: list[Path]) -> dict[str, float]:
    """Record key → SAMS of the successful, self-consistent tasks of the files."""
    found = {}
    for path in paths:
        for task in read_tasks(path):
            rungs = [site.rung for site in task.sites or []]
            if task.state == "successful" and NO_SCF_RUNG not in rungs:
                found[task.record_key] = float(task.sams)
    return found


def feature_rows(config: DbConfig, keys: set[str], exponent: int) -> list[dict]:
    """Training rows of the successful feature documents of ``keys`` at ``exponent``."""
    documents = config.collection("features").find(
        {"record_key": {"$in": sorted(keys)}, "state": "successful"}, {"_id": 0}
    )
    rows = [FeatureDocument.model_validate(d).training_row() for d in documents]
    return at_exponent(pd.DataFrame(rows), exponent).to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-file", type=Path, required=True)
    parser.add_argument("--exponent", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    paper = labels([DATA / "reference_paper.jsonl.gz"])
    cheap = labels(sorted((DATA / "screen").glob("batch_*.jsonl.gz")))
    config = DbConfig.load(arguments.db_file)
    rows = feature_rows(config, set(paper) & set(cheap), arguments.exponent)
    frame = paired_table(rows, paper, cheap)
    scores = score_calibrations(frame, seed=arguments.seed, repeats=arguments.repeats)
    print(f"{scores.n_pairs} paired records, {scores.repeats} × {scores.cv}-fold CV")
    print("| method | MAE | median | p90 | max | R² | fold MAE std |")
    print("|---|---|---|---|---|---|---|")
    for s in scores.scores:
        print(
            f"| {s.method} | {s.mae:.4f} | {s.median_ae:.4f} | {s.p90_ae:.4f} | {s.max_ae:.3f}"
            f" | {s.r2:.3f} | {s.fold_mae_std:.4f} |"
        )
    print(f"best: {scores.best}")
    if arguments.json:
        arguments.json.write_text(scores.model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
