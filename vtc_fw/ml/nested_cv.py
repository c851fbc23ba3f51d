"""Nested cross-validation of model variants (pure, no database): scores the search did not see.

The paired comparison (:mod:`vtc_fw.ml.comparison`) chooses each variant's hyperparameters once,
on the training rows of one split, and then scores that choice on folds of all usable rows,
the chosen rows included: its R² is optimistic and the choice of the default model would rest
on it. Here every step that learns from data runs again inside each outer fold:

* outer loop: ``outer_repeats`` × ``outer_folds``-fold (``RepeatedKFold``, seeded) over the
  usable rows (:func:`~vtc_fw.ml.table.select_trainable`) in the order of their keys, the same
  folds for every variant;
* inside each outer training set: the exponent sweep (:func:`~vtc_fw.ml.table.sweep_exponents`)
  and, per variant, the protocol's randomized search (``n_iter`` draws, ``inner_cv``-fold R²,
  refit on the whole outer training set);
* the refit is scored (R²) on the outer test fold, which neither the sweep nor the search saw.

The per-fold outer R² of each variant are paired with those of ``paper`` and the difference is
tested with the Nadeau–Bengio corrected t-test (:func:`~vtc_fw.ml.comparison.paired_score`).

The full protocol takes hours on a small machine, so a run can be spread over many: ``done``
takes the (fold, variant) results of earlier runs, ``only_folds`` limits what this run computes,
and ``on_variant`` receives each fold after every variant it adds. :func:`run_identity` names
what those results are valid for (settings, search spaces and the usable rows in their order).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
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
    rebased,
    versus_markdown,
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
        number: Position of the fold in the splitter's order, from 1.
        exponent: Feature exponent chosen by the sweep on the outer training rows.
        n_train, n_test: Rows of the outer training set and of the test fold.
        outer_r2: Per variant, R² of the refit on the test fold.
        inner_r2: Per variant, the search's own CV R² of its chosen draw (optimistic).
        best_params: Per variant, the chosen hyperparameters.
    """

    number: int
    exponent: int | None
    n_train: int
    n_test: int
    outer_r2: dict[str, float] = field(default_factory=dict)
    inner_r2: dict[str, float] = field(default_factory=dict)
    best_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OuterFold:
        """The fold of :func:`dataclasses.asdict` output (e.g. read back from JSON)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class NestedCvResult:
    """Outer-fold scores of every variant and their paired test against ``paper``.

    Attributes:
        variants: Variant names (keys of :data:`vtc_fw.ml.comparison.VARIANTS`), ``paper`` first.
        scores: One :class:`PairedScore` per variant over the complete outer folds (none
            while fewer than two are complete).
        folds: The complete outer folds (every variant scored), in the splitter's order; all
            ``outer_repeats`` × ``outer_folds`` of them once every run of a spread one is in.
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

    @property
    def complete(self) -> bool:
        """Whether every planned outer fold is in."""
        return len(self.folds) == self.outer_folds * self.outer_repeats

    def inner_r2_mean(self, name: str) -> float:
        """Mean over the outer folds of the search's own CV R² of ``name``'s chosen draw."""
        return float(np.mean([fold.inner_r2[name] for fold in self.folds]))

    def versus(self, baseline: str) -> list[PairedScore]:
        """The outer scores with their paired differences to ``baseline`` instead of ``paper``.

        Raises:
            KeyError: ``baseline`` is not among the scores (or fewer than two folds are in).
        """
        return rebased(self.scores, baseline, cv=self.outer_folds)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("scores", "folds")},
            "scores": [asdict(score) for score in self.scores],
            "folds": [asdict(fold) for fold in self.folds],
            "inner_r2_mean": (
                {name: self.inner_r2_mean(name) for name in self.variants} if self.folds else {}
            ),
            "complete": self.complete,
        }

    def to_markdown(self, baseline: str | None = None) -> str:
        """A caption and the table of outer R², inner R² and the paired difference.

        Args:
            baseline: Also tabulate every variant's paired outer difference to this variant.
        """
        exponents = sorted({fold.exponent for fold in self.folds if fold.exponent is not None})
        planned = self.outer_folds * self.outer_repeats
        progress = "" if self.complete else f", {len(self.folds)} of its {planned} folds so far"
        caption = (
            f"Nested CV over {self.n_usable} usable rows: outer {self.outer_repeats} × "
            f"{self.outer_folds}-fold (seed {self.seed}{progress}); inside each outer training "
            f"set the exponent sweep (chose n = {', '.join(map(str, exponents)) or '–'}) and the "
            f"randomized search ({self.n_iter} draws, {self.inner_cv}-fold). Outer R²: the refit "
            "on the test fold, unseen by sweep and search; inner R²: the search's own CV R² of "
            "its chosen draw (optimistic). Δ vs paper: paired outer difference, Nadeau–Bengio "
            "corrected se and t-test p."
        )
        if not self.scores:
            return f"{caption}\n\nFewer than two outer folds are complete: no scores yet."
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
        versus = [] if baseline is None else versus_markdown(self.versus(baseline), baseline)
        return "\n".join([caption, "", *lines, *versus])


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
    done: Sequence[OuterFold] = (),
    only_folds: Collection[int] | None = None,
    on_variant: Callable[[OuterFold], None] | None = None,
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
        done: Folds of earlier runs of the same :func:`run_identity`; their variants are not
            searched again.
        only_folds: Fold numbers (from 1) this run may compute (None: all); the others count
            only as far as ``done`` holds them.
        on_variant: Called with a copy of the fold after every variant this run adds to it
            (to save it).

    Returns:
        The outer scores over the complete folds, their paired test against ``paper`` and
        every complete fold's choices.

    Raises:
        ValueError: An unknown variant, too few rows for the folds, a table that lacks a
            variant's columns, or a done fold whose exponent this table's sweep does not
            choose (other rows).
    """
    names = ["paper", *(name for name in variants if name != "paper")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    spaces = _spaces(search_spaces)
    usable, excluded = usable_rows(table)
    if len(usable) < outer_folds * inner_cv:
        raise ValueError(f"{len(usable)} usable rows, need {outer_folds * inner_cv} for the folds")
    earlier = {fold.number: fold for fold in done}
    splitter = RepeatedKFold(n_splits=outer_folds, n_repeats=outer_repeats, random_state=seed)
    folds = []
    for number, (train_index, test_index) in enumerate(splitter.split(usable), start=1):
        fold = earlier.get(number)
        if only_folds is None or number in only_folds:
            fold = outer_fold(
                names,
                usable.iloc[train_index],
                usable.iloc[test_index],
                spaces=spaces,
                seed=seed,
                n_iter=n_iter,
                inner_cv=inner_cv,
                n_jobs=n_jobs,
                number=number,
                earlier=fold,
                on_variant=on_variant,
            )
            logger.info("outer fold %d: %s", number, _format_fold(fold))
        if fold is not None and all(name in fold.outer_r2 for name in names):
            folds.append(_restricted(fold, names))
    r2 = {name: np.array([fold.outer_r2[name] for fold in folds]) for name in names}
    scores = (
        [paired_score(name, r2[name], r2["paper"], cv=outer_folds) for name in names]
        if len(folds) >= 2
        else []
    )
    return NestedCvResult(
        variants=names,
        scores=scores,
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
    number: int = 1,
    earlier: OuterFold | None = None,
    on_variant: Callable[[OuterFold], None] | None = None,
) -> OuterFold:
    """Sweep and search on ``train`` for every variant, then score each refit on ``test``.

    Args:
        names: The variants.
        train: The outer training rows (sweep and search).
        test: The outer test rows (the score).
        spaces: Search space of each model family.
        seed: As for :func:`nested_cv`.
        n_iter: Draws of the search.
        inner_cv: Folds of the search.
        n_jobs: Processes of the search.
        number: The fold's number.
        earlier: This fold from an earlier run: its variants are kept, not searched again.
        on_variant: Called with the fold after every variant added to it.

    Raises:
        ValueError: The rows lack a variant's columns, or ``earlier`` chose another exponent
            or had other row counts (it was computed on other rows).
    """
    sweep = sweep_exponents(train)
    exponent = None if sweep is None else sweep.chosen_exponent
    if sweep is not None:
        train = at_exponent(train, sweep.chosen_exponent)
        test = at_exponent(test, sweep.chosen_exponent)
    fold = OuterFold(number, exponent, len(train), len(test))
    if earlier is not None:
        if (earlier.exponent, earlier.n_train, earlier.n_test) != (
            exponent,
            fold.n_train,
            fold.n_test,
        ):
            raise ValueError(
                f"outer fold {number} of an earlier run chose n = {earlier.exponent} on "
                f"{earlier.n_train} + {earlier.n_test} rows, this table n = {exponent} on "
                f"{fold.n_train} + {fold.n_test}: not the same rows"
            )
        fold = _restricted(earlier, list(earlier.outer_r2))
    for name in names:
        if name in fold.outer_r2:
            continue
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
        fold.outer_r2[name] = float(r2_score(test["sams"], predicted))
        fold.inner_r2[name] = float(search.best_score_)
        fold.best_params[name] = plain_params(search.best_params_)
        if on_variant is not None:
            on_variant(_restricted(fold, list(fold.outer_r2)))
    return fold


def run_identity(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    seed: int,
    outer_folds: int,
    outer_repeats: int,
    n_iter: int,
    inner_cv: int,
    search_spaces: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the folds of a run are valid for: results of equal identities may be combined.

    The settings, every family's search space (a distribution by its name and parameters) and
    a digest of the usable rows in their order (keys, target and every numeric column): other
    rows or other values are another run.
    """
    usable, _ = usable_rows(table)
    columns = ["key", *sorted(c for c in usable.columns if usable[c].dtype.kind in "fiub")]
    rows = usable[[c for c in columns if c in usable.columns]].to_csv(index=False)
    return {
        "seed": seed,
        "outer_folds": outer_folds,
        "outer_repeats": outer_repeats,
        "n_iter": n_iter,
        "inner_cv": inner_cv,
        "search_spaces": {
            family: {name: _describe(value) for name, value in sorted(space.items())}
            for family, space in sorted(_spaces(search_spaces).items())
        },
        "n_usable": len(usable),
        "rows_sha256": hashlib.sha256(rows.encode()).hexdigest(),
    }


