"""Training on paper labels plus calibrated cheap labels, scored on paper labels only (pure).

Rows carry their fidelity (:data:`FIDELITY_COLUMN`: ``"paper"`` or ``"cheap"``). A cheap row's
label is its calibrated SAMS (:mod:`vtc_fw.ml.calibration`), the calibration being fit on the
paired records of the training rows only. Evaluation uses held-out paper labels and nothing
else: :func:`held_out_paper` is the one place test rows are chosen, and it refuses any row that
is not a paper label; :func:`validation_folds` puts every cheap row in every training fold and
validates on paper rows only. A record held out never contributes its cheap label either (its
features and near-identical label would leak into training). The paper's protocol
(:func:`vtc_fw.ml.protocol.train_paper_protocol`) takes its cheap rows through
:func:`with_cheap_rows`.

:func:`learning_curve` answers the issue's question: paired repeated K-fold R² on paper labels
against the number of cheap records added (0, 250, 500, ...), each fold and size with the same
folds, so the curves are paired. :func:`label_swap_scores` asks whether a fidelity's labels
train as well as paper labels on the same records, and :func:`paper_size_curve` how R² grows
with the number of paper labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, RepeatedKFold

from vtc_fw.ml.calibration import (
    CHEAP_COLUMN,
    DEFAULT_METHOD,
    FOREST_PARAMS,
    calibrated,
    calibration_inputs,
    fit_calibration,
)
from vtc_fw.ml.table import as_table, at_exponent, with_swept_defaults

FIDELITY_COLUMN = "fidelity"
"""Which FEFF fidelity a row's label comes from."""
PAPER, CHEAP = "paper", "cheap"
"""A paper label, or the calibrated label of the cheap preset the study or model names (a model
document's ``fidelity`` counts its labels by FEFF preset name)."""


class PairedScores(BaseModel):
    """Repeated-CV R² on held-out paper labels, paired with a baseline on the same folds."""

    r2_mean: float = Field(description="Mean R² over the folds on held-out paper labels.")
    r2_std: float = Field(description="Standard deviation over the folds.")
    delta_mean: float = Field(description="Mean per-fold difference to the baseline.")
    delta_se: float = Field(description="Standard error of that difference (plain, uncorrected).")


class CurvePoint(PairedScores):
    """The scores after adding some cheap records (baseline: none)."""

    n_cheap: int = Field(description="Cheap (calibrated) records added to every training fold.")


def held_out_paper(frame: pd.DataFrame, indices: np.ndarray) -> pd.DataFrame:
    """The test rows: paper labels only.

    Raises:
        ValueError: A chosen row is not a paper label.
    """
    test = frame.iloc[indices]
    if (test[FIDELITY_COLUMN] != PAPER).any():
        raise ValueError("a cheap label was chosen as a test row: evaluation is on paper only")
    return test


def training_rows(
    paper_train: pd.DataFrame,
    cheap: pd.DataFrame,
    held_out_keys: set[str],
    method: str,
    seed: int,
) -> pd.DataFrame:
    """Paper training rows plus the cheap records' calibrated labels.

    Args:
        paper_train: Paper rows of the fold, with ``sams`` and (where computed) ``sams_cheap``.
        cheap: Cheap rows (``sams_cheap``, features) of records without a paper label.
        held_out_keys: Record keys of the fold's test rows, never used.
        method: Calibration method (:data:`vtc_fw.ml.calibration.METHODS`).
        seed: Seed of the calibration forest.

    Raises:
        ValueError: Cheap rows remain but no paper training row has a cheap label to calibrate on.
    """
    cheap = cheap[~cheap["key"].isin(held_out_keys | set(paper_train["key"]))]
    if cheap.empty:
        return paper_train.assign(**{FIDELITY_COLUMN: PAPER})
    if CHEAP_COLUMN not in paper_train or paper_train[CHEAP_COLUMN].isna().all():
        raise ValueError("no paper training record has a cheap label: nothing to calibrate on")
    paired = paper_train.dropna(subset=[CHEAP_COLUMN])
    estimator = fit_calibration(method, paired, seed)
    labelled = cheap.assign(sams=calibrated(method, estimator, cheap), **{FIDELITY_COLUMN: CHEAP})
    return pd.concat([paper_train.assign(**{FIDELITY_COLUMN: PAPER}), labelled], ignore_index=True)


