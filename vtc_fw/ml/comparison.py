"""The paper's random forest against other models on the same split (pure, no database).

:func:`compare_models` reproduces the paper's protocol (:mod:`vtc_fw.ml.protocol`) and then tries to
beat it on the identical data: the same usable rows (:func:`~vtc_fw.ml.protocol.select_trainable`),
the same 80/20 element-stratified split (:func:`~vtc_fw.ml.protocol.stratified_split`), the same
exponent sweep on the training rows and the same randomized search (``n_iter`` draws,
``cv``-fold R², every seed equal to ``seed``). Variants:

* ``paper``: random forest on the 8 paper features at the chosen exponent, paper space
  (its scores equal those of :func:`~vtc_fw.ml.protocol.train_paper_protocol` with the same seed).
* ``rf_all_exponents``: random forest, paper space, on the 5 exponent-free paper features
  plus QAMS/DAMS/IAMS at every exponent of the table (the forest picks its own exponents).
* ``gbr``: ``HistGradientBoostingRegressor`` on the paper features at the chosen exponent,
  searched over :func:`gbr_search_space`.
* ``gbr_all_exponents``: the same model on the extended features of ``rf_all_exponents``.
* ``rf_first_shell``, ``gbr_first_shell``: the paper features at the chosen exponent plus the
  charge-free first-shell descriptors of :mod:`vtc_fw.science.coordination`.
* ``rf_crystal``: the paper's forest with QAMS/DAMS/IAMS replaced by their crystal forms
  (:data:`~vtc_fw.keys.CRYSTAL_SUMS`: the sums of the site-averaged tensors, as the
  target sums the sites' spectra), at the chosen exponent.
* ``gbr_crystal_first_shell``: gradient boosting on the crystal features plus the first shell.
* ``rf_wide``, ``rf_crystal_wide``: the paper's forest on the paper's or the crystal features,
  searched over :func:`~vtc_fw.ml.protocol.wide_search_space` (the paper's space widened to
  hold larger ``max_features``, smaller leaves and deeper trees).
* ``rf_site_fingerprint``: the paper's forest on the field's standard local-environment
  descriptor instead of the paper's features: matminer's CrystalNN site fingerprint of the
  absorber, averaged over its sites (the ``sitefp_*`` columns of
  :mod:`vtc_fw.science.site_fingerprints`, joined into the table by scripts/compare_models.py).
* ``rf_site_fingerprint_paper``: the fingerprint plus the 5 exponent-free paper features
  (density, space group, n_d, EN mean and std): the moment sums replaced by the fingerprint.
* ``rf_crystal_site_fingerprint``: the crystal features plus the fingerprint.
* ``rf_crystal_wide_cheap``, ``et_crystal_cheap``: ``rf_crystal_wide`` and ``et_crystal``
  trained also on the calibrated labels of a cheap FEFF fidelity (``cheap`` rows, records
  without a paper label), as ``TrainBuilder(cheap_preset=...)`` trains: every cheap row of a
  record outside the held-out rows is in every training fold of the search and of the paired
  CV, the calibration is fit on each training side's paired records only, and every score is
  on held-out paper labels (:mod:`vtc_fw.ml.multi_fidelity`). They run only with cheap rows.

The ``*_all_exponents`` variants are left out when the table has no sweep columns, the
``*site_fingerprint*`` ones when it has no fingerprint columns, and every variant beyond
``paper`` when any usable row lacks one of its columns (feature documents built before vtc-fw
computed them, records without a fingerprint).

A test split of a few dozen rows cannot tell such variants apart, so each variant's chosen
configuration is then also scored by paired repeated K-fold over all usable rows
(``cv_repeats`` × ``cv`` folds, the same folds for every variant), with the difference to
``paper`` tested by the Nadeau–Bengio corrected resampled t-test (:class:`PairedScore`);
:meth:`ComparisonResult.versus` tests the differences to any other variant on the same folds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import RegressorMixin
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import RandomizedSearchCV, RepeatedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from vtc_fw.keys import CRYSTAL_SUMS, MOMENT_SUMS, parse_sweep_column, sweep_column
from vtc_fw.ml.calibration import DEFAULT_METHOD
from vtc_fw.ml.multi_fidelity import (
    FIDELITY_COLUMN,
    PAPER,
    held_out_paper,
    validation_folds,
    with_cheap_rows,
)
from vtc_fw.ml.protocol import (
    ElementScore,
    cv_folds,
    extra_trees_search_space,
    paper_search_space,
    per_element_scores,
    plain_params,
    randomized_search,
    wide_search_space,
)
from vtc_fw.ml.table import (
    CRYSTAL_COLUMNS,
    ExponentSweep,
    pearson,
    split_for_training,
    usable_rows,
)
from vtc_fw.science.coordination import FIRST_SHELL_FEATURES
from vtc_fw.science.features import FEATURE_COLUMNS
from vtc_fw.science.site_fingerprints import SITE_FINGERPRINT_PREFIX

logger = logging.getLogger(__name__)

RANDOM_FOREST = "random_forest"
RANDOM_FOREST_WIDE = "random_forest_wide"
GRADIENT_BOOSTING = "gradient_boosting"
EXTRA_TREES = "extra_trees"
PAPER_FEATURES, ALL_EXPONENTS, FIRST_SHELL = "paper", "all_exponents", "first_shell"
CRYSTAL, CRYSTAL_FIRST_SHELL = "crystal", "crystal_first_shell"
SITE_FINGERPRINT, SITE_FINGERPRINT_PAPER = "site_fingerprint", "site_fingerprint_paper"
CRYSTAL_SITE_FINGERPRINT = "crystal_site_fingerprint"
VARIANTS: dict[str, tuple[str, str]] = {
    "paper": (RANDOM_FOREST, PAPER_FEATURES),
    "rf_all_exponents": (RANDOM_FOREST, ALL_EXPONENTS),
    "gbr": (GRADIENT_BOOSTING, PAPER_FEATURES),
    "gbr_all_exponents": (GRADIENT_BOOSTING, ALL_EXPONENTS),
    "rf_first_shell": (RANDOM_FOREST, FIRST_SHELL),
    "gbr_first_shell": (GRADIENT_BOOSTING, FIRST_SHELL),
    "rf_crystal": (RANDOM_FOREST, CRYSTAL),
    "gbr_crystal_first_shell": (GRADIENT_BOOSTING, CRYSTAL_FIRST_SHELL),
    "rf_wide": (RANDOM_FOREST_WIDE, PAPER_FEATURES),
    "rf_crystal_wide": (RANDOM_FOREST_WIDE, CRYSTAL),
    "et_crystal": (EXTRA_TREES, CRYSTAL),
    "rf_site_fingerprint": (RANDOM_FOREST, SITE_FINGERPRINT),
    "rf_site_fingerprint_paper": (RANDOM_FOREST, SITE_FINGERPRINT_PAPER),
    "rf_crystal_site_fingerprint": (RANDOM_FOREST, CRYSTAL_SITE_FINGERPRINT),
    "rf_crystal_wide_cheap": (RANDOM_FOREST_WIDE, CRYSTAL),
    "et_crystal_cheap": (EXTRA_TREES, CRYSTAL),
}
"""Variant name → (model family, feature set), in the order they are run."""

WITH_CHEAP_LABELS = frozenset({"rf_crystal_wide_cheap", "et_crystal_cheap"})
"""The variants trained also on the calibrated labels of the ``cheap`` rows."""

FIXED_COLUMNS: dict[str, tuple[str, ...]] = {
    FIRST_SHELL: (*FEATURE_COLUMNS, *FIRST_SHELL_FEATURES),
    CRYSTAL: CRYSTAL_COLUMNS,
    CRYSTAL_FIRST_SHELL: (*CRYSTAL_COLUMNS, *FIRST_SHELL_FEATURES),
}
"""Columns of the feature sets beyond the paper's that do not depend on the table."""

