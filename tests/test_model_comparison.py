"""The paper's forest against the other variants on one split (vtc_fw.ml.comparison).

Two real tables, as in the rest of the suite:

* the feature rows of the first 150 OQMD-ICSD structures that ``tests/test_ml.py`` uses too
  (the session fixture ``table``: ``tests/oqmd_table.py``, vtc-fw's featurizer, sweep columns
  at n = 2, 5, 9). No FEFF-labelled set of that size exists in a test, so the target is NOT
  SAMS: it is the OQMD DFT band gap and, where a known answer is needed, a stated function of
  real sweep columns;
* end to end through ``scripts/compare_models.py``: the recorded real FEFF10 tasks of
  ``tests/test_builders.py`` (stretched NiO and CoO, preset "smoke", real SAMS) put into the
  test database and turned into ``xes`` and ``features`` documents by the builders.

Searches are tiny (few trees, few boosting iterations, two draws) and the paired repeated CV
has two repeats, so the module takes seconds.

The ``*_cheap`` variants get "cheap" rows made from the same table: the records of a third of
it lose their label and keep a stated function of it as their cheap label, so a forest that
trains on them has more (noisier) rows than the paper rows alone.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from oqmd_table import SWEEP
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import RepeatedKFold, cross_val_score
from test_builders import build_recorded_labels
from test_ml import TINY_SPACE

from vtc_fw.keys import CRYSTAL_SUMS, MOMENT_SUMS
from vtc_fw.ml import comparison as model_comparison
from vtc_fw.ml.comparison import (
    EXPONENT_FREE_FEATURES,
    VARIANTS,
    WITH_CHEAP_LABELS,
    compare_models,
    corrected_paired_t,
    describe_features,
)
from vtc_fw.ml.protocol import train_paper_protocol
from vtc_fw.ml.table import at_exponent, split_for_training
from vtc_fw.science.coordination import FIRST_SHELL_FEATURES
from vtc_fw.science.features import FEATURE_COLUMNS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_models.py"
TINY_GBR = {
    "learning_rate": [0.1, 0.3],
    "max_depth": [3],
    "max_leaf_nodes": [15],
    "min_samples_leaf": [2],
    "l2_regularization": [0.1],
    "max_iter": [30],
}
TINY_SPACES = {
    "random_forest": TINY_SPACE,
    "random_forest_wide": TINY_SPACE | {"max_features": [0.5], "min_samples_leaf": [1]},
    "gradient_boosting": TINY_GBR,
    "extra_trees": {k: v for k, v in TINY_SPACE.items() if k != "max_samples"}
    | {"bootstrap": [False]},
}
SWEEP_COLUMNS = [f"{name}@{n}" for name in MOMENT_SUMS for n in SWEEP]
TABLE_VARIANTS = [
    name for name in VARIANTS if "site_fingerprint" not in name and name not in WITH_CHEAP_LABELS
]
"""The variants a table without site fingerprints or cheap rows runs (the fingerprint ones:
tests/test_site_fingerprints.py; the cheap ones: below)."""


def compare(frame: pd.DataFrame, seed: int = 3, **options):
    settings = {"n_iter": 2, "cv": 3, "search_spaces": TINY_SPACES, "cv_repeats": 2}
    return compare_models(frame, seed=seed, **{**settings, **options})


@pytest.fixture(scope="module")
def result(table):
    return compare(table)


def test_every_variant_predicts_the_same_test_rows(table, result):
    assert [v.name for v in result.variants] == TABLE_VARIANTS
    assert set(result.train_keys).isdisjoint(result.test_keys)
    rows = at_exponent(table, result.exponent).set_index("key")
    test_rows, true = rows.loc[result.test_keys], np.array(result.test_true)
    for variant in result.variants:
        features = test_rows[variant.feature_columns].to_numpy()
        # each variant's predictions are those of its estimator on exactly these rows
        assert np.allclose(variant.estimator.predict(features), variant.test_predicted)
        assert variant.r2_test == pytest.approx(
            1 - ((true - variant.test_predicted) ** 2).sum() / ((true - true.mean()) ** 2).sum()
        )
        assert sum(score.n_test for score in variant.per_element) == len(result.test_keys)


def test_paper_variant_is_the_paper_protocol(table, result):
    settings = {"n_iter": 2, "cv": 3, "permutation_repeats": 1, "balanced": False}
    protocol = train_paper_protocol(table, seed=3, search_space=TINY_SPACE, **settings)
    paper = result.variant("paper")
    assert result.test_keys == protocol.test_keys and result.train_keys == protocol.train_keys
    assert result.exponent == protocol.exponent and result.excluded == protocol.excluded
    assert paper.best_params == protocol.best_params
    assert paper.test_predicted == protocol.test_predicted
    assert paper.cv_r2_mean == protocol.cv_best_r2 and paper.r2_test == protocol.r2_test


def test_extended_variants_get_every_sweep_column(result):
    expected = [*EXPONENT_FREE_FEATURES, *SWEEP_COLUMNS]
    for name in ("rf_all_exponents", "gbr_all_exponents"):
        variant = result.variant(name)
        assert variant.feature_columns == expected
        assert variant.estimator.n_features_in_ == len(expected) == 14
    for name in ("paper", "gbr"):
        assert result.variant(name).feature_columns == list(FEATURE_COLUMNS)
    assert result.variant("gbr").model == "HistGradientBoostingRegressor"
    assert result.variant("rf_all_exponents").model == "RandomForestRegressor"
    assert describe_features(expected) == "5 + QAMS/DAMS/IAMS@2–9 (14)"


def test_first_shell_variants_add_the_descriptors_to_the_paper_features(table, result):
    expected = [*FEATURE_COLUMNS, *FIRST_SHELL_FEATURES]
    for name in ("rf_first_shell", "gbr_first_shell"):
        assert result.variant(name).feature_columns == expected
        assert result.variant(name).estimator.n_features_in_ == 14
    assert describe_features(expected) == "paper 8 + first shell 6 (14)"
    train = at_exponent(table, result.exponent).set_index("key").loc[result.train_keys]
    crystal = ["IAMS_crystal", "QAMS_crystal"]
    assert list(result.descriptor_r) == ["IAMS", "QAMS", *crystal, *FIRST_SHELL_FEATURES]
    for name, r in result.descriptor_r.items():
        both = train[list(dict.fromkeys([name, "IAMS", "sams"]))].dropna()
        assert r["sams"] == pytest.approx(np.corrcoef(both[name], both["sams"])[0, 1]), name
        assert r["IAMS"] == pytest.approx(np.corrcoef(both[name], both["IAMS"])[0, 1]), name
    assert result.descriptor_r["IAMS"]["IAMS"] == pytest.approx(1)
    assert "| shell_anisotropy | " in result.to_markdown()
    # feature documents built before the descriptors existed: those variants are left out
    partial = table.copy()
    partial.loc[partial.index[:5], "econ"] = np.nan
    names = [v.name for v in compare(partial, cv_repeats=0).variants]
    assert names == [
        "paper",
        *("rf_all_exponents", "gbr", "gbr_all_exponents", "rf_crystal"),
        *("rf_wide", "rf_crystal_wide", "et_crystal"),
    ]


def test_crystal_variants_swap_in_the_crystal_sums(table, result):
    crystal = [CRYSTAL_SUMS.get(name, name) for name in FEATURE_COLUMNS]
    assert result.variant("rf_crystal").feature_columns == crystal
    assert result.variant("rf_crystal").model == "RandomForestRegressor"
    both = result.variant("gbr_crystal_first_shell")
    assert both.feature_columns == [*crystal, *FIRST_SHELL_FEATURES]
    assert both.model == "HistGradientBoostingRegressor"
    assert describe_features(crystal) == "crystal 8"
    assert describe_features(both.feature_columns) == "crystal 8 + first shell 6 (14)"


def test_crystal_forest_fits_what_only_the_crystal_sums_show(table):
    """Target = IAMS_crystal at the chosen exponent (a real feature, not SAMS): the paper's
    forest sees it only through the site-averaged IAMS, the crystal forest has it as an input."""
    frame = table.copy()
    exponent = compare(table, cv_repeats=0).exponent
    frame["sams"] = frame[f"IAMS_crystal@{exponent}"]
    result = compare(frame)
    assert result.exponent == exponent
    assert result.variant("rf_crystal").r2_test > result.variant("paper").r2_test
    paired = {score.name: score for score in result.repeated_cv}
    assert paired["rf_crystal"].diff_mean > 0


def test_first_shell_forest_fits_what_only_the_shell_shows(table):
    """Target = shell_anisotropy of the record (a real descriptor, not SAMS): the paper's
    features see it only through IAMS, the first-shell variants have it as an input. Boosting
    recovers it exactly; the tiny forest (max_features 0.3, few trees) only gains."""
    frame = table.copy()
    frame["sams"] = frame["shell_anisotropy"]
    result = compare(frame)
    assert result.variant("gbr_first_shell").r2_test > 0.99
    assert result.variant("gbr").r2_test < 0.9
    assert result.variant("rf_first_shell").r2_test > result.variant("paper").r2_test
    paired = {score.name: score for score in result.repeated_cv}
    assert paired["gbr_first_shell"].diff_mean > paired["gbr"].diff_mean


def test_extended_forest_sees_exponents_the_sweep_did_not_choose(table):
    """Target = IAMS@2 − IAMS@9 (a stated function of real sweep columns, not SAMS): no single
    exponent carries it, every exponent together does, so only the extended variants fit it.
    Paired repeated CV sees both gains; with 6 folds and a 15-tree forest that misses a fold,
    only the boosting one passes the conservative corrected t-test."""
    frame = table.copy()
    frame["sams"] = frame["IAMS@2"] - frame["IAMS@9"]
    result = compare(frame)
    paper, extended = result.variant("paper"), result.variant("rf_all_exponents")
    assert extended.r2_test > paper.r2_test + 0.1
    assert result.variant("gbr_all_exponents").r2_test > result.variant("gbr").r2_test + 0.1
    paired = {score.name: score for score in result.repeated_cv}
    assert paired["rf_all_exponents"].diff_mean > 0.1
    assert paired["gbr_all_exponents"].diff_mean > 0.3
    assert paired["gbr_all_exponents"].p_value < 0.05


def test_equal_seeds_equal_results_other_seed_other_split(table, result):
    again = compare(table)
    assert again.as_dict() == result.as_dict()
    other = compare(table, seed=4, cv_repeats=0)
    assert other.test_keys != result.test_keys


def test_without_sweep_columns_only_the_paper_feature_variants_run(table):
    frame = table.drop(columns=SWEEP_COLUMNS)
    result = compare(frame)
    expected = ["paper", "gbr", "rf_first_shell", "gbr_first_shell", "rf_wide"]  # no crystal sums
    assert [v.name for v in result.variants] == expected
    assert [score.name for score in result.repeated_cv] == expected
    assert result.exponent is None and result.sweep is None


def _independent_fold_r2(table, result, name, estimator):
    """The variant's fold R² recomputed from the table, outside vtc_fw.ml.comparison."""
    rows = at_exponent(split_for_training(table, seed=3, cv=3).usable, result.exponent)
    assert len(rows) == len(result.train_keys) + len(result.test_keys)
    variant = result.variant(name)
    estimator.set_params(**variant.best_params)
    splitter = RepeatedKFold(n_splits=3, n_repeats=2, random_state=3)
    features, target = rows[variant.feature_columns].to_numpy(), rows["sams"].to_numpy()
    return cross_val_score(estimator, features, target, cv=splitter, scoring="r2")