def with_cheap_rows(
    paper_train: pd.DataFrame,
    test_keys: set[str],
    cheap: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    exponent: int | None,
    columns: Sequence[str],
    method: str,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The training rows of the paper's protocol: its paper training split, then cheap rows.

    Each paper training row takes its record's cheap label from ``cheap`` (the pairs the
    calibration is fit on); the cheap rows of records without a paper row in the split or the
    test keys are labelled by that calibration (:func:`training_rows`).

    Args:
        paper_train: The paper training split (moment sums at ``exponent``).
        test_keys: Record keys of the test split: their cheap labels are never used.
        cheap: One row per record with a cheap label: ``key``, the features (and sweep
            columns), ``in_domain`` and ``sams_cheap``.
        exponent: The exponent the training split chose (None: the table has no sweep).
        columns: The model's inputs.
        method: Calibration method (:data:`vtc_fw.ml.calibration.METHODS`).
        seed: Seed of the calibration forest.

    Returns:
        The rows (paper first, in split order; :data:`FIDELITY_COLUMN` set) and the count of
        cheap rows left out (``cheap_unusable``: no cheap label, outside the domain or a null
        input of the model or of the calibration).
    """
    usable, unusable = usable_cheap_rows(cheap, exponent, [*columns, *calibration_inputs(method)])
    cheap_label = usable.set_index("key")[CHEAP_COLUMN]
    paired = paper_train.assign(**{CHEAP_COLUMN: paper_train["key"].map(cheap_label)})
    rows = training_rows(paired, usable, test_keys, method, seed)
    return rows, {"cheap_unusable": unusable}


def usable_cheap_rows(
    cheap: pd.DataFrame | Sequence[Mapping[str, Any]],
    exponent: int | None,
    required: Sequence[str],
) -> tuple[pd.DataFrame, int]:
    """The cheap rows with a cheap label and every ``required`` column, inside the domain.

    Returns:
        Those rows (moment sums at ``exponent`` when given) and how many others there were.
    """
    frame = with_swept_defaults(as_table(cheap))
    if exponent is not None:
        frame = at_exponent(frame, exponent)
    frame[CHEAP_COLUMN] = pd.to_numeric(frame[CHEAP_COLUMN], errors="coerce")
    keep = frame[list(dict.fromkeys(required))].notna().all(axis=1)
    if "in_domain" in frame:
        keep &= frame["in_domain"].fillna(False).astype(bool)
    return frame.loc[keep].reset_index(drop=True), int((~keep).sum())


def validation_folds(rows: pd.DataFrame, splitter: KFold) -> list[tuple[np.ndarray, np.ndarray]]:
    """The splitter's folds of the paper rows, with every cheap row in every training fold.

    Validation rows are paper rows only; without cheap rows the folds are the splitter's own
    on ``rows``.

    Returns:
        (training indices, validation indices) into ``rows``, one pair per fold.
    """
    paper = np.flatnonzero(rows[FIDELITY_COLUMN] == PAPER)
    cheap = np.flatnonzero(rows[FIDELITY_COLUMN] != PAPER)
    return [
        (np.concatenate([paper[fit], cheap]), paper[validate])
        for fit, validate in splitter.split(paper)
    ]


def learning_curve(
    paper: pd.DataFrame,
    cheap: pd.DataFrame,
    columns: Sequence[str],
    sizes: Sequence[int],
    *,
    method: str = DEFAULT_METHOD,
    forest: Mapping[str, Any] = FOREST_PARAMS,
    seed: int = 0,
    cv: int = 5,
    repeats: int = 5,
) -> list[CurvePoint]:
    """R² on held-out paper labels against the number of cheap records in training.

    Args:
        paper: Paper rows (``key``, ``columns``, ``sams``; ``sams_cheap`` where paired).
        cheap: Cheap rows of other records (``key``, ``columns``, ``sams_cheap``).
        columns: Model inputs of the forest (fixed in advance: FOREST_PARAMS).
        sizes: Numbers of cheap records to add (a seeded prefix of a shuffle of ``cheap``);
            the first is the baseline of ``delta_mean`` (usually 0).
        method: Calibration of the cheap labels.
        forest: Parameters of the random forest (default: the one fixed in advance; e.g. the
            default model's chosen ones).
        seed: Seeds folds, shuffle and forests.
        cv: Folds.
        repeats: Repeats of the K-fold split.
    """
    paper = paper.assign(**{FIDELITY_COLUMN: PAPER}).reset_index(drop=True)
    order = cheap.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    folds = RepeatedKFold(n_splits=cv, n_repeats=repeats, random_state=seed).split(paper)
    scores: dict[int, list[float]] = {size: [] for size in sizes}
    for train_index, test_index in folds:
        test = held_out_paper(paper, test_index)
        for size in sizes:
            rows = training_rows(
                paper.iloc[train_index], order.head(size), set(test["key"]), method, seed
            )
            inputs = rows[list(columns)].to_numpy(dtype=float)
            held_out = test[list(columns)].to_numpy(dtype=float)
            r2 = _forest_r2(inputs, rows["sams"], held_out, test["sams"], seed, forest)
            scores[size].append(r2)
    return [_point(size, scores[size], scores[sizes[0]]) for size in sizes]


def _forest_r2(
    inputs: np.ndarray,
    labels: pd.Series,
    held_out: np.ndarray,
    truth: pd.Series,
    seed: int,
    params: Mapping[str, Any] = FOREST_PARAMS,
) -> float:
    """R² on ``truth`` of a random forest fit on ``inputs`` (default: the fixed forest)."""
    forest = RandomForestRegressor(random_state=seed, n_jobs=1, **params)
    forest.fit(inputs, labels)
    return float(r2_score(truth, forest.predict(held_out)))


def _point(size: int, r2: list[float], baseline: list[float]) -> CurvePoint:
    return CurvePoint(n_cheap=size, **_paired(r2, baseline))


def _paired(r2: list[float], baseline: list[float]) -> dict[str, float]:
    """Mean and spread of the fold scores, and their paired difference to the baseline's."""
    delta = np.asarray(r2) - np.asarray(baseline)
    return {
        "r2_mean": float(np.mean(r2)),
        "r2_std": float(np.std(r2)),
        "delta_mean": float(delta.mean()),
        "delta_se": float(delta.std(ddof=1) / np.sqrt(len(delta))) if len(delta) > 1 else 0.0,
    }


class LabelStudyPoint(PairedScores):
    """The scores of one way of choosing training labels (baseline: all paper labels)."""

    name: str = Field(description="What the training folds held.")
    n: int = Field(description="Training rows changed (swapped labels) or kept (rows), per fold.")


def label_swap_scores(
    paper: pd.DataFrame,
    swaps: Mapping[str, Mapping[str, float]],
    columns: Sequence[str],
    *,
    seed: int = 0,
    cv: int = 5,
    repeats: int = 5,
) -> list[LabelStudyPoint]:
    """How well another fidelity's labels train, in place of paper labels on the same records.

    In every training fold the paper label of each record that ``swaps[name]`` holds is replaced
    by that label; the held-out fold keeps its paper labels. A fidelity whose labels train as
    well as paper labels scores the same R² as ``"paper"`` (the first point).

    Args:
        paper: Paper rows (``key``, ``columns``, ``sams``).
        swaps: Fidelity name → (record key → its SAMS).
        columns: Model inputs of the forest (fixed in advance: FOREST_PARAMS).
        seed: Seeds folds and forests.
        cv: Folds.
        repeats: Repeats of the K-fold split.
    """
    paper = paper.assign(**{FIDELITY_COLUMN: PAPER}).reset_index(drop=True)
    labels = {PAPER: paper["sams"]} | {
        name: paper["key"].map(found).fillna(paper["sams"]) for name, found in swaps.items()
    }
    swapped = {PAPER: 0} | {
        name: int(paper["key"].isin(found).sum()) for name, found in swaps.items()
    }
    scores: dict[str, list[float]] = {name: [] for name in labels}
    inputs = paper[list(columns)].to_numpy(dtype=float)
    for train_index, test_index in RepeatedKFold(
        n_splits=cv, n_repeats=repeats, random_state=seed
    ).split(paper):
        test = held_out_paper(paper, test_index)
        for name, label in labels.items():
            scores[name].append(
                _forest_r2(
                    inputs[train_index],
                    label.iloc[train_index],
                    inputs[test_index],
                    test["sams"],
                    seed,
                )
            )
    return [_study_point(name, swapped[name], scores[name], scores[PAPER]) for name in labels]


def paper_size_curve(
    paper: pd.DataFrame,
    columns: Sequence[str],
    fractions: Sequence[float],
    *,
    seed: int = 0,
    cv: int = 5,
    repeats: int = 5,
) -> list[LabelStudyPoint]:
    """R² on held-out paper labels against the number of paper labels trained on.

    Each training fold is subsampled (seeded) to each fraction; the held-out folds are the same
    for every fraction, so the points are paired (the last fraction, usually 1, is the baseline).
    """
    paper = paper.assign(**{FIDELITY_COLUMN: PAPER}).reset_index(drop=True)
    inputs = paper[list(columns)].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    scores: dict[float, list[float]] = {fraction: [] for fraction in fractions}
    sizes: dict[float, int] = {}
    for train_index, test_index in RepeatedKFold(
        n_splits=cv, n_repeats=repeats, random_state=seed
    ).split(paper):
        test = held_out_paper(paper, test_index)
        for fraction in fractions:
            sizes[fraction] = round(fraction * len(train_index))
            kept = rng.choice(train_index, sizes[fraction], replace=False)
            scores[fraction].append(
                _forest_r2(
                    inputs[kept], paper["sams"].iloc[kept], inputs[test_index], test["sams"], seed
                )
            )
    baseline = scores[fractions[-1]]
    return [
        _study_point(
            f"{fraction:g} of the training fold", sizes[fraction], scores[fraction], baseline
        )
        for fraction in fractions
    ]


def _study_point(name: str, n: int, r2: list[float], baseline: list[float]) -> LabelStudyPoint:
    return LabelStudyPoint(name=name, n=n, **_paired(r2, baseline))
