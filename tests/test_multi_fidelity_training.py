"""The paper's protocol and TrainBuilder with calibrated cheap labels, on our committed labels.

Task documents are recorded outputs of our real FEFF runs: "paper" labels from
data/reference_paper.jsonl.gz, cheap "screen" labels from data/screen/batch_*.jsonl.gz
(feff10-rs 0.2.4, this project's engine), of the records whose OQMD-ICSD structures come first
in the shipped database (about 45 paper records, every one also computed with "screen", and
about 15 records computed with "screen" only). Their xes and feature documents are built here by
vtc-fw's own builders, once per module, without the tasks' σ (the target is SAMS, from the basis
spectra; σ's orientation search would take a minute); training uses a tiny search space (one
draw, 2 folds).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bson import json_util
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from test_builders import TINY_TRAINING, memory_store

from vtc_fw.builders import (
    FeatureBuilder,
    PredictionBuilder,
    TrainBuilder,
    XesBuilder,
    run_builders,
)
from vtc_fw.builders.train import (
    cheap_table,
    describe_model,
    latest_model,
    serialize_estimator,
    training_table,
)
from vtc_fw.ml.calibration import CHEAP_COLUMN
from vtc_fw.ml.multi_fidelity import CHEAP, FIDELITY_COLUMN, PAPER, validation_folds
from vtc_fw.ml.protocol import (
    cv_folds,
    out_of_fold_predictions,
    train_paper_protocol,
    training_rows_of,
)
from vtc_fw.ml.table import FEATURE_SET_COLUMNS, split_for_training
from vtc_fw.settings import FeatureSet
from vtc_fw.sources.oqmd import iter_oqmd_icsd
from vtc_fw.workflow.submission import structure_document

DATA = Path(__file__).resolve().parents[1] / "data"
FIRST_STRUCTURES = 1200
"""OQMD-ICSD rows whose labelled records are used (keeps featurizing to a few seconds)."""
PROTOCOL = {**TINY_TRAINING, "balanced": False}


def successful_tasks(paths: list[Path]) -> list[dict]:
    """The successful task documents of committed files, without σ."""
    tasks = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            documents = (json_util.loads(line) for line in handle)
            tasks += [d for d in documents if d.get("state") == "successful"]
    return [{key: value for key, value in task.items() if key != "sigma"} for task in tasks]


@pytest.fixture(scope="module")
def stores():
    """Tasks, structures, xes of each preset and features of the first structures' records."""
    tasks = successful_tasks([DATA / "reference_paper.jsonl.gz"])
    tasks += successful_tasks(sorted((DATA / "screen").glob("batch_*.jsonl.gz")))
    wanted = {task["structure_id"] for task in tasks}
    structures = [
        structure_document(entry)
        for entry in iter_oqmd_icsd(limit=FIRST_STRUCTURES)
        if entry.structure_id in wanted
    ]
    present = {document["structure_id"] for document in structures}
    stores = {
        "structures": memory_store("structures", "structure_id"),
        "tasks": memory_store("tasks", "task_key"),
        "xes": memory_store("xes", "record_key"),
        "xes_screen": memory_store("xes_screen", "record_key"),
        "features": memory_store("features", "record_key"),
    }
    stores["structures"].update(structures)
    stores["tasks"].update([t for t in tasks if t["structure_id"] in present])
    run_builders(
        [
            XesBuilder(stores["tasks"], stores["xes"], preset="paper"),
            XesBuilder(stores["tasks"], stores["xes_screen"], preset="screen"),
            FeatureBuilder(stores["structures"], stores["features"]),
        ]
    )
    return stores


@pytest.fixture(scope="module")
def tables(stores):
    """The paper training table and the cheap rows, as TrainBuilder makes them."""
    features = list(stores["features"].query())
    paper, _, _ = training_table(features, list(stores["xes"].query()), preset="paper")
    cheap = cheap_table(features, list(stores["xes_screen"].query()))
    paper_keys = {row["key"] for row in paper}
    assert len(paper) >= 40 and len([r for r in cheap if r["key"] not in paper_keys]) >= 10
    return pd.DataFrame(paper), pd.DataFrame(cheap)


def train(paper: pd.DataFrame, cheap: pd.DataFrame | None = None, **options):
    return train_paper_protocol(
        paper, seed=1, feature_set=FeatureSet.CRYSTAL, cheap=cheap, **PROTOCOL, **options
    )