def usable_rows(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The trainable rows in the order of their keys, and the excluded counts by reason.

    The outer folds are positions in this order, so sorting makes them independent of the
    order in which a database returns its documents (a rebuilt one may return another).
    """
    usable, excluded = select_trainable(with_swept_defaults(as_table(table)))
    if "key" in usable:
        usable = usable.sort_values("key", kind="stable").reset_index(drop=True)
    return usable, excluded


def _spaces(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {**default_search_spaces(), **{k: dict(v) for k, v in (overrides or {}).items()}}


def _describe(value: Any) -> Any:
    """A search-space entry as JSON: lists as they are, a frozen scipy distribution by name."""
    if hasattr(value, "dist") and hasattr(value, "args"):
        return {"distribution": value.dist.name, "args": list(value.args), "kwds": value.kwds}
    return list(value)


def _restricted(fold: OuterFold, names: Sequence[str]) -> OuterFold:
    """A copy of the fold with only ``names``' scores (a run may have scored more variants)."""
    return replace(
        fold,
        outer_r2={name: fold.outer_r2[name] for name in names},
        inner_r2={name: fold.inner_r2[name] for name in names},
        best_params={name: fold.best_params[name] for name in names},
    )


def _format_fold(fold: OuterFold) -> str:
    scores = ", ".join(
        f"{name} {fold.outer_r2[name]:.3f} (inner {fold.inner_r2[name]:.3f})"
        for name in fold.outer_r2
    )
    return f"n = {fold.exponent}, outer R² {scores}"