def test_repeated_cv_pairs_every_variant_on_the_same_folds(table, result):
    assert result.cv_repeats == 2
    assert [score.name for score in result.repeated_cv] == TABLE_VARIANTS
    paper, *others = result.repeated_cv
    assert paper.diff_mean == 0 and paper.diff_se is None and paper.p_value is None
    paper_r2 = np.array(paper.fold_r2)
    for score in result.repeated_cv:
        r2 = np.array(score.fold_r2)
        assert len(r2) == 3 * 2  # J = cv × repeats
        assert (score.r2_mean, score.r2_std) == pytest.approx((r2.mean(), r2.std()))
    for score in others:
        d = np.array(score.fold_r2) - paper_r2
        se = np.sqrt((1 / 6 + 1 / (3 - 1)) * d.var(ddof=1))
        assert score.diff_mean == pytest.approx(d.mean())
        assert score.diff_se == pytest.approx(se)
        assert score.p_value == pytest.approx(2 * stats.t.sf(abs(d.mean()) / se, df=5))
    forest = RandomForestRegressor(random_state=3)
    assert np.allclose(_independent_fold_r2(table, result, "paper", forest), paper.fold_r2)
    boosting = HistGradientBoostingRegressor(early_stopping=False, random_state=3)
    assert np.allclose(
        _independent_fold_r2(table, result, "gbr_all_exponents", boosting),
        result.repeated_cv[3].fold_r2,
    )