def model_id(result) -> str:
    return serialize_estimator(result.estimator, result.feature_columns)[0]


def test_without_cheap_rows_the_protocol_is_the_paper_only_one(tables):
    paper, cheap = tables
    alone = train(paper)
    assert (alone.n_cheap, alone.cheap_keys, alone.calibration_method) == (0, [], None)
    empty = train(paper, cheap.iloc[:0])
    assert empty.metrics() == alone.metrics() and model_id(empty) == model_id(alone)
    # the cheap labels of paper records pair them, but never train: the same model
    paired_only = train(paper, cheap[cheap["key"].isin(paper["key"])])
    assert paired_only.n_cheap == 0 and model_id(paired_only) == model_id(alone)
    assert paired_only.test_predicted == alone.test_predicted


def test_cheap_rows_train_but_every_score_is_on_held_out_paper_labels(tables):
    paper, cheap = tables
    result = train(paper, cheap)
    paper_keys, cheap_only = set(paper["key"]), set(cheap["key"]) - set(paper["key"])
    assert set(result.test_keys) <= paper_keys and set(result.train_keys) <= paper_keys
    # only records without a paper label train on their cheap label: no test record's
    assert set(result.cheap_keys) == cheap_only and result.n_cheap == len(cheap_only)
    assert result.calibration_method == "forest_residual"
    assert model_id(result) != model_id(train(paper))
    # scores per element cover the paper test and training records, nothing else
    assert sum(score.n_test for score in result.per_element) == len(result.test_keys)
    assert sum(score.n_test for score in result.per_element_oof) == len(result.train_keys)
    # the search's CV score is that of folds validating on paper training rows only, every
    # cheap row in every training fold
    split = split_for_training(paper, seed=1, cv=2)
    columns = list(FEATURE_SET_COLUMNS[FeatureSet.CRYSTAL])
    rows, _ = training_rows_of(split, cheap, columns, "forest_residual", seed=1)
    fold_r2 = []
    for fit, validate in validation_folds(rows, cv_folds(2, 1)):
        assert set(rows.loc[validate, "key"]) <= set(result.train_keys)
        assert set(rows.loc[fit, "key"]) >= cheap_only
        forest = RandomForestRegressor(**result.best_params, random_state=1)
        forest.fit(rows.loc[fit, columns].to_numpy(), rows.loc[fit, "sams"].to_numpy())
        predicted = forest.predict(rows.loc[validate, columns].to_numpy())
        fold_r2.append(r2_score(rows.loc[validate, "sams"], predicted))
    assert result.cv_best_r2 == pytest.approx(np.mean(fold_r2))


def test_folds_validate_on_paper_rows_and_a_cheap_row_is_refused(tables):
    paper, _ = tables
    rows = paper.assign(**{FIDELITY_COLUMN: np.where(paper.index % 2 == 1, CHEAP, PAPER)})
    splitter = KFold(n_splits=3, shuffle=True, random_state=0)
    folds = validation_folds(rows, splitter)
    is_paper = (rows[FIDELITY_COLUMN] == PAPER).to_numpy()
    validated = np.concatenate([validate for _, validate in folds])
    assert sorted(validated) == list(np.flatnonzero(is_paper))  # each paper row once
    for fit, validate in folds:
        assert set(np.flatnonzero(~is_paper)) <= set(fit) and not set(fit) & set(validate)
    # without cheap rows, the splitter's own folds
    alone = validation_folds(rows.assign(**{FIDELITY_COLUMN: PAPER}), splitter)
    for (fit, validate), (own_fit, own_validate) in zip(alone, splitter.split(rows), strict=True):
        assert list(fit) == list(own_fit) and list(validate) == list(own_validate)
    columns = list(FEATURE_SET_COLUMNS[FeatureSet.PAPER])
    leaking = [(np.arange(2, len(rows)), np.arange(2))]  # row 1 is a cheap row
    with pytest.raises(ValueError, match="evaluation is on paper only"):
        out_of_fold_predictions({"n_estimators": 5}, rows, leaking, seed=0, columns=columns)


