"""Nested cross-validation of model variants (pure, no database): scores the search did not see.

The paired comparison (:mod:`vtc_fw.ml.comparison`) chooses each variant's hyperparameters once,
on the training rows of one split, and then scores that choice on folds of all usable rows,
the chosen rows included: its R² is optimistic and the choice of the default model would rest
on it. Here every step that learns from data runs again inside each outer fold:

* outer loop: ``outer_repeats`` × ``outer_folds``-fold (``RepeatedKFold``, seeded) over the
  usable rows (:func:`~vtc_fw.ml.table.select_trainable`), the same folds for every variant;
* inside each outer training set: the exponent sweep (:func:`~vtc_fw.ml.table.sweep_exponents`)
  and, per variant, the protocol's randomized search (``n_iter`` draws, ``inner_cv``-fold R²,
  refit on the whole outer training set);
* the refit is scored (R²) on the outer test fold, which neither the sweep nor the search saw.

The per-fold outer R² of each variant are paired with those of ``paper`` and the difference is
tested with the Nadeau–Bengio corrected t-test (:func:`~vtc_fw.ml.comparison.paired_score`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score
from sklearn.model_selection import RepeatedKFold
from threadpoolctl import threadpool_limits

from vtc_fw.ml.comparison import (
    VARIANTS,
    PairedScore,
    default_search_spaces,
    feature_columns,
    make_estimator,
    paired_score,
)
from vtc_fw.ml.protocol import plain_params, randomized_search
from vtc_fw.ml.table import (
    as_table,
    at_exponent,
    select_trainable,
    sweep_exponents,
    with_swept_defaults,
)

logger = logging.getLogger(__name__)

NESTED_VARIANTS: tuple[str, ...] = ("paper", "rf_crystal", "rf_crystal_wide")
"""The variants behind the default model's choice: the paper's forest on the paper's features
and on the crystal sums (:class:`vtc_fw.settings.FeatureSet`), and on the crystal sums searched
over the wide space (:data:`vtc_fw.settings.DEFAULT_SEARCH_SPACE`)."""


@dataclass
class OuterFold:
    """One outer fold: what was chosen on its training rows and how it scored on its test rows.

    Attributes:
        exponent: Feature exponent chosen by the sweep on the outer training rows.
        n_train, n_test: Rows of the outer training set and of the test fold.
        outer_r2: Per variant, R² of the refit on the test fold.
        inner_r2: Per variant, the search's own CV R² of its chosen draw (optimistic).
        best_params: Per variant, the chosen hyperparameters.
    """

    exponent: int | None
    n_train: int
    n_test: int
    outer_r2: dict[str, float]
    inner_r2: dict[str, float]
    best_params: dict[str, dict[str, Any]]


@dataclass
class NestedCvResult:
    """Outer-fold scores of every variant and their paired test against ``paper``.

    Attributes:
        variants: Variant names (keys of :data:`vtc_fw.ml.comparison.VARIANTS`), ``paper`` first.
        scores: One :class:`PairedScore` per variant over the outer folds.
        folds: The outer folds, in the splitter's order.
        n_usable: Usable rows; excluded: rows left out, by reason.
        seed, n_iter, inner_cv, outer_folds, outer_repeats: The settings.
    """

    variants: list[str]
    scores: list[PairedScore]
    folds: list[OuterFold]
    n_usable: int
    excluded: dict[str, int]
    seed: int
    n_iter: int
    inner_cv: int
    outer_folds: int
    outer_repeats: int

    def inner_r2_mean(self, name: str) -> float:
        """Mean over the outer folds of the search's own CV R² of ``name``'s chosen draw."""
        return float(np.mean([fold.inner_r2[name] for fold in self.folds]))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("scores", "folds")},
            "scores": [asdict(score) for score in self.scores],
            "folds": [asdict(fold) for fold in self.folds],
            "inner_r2_mean": {name: self.inner_r2_mean(name) for name in self.variants},
        }

    def to_markdown(self) -> str:
        """A caption and the table of outer R², inner R² and the paired difference."""
        exponents = sorted({fold.exponent for fold in self.folds if fold.exponent is not None})
        caption = (
            f"Nested CV over {self.n_usable} usable rows: outer {self.outer_repeats} × "
            f"{self.outer_folds}-fold (seed {self.seed}); inside each outer training set the "
            f"exponent sweep (chose n = {', '.join(map(str, exponents)) or '–'}) and the "
            f"randomized search ({self.n_iter} draws, {self.inner_cv}-fold). Outer R²: the refit "
            "on the test fold, unseen by sweep and search; inner R²: the search's own CV R² of "
            "its chosen draw (optimistic). Δ vs paper: paired outer difference, Nadeau–Bengio "
            "corrected se and t-test p."
        )
        lines = [
            "| variant | outer R² mean ± std | inner R² (search's own) | Δ vs paper ± se | p |",
            "|" + " --- |" * 5,
        ]
        for score in self.scores:
            inner = f"{self.inner_r2_mean(score.name):.3f}"
            if score.diff_se is None or score.p_value is None:
                delta, p_value = "0", "–"
            else:
                delta = f"{score.diff_mean:+.3f} ± {score.diff_se:.3f}"
                p_value = f"{score.p_value:.3g}"
            lines.append(
                f"| {score.name} | {score.r2_mean:.3f} ± {score.r2_std:.3f} | {inner} "
                f"| {delta} | {p_value} |"
            )
        return "\n".join([caption, "", *lines])


def nested_cv(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    seed: int,
    variants: Sequence[str] = NESTED_VARIANTS,
    outer_folds: int = 5,
    outer_repeats: int = 2,
    n_iter: int = 100,
    inner_cv: int = 5,
    n_jobs: int | None = None,
    search_spaces: Mapping[str, Mapping[str, Any]] | None = None,
) -> NestedCvResult:
    """Score variants by nested CV: sweep and search inside each outer training set.

    Args:
        table: One row per record, as for :func:`~vtc_fw.ml.protocol.train_paper_protocol`.
        seed: Seeds the outer folds, the inner folds, the search draws and the estimators.
        variants: Keys of :data:`~vtc_fw.ml.comparison.VARIANTS`; ``paper`` is added first
            when missing (the reference of the paired test).
        outer_folds: Folds of each outer repeat.
        outer_repeats: Repeats of the outer K-fold.
        n_iter: Draws of every inner search (the paper: 100).
        inner_cv: Folds of every inner search (the paper: 5).
        n_jobs: Processes of the searches (None: 1).
        search_spaces: Overrides by model family, as in
            :func:`~vtc_fw.ml.comparison.compare_models`.

    Returns:
        The outer scores, their paired test against ``paper`` and every fold's choices.

    Raises:
        ValueError: An unknown variant, too few rows for the folds, or a table that lacks a
            variant's columns.
    """
    names = ["paper", *(name for name in variants if name != "paper")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    spaces = {**default_search_spaces(), **{k: dict(v) for k, v in (search_spaces or {}).items()}}
    usable, excluded = select_trainable(with_swept_defaults(as_table(table)))
    if len(usable) < outer_folds * inner_cv:
        raise ValueError(f"{len(usable)} usable rows, need {outer_folds * inner_cv} for the folds")
    splitter = RepeatedKFold(n_splits=outer_folds, n_repeats=outer_repeats, random_state=seed)
    folds = []
    for number, (train_index, test_index) in enumerate(splitter.split(usable), start=1):
        train, test = usable.iloc[train_index], usable.iloc[test_index]
        fold = outer_fold(
            names,
            train,
            test,
            spaces=spaces,
            seed=seed,
            n_iter=n_iter,
            inner_cv=inner_cv,
            n_jobs=n_jobs,
        )
        folds.append(fold)
        logger.info("outer fold %d: %s", number, _format_fold(folds[-1]))
    r2 = {name: np.array([fold.outer_r2[name] for fold in folds]) for name in names}
    return NestedCvResult(
        variants=names,
        scores=[paired_score(name, r2[name], r2["paper"], cv=outer_folds) for name in names],
        folds=folds,
        n_usable=len(usable),
        excluded=excluded,
        seed=seed,
        n_iter=n_iter,
        inner_cv=inner_cv,
        outer_folds=outer_folds,
        outer_repeats=outer_repeats,
    )


def outer_fold(
    names: Sequence[str],
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    spaces: Mapping[str, Mapping[str, Any]],
    seed: int,
    n_iter: int,
    inner_cv: int,
    n_jobs: int | None = None,
) -> OuterFold:
    """Sweep and search on ``train`` for every variant, then score each refit on ``test``.

    Raises:
        ValueError: The rows lack a variant's columns.
    """
    sweep = sweep_exponents(train)
    if sweep is not None:
        train = at_exponent(train, sweep.chosen_exponent)
        test = at_exponent(test, sweep.chosen_exponent)
    outer_r2, inner_r2, best_params = {}, {}, {}
    for name in names:
        family, feature_set = VARIANTS[name]
        columns = feature_columns(name, pd.concat([train, test]))
        if columns is None:
            raise ValueError(
                f"variant {name} needs the {feature_set} columns; the table lacks them"
            )
        with threadpool_limits(limits=1, user_api="openmp"):
            search = randomized_search(
                make_estimator(family, seed),
                spaces[family],
                train[columns],
                train["sams"],
                seed=seed,
                n_iter=n_iter,
                cv=inner_cv,
                n_jobs=n_jobs,
            )
            predicted = search.best_estimator_.predict(test[columns].to_numpy())
        outer_r2[name] = float(r2_score(test["sams"], predicted))
        inner_r2[name] = float(search.best_score_)
        best_params[name] = plain_params(search.best_params_)
    exponent = None if sweep is None else sweep.chosen_exponent
    return OuterFold(exponent, len(train), len(test), outer_r2, inner_r2, best_params)


def _format_fold(fold: OuterFold) -> str:
    scores = ", ".join(
        f"{name} {fold.outer_r2[name]:.3f} (inner {fold.inner_r2[name]:.3f})"
        for name in fold.outer_r2
    )
    return f"n = {fold.exponent}, outer R² {scores}"
