"""Studies of the labels: calibrating cheap labels, and active learning against random picks.

    python scripts/label_studies.py calibration --db-file DB.json [--repeats 10] [--json OUT]
    python scripts/label_studies.py active-learning --db-file DB.json [--seeds 5] [--json OUT]
    python scripts/label_studies.py multi-fidelity --db-file DB.json [--sizes 0,250]
        [--cheap screen_scf] [--method raw] [--json OUT]
    python scripts/label_studies.py label-swap --db-file DB.json [--repeats 5] [--json OUT]
    python scripts/label_studies.py paper-size --db-file DB.json [--repeats 5] [--json OUT]
    python scripts/label_studies.py figure --curve MULTI_FIDELITY.json --paper-size PAPER_SIZE.json
        --out PNG

Features come from the database's ``features`` collection (``vtc-fw run --n 0`` on the
committed data builds them), at ``--exponent`` (9, the reproduced model's); the paper labels
from data/reference_paper.jsonl.gz (records whose SCF failed on every rung are left out, as in
training), the cheap labels from data/<--cheap>/batch_*.jsonl.gz (screen or screen_scf).

``calibration`` prints every method of :mod:`vtc_fw.ml.calibration` with its repeated K-fold
error on the records computed at both fidelities. ``active-learning`` runs the retrospective
simulation of :mod:`vtc_fw.ml.active_learning` on the paper records (the forest fixed in
advance on the crystal features) and prints held-out R² against labels for each strategy.
``multi-fidelity`` trains on paper labels plus calibrated cheap labels of the records that have
no paper label (:mod:`vtc_fw.ml.multi_fidelity`) and prints R² on held-out paper labels against
the number of cheap records added, with their CPU-hours. ``label-swap`` trains on the paper
records with each cheap fidelity's label (data/screen, data/screen_scf) in place of the paper
label wherever it has one and scores on held-out paper labels: do that fidelity's labels train as
well as paper labels? ``paper-size`` scores the same forest on subsamples of every training
fold: how R² grows with the number of paper labels. ``figure`` draws the last two against the
CPU-hours their training labels cost.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from vtc_fw.app.transfer import read_transfer_file
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.task import TaskDocument
from vtc_fw.documents.xes import NO_SCF_RUNG
from vtc_fw.ml.active_learning import STRATEGIES, CurvePoint, simulate
from vtc_fw.ml.calibration import (
    CHEAP_COLUMN,
    DEFAULT_METHOD,
    FOREST_PARAMS,
    METHODS,
    paired_table,
    score_calibrations,
)
from vtc_fw.ml.comparison import CRYSTAL_COLUMNS
from vtc_fw.ml.multi_fidelity import CurvePoint as MultiFidelityPoint
from vtc_fw.ml.multi_fidelity import (
    LabelStudyPoint,
    label_swap_scores,
    learning_curve,
    paper_size_curve,
)
from vtc_fw.ml.plots import plot_labels_per_cpu_hour
from vtc_fw.ml.table import at_exponent

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference_paper.jsonl.gz"
CHEAP_DATASETS = ("screen", "screen_scf")
"""Committed cheap fidelities: data/<name>/batch_*.jsonl.gz."""


def batches(dataset: str) -> list[Path]:
    """The committed batch files of a cheap dataset, in order."""
    return sorted((DATA / dataset).glob("batch_*.jsonl.gz"))


def tasks_by_key(paths: list[Path]) -> dict[str, TaskDocument]:
    """Record key → successful, self-consistent task of the files (the last one read)."""
    found = {}
    for path in paths:
        for task in read_transfer_file(path).tasks:
            rungs = [site.rung for site in task.sites or []]
            if task.state == "successful" and NO_SCF_RUNG not in rungs:
                found[task.record_key] = task
    return found


def labels_of(tasks: dict[str, TaskDocument]) -> dict[str, float]:
    """Record key → SAMS."""
    return {key: float(task.sams) for key, task in tasks.items()}


def labels(paths: list[Path]) -> dict[str, float]:
    """Record key → SAMS of the successful, self-consistent tasks of the files."""
    return labels_of(tasks_by_key(paths))


def feature_rows(config: DbConfig, keys: set[str], exponent: int) -> list[dict]:
    """Training rows of the successful feature documents of ``keys`` at ``exponent``."""
    documents = config.collection("features").find(
        {"record_key": {"$in": sorted(keys)}, "state": "successful"}, {"_id": 0}
    )
    rows = [FeatureDocument.model_validate(d).training_row() for d in documents]
    return at_exponent(pd.DataFrame(rows), exponent).to_dict("records")


def calibration(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """Score every calibration method on the paired records and print the table."""
    paper = labels([REFERENCE])
    cheap = labels(batches(arguments.cheap))
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
    frame = paper_rows(config, arguments.exponent)
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


def multi_fidelity(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """The learning curve of cheap records added to the paper labels, in records and CPU-h."""
    paper_tasks = tasks_by_key([REFERENCE])
    cheap_tasks = tasks_by_key(batches(arguments.cheap))
    paper, cheap = labels_of(paper_tasks), labels_of(cheap_tasks)
    rows = pd.DataFrame(feature_rows(config, set(paper) | set(cheap), arguments.exponent))
    rows = rows.dropna(subset=list(CRYSTAL_COLUMNS))
    rows[CHEAP_COLUMN] = rows["key"].map(cheap)
    paper_rows = rows[rows["key"].isin(paper)].assign(sams=lambda f: f["key"].map(paper))
    cheap_rows = rows[~rows["key"].isin(paper) & rows[CHEAP_COLUMN].notna()]
    sizes = [int(n) for n in arguments.sizes.split(",") if int(n) <= len(cheap_rows)]
    sizes = sorted({*sizes, len(cheap_rows)})
    forest = {**FOREST_PARAMS, **json.loads(arguments.forest)}
    points = learning_curve(
        paper_rows,
        cheap_rows,
        CRYSTAL_COLUMNS,
        sizes,
        method=arguments.method,
        forest=forest,
        seed=arguments.seed,
        repeats=arguments.repeats,
    )
    cpu_cheap = np.mean([cheap_tasks[k].cpu_s for k in cheap_rows["key"]])
    cpu_paper = np.mean([paper_tasks[k].cpu_s for k in paper_rows["key"]])
    print(
        f"{len(paper_rows)} paper records ({cpu_paper:.0f} CPU-s each, mean), {len(cheap_rows)}"
        f" cheap-only records ({cpu_cheap:.0f} CPU-s each); {arguments.repeats} × 5-fold CV,"
        " R² on held-out paper labels"
    )
    print("| cheap records | their CPU-h | as paper records | R² mean ± std | Δ vs 0 ± se |")
    print("|---|---|---|---|---|")
    for p in points:
        hours = p.n_cheap * cpu_cheap / 3600
        print(
            f"| {p.n_cheap} | {hours:.2f} | {hours * 3600 / cpu_paper:.0f} |"
            f" {p.r2_mean:.3f} ± {p.r2_std:.3f} | {p.delta_mean:+.3f} ± {p.delta_se:.3f} |"
        )
    return MultiFidelityCurve(
        cheap=arguments.cheap,
        method=arguments.method,
        n_paper=len(paper_rows),
        cpu_s_paper=cpu_paper,
        cpu_s_cheap=cpu_cheap,
        forest=forest,
        points=points,
    )


class MultiFidelityCurve(BaseModel):
    """The learning curve's points and what they cost, for ``--json`` and ``figure``."""

    cheap: str = Field(description="The cheap dataset (data/ folder).")
    method: str = Field(description="Calibration of its labels.")
    n_paper: int = Field(description="Paper records (5-fold: four fifths in each training fold).")
    cpu_s_paper: float = Field(description="Mean CPU-s of a paper record.")
    cpu_s_cheap: float = Field(description="Mean CPU-s of a cheap record.")
    forest: dict[str, Any] = Field(description="Parameters of the random forest.")
    points: list[MultiFidelityPoint]