def test_the_calibration_is_fit_on_training_pairs_only(tables):
    paper, cheap = tables
    result = train(paper, cheap)
    test_record, train_record = result.test_keys[0], result.train_keys[0]
    assert {test_record, train_record} <= set(cheap["key"])  # both paired
    # a test record's paper label and cheap label leave the model as it was
    changed_paper = paper.assign(sams=paper["sams"].where(paper["key"] != test_record, 9.0))
    assert model_id(train(changed_paper, cheap)) == model_id(result)
    bumped = cheap[CHEAP_COLUMN].where(cheap["key"] != test_record, 9.0)
    assert model_id(train(paper, cheap.assign(**{CHEAP_COLUMN: bumped}))) == model_id(result)
    # a training record's cheap label moves the calibration, so the cheap rows' labels
    bumped = cheap[CHEAP_COLUMN].where(cheap["key"] != train_record, 9.0)
    assert model_id(train(paper, cheap.assign(**{CHEAP_COLUMN: bumped}))) != model_id(result)


def builder(stores, models, **options) -> TrainBuilder:
    return TrainBuilder(
        stores["features"],
        stores["xes"],
        models["models"],
        models["model_blobs"],
        seed=1,
        **{**TINY_TRAINING, "balanced": False, "feature_set": "crystal", **options},
    )


def test_train_builder_keeps_paper_only_and_mixed_models_apart(stores):
    models = {
        "models": memory_store("models", "model_id"),
        "model_blobs": memory_store("model_blobs", "model_id"),
    }
    assert run_builders([builder(stores, models)]) == {"TrainBuilder": 1}
    paper_only = latest_model(models["models"], "crystal", "sams", None)
    assert paper_only["cheap_preset"] is None and set(paper_only["fidelity"]) == {"paper"}
    mixed_builder = builder(stores, models, cheap_preset="screen", cheap_xes=stores["xes_screen"])
    assert len(list(mixed_builder.get_items())) == 1  # the paper-only model is not its own
    assert run_builders([mixed_builder]) == {"TrainBuilder": 1}
    mixed = latest_model(models["models"], "crystal", "sams", "screen")
    document = models["models"].query_one({"model_id": mixed["model_id"]})
    assert mixed["cheap_preset"] == "screen" and document["n_cheap"] > 0
    assert mixed["fidelity"] == {
        "paper": paper_only["fidelity"]["paper"],
        "screen": document["n_cheap"],
    }
    assert document["excluded"]["other_preset"] == 0
    assert document["builder_meta"]["parameters"]["calibration"] == "forest_residual"
    assert f"calibrated screen {document['n_cheap']}" in describe_model(mixed)
    assert "calibrated" not in describe_model(paper_only)
    # the newer mixed model is current for mixed callers and for any, never for paper-only
    assert (
        latest_model(models["models"], "crystal", "sams", None)["model_id"]
        == paper_only["model_id"]
    )
    assert latest_model(models["models"], "crystal", "sams")["model_id"] == mixed["model_id"]
    # a model stored before the label mix existed is paper-only
    legacy = models["models"].query_one({"model_id": paper_only["model_id"]})
    models["models"].update([{k: v for k, v in legacy.items() if k != "cheap_preset"}])
    assert "cheap_preset" not in models["models"].query_one({"model_id": paper_only["model_id"]})
    assert (
        latest_model(models["models"], "crystal", "sams", None)["model_id"]
        == paper_only["model_id"]
    )
    # each configuration's model has seen every source: nothing to train
    assert list(builder(stores, models).get_items()) == []
    assert list(mixed_builder.get_items()) == []
    # the nightly prediction builder of the paper-only configuration predicts with its model
    predictions = memory_store("predictions", "prediction_key")
    predict = PredictionBuilder(
        stores["features"],
        models["models"],
        models["model_blobs"],
        predictions,
        feature_set="crystal",
        target="sams",
        cheap_preset=None,
    )
    run_builders([predict])
    assert predictions.distinct("model_id") == [paper_only["model_id"]]


def test_cheap_labels_in_the_paper_xes_store_are_not_another_preset(stores):
    features = list(stores["features"].query())
    paper_keys = set(stores["xes"].distinct("record_key"))
    screen_only = [d for d in stores["xes_screen"].query() if d["record_key"] not in paper_keys]
    mixed = list(stores["xes"].query()) + screen_only
    _, excluded, preset = training_table(features, mixed, preset="paper", cheap_preset="screen")
    assert excluded["other_preset"] == 0 and preset == "paper"
    _, excluded, _ = training_table(features, mixed, preset="paper")
    assert excluded["other_preset"] == len(screen_only)
