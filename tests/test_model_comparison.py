"""The paper's forest against the other variants on one split (vtc_fw.model_comparison).

Two real tables, as in the rest of the suite:

* the feature rows of the first 150 OQMD-ICSD structures that ``tests/test_ml.py`` uses too
  (the session fixture ``table``: ``tests/oqmd_table.py``, vtc-fw's featurizer, sweep columns
  at n = 2, 5, 9). No FEFF-labelled set of that size exists in a test, so the target is NOT
  SAMS: it is the OQMD DFT band gap and, where a known answer is needed, a stated function of
  real sweep columns;
* end to end through ``scripts/compare_models.py``: the recorded real FEFF10 tasks of
  ``tests/test_builders.py`` (stretched NiO and CoO, preset "smoke", real SAMS) put into the
  test database and turned into ``xes`` and ``features`` documents by the builders.

Searches are tiny (few trees, few boosting iterations, two draws) so the module takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from oqmd_table import SWEEP
from test_builders import store_recorded
from test_ml import TINY_SPACE

from vtc_fw import model_comparison
from vtc_fw.builders import FeatureBuilder, XesBuilder, run_builders
from vtc_fw.features import FEATURE_COLUMNS
from vtc_fw.ml import SWEPT_FEATURES, at_exponent, train_paper_protocol
from vtc_fw.model_comparison import (
    EXPONENT_FREE_FEATURES,
    VARIANTS,
    compare_models,
    describe_features,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_models.py"
TINY_GBR = {
    "learning_rate": [0.1, 0.3],
    "max_depth": [3],
    "max_leaf_nodes": [15],
    "min_samples_leaf": [2],
    "l2_regularization": [0.1],
    "max_iter": [30],
}
TINY_SPACES = {"random_forest": TINY_SPACE, "gradient_boosting": TINY_GBR}
SWEEP_COLUMNS = [f"{name}@{n}" for name in SWEPT_FEATURES for n in SWEEP]


def compare(frame: pd.DataFrame, seed: int = 3, **options):
    settings = {"n_iter": 2, "cv": 3, "search_spaces": TINY_SPACES}
    return compare_models(frame, seed=seed, **{**settings, **options})


@pytest.fixture(scope="module")
def result(table):
    return compare(table)


def test_every_variant_predicts_the_same_test_rows(table, result):
    assert [v.name for v in result.variants] == list(VARIANTS)
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
    assert describe_features(expected) == "5 + QAMS/IAMS/DAMS@2–9 (14)"


def test_extended_forest_sees_exponents_the_sweep_did_not_choose(table):
    """Target = IAMS@2 − IAMS@9 (a stated function of real sweep columns, not SAMS): no single
    exponent carries it, every exponent together does, so only the extended variants fit it."""
    frame = table.copy()
    frame["sams"] = frame["IAMS@2"] - frame["IAMS@9"]
    result = compare(frame)
    paper, extended = result.variant("paper"), result.variant("rf_all_exponents")
    assert extended.r2_test > paper.r2_test + 0.1
    assert result.variant("gbr_all_exponents").r2_test > result.variant("gbr").r2_test + 0.1


def test_equal_seeds_equal_results_other_seed_other_split(table, result):
    again = compare(table)
    assert again.as_dict() == result.as_dict()
    other = compare(table, seed=4)
    assert other.test_keys != result.test_keys


def test_without_sweep_columns_only_the_paper_feature_variants_run(table):
    frame = table.drop(columns=SWEEP_COLUMNS)
    result = compare(frame)
    assert [v.name for v in result.variants] == ["paper", "gbr"]
    assert result.exponent is None and result.sweep is None


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
    assert [line.split(" | ")[0] for line in lines[2:6]] == [f"| {name}" for name in VARIANTS]
    paper = result.variant("paper")
    assert f"| paper | paper 8 | {len(result.train_keys)} | {len(result.test_keys)} |" in markdown
    assert f"{paper.r2_test:.3f}" in markdown
    document = json.loads(json.dumps(result.as_dict()))
    assert [v["name"] for v in document["variants"]] == list(VARIANTS)
    assert "estimator" not in document["variants"][0]


def _script():
    spec = importlib.util.spec_from_file_location("compare_models_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_on_recorded_feff_tasks(db_config, tmp_path, monkeypatch, capsys):
    store_recorded(db_config)
    run_builders(
        [
            XesBuilder(db_config.store("tasks"), db_config.store("xes"), preset="smoke"),
            FeatureBuilder(db_config.store("structures"), db_config.store("features")),
        ]
    )
    monkeypatch.setattr(model_comparison, "default_search_spaces", lambda: dict(TINY_SPACES))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    out_json, out_md = tmp_path / "out.json", tmp_path / "out.md"
    options = ["--n-iter", "1", "--cv", "2", "--json", str(out_json), "--markdown", str(out_md)]
    _script().main(["--db-file", str(db_file), "--seed", "1", *options])
    captured = capsys.readouterr()
    assert captured.out.strip() == out_md.read_text().strip()
    assert "12 labelled rows (preset smoke)" in captured.err
    document = json.loads(out_json.read_text())
    # 13 recorded tasks: one failed for real, the 12 others are trained on
    assert document["table_excluded"]["failed_tasks"] == 1
    assert len(document["train_keys"]) + len(document["test_keys"]) == 12
    assert [v["name"] for v in document["variants"]] == list(VARIANTS)
    assert all(len(v["test_predicted"]) == len(document["test_keys"]) for v in document["variants"])
