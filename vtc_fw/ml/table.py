"""The training table, pure (no database): one row per record, its split and exponent sweep.

A table has one row per record with the columns ``key``, ``element``, ``sams`` (the label:
SAMS for the paper's target, else the value of the model's :class:`~vtc_fw.settings.ModelTarget`
that the builder put there), the :data:`~vtc_fw.science.features.FEATURE_COLUMNS`, optionally
``in_domain``, and optionally sweep columns ``QAMS@n``, ``DAMS@n``, ``IAMS@n`` (and their
crystal forms) for each exponent ``n``. A model's inputs are the columns of its
:class:`~vtc_fw.settings.FeatureSet` (:data:`FEATURE_SET_COLUMNS`). Rows with a null feature or
target, or outside the training domain, are excluded and counted, never dropped silently; the
split is stratified by absorber element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    train_test_split,
)

from vtc_fw.keys import CRYSTAL_SUMS, MOMENT_SUMS, parse_sweep_column, sweep_column
from vtc_fw.science.features import FEATURE_COLUMNS, best_exponent
from vtc_fw.settings import FeatureSet

TEST_FRACTION = 0.2

CRYSTAL_COLUMNS: tuple[str, ...] = tuple(CRYSTAL_SUMS.get(name, name) for name in FEATURE_COLUMNS)
"""The paper's 8 features with QAMS/DAMS/IAMS in their crystal forms, in the paper's order."""

FEATURE_SET_COLUMNS: dict[FeatureSet, tuple[str, ...]] = {
    FeatureSet.PAPER: FEATURE_COLUMNS,
    FeatureSet.CRYSTAL: CRYSTAL_COLUMNS,
}
"""The input columns of each feature set, in the estimator's order. The crystal sums come from
the sweep columns at the exponent the training rows choose (:func:`at_exponent`)."""


@dataclass
class ExponentSweep:
    """Correlation of the exponent-dependent features with SAMS on the training rows.

    Attributes:
        curve: ``{n: {"QAMS_r": r, "IAMS_r": r, "DAMS_r": r, "n_records": count}}``, the
            curve :func:`sweep_exponents` computes (r None where undefined).
        chosen_exponent: The n with the highest mean r of QAMS and IAMS
            (:func:`vtc_fw.science.features.best_exponent`).
    """

    curve: dict[int, dict[str, float | int | None]]
    chosen_exponent: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (exponents as string keys)."""
        return {
            "curve": {str(n): values for n, values in self.curve.items()},
            "chosen_exponent": self.chosen_exponent,
        }