def figure(arguments: argparse.Namespace) -> None:
    """R² on held-out paper labels against the CPU-h of the training labels (one fold's)."""
    curve = MultiFidelityCurve.model_validate_json(arguments.curve.read_text())
    sizes = LabelStudy.model_validate_json(arguments.paper_size.read_text())
    paper_hours = curve.cpu_s_paper / 3600
    n_train = round(curve.n_paper * 4 / 5)
    paper_points = [(p.n * paper_hours, p.r2_mean) for p in sizes.points]
    cheap_points = [
        (n_train * paper_hours + p.n_cheap * curve.cpu_s_cheap / 3600, p.r2_mean)
        for p in curve.points
    ]
    labels = (
        "paper labels only (subsampled training folds)",
        f"{n_train} paper + {curve.cheap} labels ({curve.method})",
    )
    print(
        plot_labels_per_cpu_hour({labels[0]: paper_points, labels[1]: cheap_points}, arguments.out)
    )


def paper_rows(config: DbConfig, exponent: int) -> pd.DataFrame:
    """The trainable paper records' rows (crystal features at ``exponent``) with their SAMS."""
    paper = labels([REFERENCE])
    rows = pd.DataFrame(feature_rows(config, set(paper), exponent))
    rows = rows.assign(sams=rows["key"].map(paper))
    return rows.dropna(subset=[*CRYSTAL_COLUMNS, "sams"]).reset_index(drop=True)