def test_zero_repeats_skip_the_paired_cv(table):
    result = compare(table.drop(columns=SWEEP_COLUMNS), cv_repeats=0)
    assert result.repeated_cv == [] and result.as_dict()["repeated_cv"] == []
    assert "R² mean ± std" not in result.to_markdown()


def test_corrected_paired_t_by_hand():
    # J = 4, cv = 2: var(d, ddof=1) = 0.02 / 3, se = sqrt((1/4 + 1) · 0.02/3), t ≈ 1.0954
    se, p = corrected_paired_t(np.array([0.1, 0.2, 0.0, 0.1]), cv=2)
    assert se == pytest.approx(0.0912871)
    assert p == pytest.approx(0.353387, abs=1e-6)
    assert corrected_paired_t(np.zeros(4), cv=2) == (0.0, 1.0)
    assert corrected_paired_t(np.full(4, 0.1), cv=2) == (0.0, 0.0)


def test_bad_inputs_are_refused(table):
    with pytest.raises(ValueError, match="unknown model families"):
        compare(table, search_spaces={"svm": {}})
    with pytest.raises(ValueError, match="usable rows"):
        compare(table.head(4))


def test_markdown_and_json(result):
    markdown = result.to_markdown()
    lines = markdown.splitlines()
    assert lines[0].startswith("| variant | features | n_train | n_test |")
    assert lines[1] == "|" + " --- |" * 8
    rows = lines[2 : 2 + len(TABLE_VARIANTS)]
    assert [line.split(" | ")[0] for line in rows] == [f"| {name}" for name in TABLE_VARIANTS]
    paper = result.variant("paper")
    assert f"| paper | paper 8 | {len(result.train_keys)} | {len(result.test_keys)} |" in markdown
    assert f"{paper.r2_test:.3f}" in markdown
    n_usable = len(result.train_keys) + len(result.test_keys)
    assert f"Paired repeated CV over all {n_usable} usable rows (2 × 3-fold" in markdown
    paired = lines[lines.index("| variant | R² mean ± std | Δ vs paper ± se | p |") :]
    assert paired[1] == "|" + " --- |" * 4
    paired_rows = paired[2 : 2 + len(TABLE_VARIANTS)]
    names = [f"| {name}" for name in TABLE_VARIANTS]
    assert [line.split(" | ")[0] for line in paired_rows] == names
    assert paired[2 + len(TABLE_VARIANTS)] == ""  # then the descriptor table
    assert paired[2].endswith(" | 0 | – |")
    document = json.loads(json.dumps(result.as_dict()))
    assert [v["name"] for v in document["variants"]] == TABLE_VARIANTS
    assert "estimator" not in document["variants"][0]
    assert document["cv_repeats"] == 2
    assert [len(score["fold_r2"]) for score in document["repeated_cv"]] == [6] * len(TABLE_VARIANTS)


