"""Nested CV (vtc_fw.ml.nested_cv) on real features of OQMD-ICSD structures.

As in tests/test_model_comparison.py the target is NOT SAMS: the OQMD band gap for the checks
of the folds, and a stated function of one real feature where a known winner is needed. The
script's test runs on recorded outputs of our own FEFF runs (tests/test_builders.py).
Searches are tiny (few trees, two draws).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.model_selection import RepeatedKFold
from test_builders import build_recorded_labels
from test_ml import TINY_SPACE
from test_model_comparison import TINY_SPACES

from vtc_fw.ml import nested_cv as nested_cv_module
from vtc_fw.ml.nested_cv import NESTED_VARIANTS, OuterFold, nested_cv, run_identity, usable_rows
from vtc_fw.ml.table import as_table, select_trainable, sweep_exponents, with_swept_defaults

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nested_cv.py"


SETTINGS = {"outer_folds": 3, "outer_repeats": 2, "n_iter": 2, "inner_cv": 3}
SPACES = {"random_forest": TINY_SPACE, "random_forest_wide": TINY_SPACE | {"max_features": [0.5]}}


def nested(frame: pd.DataFrame, **options):
    return nested_cv(frame, seed=3, search_spaces=SPACES, **{**SETTINGS, **options})


def load_script():
    spec = importlib.util.spec_from_file_location("nested_cv_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    usable, _ = usable_rows(table)
    assert list(usable["key"]) == sorted(usable["key"])
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


def test_differences_to_another_baseline_are_of_the_same_outer_folds(result):
    versus = {score.name: score for score in result.versus("rf_crystal_wide")}
    assert versus["rf_crystal_wide"].diff_mean == 0 and versus["rf_crystal_wide"].p_value is None
    differences = [f.outer_r2["paper"] - f.outer_r2["rf_crystal_wide"] for f in result.folds]
    assert versus["paper"].diff_mean == pytest.approx(sum(differences) / 6)
    assert versus["paper"].folds_better == sum(d > 0 for d in differences)
    assert "| variant | Δ vs rf_crystal_wide ± se | p | folds better |" in result.to_markdown(
        baseline="rf_crystal_wide"
    )
    with pytest.raises(KeyError):
        result.versus("et_crystal")


def test_a_baseline_outside_the_variants_is_refused(capsys):
    with pytest.raises(SystemExit):
        load_script().parse_arguments(["--db-file", "db.json", "--baseline", "et_crystal"])
    assert "--baseline et_crystal is not among the --variants" in capsys.readouterr().err


def test_quick_option_sets_the_small_protocol():
    module = load_script()
    quick = module.parse_arguments(["--db-file", "db.json", "--quick"])
    full = module.parse_arguments(["--db-file", "db.json"])
    assert (quick.outer_repeats, quick.n_iter, quick.inner_cv) == (1, 10, 3)
    assert (full.outer_folds, full.outer_repeats, full.n_iter, full.inner_cv) == (5, 2, 100, 5)


def test_the_folds_do_not_depend_on_the_order_of_the_rows(table, result):
    shuffled = table.sample(frac=1, random_state=5)
    assert nested(shuffled, only_folds={1, 2}).folds == result.folds[:2]


def test_a_run_spread_over_three_runs_equals_one_run(table, result):
    """Folds 1–2, then 3–4 from a run that saved each variant, then the rest: same figures."""
    saved: list[OuterFold] = []
    first = nested(table, only_folds={1, 2}, on_variant=saved.append)
    assert [fold.number for fold in first.folds] == [1, 2] and not first.complete
    assert len(saved) == 2 * len(NESTED_VARIANTS)
    assert [len(fold.outer_r2) for fold in saved[:3]] == [1, 2, 3]
    second = nested(table, done=saved[-1:] + saved[2:3], only_folds={3, 4})
    assert [fold.number for fold in second.folds] == [1, 2, 3, 4]
    third = nested(table, done=second.folds, only_folds={5, 6})
    assert third.complete and third.folds == result.folds
    assert third.scores == result.scores


def test_a_resumed_fold_keeps_its_earlier_variants_and_searches_only_the_missing(table, result):
    first = result.folds[0]
    earlier = OuterFold(
        first.number,
        first.exponent,
        first.n_train,
        first.n_test,
        outer_r2={"paper": 0.123},
        inner_r2={"paper": 0.456},
        best_params={"paper": {"n_estimators": 1}},
    )
    resumed = nested(table, done=[earlier], only_folds={1})
    (fold,) = resumed.folds
    assert fold.outer_r2["paper"] == 0.123 and fold.best_params["paper"] == {"n_estimators": 1}
    assert fold.outer_r2["rf_crystal"] == first.outer_r2["rf_crystal"]
    assert earlier.outer_r2 == {"paper": 0.123}, "the earlier fold itself is not changed"
    assert resumed.scores == [] and "Fewer than two outer folds" in resumed.to_markdown()


def test_a_done_fold_of_other_rows_is_refused(table, result):
    other = OuterFold(1, result.folds[0].exponent, result.folds[0].n_train - 1, 1)
    with pytest.raises(ValueError, match="not the same rows"):
        nested(table, done=[other], only_folds={1})


def test_the_run_identity_follows_settings_spaces_rows_and_their_order(table):
    def identity(frame, **changes):
        return run_identity(frame, seed=3, search_spaces=SPACES, **{**SETTINGS, **changes})

    reference = identity(table)
    assert identity(table.copy()) == reference
    assert json.loads(json.dumps(reference)) == reference
    assert reference["search_spaces"]["random_forest_wide"]["max_features"] == [0.5]
    assert "distribution" in str(reference["search_spaces"]["gradient_boosting"])
    assert identity(table, n_iter=3) != reference
    assert identity(table.iloc[::-1]) == reference, "the rows are put in the order of their keys"
    one_less = table[table["key"] != usable_rows(table)[0]["key"].iloc[0]]
    assert identity(one_less)["rows_sha256"] != reference["rows_sha256"]
    changed = table.copy()
    changed["sams"] = changed["sams"] * 1.01
    assert identity(changed)["rows_sha256"] != reference["rows_sha256"]


def test_checkpoint_file_resumes_and_refuses_another_run(tmp_path, result):
    script = load_script()
    path = tmp_path / "run.jsonl"
    identity = {"seed": 3, "n_iter": 2}
    assert script.read_checkpoint(path, identity) == []
    partial = OuterFold(1, 9, 80, 20, {"paper": 0.5}, {"paper": 0.4}, {"paper": {}})
    script.save_fold(path, partial)
    script.save_fold(path, result.folds[0])
    script.save_fold(path, result.folds[1])
    with path.open("a") as handle:
        handle.write('{"fold": {"number": 3, "expo')  # a run killed while writing
    assert script.read_checkpoint(path, identity) == result.folds[:2]
    with pytest.raises(ValueError, match="another n_iter; use a new file"):
        script.read_checkpoint(path, {"seed": 3, "n_iter": 100})
    (tmp_path / "other.jsonl").write_text('{"fold": {}}\n')
    with pytest.raises(ValueError, match="does not start with a run's identity"):
        script.read_checkpoint(tmp_path / "other.jsonl", identity)


def test_script_spread_over_two_runs_on_recorded_feff_tasks(
    db_config, tmp_path, monkeypatch, capsys
):
    """Recorded FEFF tasks of our own runs (tests/test_builders.py): fold 1, then fold 2 from
    the checkpoint, give the table of one run without it; another seed is refused."""
    build_recorded_labels(db_config)
    monkeypatch.setattr(nested_cv_module, "default_search_spaces", lambda: dict(TINY_SPACES))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    checkpoint = tmp_path / "run.jsonl"
    options = ["--db-file", str(db_file), "--preset", "smoke", "--outer-folds", "2"]
    options += ["--outer-repeats", "1"]
    options += ["--n-iter", "1", "--inner-cv", "2", "--variants", "paper", "rf_crystal"]
    script = load_script()
    with pytest.raises(SystemExit, match="no labelled rows of preset paper"):
        script.main(["--db-file", str(db_file)])
    script.main([*options, "--checkpoint", str(checkpoint), "--folds", "1"])
    first = capsys.readouterr()
    assert "1 of its 2 folds so far" in first.out and "no scores yet" in first.out
    script.main([*options, "--checkpoint", str(checkpoint), "--folds", "2"])
    spread = capsys.readouterr()
    assert "1 outer folds begun earlier" in spread.err
    script.main(options)
    assert spread.out == capsys.readouterr().out
    assert "| rf_crystal |" in spread.out and "so far" not in spread.out
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert lines[0]["identity"]["n_usable"] == 12 and lines[0]["identity"]["preset"] == "smoke"
    assert [(line["fold"]["number"], len(line["fold"]["outer_r2"])) for line in lines[1:]] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    with pytest.raises(SystemExit, match="another seed; use a new file"):
        script.main([*options, "--checkpoint", str(checkpoint), "--seed", "1"])