EXPONENT_FREE_FEATURES: tuple[str, ...] = tuple(
    name for name in FEATURE_COLUMNS if name not in MOMENT_SUMS
)
"""The paper features that do not depend on the feature exponent."""

FINGERPRINT_BASES: dict[str, tuple[str, ...]] = {
    SITE_FINGERPRINT: (),
    SITE_FINGERPRINT_PAPER: EXPONENT_FREE_FEATURES,
    CRYSTAL_SITE_FINGERPRINT: CRYSTAL_COLUMNS,
}
"""The columns each fingerprint feature set puts before the table's ``sitefp_*`` columns."""


def gbr_search_space() -> dict[str, Any]:
    """Search space of ``HistGradientBoostingRegressor`` for a few hundred records.

    Shallow-to-medium trees, strong leaf and L2 regularization, a log-uniform learning rate
    and up to 600 boosting iterations (no early stopping, so ``max_iter`` is what is fitted).
    """
    return {
        "learning_rate": stats.loguniform(0.01, 0.3),
        "max_depth": [None, 2, 3, 4, 6],
        "max_leaf_nodes": [7, 15, 31, 63],
        "min_samples_leaf": stats.randint(5, 41),
        "l2_regularization": stats.loguniform(1e-3, 10.0),
        "max_iter": stats.randint(50, 601),
    }


def default_search_spaces() -> dict[str, dict[str, Any]]:
    """The space of each model family: the paper's and the wide one for forests, GBR's own."""
    return {
        RANDOM_FOREST: paper_search_space(),
        RANDOM_FOREST_WIDE: wide_search_space(),
        GRADIENT_BOOSTING: gbr_search_space(),
        EXTRA_TREES: extra_trees_search_space(),
    }