def cheap_split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paper rows, cheap rows): every third record keeps only a cheap label, 0.9 × label + 0.05.

    The paper records get a cheap label too (the calibration's pairs): 0.9 × label + 0.05.
    """
    cheap = table.assign(sams_cheap=0.9 * table["sams"] + 0.05).drop(columns=["sams"])
    return table.iloc[[i for i in range(len(table)) if i % 3]], cheap


@pytest.fixture(scope="module")
def cheap_result(table):
    paper, cheap = cheap_split(table)
    variants = ["rf_crystal_wide", "rf_crystal_wide_cheap", "et_crystal_cheap"]
    return compare(paper, cheap=cheap, calibration="raw", variants=variants)


def usable_others(cheap: pd.DataFrame, keys, exponent: int, columns) -> pd.DataFrame:
    """Cheap rows of records not in ``keys``, inside the domain and with every column."""
    others = at_exponent(cheap[~cheap["key"].isin(keys)], exponent)
    return others[others["in_domain"] & others[columns].notna().all(axis=1)]


def test_cheap_variants_fit_the_cheap_rows_of_the_other_records(table, cheap_result):
    paper, cheap = cheap_split(table)
    names = ["paper", "rf_crystal_wide", "rf_crystal_wide_cheap", "et_crystal_cheap"]
    assert [v.name for v in cheap_result.variants] == names
    assert [score.name for score in cheap_result.repeated_cv] == names
    wide = cheap_result.variant("rf_crystal_wide")
    others = usable_others(cheap, paper["key"], cheap_result.exponent, wide.feature_columns)
    split = set(cheap_result.train_keys) | set(cheap_result.test_keys)
    assert len(others) > 0 and split.isdisjoint(others["key"])
    assert [v.n_cheap for v in cheap_result.variants] == [0, 0, len(others), len(others)]
    # the same split, scored on the same paper test rows
    wide_cheap = cheap_result.variant("rf_crystal_wide_cheap")
    assert len(wide_cheap.test_predicted) == len(cheap_result.test_keys)
    assert wide_cheap.test_predicted != wide.test_predicted


def test_cheap_folds_fit_paper_training_rows_and_other_records_only(table, cheap_result):
    """Fold R² recomputed outside the module: a fold's held-out records never train."""
    paper, cheap = cheap_split(table)
    rows = at_exponent(split_for_training(paper, seed=3, cv=3).usable, cheap_result.exponent)
    rows = rows.reset_index(drop=True)
    variant = cheap_result.variant("rf_crystal_wide_cheap")
    columns = variant.feature_columns
    others = usable_others(cheap, rows["key"], cheap_result.exponent, columns)
    splitter = RepeatedKFold(n_splits=3, n_repeats=2, random_state=3)
    expected = []
    for train_index, test_index in splitter.split(rows):
        train = rows.iloc[train_index]
        features = np.vstack([train[columns].to_numpy(), others[columns].to_numpy()])
        labels = np.concatenate([train["sams"], others["sams_cheap"]])  # "raw": label as is
        forest = RandomForestRegressor(random_state=3).set_params(**variant.best_params)
        forest.fit(features, labels)
        held_out = rows.iloc[test_index]
        expected.append(r2_score(held_out["sams"], forest.predict(held_out[columns].to_numpy())))
    score = next(s for s in cheap_result.repeated_cv if s.name == "rf_crystal_wide_cheap")
    assert np.allclose(score.fold_r2, expected)


def test_versus_tests_against_any_variant_on_the_same_folds(cheap_result):
    scores = cheap_result.versus("rf_crystal_wide")
    folds = {score.name: np.array(score.fold_r2) for score in cheap_result.repeated_cv}
    for score in scores:
        d = folds[score.name] - folds["rf_crystal_wide"]
        assert score.fold_r2 == list(folds[score.name])
        assert score.diff_mean == pytest.approx(d.mean())
        assert score.folds_better == int((d > 0).sum())
        if score.name == "rf_crystal_wide":
            assert score.diff_se is None and score.p_value is None
        else:
            assert (score.diff_se, score.p_value) == pytest.approx(corrected_paired_t(d, cv=3))
    markdown = cheap_result.to_markdown(baseline="rf_crystal_wide")
    lines = markdown.splitlines()
    header = lines.index("| variant | Δ vs rf_crystal_wide ± se | p | folds better |")
    rows = lines[header + 2 : header + 5]
    assert [line.split(" | ")[0] for line in rows] == [
        "| paper",
        "| rf_crystal_wide_cheap",
        "| et_crystal_cheap",
    ]
    assert "| variant | Δ vs rf_crystal_wide" not in cheap_result.to_markdown()
    with pytest.raises(KeyError):
        cheap_result.versus("gbr")


def test_cheap_variants_need_cheap_rows(table):
    with pytest.raises(ValueError, match="train on cheap labels"):
        compare(table, variants=["et_crystal_cheap"], cv_repeats=0)


def _script():
    spec = importlib.util.spec_from_file_location("compare_models_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_on_recorded_feff_tasks(db_config, tmp_path, monkeypatch, capsys):
    build_recorded_labels(db_config)
    monkeypatch.setattr(model_comparison, "default_search_spaces", lambda: dict(TINY_SPACES))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    out_json, out_md = tmp_path / "out.json", tmp_path / "out.md"
    options = ["--n-iter", "1", "--cv", "2", "--cv-repeats", "2", "--json", str(out_json)]
    _script().main(["--db-file", str(db_file), "--seed", "1", *options, "--markdown", str(out_md)])
    captured = capsys.readouterr()
    assert captured.out.strip() == out_md.read_text().strip()
    assert "12 labelled rows (preset smoke)" in captured.err
    document = json.loads(out_json.read_text())
    # 13 recorded tasks: one failed for real, the 12 others are trained on
    assert document["table_excluded"]["failed_tasks"] == 1
    assert len(document["train_keys"]) + len(document["test_keys"]) == 12
    assert [v["name"] for v in document["variants"]] == TABLE_VARIANTS
    assert all(len(v["test_predicted"]) == len(document["test_keys"]) for v in document["variants"])
    assert document["cv_repeats"] == 2
    assert [len(score["fold_r2"]) for score in document["repeated_cv"]] == [4] * len(TABLE_VARIANTS)
    assert "Paired repeated CV over all 12 usable rows (2 × 2-fold" in captured.out


def test_script_cheap_labels_and_a_baseline(db_config, tmp_path, monkeypatch, capsys):
    """The recorded tasks' xes documents, a third of them moved to a cheap preset's collection."""
    build_recorded_labels(db_config)
    xes = db_config.collection("xes")
    labelled = sorted(xes.find({"state": "successful"}), key=lambda d: d["record_key"])
    cheap = [
        {k: v for k, v in d.items() if k != "_id"} | {"preset": "smoke_cheap"} for d in labelled
    ]
    db_config.collection("xes_smoke_cheap").insert_many(cheap)
    moved = [d["record_key"] for d in labelled[::3]]
    xes.delete_many({"record_key": {"$in": moved}})
    monkeypatch.setattr(model_comparison, "default_search_spaces", lambda: dict(TINY_SPACES))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    out_json = tmp_path / "out.json"
    options = ["--n-iter", "1", "--cv", "2", "--cv-repeats", "2", "--json", str(out_json)]
    variants = ["--variants", "rf_crystal_wide,rf_crystal_wide_cheap", "--calibration", "raw"]
    cheap_options = ["--cheap-labels", "smoke_cheap", "--baseline", "rf_crystal_wide"]
    _script().main(["--db-file", str(db_file), "--seed", "1", *options, *variants, *cheap_options])
    captured = capsys.readouterr()
    assert f"{len(labelled)} smoke_cheap rows" in captured.err
    document = json.loads(out_json.read_text())
    assert (document["cheap_labels"], document["calibration"]) == ("smoke_cheap", "raw")
    n_cheap = {v["name"]: v["n_cheap"] for v in document["variants"]}
    assert n_cheap == {"paper": 0, "rf_crystal_wide": 0, "rf_crystal_wide_cheap": len(moved)}
    assert set(moved).isdisjoint(document["train_keys"] + document["test_keys"])
    assert document["versus"]["baseline"] == "rf_crystal_wide"
    versus = {score["name"]: score for score in document["versus"]["scores"]}
    assert versus["rf_crystal_wide"]["p_value"] is None
    assert versus["rf_crystal_wide_cheap"]["fold_r2"] == document["repeated_cv"][2]["fold_r2"]
    assert "| variant | Δ vs rf_crystal_wide ± se | p | folds better |" in captured.out
