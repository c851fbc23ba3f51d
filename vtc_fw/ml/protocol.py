"""The paper's random-forest protocol, pure (no database).

One call, :func:`train_paper_protocol`, reproduces science.md "Model": an 80/20 split
stratified by absorber element; the feature-exponent sweep on the training rows (when the
table carries per-exponent anisotropy sums); ``RandomizedSearchCV`` over the paper's space
(100 draws, 5-fold, R²); a refit on all training rows; train/test R² and MAE; permutation
importances (negative MSE, repeated) divided by that of an added uniform-noise feature;
per-element test R²; out-of-fold R² per element on the training rows (the test split holds
too few records per element for a meaningful R²); and a balanced variant with equal counts
per element.

The input is a training table (:mod:`vtc_fw.ml.table`). The inputs are the paper's eight features
or, with ``feature_set=FeatureSet.CRYSTAL``, the same eight with the crystal sums; every step
of the protocol is the same for both.

Optionally, cheap rows (another FEFF fidelity's value of the target, ``sams_cheap``) join the
training split as calibrated labels (:mod:`vtc_fw.ml.multi_fidelity`): the paper rows are split
as without them, every cheap row is in every training fold of the search, and every score
(CV, out-of-fold, test, importances, per element, the balanced variant) is on paper labels only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold, RandomizedSearchCV

from vtc_fw.ml.calibration import DEFAULT_METHOD
from vtc_fw.ml.forest_format import Forest
from vtc_fw.ml.multi_fidelity import (
    FIDELITY_COLUMN,
    PAPER,
    held_out_paper,
    validation_folds,
    with_cheap_rows,
)
from vtc_fw.ml.table import (
    FEATURE_SET_COLUMNS,
    ExponentSweep,
    TrainingSplit,
    split_for_training,
    stratified_split,
    usable_rows,
)
from vtc_fw.science.features import FEATURE_COLUMNS
from vtc_fw.settings import FeatureSet, SearchSpace

NOISE_FEATURE = "noise"
"""Name of the uniform-noise column added for the noise-normalized importances."""

PERMUTATION_REPEATS = 10

Folds: TypeAlias = int | Sequence[tuple[np.ndarray, np.ndarray]]
"""Cross-validation of a search: a number of shuffled seeded folds, or (training, validation)
row indices of each fold."""


def paper_search_space() -> dict[str, Any]:
    """The paper's hyperparameter space (Table 1), as scipy distributions.

    ``randint(a, b)`` draws integers a ≤ k < b (scipy's convention) and ``uniform(0.6, 0.2)``
    draws from U(0.6, 0.8).
    """
    return {
        "bootstrap": [True],
        "criterion": ["squared_error"],
        "max_depth": [6, 8, 10, 12],
        "max_features": ["sqrt", "log2", 0.3],
        "max_samples": stats.uniform(0.6, 0.2),
        "min_samples_leaf": stats.randint(5, 25),
        "min_samples_split": stats.randint(10, 50),
        "n_estimators": stats.randint(300, 700),
    }


def wide_search_space() -> dict[str, Any]:
    """The paper's space widened to hold forests it cannot reach (issue 20 item 8).

    With the paper's 8 features ``sqrt``/``log2``/0.3 leave 2–3 candidates per split and
    leaves of at least 5 rows; a forest fixed in advance with ``max_features`` 0.5 and leaves
    of 3 scored higher (docs/REPRODUCTION.md). This space contains the paper's and that forest:
    deeper or unlimited trees, 30–100 % of the features per split, leaves from 1 row, splits
    from 2 and bootstrap samples of 60–100 % of the rows.
    """
    return paper_search_space() | {
        "max_depth": [6, 8, 10, 12, 16, None],
        "max_features": ["sqrt", "log2", 0.3, 0.5, 0.7, 1.0],
        "max_samples": stats.uniform(0.6, 0.4),
        "min_samples_leaf": stats.randint(1, 25),
        "min_samples_split": stats.randint(2, 50),
    }


def extra_trees_search_space() -> dict[str, Any]:
    """The space of extremely randomized trees (``ExtraTreesRegressor``), as wide as the wide one.

    Split thresholds are drawn at random and every tree sees all the rows (no bootstrap), which
    smooths the piecewise-constant fit of a few hundred rows; a fixed forest of them scored
    above the wide search's choice on the crystal sums (docs/REPRODUCTION.md).
    """
    return {
        "bootstrap": [False],
        "criterion": ["squared_error"],
        "max_depth": [8, 10, 12, 16, None],
        "max_features": ["sqrt", 0.3, 0.5, 0.7, 1.0],
        "min_samples_leaf": stats.randint(1, 11),
        "min_samples_split": stats.randint(2, 21),
        "n_estimators": stats.randint(300, 700),
    }


SEARCH_SPACES: dict[SearchSpace, Callable[[], dict[str, Any]]] = {
    SearchSpace.PAPER: paper_search_space,
    SearchSpace.WIDE: wide_search_space,
    SearchSpace.EXTRA_TREES: extra_trees_search_space,
}
"""The named spaces of the forest's search."""

FORESTS: dict[SearchSpace, type[Forest]] = {
    SearchSpace.PAPER: RandomForestRegressor,
    SearchSpace.WIDE: RandomForestRegressor,
    SearchSpace.EXTRA_TREES: ExtraTreesRegressor,
}
"""The ensemble each named space is searched for."""


def forest_of(search_space: SearchSpace | str | Mapping[str, Any]) -> type[Forest]:
    """The ensemble a space is searched for (a given mapping: the random forest)."""
    if isinstance(search_space, Mapping):
        return RandomForestRegressor
    return FORESTS[SearchSpace(search_space)]


def search_space_of(search_space: SearchSpace | str | Mapping[str, Any]) -> dict[str, Any]:
    """The space a model searches: a named one, or a given mapping of candidate values (tests).

    Args:
        search_space: A :class:`~vtc_fw.settings.SearchSpace` (or its name) or a mapping.
    """
    if isinstance(search_space, Mapping):
        return dict(search_space)
    return SEARCH_SPACES[SearchSpace(search_space)]()


PAPER_METRICS: dict[str, float] = {
    "r2_train": 0.8526,
    "r2_test": 0.7935,
    "mae_train": 0.0256,
    "mae_test": 0.0298,
}
"""The paper's Table 3 (Materials Project, ~11,500 records), printed beside ours."""
PAPER_BEST_PARAMS: dict[str, Any] = {
    "bootstrap": True,
    "criterion": "squared_error",
    "max_depth": 12,
    "max_features": 0.3,
    "max_samples": 0.6676,
    "min_samples_leaf": 6,
    "min_samples_split": 11,
    "n_estimators": 587,
}
"""The paper's best configuration (Table 2), for reference and for quick fits."""


class ElementScore(BaseModel):
    """Scores restricted to one absorber element (test set, or out-of-fold on training)."""

    element: str = Field(description="Absorbing 3d element.")
    n_test: int = Field(
        description="Records of this element scored (training records for out-of-fold scores)."
    )
    r2: float | None = Field(description="R² on them (null below 2 records).")
    mae: float = Field(description="Mean absolute error of SAMS on them.")


class BalancedResult(BaseModel):
    """Scores of the balanced variant (equal records per element, same hyperparameters)."""

    n_per_element: int = Field(description="Records drawn per element.")
    elements: list[str] = Field(description="Elements included.")
    r2_train: float = Field(description="R² on the balanced training split.")
    r2_test: float = Field(description="R² on the balanced test split.")
    mae_train: float = Field(description="MAE on the balanced training split.")
    mae_test: float = Field(description="MAE on the balanced test split.")
    per_element: list[ElementScore] = Field(description="Balanced test scores per element.")


class ProtocolMetrics(BaseModel):
    """Every figure of one run of the paper's protocol: the part a model document stores."""

    exponent: int | None = Field(description="Feature exponent n of QAMS, DAMS, IAMS.")
    feature_columns: list[str] = Field(description="Input columns, in the estimator's order.")
    feature_set: FeatureSet = Field(
        default=FeatureSet.PAPER,
        description="Named set of those columns: paper (the paper's 8) or crystal (the 8 with "
        "the crystal sums); models trained before the choice existed are paper.",
    )
    exponent_sweep: dict[str, Any] | None = Field(
        default=None, description="r of QAMS/IAMS/DAMS with SAMS per exponent (training rows)."
    )
    best_params: dict[str, Any] = Field(description="Hyperparameters chosen by the search.")
    seed: int = Field(description="Seed of split, folds, draws, forests and permutations.")
    n_iter: int = Field(description="Hyperparameter draws of the randomized search.")
    cv: int = Field(description="Cross-validation folds.")
    cv_best_r2: float = Field(description="Mean CV R² of the chosen configuration.")
    cv_results: list[dict[str, Any]] = Field(description="Every draw: params, mean/std CV R².")
    r2_train: float = Field(description="R² of the refit on the training split.")
    r2_test: float = Field(description="R² on the held-out 20 % test split.")
    mae_train: float = Field(description="MAE of SAMS on the training split.")
    mae_test: float = Field(description="MAE of SAMS on the test split.")
    importances: dict[str, float] = Field(
        description=(
            "Permutation importance in units of a uniform-noise feature's (its mean, or its std"
            " when larger; 1 = noise)."
        )
    )
    raw_importances: dict[str, dict[str, float]] = Field(
        description="Mean and std of the test-MSE increase on permutation, noise included."
    )
    per_element: list[ElementScore] = Field(description="Test-set scores per element.")
    per_element_oof: list[ElementScore] = Field(
        default_factory=list,
        description=(
            "Scores per element of the cv-fold out-of-fold predictions on the training records "
            "with the chosen hyperparameters; the hyperparameters were chosen on these same "
            "folds, so slightly optimistic (empty in models trained before it existed)."
        ),
    )
    r2_oof: float | None = Field(
        default=None, description="R² of those out-of-fold predictions on all training records."
    )
    mae_oof: float | None = Field(
        default=None, description="MAE of those out-of-fold predictions on all training records."
    )
    balanced: BalancedResult | None = Field(description="Balanced-per-element variant.")
    train_keys: list[str] = Field(description="Record keys of the training split.")
    test_keys: list[str] = Field(description="Record keys of the test split.")
    test_elements: list[str] = Field(description="Element of each test record.")
    test_true: list[float] = Field(description="True SAMS of each test record.")
    test_predicted: list[float] = Field(description="Predicted SAMS of each test record.")
    n_cheap: int = Field(
        default=0,
        description="Calibrated cheap labels trained on beside the training split (0: paper "
        "labels only, as every model trained before they could be).",
    )
    cheap_keys: list[str] = Field(
        default_factory=list, description="Record keys of those cheap labels."
    )
    calibration_method: str | None = Field(
        default=None,
        description="Calibration of the cheap labels (vtc_fw.ml.calibration), fit on the "
        "training split's paired records only; null without cheap labels.",
    )


class ProtocolResult(ProtocolMetrics):
    """A protocol run: its :class:`ProtocolMetrics` and what is not stored in a document.

    Attributes:
        estimator: The refit random forest (inputs: ``feature_columns``, in that order).
        sweep: The exponent sweep, or None when the table had no sweep columns
            (``exponent_sweep`` is its JSON form).
        n_rows: Rows received.
        excluded: Rows left out, by reason.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    estimator: Forest = Field(exclude=True)
    sweep: ExponentSweep | None = Field(exclude=True)
    n_rows: int = Field(exclude=True)
    excluded: dict[str, int] = Field(default_factory=dict, exclude=True)

    def metrics(self) -> ProtocolMetrics:
        """The stored part: every field of :class:`ProtocolMetrics`."""
        return ProtocolMetrics.model_validate(self.model_dump())


def train_paper_protocol(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    seed: int,
    n_iter: int = 100,
    cv: int = 5,
    n_jobs: int | None = None,
    search_space: Mapping[str, Any] | None = None,
    forest: type[Forest] = RandomForestRegressor,
    permutation_repeats: int = PERMUTATION_REPEATS,
    balanced: bool = True,
    feature_set: FeatureSet = FeatureSet.PAPER,
    cheap: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    calibration: str = DEFAULT_METHOD,
) -> ProtocolResult:
    """Train the paper's random forest on a feature table with a SAMS target.

    Args:
        table: One row per record (see the module docstring for the columns).
        seed: Seeds the split, the CV folds, the search draws, the forests, the noise
            feature and the permutations: equal seeds and tables give equal results.
        n_iter: Hyperparameter draws of the randomized search (paper: 100).
        cv: Cross-validation folds (paper: 5).
        n_jobs: Processes for the search, forests and permutations (None: 1).
        search_space: Override of :func:`paper_search_space` (tests use a cheap one).
        forest: The ensemble searched, refit and scored (:func:`forest_of` the space).
        permutation_repeats: Permutations per feature for the importances.
        balanced: Also run the balanced-per-element variant.
        feature_set: The model's inputs (:data:`~vtc_fw.ml.table.FEATURE_SET_COLUMNS`).
        cheap: Rows of another fidelity's labels, one per record: ``key``, the features (and
            sweep columns), ``in_domain`` and ``sams_cheap``, that fidelity's value of the
            target. Rows of records in the training or test split are not trained on (the
            training split's give the pairs the calibration is fit on); the others join the
            training rows with their calibrated label. None or empty: paper labels only, and
            the result is that of a call without them.
        calibration: Method of that calibration (:data:`vtc_fw.ml.calibration.METHODS`).

    Returns:
        The fitted estimator and every figure of the protocol.

    Raises:
        ValueError: If fewer than ``2 * cv`` rows remain after exclusions, a usable row
            lacks a column of the feature set (feature documents older than the crystal sums),
            or cheap rows remain but no training record has a cheap label to calibrate on.
    """
    split = split_for_training(table, seed=seed, cv=cv)
    train, test, sweep = split.train, split.test, split.sweep
    columns = list(FEATURE_SET_COLUMNS[FeatureSet(feature_set)])
    require_columns(pd.concat([train, test]), columns, FeatureSet(feature_set))
    rows, cheap_excluded = training_rows_of(split, cheap, columns, calibration, seed)
    folds = validation_folds(rows, cv_folds(cv, seed))
    search = _search(
        forest(random_state=seed),
        rows[columns],
        rows["sams"],
        seed,
        n_iter,
        folds,
        n_jobs,
        search_space,
    )
    estimator = search.best_estimator_
    train_pred = estimator.predict(train[columns].to_numpy())
    test_pred = estimator.predict(test[columns].to_numpy())
    oof_pred = out_of_fold_predictions(
        search.best_params_, rows, folds, seed=seed, n_jobs=n_jobs, columns=columns, forest=forest
    )
    cheap_keys = [str(k) for k in rows.loc[rows[FIDELITY_COLUMN] != PAPER, "key"]]
    raw = noise_permutation_importances(
        search.best_params_,
        rows,
        test,
        seed=seed,
        repeats=permutation_repeats,
        n_jobs=n_jobs,
        columns=columns,
        forest=forest,
    )
    return ProtocolResult(
        estimator=estimator,
        feature_columns=columns,
        feature_set=FeatureSet(feature_set),
        exponent=_exponent_of(train, sweep),
        sweep=sweep,
        exponent_sweep=sweep.as_dict() if sweep else None,
        best_params=plain_params(search.best_params_),
        cv_best_r2=float(search.best_score_),
        cv_results=_cv_table(search.cv_results_),
        r2_train=float(r2_score(train["sams"], train_pred)),
        r2_test=float(r2_score(test["sams"], test_pred)),
        mae_train=float(mean_absolute_error(train["sams"], train_pred)),
        mae_test=float(mean_absolute_error(test["sams"], test_pred)),
        importances=normalize_by_noise(raw),
        raw_importances=raw,
        per_element=per_element_scores(test["element"], test["sams"], test_pred),
        per_element_oof=per_element_scores(train["element"], train["sams"], oof_pred),
        r2_oof=float(r2_score(train["sams"], oof_pred)),
        mae_oof=float(mean_absolute_error(train["sams"], oof_pred)),
        balanced=(
            balanced_variant(
                usable_rows(split),
                search.best_params_,
                seed=seed,
                n_jobs=n_jobs,
                columns=columns,
                forest=forest,
            )
            if balanced
            else None
        ),
        train_keys=[str(k) for k in train["key"]],
        test_keys=[str(k) for k in test["key"]],
        test_elements=[str(e) for e in test["element"]],
        test_true=[float(v) for v in test["sams"]],
        test_predicted=[float(v) for v in test_pred],
        n_cheap=len(cheap_keys),
        cheap_keys=cheap_keys,
        calibration_method=calibration if cheap_keys else None,
        n_rows=split.n_rows,
        excluded={**split.excluded, **cheap_excluded},
        seed=seed,
        n_iter=n_iter,
        cv=cv,
    )


def training_rows_of(
    split: TrainingSplit,
    cheap: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
    columns: Sequence[str],
    calibration: str,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows the forest is fitted on: the training split, then the calibrated cheap rows.

    Returns:
        The rows (:data:`~vtc_fw.ml.multi_fidelity.FIDELITY_COLUMN` set) and the count of
        cheap rows left out (none without cheap rows).
    """
    if cheap is None or len(cheap) == 0:
        return split.train.assign(**{FIDELITY_COLUMN: PAPER}), {}
    return with_cheap_rows(
        split.train,
        set(split.test["key"]),
        cheap,
        exponent=split.sweep.chosen_exponent if split.sweep else None,
        columns=columns,
        method=calibration,
        seed=seed,
    )


def require_columns(rows: pd.DataFrame, columns: Sequence[str], feature_set: FeatureSet) -> None:
    """Refuse rows that lack a value of a feature set's column.

    The paper's columns were checked by the exclusions; the crystal sums come from sweep columns
    that feature documents built before them lack.

    Raises:
        ValueError: A column is absent or null on some row.
    """
    lacking = [c for c in columns if c not in rows or rows[c].isna().any()]
    if lacking:
        raise ValueError(
            f"feature set {feature_set.value} needs {', '.join(lacking)} on every usable row "
            "(feature documents built before them: run the feature builder again)"
        )


def _exponent_of(train: pd.DataFrame, sweep: ExponentSweep | None) -> int | None:
    if sweep is not None:
        return sweep.chosen_exponent
    if "exponent" in train and train["exponent"].notna().any():
        return int(train["exponent"].dropna().iloc[0])
    return None


def _search(
    forest: Forest,
    features: pd.DataFrame,
    target: pd.Series,
    seed: int,
    n_iter: int,
    cv: Folds,
    n_jobs: int | None,
    search_space: Mapping[str, Any] | None,
) -> RandomizedSearchCV:
    space = search_space or paper_search_space()
    return randomized_search(
        forest, space, features, target, seed=seed, n_iter=n_iter, cv=cv, n_jobs=n_jobs
    )


def randomized_search(
    estimator: BaseEstimator,
    space: Mapping[str, Any],
    features: pd.DataFrame,
    target: pd.Series,
    *,
    seed: int,
    n_iter: int,
    cv: Folds,
    n_jobs: int | None = None,
) -> RandomizedSearchCV:
    """The paper's search for any estimator: ``n_iter`` draws, R², shuffled seeded K-fold, refit.

    ``cv`` is a number of folds (:func:`cv_folds`) or the folds themselves, as (training,
    validation) row indices (:func:`~vtc_fw.ml.multi_fidelity.validation_folds`).

    Returns:
        The fitted search (``best_estimator_`` refitted on all the given rows).
    """
    search = RandomizedSearchCV(
        clone(estimator),
        param_distributions=dict(space),
        n_iter=n_iter,
        cv=cv_folds(cv, seed) if isinstance(cv, int) else list(cv),
        scoring="r2",
        refit=True,
        random_state=seed,
        n_jobs=n_jobs,
    )
    return search.fit(features.to_numpy(), np.asarray(target, dtype=float))


def cv_folds(cv: int, seed: int) -> KFold:
    """The shuffled, seeded K-fold of the search and of the out-of-fold predictions."""
    return KFold(n_splits=cv, shuffle=True, random_state=seed)


def out_of_fold_predictions(
    params: Mapping[str, Any],
    rows: pd.DataFrame,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int,
    n_jobs: int | None = None,
    columns: Sequence[str] = FEATURE_COLUMNS,
    forest: type[Forest] = RandomForestRegressor,
) -> np.ndarray:
    """Predictions for every paper training row by a forest fitted on the other folds.

    The folds are those of the search (:func:`~vtc_fw.ml.multi_fidelity.validation_folds`,
    cheap rows in every training fold), and ``params`` were chosen on them, so scores of these
    predictions are slightly optimistic. ``columns`` are the inputs.

    Returns:
        One prediction per paper row of ``rows``, in its order.

    Raises:
        ValueError: A fold validates on a cheap row.
    """
    features, target = rows[list(columns)].to_numpy(), rows["sams"].to_numpy()
    predicted = np.full(len(rows), np.nan)
    for fit, validate in folds:
        validation = held_out_paper(rows, validate)
        fitted = forest(**params, random_state=seed, n_jobs=n_jobs).fit(features[fit], target[fit])
        predicted[validate] = fitted.predict(validation[list(columns)].to_numpy())
    return predicted[(rows[FIDELITY_COLUMN] == PAPER).to_numpy()]


def noise_permutation_importances(
    params: Mapping[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    seed: int,
    repeats: int = PERMUTATION_REPEATS,
    n_jobs: int | None = None,
    columns: Sequence[str] = FEATURE_COLUMNS,
    forest: type[Forest] = RandomForestRegressor,
) -> dict[str, dict[str, float]]:
    """Permutation importances (increase of the test MSE) with a uniform-noise reference.

    A forest with the chosen hyperparameters is fitted on the training features (``columns``)
    plus a column of U(0, 1) noise; each column of the test set is permuted ``repeats`` times.
    The production estimator is not this one, so its predictions never depend on noise.
    ``train`` holds the rows the model was fitted on (cheap ones included), ``test`` held-out
    paper rows.

    Returns:
        ``{feature: {"mean": ..., "std": ...}}`` including :data:`NOISE_FEATURE`.
    """
    rng = np.random.default_rng(seed)
    inputs = list(columns)
    x_train = np.column_stack([train[inputs], rng.uniform(size=len(train))])
    x_test = np.column_stack([test[inputs], rng.uniform(size=len(test))])
    fitted = forest(**params, random_state=seed, n_jobs=n_jobs)
    fitted.fit(x_train, train["sams"].to_numpy())
    result = permutation_importance(
        fitted,
        x_test,
        test["sams"].to_numpy(),
        scoring="neg_mean_squared_error",
        n_repeats=repeats,
        random_state=seed,
        n_jobs=n_jobs,
    )
    return {
        name: {"mean": float(mean), "std": float(std)}
        for name, mean, std in zip(
            [*inputs, NOISE_FEATURE], result.importances_mean, result.importances_std, strict=True
        )
    }


def normalize_by_noise(raw: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each feature's mean importance in units of the noise feature's (paper eq. 15).

    The unit is the noise feature's mean importance, as in the paper, or its standard deviation
    over the repeats when that is larger: on a few hundred records the noise feature's mean is
    often zero or negative (permuting it does not hurt), and the spread is then the level a
    useless feature reaches by chance. A feature at 1 is no more important than noise. The raw
    values are kept alongside for inspection.
    """
    noise = raw[NOISE_FEATURE]
    unit = max(noise["mean"], noise.get("std", 0.0))
    if unit <= 0:
        unit = 1.0
    return {name: float(v["mean"] / unit) for name, v in raw.items() if name != NOISE_FEATURE}


def per_element_scores(
    elements: pd.Series | Sequence[str], true: npt.ArrayLike, predicted: npt.ArrayLike
) -> list[ElementScore]:
    """R² and MAE of the predictions restricted to each element (R² None below 2 rows)."""
    labels = np.asarray(elements)
    y_true, y_pred = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    scores = []
    for element in sorted(set(labels)):
        mask = labels == element
        r2 = float(r2_score(y_true[mask], y_pred[mask])) if mask.sum() >= 2 else None
        mae = float(mean_absolute_error(y_true[mask], y_pred[mask]))
        scores.append(ElementScore(element=str(element), n_test=int(mask.sum()), r2=r2, mae=mae))
    return scores


def balanced_variant(
    usable: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    seed: int,
    n_jobs: int | None = None,
    min_per_element: int = 10,
    columns: Sequence[str] = FEATURE_COLUMNS,
    forest: type[Forest] = RandomForestRegressor,
) -> BalancedResult | None:
    """Refit with the same hyperparameters on an equal number of records per element.

    Every element with at least ``min_per_element`` rows contributes as many rows as the
    smallest of them (drawn with ``seed``); the 80/20 split is stratified by element.
    The exponent is that of the main run (columns already at the chosen n); ``columns`` are
    the inputs.

    Returns:
        The balanced scores, or None when fewer than two elements qualify.
    """
    counts = usable["element"].value_counts()
    counts = counts[counts >= min_per_element]
    if len(counts) < 2:
        return None
    n_per_element = int(counts.min())
    sample = pd.concat(
        usable[usable["element"] == element].sample(n=n_per_element, random_state=seed)
        for element in sorted(counts.index)
    )
    train, test = stratified_split(sample, seed=seed)
    columns = list(columns)
    fitted = forest(**params, random_state=seed, n_jobs=n_jobs)
    fitted.fit(train[columns].to_numpy(), train["sams"].to_numpy())
    train_pred = fitted.predict(train[columns].to_numpy())
    test_pred = fitted.predict(test[columns].to_numpy())
    return BalancedResult(
        n_per_element=n_per_element,
        elements=sorted(str(e) for e in counts.index),
        r2_train=float(r2_score(train["sams"], train_pred)),
        r2_test=float(r2_score(test["sams"], test_pred)),
        mae_train=float(mean_absolute_error(train["sams"], train_pred)),
        mae_test=float(mean_absolute_error(test["sams"], test_pred)),
        per_element=per_element_scores(test["element"], test["sams"], test_pred),
    )


def tree_predictions(estimator: Forest, features: np.ndarray) -> np.ndarray:
    """Predictions of every tree of a fitted forest, shape (n_trees, n_rows).

    Their mean is the forest's prediction; their standard deviation is the spread used as
    the model's uncertainty in :mod:`vtc_fw.builders.predict` and for active learning.
    The trees' low-level ``tree_.predict`` is called on one float32 copy of the input
    (what ``DecisionTreeRegressor.predict`` does after validating it, once per tree).
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    return np.stack([tree.tree_.predict(features)[:, 0] for tree in estimator.estimators_])


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON-ready Python scalars."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def _cv_table(cv_results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "params": plain_params(params),
            "mean_r2": float(mean),
            "std_r2": float(std),
            "rank": int(rank),
        }
        for params, mean, std, rank in zip(
            cv_results["params"],
            cv_results["mean_test_score"],
            cv_results["std_test_score"],
            cv_results["rank_test_score"],
            strict=True,
        )
    ]