def as_table(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A copy of ``table`` as a DataFrame with None turned into NaN in numeric columns."""
    frame = pd.DataFrame(table).copy()
    for column in frame.columns:
        if column in FEATURE_COLUMNS or column == "sams" or parse_sweep_column(column):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def select_trainable(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows usable for training and the count of each excluded kind.

    Exclusion reasons: ``missing_target`` (no SAMS), ``out_of_domain`` (``in_domain`` false),
    ``null_features`` (any feature column null). Each row is counted under its first reason.
    """
    missing_target = frame["sams"].isna()
    if "in_domain" in frame:
        out_of_domain = ~frame["in_domain"].fillna(False).astype(bool)
    else:
        out_of_domain = pd.Series(False, index=frame.index)
    null_features = frame[list(FEATURE_COLUMNS)].isna().any(axis=1)
    excluded = {
        "missing_target": int(missing_target.sum()),
        "out_of_domain": int((out_of_domain & ~missing_target).sum()),
        "null_features": int((null_features & ~out_of_domain & ~missing_target).sum()),
    }
    keep = ~(missing_target | out_of_domain | null_features)
    return frame.loc[keep].reset_index(drop=True), excluded


def stratified_split(
    frame: pd.DataFrame, *, seed: int, test_fraction: float = TEST_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20 split stratified by ``element``.

    Elements with fewer than two rows cannot be stratified; they go to the training side.
    A table too small to give every element a test row (test rows < elements) is split
    without stratification, still 80/20.
    """
    counts = frame["element"].value_counts()
    rare = frame["element"].isin(counts[counts < 2].index)
    stratifiable = frame.loc[~rare]
    n_test = math.ceil(test_fraction * len(stratifiable))
    by_element = n_test >= stratifiable["element"].nunique()
    train, test = train_test_split(
        stratifiable,
        test_size=test_fraction,
        stratify=stratifiable["element"] if by_element else None,
        random_state=seed,
    )
    train = pd.concat([train, frame.loc[rare]])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def sweep_exponents(train: pd.DataFrame) -> ExponentSweep | None:
    """Pearson r of QAMS/IAMS/DAMS with SAMS at each exponent, on training rows only.

    Returns:
        The sweep, choosing the n with the highest mean r of QAMS and IAMS; None when the
        table has no ``QAMS@n``/``IAMS@n`` columns.
    """
    exponents = sorted(
        {
            parsed[1]
            for c in train.columns
            if (parsed := parse_sweep_column(c)) and parsed[0] in MOMENT_SUMS
        }
    )
    if not exponents:
        return None
    curve: dict[int, dict[str, float | int | None]] = {}
    for n in exponents:
        curve[n] = {
            f"{name}_r": pearson(train.get(sweep_column(name, n)), train["sams"])
            for name in MOMENT_SUMS
        }
        curve[n]["n_records"] = len(train)
    return ExponentSweep(curve=curve, chosen_exponent=best_exponent(curve))


def pearson(values: pd.Series | None, target: pd.Series) -> float | None:
    """Pearson r of two columns over their rows where both are set.

    None under 3 such rows, for a constant column, or without a column.
    """
    if values is None:
        return None
    both = pd.concat([values, target], axis=1).dropna()
    if len(both) < 3 or both.iloc[:, 0].std() == 0 or both.iloc[:, 1].std() == 0:
        return None
    return float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1])


def at_exponent(frame: pd.DataFrame, exponent: int) -> pd.DataFrame:
    """``frame`` with the moment sums replaced by their values at ``exponent``.

    QAMS/DAMS/IAMS, and their crystal forms where the table has them.
    """
    frame = frame.copy()
    for name in (*MOMENT_SUMS, *CRYSTAL_SUMS.values()):
        column = sweep_column(name, exponent)
        if column in frame:
            frame[name] = frame[column]
    frame["exponent"] = exponent
    return frame


@dataclass
class TrainingSplit:
    """The usable rows of a table split 80/20, at the exponent the training rows choose.

    Attributes:
        n_rows: Rows of the input table.
        usable: Rows left after :func:`select_trainable` (all exponents kept).
        excluded: Counts of the rows left out, by reason.
        train: Training rows (QAMS/IAMS/DAMS at the chosen exponent when swept).
        test: Test rows, likewise.
        sweep: The exponent sweep on the training rows, or None without sweep columns.
    """

    n_rows: int
    usable: pd.DataFrame
    excluded: dict[str, int]
    train: pd.DataFrame
    test: pd.DataFrame
    sweep: ExponentSweep | None


def split_for_training(
    table: pd.DataFrame | Sequence[Mapping[str, Any]], *, seed: int, cv: int
) -> TrainingSplit:
    """Exclusions, the element-stratified split and the exponent sweep every model shares.

    Raises:
        ValueError: If fewer than ``2 * cv`` rows remain after exclusions.
    """
    frame = as_table(table)
    usable, excluded = select_trainable(with_swept_defaults(frame))
    if len(usable) < 2 * cv:
        raise ValueError(
            f"{len(usable)} usable rows, need at least {2 * cv} (excluded: {excluded})"
        )
    train, test = stratified_split(usable, seed=seed)
    sweep = sweep_exponents(train)
    if sweep is not None:
        train = at_exponent(train, sweep.chosen_exponent)
        test = at_exponent(test, sweep.chosen_exponent)
    return TrainingSplit(len(frame), usable, excluded, train, test, sweep)


def usable_rows(split: TrainingSplit) -> pd.DataFrame:
    """All usable rows of a split, swept columns at the chosen exponent when there is a sweep."""
    if split.sweep is None:
        return split.usable
    return at_exponent(split.usable, split.sweep.chosen_exponent)


def with_swept_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill QAMS/IAMS/DAMS from sweep columns when the table has only those."""
    frame = frame.copy()
    for name in MOMENT_SUMS:
        if name not in frame:
            sweep_columns = sorted(
                c for c in frame.columns if (parsed := parse_sweep_column(c)) and parsed[0] == name
            )
            frame[name] = frame[sweep_columns[0]] if sweep_columns else np.nan
    for column in FEATURE_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    return frame
