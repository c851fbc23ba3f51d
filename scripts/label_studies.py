"""Studies of the labels: calibrating cheap labels, and active learning against random picks.

    python scripts/label_studies.py calibration --db-file DB.json [--repeats 10] [--json OUT]
    python scripts/label_studies.py active-learning --db-file DB.json [--seeds 5] [--json OUT]

Features come from the database's ``features`` collection (``vtc-fw run --n 0`` on the
committed data builds them), at ``--exponent`` (9, the reproduced model's); the paper labels
from data/reference_paper.jsonl.gz (records whose SCF failed on every rung are left out, as in
training), the cheap labels from data/screen/batch_*.jsonl.gz.

``calibration`` prints every method of :mod:`vtc_fw.ml.calibration` with its repeated K-fold
error on the records computed at both fidelities. ``active-learning`` runs the retrospective
simulation of :mod:`vtc_fw.ml.active_learning` on the paper records (the forest fixed in
advance on the crystal features) and prints held-out R² against labels for each strategy.
"""

import argparse
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from vtc_fw.app.transfer import read_tasks
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.xes import NO_SCF_RUNG
from vtc_fw.ml.active_learning import STRATEGIES, CurvePoint, simulate
from vtc_fw.ml.calibration import paired_table, score_calibrations
from vtc_fw.ml.comparison import CRYSTAL_COLUMNS
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


def calibration(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """Score every calibration method on the paired records and print the table."""
    paper = labels([DATA / "reference_paper.jsonl.gz"])
    cheap = labels(sorted((DATA / "screen").glob("batch_*.jsonl.gz")))
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
    return scores


def active_learning(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """Simulate each strategy on the paper records and print R² against labels."""
    paper = labels([DATA / "reference_paper.jsonl.gz"])
    rows = feature_rows(config, set(paper), arguments.exponent)
    frame = pd.DataFrame(rows).assign(sams=lambda f: f["key"].map(paper))
    frame = frame.dropna(subset=[*CRYSTAL_COLUMNS, "sams"]).reset_index(drop=True)
    points = simulate(frame, CRYSTAL_COLUMNS, seeds=range(arguments.seeds))
    print(f"{len(frame)} paper records; {arguments.seeds} seeds; held-out R² mean ± std")
    strategies = sorted({p.strategy for p in points}, key=STRATEGIES.index)
    print("| labels | " + " | ".join(strategies) + " |")
    print("|---" * (len(strategies) + 1) + "|")
    for n_labels in sorted({p.n_labels for p in points}):
        cells = {
            p.strategy: f"{p.r2_mean:.3f} ± {p.r2_std:.3f}"
            for p in points
            if p.n_labels == n_labels
        }
        print(f"| {n_labels} | " + " | ".join(cells[s] for s in strategies) + " |")
    return LearningCurves(points=points)


class LearningCurves(BaseModel):
    """The simulation's points, for ``--json``."""

    points: list[CurvePoint]


STUDIES = {"calibration": calibration, "active-learning": active_learning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--db-file", type=Path, required=True)
    parser.add_argument("--exponent", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    result = STUDIES[arguments.study](DbConfig.load(arguments.db_file), arguments)
    if arguments.json:
        arguments.json.write_text(result.model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