@dataclass
class VariantResult:
    """One model variant, refit on all training rows with its best hyperparameters.

    Attributes:
        name: Variant name (a key of :data:`VARIANTS`).
        model: Estimator class name.
        feature_columns: Input columns, in the estimator's order.
        best_params: Hyperparameters chosen by the randomized search.
        cv_r2_mean, cv_r2_std: Mean and std over the folds of the CV R² of the chosen draw
            (training rows only; the best of ``n_iter`` draws, hence optimistic).
        r2_train, r2_test, mae_train, mae_test: Scores of the refit.
        per_element: Test-set scores per element.
        test_predicted: Predictions for the test rows (``ComparisonResult.test_keys`` order).
        n_cheap: Calibrated cheap labels fitted on beside the training rows (0 but for the
            :data:`WITH_CHEAP_LABELS` variants).
        estimator: The refit estimator (not part of :meth:`as_dict`).
    """

    name: str
    model: str
    feature_columns: list[str]
    best_params: dict[str, Any]
    cv_r2_mean: float
    cv_r2_std: float
    r2_train: float
    r2_test: float
    mae_train: float
    mae_test: float
    per_element: list[ElementScore]
    test_predicted: list[float]
    n_cheap: int = 0
    estimator: Any = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the estimator."""
        fields = {k: v for k, v in asdict(self).items() if k != "estimator"}
        return {**fields, "per_element": [score.model_dump() for score in self.per_element]}


@dataclass(frozen=True)
class CheapLabels:
    """The cheap rows of the :data:`WITH_CHEAP_LABELS` variants and how they are calibrated.

    Attributes:
        rows: One row per record with a cheap label: ``key``, the features (and sweep
            columns), ``in_domain`` and ``sams_cheap``.
        method: Calibration method (:data:`vtc_fw.ml.calibration.METHODS`).
        exponent: Exponent the split chose (None: the table has no sweep).
    """

    rows: pd.DataFrame
    method: str = DEFAULT_METHOD
    exponent: int | None = None


@dataclass
class PairedScore:
    """One variant's chosen configuration scored by paired repeated K-fold on all usable rows.

    A fresh estimator with the variant's ``best_params`` is fitted and scored (R²) on every
    fold of one ``RepeatedKFold`` (``cv`` folds × ``cv_repeats`` repeats, seeded), the same
    folds for every variant, so the fold scores are paired. The difference to ``paper`` is
    tested with the corrected resampled t-test of Nadeau & Bengio (2003, "Inference for the
    generalization error", Machine Learning 52: 239–281): with ``d`` the J per-fold differences,
    ``se = sqrt((1/J + n_test/n_train) · var(d, ddof=1))``, ``n_test/n_train = 1/(cv − 1)``,
    and ``t = mean(d) / se`` on J − 1 degrees of freedom. The correction accounts for the
    overlap of the training rows between folds, which makes the naive t-test far too
    confident.

    The hyperparameters were chosen by the search on the training rows of the split, which are
    among the rows here, so the absolute R² is optimistic; the paired differences are the point.

    Attributes:
        name: Variant name (a key of :data:`VARIANTS`).
        fold_r2: R² on each fold, in the splitter's order (J = ``cv`` × ``cv_repeats``).
        r2_mean, r2_std: Mean and std (ddof 0, as the search's CV std) of ``fold_r2``.
        diff_mean: Mean over the folds of this variant's R² minus the baseline's (``paper``
            unless :meth:`ComparisonResult.versus` chose another; 0 for the baseline).
        diff_se: Corrected standard error of ``diff_mean`` (None for the baseline).
        p_value: Two-sided p-value of the corrected t statistic (None for the baseline).
        folds_better: Folds on which this variant scored above the baseline.
    """

    name: str
    fold_r2: list[float]
    r2_mean: float
    r2_std: float
    diff_mean: float
    diff_se: float | None
    p_value: float | None
    folds_better: int = 0


@dataclass
class ComparisonResult:
    """Every variant on one split.

    Attributes:
        variants: The variants, in the order of :data:`VARIANTS`.
        exponent: Exponent chosen by the sweep on the training rows (None without sweep).
        sweep: The exponent sweep, or None when the table had no sweep columns.
        train_keys, test_keys: Record keys of the split shared by every variant.
        test_elements, test_true: Element and target of the test rows.
        n_rows: Rows received; excluded: rows left out, by reason (as in ``select_trainable``).
        seed, n_iter, cv: Settings shared by every search.
        repeated_cv: Paired repeated K-fold scores, in the order of ``variants`` (empty when
            ``cv_repeats`` is 0).
        cv_repeats: Repeats of the ``cv``-fold split in ``repeated_cv``.
        descriptor_r: Pearson r on the training rows of each first-shell descriptor (and,
            for reference, of IAMS and QAMS at the chosen exponent) with SAMS and with IAMS:
            how much a descriptor adds that IAMS does not carry (empty without first-shell
            columns).
    """

    variants: list[VariantResult]
    exponent: int | None
    sweep: ExponentSweep | None
    train_keys: list[str]
    test_keys: list[str]
    test_elements: list[str]
    test_true: list[float]
    n_rows: int
    excluded: dict[str, int]
    seed: int
    n_iter: int
    cv: int
    repeated_cv: list[PairedScore]
    cv_repeats: int
    descriptor_r: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def variant(self, name: str) -> VariantResult:
        """The variant called ``name``.

        Raises:
            KeyError: No variant of that name was run.
        """
        for result in self.variants:
            if result.name == name:
                return result
        raise KeyError(name)

    def versus(self, baseline: str) -> list[PairedScore]:
        """The paired repeated CV with differences to ``baseline`` instead of ``paper``.

        Same folds, same scores; only the reference of ``diff_mean``, ``diff_se``, ``p_value``
        and ``folds_better`` changes.

        Raises:
            KeyError: ``baseline`` is not among the paired scores.
        """
        return rebased(self.repeated_cv, baseline, cv=self.cv)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (estimators left out)."""
        return {
            "variants": [v.as_dict() for v in self.variants],
            "exponent": self.exponent,
            "sweep": None if self.sweep is None else self.sweep.as_dict(),
            "train_keys": self.train_keys,
            "test_keys": self.test_keys,
            "test_elements": self.test_elements,
            "test_true": self.test_true,
            "n_rows": self.n_rows,
            "excluded": self.excluded,
            "seed": self.seed,
            "n_iter": self.n_iter,
            "cv": self.cv,
            "repeated_cv": [asdict(score) for score in self.repeated_cv],
            "cv_repeats": self.cv_repeats,
            "descriptor_r": self.descriptor_r,
        }

    def to_markdown(self, baseline: str | None = None) -> str:
        """A Markdown table of the variants with a one-line caption, then the repeated CV.

        Args:
            baseline: Also tabulate the repeated CV's differences to this variant.
        """
        header = (
            "| variant | features | n_train | n_test | R² train | R² test | MAE test "
            f"| {self.cv}-fold CV R² (train) |"
        )
        lines = [header, "|" + " --- |" * 8]
        n_train, n_test = len(self.train_keys), len(self.test_keys)
        for v in self.variants:
            lines.append(
                f"| {v.name} | {describe_features(v.feature_columns)} | {n_train} | {n_test} "
                f"| {v.r2_train:.3f} | {v.r2_test:.3f} | {v.mae_test:.4f} "
                f"| {v.cv_r2_mean:.3f} ± {v.cv_r2_std:.3f} |"
            )
        caption = (
            f"Same element-stratified split for every variant (seed {self.seed}); exponent "
            f"n = {self.exponent} chosen on the training rows; {self.n_iter} draws per search; "
            f"CV R² of the best draw (optimistic). Rows: {self.n_rows}, excluded: "
            f"{_format_counts(self.excluded)}."
        )
        tables = [*self._repeated_cv_markdown(), *self._versus_markdown(baseline)]
        return "\n".join([*lines, "", caption, *tables, *self._descriptor_markdown()])

    def _descriptor_markdown(self) -> list[str]:
        if not self.descriptor_r:
            return []
        caption = (
            f"Pearson r on the {len(self.train_keys)} training rows (IAMS, QAMS at n = "
            f"{self.exponent}): with SAMS, and with IAMS (what the descriptor shares with it)."
        )
        lines = ["| descriptor | r with SAMS | r with IAMS |", "|" + " --- |" * 3]
        lines += [
            f"| {name} | {_format_r(r['sams'])} | {_format_r(r['IAMS'])} |"
            for name, r in self.descriptor_r.items()
        ]
        return ["", caption, "", *lines]

    def _repeated_cv_markdown(self) -> list[str]:
        if not self.repeated_cv:
            return []
        n_usable = len(self.train_keys) + len(self.test_keys)
        caption = (
            f"Paired repeated CV over all {n_usable} usable rows ({self.cv_repeats} × "
            f"{self.cv}-fold, the same folds for every variant, seed {self.seed}); each "
            "variant's hyperparameters were chosen on the training rows, so R² is optimistic; "
            "Δ vs paper: mean paired difference, Nadeau–Bengio corrected se and t-test p."
        )
        lines = ["| variant | R² mean ± std | Δ vs paper ± se | p |", "|" + " --- |" * 4]
        lines += [_paired_row(score) for score in self.repeated_cv]
        return ["", caption, "", *lines]

    def _versus_markdown(self, baseline: str | None) -> list[str]:
        if baseline is None or not self.repeated_cv:
            return []
        return versus_markdown(self.versus(baseline), baseline)


def rebased(scores: Sequence[PairedScore], baseline: str, *, cv: int) -> list[PairedScore]:
    """The same fold scores with their differences to ``baseline`` instead of ``paper``.

    Raises:
        KeyError: ``baseline`` is not among ``scores``.
    """
    folds = {score.name: np.asarray(score.fold_r2) for score in scores}
    if baseline not in folds:
        raise KeyError(baseline)
    return [
        paired_score(name, r2, folds[baseline], cv=cv, baseline=baseline)
        for name, r2 in folds.items()
    ]


def versus_document(scores: Sequence[PairedScore], baseline: str) -> dict[str, Any]:
    """The JSON form of :func:`rebased` scores: the baseline's name and every score."""
    return {"baseline": baseline, "scores": [asdict(score) for score in scores]}


def versus_markdown(scores: Sequence[PairedScore], baseline: str) -> list[str]:
    """Caption and table lines (blank-separated) of every score's difference to ``baseline``."""
    caption = (
        f"The same folds, differences to {baseline} (corrected se and p; folds better: of "
        f"{len(scores[0].fold_r2)})."
    )
    lines = [f"| variant | Δ vs {baseline} ± se | p | folds better |", "|" + " --- |" * 4]
    lines += [
        f"| {s.name} | {s.diff_mean:+.3f} ± {s.diff_se:.3f} | {s.p_value:.3g} | {s.folds_better} |"
        for s in scores
        if s.diff_se is not None and s.p_value is not None
    ]
    return ["", caption, "", *lines]


def _format_r(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def descriptor_correlations(train: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Pearson r of the moment sums and first-shell descriptors with SAMS and with IAMS.

    IAMS, QAMS, their crystal forms (where the table has them) and each first-shell descriptor.

    Args:
        train: Training rows, IAMS and QAMS at the chosen exponent.

    Returns:
        ``{descriptor: {"sams": r, "IAMS": r}}``; empty when a first-shell column is missing.
    """
    if not set(FIRST_SHELL_FEATURES) <= set(train.columns):
        return {}
    crystal = [CRYSTAL_SUMS[name] for name in ("IAMS", "QAMS") if CRYSTAL_SUMS[name] in train]
    return {
        name: {
            "sams": pearson(train[name], train["sams"]),
            "IAMS": pearson(train[name], train["IAMS"]),
        }
        for name in ("IAMS", "QAMS", *crystal, *FIRST_SHELL_FEATURES)
    }


def _paired_row(score: PairedScore) -> str:
    if score.diff_se is None or score.p_value is None:
        return f"| {score.name} | {score.r2_mean:.3f} ± {score.r2_std:.3f} | 0 | – |"
    return (
        f"| {score.name} | {score.r2_mean:.3f} ± {score.r2_std:.3f} "
        f"| {score.diff_mean:+.3f} ± {score.diff_se:.3f} | {score.p_value:.3g} |"
    )


def describe_features(columns: Sequence[str]) -> str:
    """Short description of a feature list.

    Sweep columns are summarized, e.g. ``5 + QAMS/DAMS/IAMS@1–14 (47)``; the paper's 8
    features are ``paper 8``, the crystal forms ``crystal 8``, followed by the first-shell
    descriptors ``paper 8 + first shell 6 (14)`` or the site fingerprint
    ``crystal 8 + site fingerprint 61 (69)``; the 5 exponent-free paper features are
    ``paper 5``; any other list is written out.
    """
    bases = {tuple(FEATURE_COLUMNS): "paper 8", CRYSTAL_COLUMNS: "crystal 8"}
    size = len(FEATURE_COLUMNS)
    base, rest = bases.get(tuple(columns[:size])), tuple(columns[size:])
    if base and not rest:
        return base
    if base and rest == FIRST_SHELL_FEATURES:
        return f"{base} + first shell {len(rest)} ({len(columns)})"
    fingerprint = [c for c in columns if c.startswith(SITE_FINGERPRINT_PREFIX)]
    if fingerprint:
        return _describe_fingerprint(columns, len(fingerprint))
    sweep = [parsed for c in columns if (parsed := parse_sweep_column(c))]
    if not sweep:
        return ", ".join(columns)
    names = "/".join(dict.fromkeys(name for name, _ in sweep))
    exponents = sorted({n for _, n in sweep})
    return f"{len(columns) - len(sweep)} + {names}@{exponents[0]}–{exponents[-1]} ({len(columns)})"


def _describe_fingerprint(columns: Sequence[str], n_fingerprint: int) -> str:
    """``site fingerprint 61``, after the name of the columns before it, if any."""
    names = {EXPONENT_FREE_FEATURES: "paper 5", CRYSTAL_COLUMNS: "crystal 8"}
    head = tuple(columns[: len(columns) - n_fingerprint])
    fingerprint = f"site fingerprint {n_fingerprint}"
    if not head:
        return fingerprint
    return f"{names.get(head, ', '.join(head))} + {fingerprint} ({len(columns)})"


def _format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def compare_models(
    table: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    seed: int,
    n_iter: int = 100,
    cv: int = 5,
    n_jobs: int | None = None,
    search_spaces: Mapping[str, Mapping[str, Any]] | None = None,
    cv_repeats: int = 10,
    variants: Sequence[str] | None = None,
    cheap: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    calibration: str = DEFAULT_METHOD,
) -> ComparisonResult:
    """Fit the paper's forest and the other variants on one split and score them alike.

    Then score every variant's chosen configuration by paired repeated K-fold over all usable
    rows (:func:`paired_repeated_cv`).

    Args:
        table: One row per record, as for :func:`~vtc_fw.ml.protocol.train_paper_protocol`.
        seed: Seeds the split, the CV folds, the search draws and the estimators.
        n_iter: Hyperparameter draws of every randomized search (paper: 100).
        cv: Cross-validation folds of every search (paper: 5).
        n_jobs: Processes for the searches (None: 1).
        search_spaces: Overrides by model family, ``"random_forest"`` (default: the paper's
            space) and/or ``"gradient_boosting"`` (default: :func:`gbr_search_space`).
        cv_repeats: Repeats of the ``cv``-fold split of the paired comparison (0: skip it).
        variants: Names of :data:`VARIANTS` to run (default: all, the
            :data:`WITH_CHEAP_LABELS` ones only with ``cheap``); ``paper`` always runs, first,
            as the paired comparison's reference.
        cheap: Rows of a cheap fidelity's labels for the :data:`WITH_CHEAP_LABELS` variants,
            one per record: ``key``, the features (and sweep columns), ``in_domain`` and
            ``sams_cheap`` (as for :func:`~vtc_fw.ml.protocol.train_paper_protocol`).
        calibration: Method of their calibration (:data:`vtc_fw.ml.calibration.METHODS`).

    Returns:
        The variants' scores on the shared split and by repeated CV.

    Raises:
        ValueError: Fewer than ``2 * cv`` usable rows, an unknown search-space family, an
            unknown variant, or a variant of :data:`WITH_CHEAP_LABELS` asked for without
            cheap rows.
    """
    wanted = _wanted_variants(variants, has_cheap=cheap is not None and len(cheap) > 0)
    spaces = _search_spaces(search_spaces)
    split = split_for_training(table, seed=seed, cv=cv)
    train, test, sweep = split.train, split.test, split.sweep
    exponent = None if sweep is None else sweep.chosen_exponent
    logger.info("%d usable rows of %d, exponent %s", len(split.usable), split.n_rows, exponent)
    rows = usable_rows(split)
    labels = None if cheap is None else CheapLabels(pd.DataFrame(cheap), calibration, exponent)
    fitted = [
        fit_variant(
            name,
            train,
            test,
            space=spaces[family],
            seed=seed,
            n_iter=n_iter,
            cv=cv,
            n_jobs=n_jobs,
            cheap=labels,
        )
        for name, (family, _) in VARIANTS.items()
        if name in wanted and feature_columns(name, rows) is not None
    ]
    repeated = paired_repeated_cv(
        fitted, rows, seed=seed, cv=cv, repeats=cv_repeats, n_jobs=n_jobs, cheap=labels
    )
    return ComparisonResult(
        variants=fitted,
        exponent=exponent,
        sweep=sweep,
        train_keys=[str(k) for k in train["key"]],
        test_keys=[str(k) for k in test["key"]],
        test_elements=[str(e) for e in test["element"]],
        test_true=[float(v) for v in test["sams"]],
        n_rows=split.n_rows,
        excluded=split.excluded,
        seed=seed,
        n_iter=n_iter,
        cv=cv,
        repeated_cv=repeated,
        cv_repeats=cv_repeats,
        descriptor_r=descriptor_correlations(train),
    )


def _wanted_variants(variants: Sequence[str] | None, *, has_cheap: bool) -> set[str]:
    """The variants to run, ``paper`` among them.

    Raises:
        ValueError: An unknown variant, or one of :data:`WITH_CHEAP_LABELS` without cheap rows.
    """
    unknown = sorted(set(variants or ()) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if variants is None:
        return {name for name in VARIANTS if has_cheap or name not in WITH_CHEAP_LABELS}
    starved = sorted(set(variants) & WITH_CHEAP_LABELS) if not has_cheap else []
    if starved:
        raise ValueError(f"variants {starved} train on cheap labels: give cheap rows")
    return {"paper", *variants}


def _search_spaces(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    spaces = default_search_spaces()
    unknown = set(overrides or {}) - set(spaces)
    if unknown:
        raise ValueError(f"unknown model families {sorted(unknown)}; known: {sorted(spaces)}")
    return {**spaces, **{family: dict(space) for family, space in (overrides or {}).items()}}


def feature_columns(variant: str, frame: pd.DataFrame) -> list[str] | None:
    """Input columns of a variant for a table, or None when the table cannot provide them.

    The paper variants use :data:`~vtc_fw.science.features.FEATURE_COLUMNS`; the ``*_all_exponents``
    variants the exponent-free paper features followed by every ``QAMS@n``, ``IAMS@n`` and
    ``DAMS@n`` column (by feature, then ascending n), None when there is none; the
    ``*site_fingerprint*`` variants their :data:`FINGERPRINT_BASES` followed by every
    ``sitefp_*`` column of the table, None when there is none; the others their
    :data:`FIXED_COLUMNS`. None also when a row lacks one of the columns (feature documents
    built before vtc-fw computed them, records without a fingerprint).
    """
    _, feature_set = VARIANTS[variant]
    if feature_set == PAPER_FEATURES:
        return list(FEATURE_COLUMNS)
    if feature_set in FIXED_COLUMNS:
        return _complete(list(FIXED_COLUMNS[feature_set]), frame)
    if feature_set in FINGERPRINT_BASES:
        fingerprint = [c for c in frame.columns if c.startswith(SITE_FINGERPRINT_PREFIX)]
        columns = [*FINGERPRINT_BASES[feature_set], *fingerprint]
        return _complete(columns, frame) if fingerprint else None
    parsed = [p for c in frame.columns if (p := parse_sweep_column(c))]
    sweep = [
        sweep_column(name, n)
        for name in MOMENT_SUMS
        for n in sorted(n for column_name, n in parsed if column_name == name)
    ]
    return [*EXPONENT_FREE_FEATURES, *sweep] if sweep else None


def _complete(columns: list[str], frame: pd.DataFrame) -> list[str] | None:
    """``columns`` when every row of ``frame`` has a value in each, else None."""
    complete = set(columns) <= set(frame.columns) and frame[columns].notna().all().all()
    return columns if complete else None


def make_estimator(family: str, seed: int) -> RegressorMixin:
    """The unfitted estimator of a model family, seeded."""
    if family in (RANDOM_FOREST, RANDOM_FOREST_WIDE):
        return RandomForestRegressor(random_state=seed)
    if family == EXTRA_TREES:
        return ExtraTreesRegressor(random_state=seed)
    return HistGradientBoostingRegressor(early_stopping=False, random_state=seed)


def fit_variant(
    name: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    space: Mapping[str, Any],
    seed: int,
    n_iter: int,
    cv: int,
    n_jobs: int | None = None,
    cheap: CheapLabels | None = None,
) -> VariantResult:
    """Search, refit and score one variant on a given split.

    OpenMP (the threads of ``HistGradientBoostingRegressor``) is limited to one thread per
    process: on tables of a few hundred rows its threads cost more than they save, 20-fold
    on a loaded machine. Parallelism comes from ``n_jobs`` (the search's processes).

    Args:
        name: A key of :data:`VARIANTS`.
        train: Training rows, swept columns already at the chosen exponent.
        test: Test rows, likewise.
        space: Hyperparameter space of the variant's model family.
        seed: As in :func:`compare_models`.
        n_iter: As in :func:`compare_models`.
        cv: As in :func:`compare_models`.
        n_jobs: As in :func:`compare_models`.
        cheap: The cheap rows a :data:`WITH_CHEAP_LABELS` variant also fits on (every one of
            them in every training fold of the search; validation on paper rows only).

    Returns:
        The variant's search outcome and scores.

    Raises:
        ValueError: The table lacks the variant's columns (sweep or first-shell), or a
            :data:`WITH_CHEAP_LABELS` variant has no cheap rows.
    """
    family, feature_set = VARIANTS[name]
    columns = feature_columns(name, pd.concat([train, test]))
    if columns is None:
        raise ValueError(f"variant {name} needs the {feature_set} columns; the table lacks them")
    rows = fitting_rows(name, train, set(test["key"]), cheap, columns, seed)
    n_cheap = int((rows[FIDELITY_COLUMN] != PAPER).sum())
    folds = validation_folds(rows, cv_folds(cv, seed)) if n_cheap else cv
    logger.info("%s: %d draws, %d features, %d cheap rows", name, n_iter, len(columns), n_cheap)
    with threadpool_limits(limits=1, user_api="openmp"):
        search = randomized_search(
            make_estimator(family, seed),
            space,
            rows[columns],
            rows["sams"],
            seed=seed,
            n_iter=n_iter,
            cv=folds,
            n_jobs=n_jobs,
        )
        result = scored(name, search, columns, train, test)
    logger.info("%s: test R² %.3f, CV R² %.3f", name, result.r2_test, result.cv_r2_mean)
    result.n_cheap = n_cheap
    return result


def fitting_rows(
    name: str,
    train: pd.DataFrame,
    test_keys: set[str],
    cheap: CheapLabels | None,
    columns: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """The rows a variant is fitted on: ``train``, then a cheap variant's calibrated cheap rows.

    The calibration is fit on ``train``'s paired records only; cheap rows of records in ``train``
    or ``test_keys`` are not fitted on (:func:`~vtc_fw.ml.multi_fidelity.with_cheap_rows`, as
    the protocol itself adds them).

    Raises:
        ValueError: A :data:`WITH_CHEAP_LABELS` variant without cheap rows.
    """
    if name not in WITH_CHEAP_LABELS:
        return train.assign(**{FIDELITY_COLUMN: PAPER})
    if cheap is None:
        raise ValueError(f"variant {name} trains on cheap labels: give cheap rows")
    rows, _ = with_cheap_rows(
        train,
        test_keys,
        cheap.rows,
        exponent=cheap.exponent,
        columns=columns,
        method=cheap.method,
        seed=seed,
    )
    return rows


def scored(
    name: str,
    search: RandomizedSearchCV,
    columns: list[str],
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> VariantResult:
    """The scores of a fitted search's refit estimator on the training and test rows."""
    estimator = search.best_estimator_
    train_pred = estimator.predict(train[columns].to_numpy())
    test_pred = estimator.predict(test[columns].to_numpy())
    return VariantResult(
        name=name,
        model=type(estimator).__name__,
        feature_columns=columns,
        best_params=plain_params(search.best_params_),
        cv_r2_mean=float(search.best_score_),
        cv_r2_std=float(search.cv_results_["std_test_score"][search.best_index_]),
        r2_train=float(r2_score(train["sams"], train_pred)),
        r2_test=float(r2_score(test["sams"], test_pred)),
        mae_train=float(mean_absolute_error(train["sams"], train_pred)),
        mae_test=float(mean_absolute_error(test["sams"], test_pred)),
        per_element=per_element_scores(test["element"], test["sams"], test_pred),
        test_predicted=[float(v) for v in test_pred],
        estimator=estimator,
    )


def paired_repeated_cv(
    variants: Sequence[VariantResult],
    rows: pd.DataFrame,
    *,
    seed: int,
    cv: int,
    repeats: int,
    n_jobs: int | None = None,
    cheap: CheapLabels | None = None,
) -> list[PairedScore]:
    """Every variant's chosen configuration on the same repeated K-fold of ``rows``.

    A :data:`WITH_CHEAP_LABELS` variant fits each fold on its training rows plus the cheap rows
    of the other records (calibrated on that fold's paired training records) and is scored on
    the same held-out paper rows as the others.

    Args:
        variants: Fitted variants, ``paper`` among them.
        rows: The rows to cross-validate on (:func:`usable_rows`).
        seed: Seeds the folds and the estimators.
        cv: Folds per repeat.
        repeats: Repeats (0: no comparison, empty list).
        n_jobs: Processes for ``cross_val_score`` (None: 1).
        cheap: The cheap rows of the :data:`WITH_CHEAP_LABELS` variants.

    Returns:
        One :class:`PairedScore` per variant, in the order of ``variants``.
    """
    if repeats == 0:
        return []
    splitter = RepeatedKFold(n_splits=cv, n_repeats=repeats, random_state=seed)
    folds = {
        v.name: (
            cheap_fold_scores(v, rows, splitter, cheap, seed=seed, n_jobs=n_jobs)
            if v.name in WITH_CHEAP_LABELS
            else fold_scores(v, rows, splitter, seed=seed, n_jobs=n_jobs)
        )
        for v in variants
    }
    return [paired_score(name, r2, folds["paper"], cv=cv) for name, r2 in folds.items()]


def fold_scores(
    variant: VariantResult,
    rows: pd.DataFrame,
    splitter: RepeatedKFold,
    *,
    seed: int,
    n_jobs: int | None = None,
) -> np.ndarray:
    """R² on every fold of ``splitter`` of a fresh estimator with the variant's best params.

    OpenMP is limited to one thread as in :func:`fit_variant`.
    """
    family, _ = VARIANTS[variant.name]
    estimator = make_estimator(family, seed).set_params(**variant.best_params)
    features = rows[variant.feature_columns].to_numpy()
    target = rows["sams"].to_numpy(dtype=float)
    with threadpool_limits(limits=1, user_api="openmp"):
        return cross_val_score(
            estimator, features, target, cv=splitter, scoring="r2", n_jobs=n_jobs
        )


def cheap_fold_scores(
    variant: VariantResult,
    rows: pd.DataFrame,
    splitter: RepeatedKFold,
    cheap: CheapLabels | None,
    *,
    seed: int,
    n_jobs: int | None = None,
) -> np.ndarray:
    """R² on every fold of ``splitter`` (the folds of :func:`fold_scores`) of a cheap variant."""
    paper = rows.assign(**{FIDELITY_COLUMN: PAPER}).reset_index(drop=True)
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_cheap_fold_r2)(variant, paper, train_index, test_index, cheap, seed)
        for train_index, test_index in splitter.split(paper)
    )
    return np.asarray(scores, dtype=float)


def _cheap_fold_r2(
    variant: VariantResult,
    paper: pd.DataFrame,
    train_index: np.ndarray,
    test_index: np.ndarray,
    cheap: CheapLabels | None,
    seed: int,
) -> float:
    """R² on one fold's held-out paper rows of the variant fitted with the cheap rows."""
    family, _ = VARIANTS[variant.name]
    columns = variant.feature_columns
    test = held_out_paper(paper, test_index)
    train = paper.iloc[train_index]
    fitting = fitting_rows(variant.name, train, set(test["key"]), cheap, columns, seed)
    estimator = make_estimator(family, seed).set_params(**variant.best_params)
    with threadpool_limits(limits=1, user_api="openmp"):
        estimator.fit(fitting[columns].to_numpy(), fitting["sams"].to_numpy(dtype=float))
        predicted = estimator.predict(test[columns].to_numpy())
    return float(r2_score(test["sams"], predicted))


def paired_score(
    name: str, r2: np.ndarray, reference_r2: np.ndarray, *, cv: int, baseline: str = "paper"
) -> PairedScore:
    """Summary of one variant's fold scores and their corrected paired test against a baseline.

    Args:
        name: The variant.
        r2: Its fold scores.
        reference_r2: The baseline's scores on the same folds.
        cv: Folds per repeat.
        baseline: Name of the baseline (its own differences are not tested).
    """
    differences = r2 - reference_r2
    se, p_value = (None, None) if name == baseline else corrected_paired_t(differences, cv=cv)
    return PairedScore(
        name=name,
        fold_r2=[float(v) for v in r2],
        r2_mean=float(r2.mean()),
        r2_std=float(r2.std()),
        diff_mean=float(differences.mean()),
        diff_se=se,
        p_value=p_value,
        folds_better=int((differences > 0).sum()),
    )


def corrected_paired_t(differences: np.ndarray, *, cv: int) -> tuple[float, float]:
    """Nadeau–Bengio corrected standard error and two-sided p-value of paired fold differences.

    Args:
        differences: Per-fold score differences over J = ``cv`` × repeats folds.
        cv: Folds per repeat; each fold's test/train size ratio is ``1 / (cv − 1)``.

    Returns:
        ``(se, p)``; when every difference is equal (se 0), p is 1 for a zero mean, else 0.
    """
    n_folds = len(differences)
    se = float(np.sqrt((1 / n_folds + 1 / (cv - 1)) * differences.var(ddof=1)))
    mean = float(differences.mean())
    if se == 0:
        return se, float(mean == 0)
    return se, float(2 * stats.t.sf(abs(mean / se), df=n_folds - 1))