def label_swap(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """R² on held-out paper labels when each cheap fidelity's labels replace paper labels."""
    swaps = {name: labels(batches(name)) for name in CHEAP_DATASETS}
    points = label_swap_scores(
        paper_rows(config, arguments.exponent),
        swaps,
        CRYSTAL_COLUMNS,
        seed=arguments.seed,
        repeats=arguments.repeats,
    )
    print(f"{arguments.repeats} × 5-fold CV, R² on held-out paper labels")
    return print_study(points, "labels trained on", "paper labels replaced")


def paper_size(config: DbConfig, arguments: argparse.Namespace) -> BaseModel:
    """R² on held-out paper labels against the number of paper labels trained on."""
    points = paper_size_curve(
        paper_rows(config, arguments.exponent),
        CRYSTAL_COLUMNS,
        (0.25, 0.5, 0.75, 1.0),
        seed=arguments.seed,
        repeats=arguments.repeats,
    )
    print(f"{arguments.repeats} × 5-fold CV, R² on held-out paper labels")
    return print_study(points, "paper labels trained on", "rows")


def print_study(points: list[LabelStudyPoint], what: str, count: str) -> BaseModel:
    """Print the points as a markdown table; the points for ``--json``."""
    print(f"| {what} | {count} | R² mean ± std | Δ ± se |")
    print("|---|---|---|---|")
    for p in points:
        print(
            f"| {p.name} | {p.n} | {p.r2_mean:.3f} ± {p.r2_std:.3f} |"
            f" {p.delta_mean:+.3f} ± {p.delta_se:.3f} |"
        )
    return LabelStudy(points=points)


class LabelStudy(BaseModel):
    """A label study's points, for ``--json``."""

    points: list[LabelStudyPoint]


STUDIES = {
    "calibration": calibration,
    "active-learning": active_learning,
    "multi-fidelity": multi_fidelity,
    "label-swap": label_swap,
    "paper-size": paper_size,
}


def main() -> None:
    if sys.argv[1:2] == ["figure"]:
        figure_parser = argparse.ArgumentParser(prog="label_studies.py figure")
        figure_parser.add_argument("--curve", type=Path, required=True, help="multi-fidelity JSON")
        figure_parser.add_argument("--paper-size", type=Path, required=True, help="its JSON")
        figure_parser.add_argument("--out", type=Path, required=True, help="PNG to write")
        figure(figure_parser.parse_args(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--db-file", type=Path, required=True)
    parser.add_argument("--exponent", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="0,100,250,500,1000", help="cheap records added")
    parser.add_argument(
        "--cheap", choices=CHEAP_DATASETS, default="screen", help="cheap labels (data/ folder)"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="calibration of the cheap labels in multi-fidelity",
    )
    parser.add_argument(
        "--forest",
        default="{}",
        help="multi-fidelity: JSON of random-forest parameters over the fixed forest's, e.g. the"
        " default model's chosen ones (docs/figures/model/comparison_wide.json)",
    )
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    result = STUDIES[arguments.study](DbConfig.load(arguments.db_file), arguments)
    if arguments.json:
        arguments.json.write_text(result.model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
