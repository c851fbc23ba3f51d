"""Nested CV (vtc_fw.ml.nested_cv) on real features of OQMD-ICSD structures.

As in tests/test_model_comparison.py the target is NOT SAMS: the OQMD band gap for the checks
of the folds, and a stated function of one real feature where a known winner is needed.
Searches are tiny (few trees, two draws).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.model_selection import RepeatedKFold
from test_ml import TINY_SPACE

from vtc_fw.ml.nested_cv import NESTED_VARIANTS, nested_cv
from vtc_fw.ml.table import as_table, select_trainable, sweep_exponents, with_swept_defaults

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nested_cv.py"


def nested(frame: pd.DataFrame, **options):
    settings = {"outer_folds": 3, "outer_repeats": 2, "n_iter": 2, "inner_cv": 3}
    spaces = {
        "random_forest": TINY_SPACE,
        "random_forest_wide": TINY_SPACE | {"max_features": [0.5]},
    }
    return nested_cv(frame, seed=3, search_spaces=spaces, **{**settings, **options})


@pytest.fixture(scope="module")
def result(table):
    return nested(table)


def test_every_variant_is_scored_on_the_same_outer_folds(table, result):
    assert result.variants == list(NESTED_VARIANTS) == ["paper", "rf_crystal", "rf_crystal_wide"]
    usable, _ = select_trainable(with_swept_defaults(as_table(table)))
    assert result.n_usable == len(usable)
    assert len(result.folds) == 6
    assert all(fold.n_train + fold.n_test == len(usable) for fold in result.folds)
    assert all(set(fold.outer_r2) == set(NESTED_VARIANTS) for fold in result.folds)
    scores = {score.name: score for score in result.scores}
    paper = [fold.outer_r2["paper"] for fold in result.folds]
    assert scores["paper"].fold_r2 == paper and scores["paper"].diff_mean == 0
    crystal = [fold.outer_r2["rf_crystal"] for fold in result.folds]
    assert scores["rf_crystal"].diff_mean == pytest.approx(
        sum(c - p for c, p in zip(crystal, paper, strict=True)) / 6
    )
    assert scores["rf_crystal"].p_value is not None


def test_the_exponent_is_chosen_on_each_outer_training_set_alone(table, result):
    usable, _ = select_trainable(with_swept_defaults(as_table(table)))
    splitter = RepeatedKFold(n_splits=3, n_repeats=2, random_state=3)
    for fold, (train_index, _) in zip(result.folds, splitter.split(usable), strict=True):
        assert fold.exponent == sweep_exponents(usable.iloc[train_index]).chosen_exponent


def test_nested_cv_finds_the_winner_when_only_the_crystal_sums_carry_the_target(table):
    """Target = IAMS_crystal at n = 9 (a real feature, not SAMS): only the crystal forest has
    it as an input, so its outer R² must be the higher."""
    frame = table.copy()
    frame["sams"] = frame["IAMS_crystal@9"]
    scores = {score.name: score for score in nested(frame).scores}
    assert scores["rf_crystal"].r2_mean > scores["paper"].r2_mean
    assert scores["rf_crystal"].diff_mean > 0


def test_bad_variants_and_too_few_rows_are_refused(table):
    with pytest.raises(ValueError, match="unknown variants"):
        nested(table, variants=["paper", "no_such_model"])
    with pytest.raises(ValueError, match="usable rows"):
        nested(table.head(8))


def test_markdown_and_json(result):
    markdown = result.to_markdown()
    assert "Nested CV over" in markdown and "outer 2 × 3-fold" in markdown
    assert "| paper |" in markdown and "| rf_crystal |" in markdown
    document = json.loads(json.dumps(result.as_dict()))
    assert len(document["folds"]) == 6 and set(document["inner_r2_mean"]) == set(result.variants)


def test_quick_option_sets_the_small_protocol():
    spec = importlib.util.spec_from_file_location("nested_cv_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    quick = module.parse_arguments(["--db-file", "db.json", "--quick"])
    full = module.parse_arguments(["--db-file", "db.json"])
    assert (quick.outer_repeats, quick.n_iter, quick.inner_cv) == (1, 10, 3)
    assert (full.outer_folds, full.outer_repeats, full.n_iter, full.inner_cv) == (5, 2, 100, 5)
